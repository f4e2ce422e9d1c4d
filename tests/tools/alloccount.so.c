/* alloccount.so - LD_PRELOAD probe that counts memory-management calls made after a process has
 * declared itself ready.  Used by tests/e2e/e2e_hotpath.c to prove vigil-hotpath's invariant
 * "nothing calls malloc after hp_ready()".
 *
 * Counted (once ready): malloc, calloc, realloc, reallocarray, free, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc, mmap, mmap64, mremap, munmap, pthread_create.  Library code that
 * allocates (strdup, stdio buffers, printf with %ls, getaddrinfo, ...) is caught through malloc,
 * because glibc routes its own internal malloc calls through the interposable symbol.  Not
 * counted: brk/sbrk (only malloc itself uses them, and malloc is counted) and raw syscall(2).
 *
 * Interface with the program (resolved through the program's weak undefined references; see
 * hotpath/hp_stats.h):
 *   void vigil_alloc_mark_ready(void);                  start counting
 *   unsigned long long vigil_alloc_calls_after_ready(void);
 * Environment:
 *   VIGIL_ALLOCCOUNT_VERBOSE=1   write "alloccount: <fn> after ready" to stderr per counted call
 *   VIGIL_ALLOCCOUNT_SELFTEST=1  mark_ready itself then calls malloc and free once, so a correct
 *                                probe reports exactly 2 (proves the counting path end to end)
 *
 * Bootstrap: dlsym() may call calloc/malloc before the real functions are known; those requests
 * are served from a static arena (never freed, never counted). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void vigil_alloc_mark_ready(void);
unsigned long long vigil_alloc_calls_after_ready(void);

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_reallocarray)(void *, size_t, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);
static int (*real_munmap)(void *, size_t);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static atomic_int ready;
static atomic_ullong after_ready;
static int verbose;
static int selftest;

/* ---- bootstrap arena ------------------------------------------------------------------------ */
static _Alignas(16) unsigned char boot[256 * 1024];
static atomic_size_t boot_used;

static int in_boot(const void *p)
{
    return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot;
}

/* Each block is preceded by 16 bytes holding its size, for realloc. */
static void *boot_alloc(size_t n)
{
    size_t need = (n + 15) / 16 * 16 + 16;
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > sizeof boot)
        return NULL;
    memcpy(boot + off, &n, sizeof n);
    return boot + off + 16;
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - 16, sizeof n);
    return n;
}

static _Thread_local int resolving;
static atomic_int resolved;

static void resolve(void)
{
    if (atomic_load(&resolved) || resolving)
        return;
    resolving = 1;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_reallocarray = dlsym(RTLD_NEXT, "reallocarray");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_mmap64 = dlsym(RTLD_NEXT, "mmap64");
    real_mremap = dlsym(RTLD_NEXT, "mremap");
    real_munmap = dlsym(RTLD_NEXT, "munmap");
    real_pthread_create = dlsym(RTLD_NEXT, "pthread_create");
    resolving = 0;
    atomic_store(&resolved, 1);
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    const char *v = getenv("VIGIL_ALLOCCOUNT_VERBOSE");
    verbose = v && *v == '1';
    v = getenv("VIGIL_ALLOCCOUNT_SELFTEST");
    selftest = v && *v == '1';
}

static void count(const char *fn)
{
    if (!atomic_load_explicit(&ready, memory_order_relaxed))
        return;
    atomic_fetch_add(&after_ready, 1);
    if (verbose) {
        char line[96];
        size_t n = strlen(fn);
        if (n > 60)
            n = 60;
        memcpy(line, "alloccount: ", 12);
        memcpy(line + 12, fn, n);
        memcpy(line + 12 + n, " after ready\n", 13);
        ssize_t w = write(2, line, 12 + n + 13);
        (void)w;
    }
}

void vigil_alloc_mark_ready(void)
{
    atomic_store(&ready, 1);
    if (selftest) {
        /* Through volatile pointers so the compiler cannot elide the malloc/free pair. */
        void *(*volatile m)(size_t) = malloc;
        void (*volatile f)(void *) = free;
        f(m(32));
    }
}

unsigned long long vigil_alloc_calls_after_ready(void)
{
    return atomic_load(&after_ready);
}

/* ---- interposers ---------------------------------------------------------------------------- */

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc)
        return boot_alloc(n);
    count("malloc");
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    resolve();
    if (!real_calloc) {
        size_t n;
        if (__builtin_mul_overflow(a, b, &n))
            return NULL;
        return boot_alloc(n); /* static storage: already zero */
    }
    count("calloc");
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (in_boot(p) || !real_realloc) {
        void *q = boot_alloc(n);
        if (q && p) {
            size_t old = in_boot(p) ? boot_size(p) : 0;
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    count("realloc");
    return real_realloc(p, n);
}

void *reallocarray(void *p, size_t a, size_t b)
{
    resolve();
    if (in_boot(p) || !real_reallocarray) {
        size_t n;
        if (__builtin_mul_overflow(a, b, &n))
            return NULL;
        return realloc(p, n);
    }
    count("reallocarray");
    return real_reallocarray(p, a, b);
}

void free(void *p)
{
    if (in_boot(p))
        return;
    resolve();
    count("free");
    if (real_free)
        real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    count("posix_memalign");
    return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    count("aligned_alloc");
    return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    resolve();
    count("memalign");
    return real_memalign(align, n);
}

void *valloc(size_t n)
{
    resolve();
    count("valloc");
    return real_valloc(n);
}

void *pvalloc(size_t n)
{
    resolve();
    count("pvalloc");
    return real_pvalloc(n);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    resolve();
    count("mmap");
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    resolve();
    count("mmap64");
    return real_mmap64(addr, len, prot, flags, fd, off);
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *new_addr = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    resolve();
    count("mremap");
    return real_mremap(old, old_len, new_len, flags, new_addr);
}

int munmap(void *addr, size_t len)
{
    resolve();
    count("munmap");
    return real_munmap(addr, len);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    resolve();
    count("pthread_create");
    return real_pthread_create(t, attr, fn, arg);
}
