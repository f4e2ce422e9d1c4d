/* e2e_hotpath.c - end-to-end tests of bin/vigil-hotpath: starts the real worker (from
 * $VIGIL_BIN_DIR, default: the bin dir this test was built into, bin or bin/asan) on a socket in a
 * fresh mkdtemp directory and talks the wire protocol to it over Unix sockets.
 *
 * Self-contained on purpose (every helper is static here): the shared tests/e2e/harness.* belongs
 * to the API side.  Frames are built and parsed with common/wire.c, which has its own unit tests.
 * Expected values are written out in the tests (counts of what the test itself sent, sizes
 * computed by hand), never read back from the worker and echoed.
 *
 * LOAD_MODEL / SCORE: fixture models are compiled here with xgb_compile (common/xgbmodel.c, linked
 * into e2e binaries) and scored over the socket; outputs are compared with xgboost 1.7.4's own
 * predictions from tests/fixtures (the worker matches them bit for bit, see test_kernel.c).
 *
 * The allocation tests preload $VIGIL_BIN_DIR/tests/alloccount.so (the scoring one sends every
 * other SCORE as a traced frame, WIRE_F_TRACE, so the timing path is covered too); it is skipped
 * when the worker is ASan-instrumented (VIGIL_ASAN=1, or a bin dir whose name contains "asan"),
 * because ASan must be the first library loaded and has its own allocator.  Each of the three then
 * prints a SKIPPED line (tests/lib/skip.h), counted as skipped by tests/run.sh.
 *
 * Scoring kernels: the tests marked "per kernel" are Check loop tests over every scorer listed in
 * hotpath/hp_scorers.def (included here as an X-macro list), each starting the worker with
 * VIGIL_HOTPATH_KERNEL=<name> and checking that HELLO reports it; a new scorer is covered
 * without an edit here.
 *
 * Runs with CK_NOFORK; every worker started is recorded and killed in the teardown, even when a
 * test fails half-way. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixtures_io.h"
#include "skip.h"
#include "model.h"
#include "model_build.h"
#include "refeval.h"
#include "sha256.h"
#include "wire.h"
#include "xgbmodel.h"

#define EXPECT_VERSION_DEFAULT "0.1.0"

/* The worker's scoring kernels, in registry order (the first is its default). */
static const char *const kernels[] = {
#define HP_SCORER(n) #n,
#include "hp_scorers.def"
#undef HP_SCORER
};
#define NKERNELS ((int)(sizeof kernels / sizeof kernels[0]))

/* "VIGIL_HOTPATH_KERNEL=<kernels[i]>" for a worker's environment (one test at a time). */
static const char *kernel_env(int i)
{
    static char kv[64];
    snprintf(kv, sizeof kv, "VIGIL_HOTPATH_KERNEL=%s", kernels[i]);
    printf("  kernel %s\n", kernels[i]);
    return kv;
}
#define MIB (1u << 20)

static char worker_bin[PATH_MAX + 32];
static char probe_so[PATH_MAX + 32];
static int asan_build;

/* ---- process management --------------------------------------------------------------------- */

static char tmpdir[64];
static char sock_path[160];
static pid_t spawned[32];
static int nspawned;

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void setup(void)
{
    strcpy(tmpdir, "/tmp/vhp-e2e-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(sock_path, sizeof sock_path, "%s/hp.sock", tmpdir);
    nspawned = 0;
}

/* Sanitizer reports found in worker logs; main turns any into a failed run (a report in a
 * worker that the test then kills would otherwise go unseen). */
static int sanitizer_reports;

static int scan_log(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(p);
    if (flag != FTW_F || n < 4 || strcmp(p + n - 4, ".log") != 0)
        return 0;
    FILE *f = fopen(p, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
            fprintf(stderr, "e2e_hotpath: sanitizer report in %s: %s", p, line);
            sanitizer_reports++;
        }
    }
    if (f)
        fclose(f);
    return 0;
}

static void teardown(void)
{
    for (int i = 0; i < nspawned; i++) {
        if (spawned[i] > 0) {
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
            spawned[i] = 0;
        }
    }
    nspawned = 0;
    if (tmpdir[0]) {
        nftw(tmpdir, scan_log, 16, FTW_PHYS);
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    tmpdir[0] = '\0';
}

static void forget(pid_t pid)
{
    for (int i = 0; i < nspawned; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
}

static const char *const worker_vars[] = {
    "VIGIL_HOTPATH_SOCKET",      "VIGIL_HOTPATH_MAX_CONNS",      "VIGIL_HOTPATH_MAX_FRAME_MB",
    "VIGIL_HOTPATH_SCRATCH_MB",  "VIGIL_HOTPATH_IDLE_TIMEOUT_S", "VIGIL_HOTPATH_IO_TIMEOUT_MS",
    "VIGIL_ALLOCCOUNT_SELFTEST", "VIGIL_ALLOCCOUNT_VERBOSE",     "LD_PRELOAD",
    "VIGIL_HOTPATH_MEMORY_MB",   "VIGIL_HOTPATH_KERNEL",
};

/* Starts the worker binary with arg (or none), the VIGIL_HOTPATH_* environment cleared and then
 * set from env ("NAME=value" strings, NULL-terminated; VIGIL_HOTPATH_SOCKET defaults to
 * sock_path unless env sets it or "NOSOCKET" is given), stdout+stderr into log, cwd = cwd or
 * unchanged.  Returns the pid, recorded for the teardown. */
static pid_t spawn(const char *arg, const char *const *env, const char *log, const char *cwd)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        for (size_t i = 0; i < sizeof worker_vars / sizeof worker_vars[0]; i++)
            unsetenv(worker_vars[i]);
        int nosock = 0;
        for (const char *const *e = env; e && *e; e++)
            if (strcmp(*e, "NOSOCKET") == 0)
                nosock = 1;
        if (!nosock)
            setenv("VIGIL_HOTPATH_SOCKET", sock_path, 1);
        for (const char *const *e = env; e && *e; e++) {
            if (strcmp(*e, "NOSOCKET") == 0)
                continue;
            char kv[4096];
            snprintf(kv, sizeof kv, "%s", *e);
            char *eq = strchr(kv, '=');
            if (!eq)
                _exit(126);
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(worker_bin, "vigil-hotpath", arg, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_lt(nspawned, (int)(sizeof spawned / sizeof spawned[0]));
    spawned[nspawned++] = pid;
    return pid;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits up to timeout_ms for pid to exit.  Returns 1 and *status when it did (and forgets it). */
static int wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t end = wire_now_ms() + timeout_ms;
    do {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) {
            forget(pid);
            return 1;
        }
        sleep_ms(10);
    } while (wire_now_ms() < end);
    return 0;
}

/* Fills a Unix socket address; paths here are short (mkdtemp under /tmp), longer ones abort. */
static void fill_sun(struct sockaddr_un *a, const char *path)
{
    size_t n = strlen(path);
    ck_assert_uint_lt(n, sizeof a->sun_path);
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, n + 1);
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un a;
    fill_sun(&a, path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits until something accepts connections on path, or pid exits.  0 = up. */
static int wait_listening(const char *path, pid_t pid, int timeout_ms)
{
    int64_t end = wire_now_ms() + timeout_ms;
    while (wire_now_ms() < end) {
        int fd = connect_to(path);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            forget(pid);
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

static char log_path[PATH_MAX];

/* Starts a worker on sock_path with env and waits until it accepts. */
static pid_t start_worker(const char *const *env)
{
    snprintf(log_path, sizeof log_path, "%s/worker.log", tmpdir);
    pid_t pid = spawn(NULL, env, log_path, NULL);
    ck_assert_msg(wait_listening(sock_path, pid, 10000) == 0, "worker did not start (log %s)",
                  log_path);
    return pid;
}

/* Reads a whole (small) file into buf, NUL-terminated. */
static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* ---- wire client ---------------------------------------------------------------------------- */

static int send_all(int fd, const void *p, size_t n)
{
    return wire_write_full(fd, p, n, wire_now_ms() + 10000) == WIRE_IO_OK ? 0 : -1;
}

static int send_hdr(int fd, uint32_t magic, uint16_t version, uint16_t op, uint32_t len,
                    uint64_t id)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header h = {
        .magic = magic, .version = version, .op = op, .payload_len = len, .request_id = id};
    wire_header_encode(raw, &h);
    return send_all(fd, raw, sizeof raw);
}

static int send_req(int fd, uint16_t op, uint64_t id, const void *p, uint32_t len)
{
    if (send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, op, len, id) != 0)
        return -1;
    return len ? send_all(fd, p, len) : 0;
}

/* Reads one response frame: 0 ok (payload in buf, *len), -1 EOF/error/timeout, -2 garbage. */
static int recv_resp(int fd, wire_header *h, uint8_t *buf, size_t cap, uint32_t *len,
                     int timeout_ms)
{
    uint8_t raw[WIRE_HEADER_SIZE];
    int64_t end = wire_now_ms() + timeout_ms;
    if (wire_read_full(fd, raw, sizeof raw, end) != WIRE_IO_OK)
        return -1;
    if (wire_header_decode(raw, (uint32_t)cap, h) != WIRE_OK)
        return -2;
    if (wire_read_full(fd, buf, h->payload_len, end) != WIRE_IO_OK)
        return -1;
    *len = h->payload_len;
    return 0;
}

/* 1 if the worker closed fd (EOF or reset) within timeout_ms and sent nothing more. */
static int closed_by_peer(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return 0;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static int printable(const uint8_t *p, uint32_t n)
{
    if (n == 0)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    return 1;
}

/* One PING round trip on fd with a recognisable payload; 0 if echoed correctly. */
static int ping_ok(int fd, uint64_t id)
{
    uint8_t msg[16], got[64];
    memcpy(msg, &id, 8);
    memcpy(msg + 8, "pingpong", 8);
    wire_header h;
    uint32_t n;
    if (send_req(fd, WIRE_OP_PING, id, msg, sizeof msg) != 0 ||
        recv_resp(fd, &h, got, sizeof got, &n, 3000) != 0)
        return -1;
    if (h.status != WIRE_OK || h.request_id != id || !(h.flags & WIRE_F_RESPONSE) ||
        h.op != WIRE_OP_PING || n != sizeof msg || memcmp(got, msg, n) != 0)
        return -1;
    return 0;
}

/* A connection that holds a slot (answered a PING); retries while the worker is still releasing
 * the slot of a connection that was just closed (start_worker's own probe, for one). */
static int connect_slot(uint64_t id)
{
    int64_t end = wire_now_ms() + 3000;
    while (wire_now_ms() < end) {
        int fd = connect_to(sock_path);
        if (fd >= 0 && ping_ok(fd, id) == 0)
            return fd;
        if (fd >= 0)
            close(fd);
        sleep_ms(20);
    }
    return -1;
}

typedef struct stat_kv {
    char name[64];
    uint64_t value;
} stat_kv;

/* STATS on fd into kv (up to cap entries); returns the count or -1. */
static int stats_on(int fd, stat_kv *kv, int cap)
{
    static uint8_t buf[65536];
    wire_header h;
    uint32_t n;
    if (send_req(fd, WIRE_OP_STATS, 77, NULL, 0) != 0 ||
        recv_resp(fd, &h, buf, sizeof buf, &n, 3000) != 0 || h.status != WIRE_OK)
        return -1;
    wire_reader r;
    wire_reader_init(&r, buf, n);
    int count = wire_get_u16(&r);
    if (count > cap)
        return -1;
    for (int i = 0; i < count; i++) {
        wire_get_str(&r, kv[i].name, sizeof kv[i].name);
        kv[i].value = wire_get_u64(&r);
    }
    if (r.err || wire_remaining(&r) != 0)
        return -1;
    return count;
}

static uint64_t stat_find(const stat_kv *kv, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].name, name) == 0)
            return kv[i].value;
    ck_abort_msg("STATS has no counter %s", name);
    return 0;
}

/* STATS on a fresh connection; retries for a while if every slot is still taken (a client's
 * close reaches the worker asynchronously, so its slot may not be free yet). */
static uint64_t stat_now(const char *name)
{
    stat_kv kv[128];
    int n = -1;
    int64_t end = wire_now_ms() + 3000;
    while (n <= 0 && wire_now_ms() < end) {
        int fd = connect_to(sock_path);
        ck_assert_int_ge(fd, 0);
        n = stats_on(fd, kv, 128);
        close(fd);
        if (n <= 0)
            sleep_ms(20);
    }
    ck_assert_int_gt(n, 0);
    return stat_find(kv, n, name);
}

/* Polls a counter until it reaches want (the worker notices some events asynchronously). */
static uint64_t stat_wait(const char *name, uint64_t want, int timeout_ms)
{
    int64_t end = wire_now_ms() + timeout_ms;
    uint64_t v;
    while ((v = stat_now(name)) < want && wire_now_ms() < end)
        sleep_ms(20);
    return v;
}

static const char *const small_env[] = {"VIGIL_HOTPATH_MAX_FRAME_MB=1", NULL};

/* ---- HELLO / PING / STATS ------------------------------------------------------------------- */

START_TEST(hello_reports_version_and_kernels)
{
    start_worker(small_env);
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    const char *want_version = getenv("VIGIL_EXPECT_VERSION");
    if (!want_version || !*want_version)
        want_version = EXPECT_VERSION_DEFAULT;

    for (int round = 0; round < 2; round++) { /* the connection stays usable */
        uint8_t buf[4096];
        wire_header h;
        uint32_t n;
        uint64_t id = 0x1122334455667788ull + (uint64_t)round;
        ck_assert_int_eq(send_req(fd, WIRE_OP_HELLO, id, NULL, 0), 0);
        ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
        ck_assert_uint_eq(h.status, WIRE_OK);
        ck_assert_uint_eq(h.op, WIRE_OP_HELLO);
        ck_assert(h.flags & WIRE_F_RESPONSE);
        ck_assert(h.request_id == id);

        wire_reader r;
        char version[64], name[64], impl[64];
        wire_reader_init(&r, buf, n);
        ck_assert_uint_eq(wire_get_u16(&r), WIRE_VERSION); /* the protocol version */
        wire_get_str(&r, version, sizeof version);
        ck_assert_str_eq(version, want_version);
        unsigned nk = wire_get_u16(&r);
        ck_assert_uint_ge(nk, 3);
        int seen_hello = 0, seen_ping = 0, seen_stats = 0, seen_score = 0;
        unsigned seen_ops[WIRE_OP_MAX] = {0};
        for (unsigned i = 0; i < nk; i++) {
            unsigned op = wire_get_u16(&r);
            wire_get_str(&r, name, sizeof name);
            wire_get_str(&r, impl, sizeof impl);
            ck_assert_int_eq(r.err, 0);
            ck_assert_uint_lt(op, WIRE_OP_MAX);
            ck_assert_uint_eq(seen_ops[op]++, 0); /* each op once */
            ck_assert_uint_gt(strlen(impl), 0);
            if (op == 1 && strcmp(name, "hello") == 0)
                seen_hello = 1;
            if (op == 2 && strcmp(name, "ping") == 0)
                seen_ping = 1;
            if (op == 5 && strcmp(name, "stats") == 0)
                seen_stats = 1;
            /* LOAD_MODEL and SCORE name the default kernel (no VIGIL_HOTPATH_KERNEL set). */
            if (op == WIRE_OP_LOAD_MODEL || op == WIRE_OP_SCORE) {
                ck_assert_str_eq(impl, kernels[0]);
                seen_score += op == WIRE_OP_SCORE;
            }
        }
        ck_assert(seen_hello && seen_ping && seen_stats && seen_score);
        ck_assert_int_eq(r.err, 0);
        ck_assert_uint_eq(wire_remaining(&r), 0);
    }
    close(fd);
}
END_TEST

START_TEST(ping_echoes_up_to_max_payload)
{
    start_worker(small_env); /* max payload 1 MiB */
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    uint8_t *p = malloc(MIB), *got = malloc(MIB);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(got);
    for (uint32_t i = 0; i < MIB; i++)
        p[i] = (uint8_t)(i * 2654435761u >> 24);
    static const uint32_t sizes[] = {0, 1, 4095, 65536, MIB - 1, MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        wire_header h;
        uint32_t n;
        ck_assert_int_eq(send_req(fd, WIRE_OP_PING, 1000 + i, p, sizes[i]), 0);
        ck_assert_int_eq(recv_resp(fd, &h, got, MIB, &n, 10000), 0);
        ck_assert_uint_eq(h.status, WIRE_OK);
        ck_assert(h.request_id == 1000 + i);
        ck_assert_uint_eq(n, sizes[i]);
        ck_assert_int_eq(memcmp(got, p, n), 0);
    }
    free(p);
    free(got);
    close(fd);
}
END_TEST

START_TEST(stats_counts_what_was_sent)
{
    start_worker(
        (const char *const[]){"VIGIL_HOTPATH_MAX_FRAME_MB=1", "VIGIL_HOTPATH_MAX_CONNS=3", NULL});
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    uint8_t buf[256];
    wire_header h;
    uint32_t n;
    /* 3 HELLO (no payload), 5 PING with payloads 0..4 bytes, 1 STATS. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(send_req(fd, WIRE_OP_HELLO, (uint64_t)i, NULL, 0), 0);
        ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    }
    for (uint32_t i = 0; i < 5; i++) {
        ck_assert_int_eq(send_req(fd, WIRE_OP_PING, 10 + i, "abcd", i), 0);
        ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
        ck_assert_uint_eq(n, i);
    }
    /* STATS until the worker has noticed the close of start_worker's probe connection (k >= 2
     * rounds, so the last one sees an earlier STATS as done). */
    stat_kv kv[128];
    int cnt = 0;
    unsigned k = 0;
    int64_t end = wire_now_ms() + 3000;
    do {
        cnt = stats_on(fd, kv, 128);
        ck_assert_int_gt(cnt, 0);
        k++;
    } while (k < 2 || (stat_find(kv, cnt, "conns_closed") < 1 && wire_now_ms() < end));
    for (int i = 0; i < cnt; i++)
        for (int j = i + 1; j < cnt; j++)
            ck_assert_str_ne(kv[i].name, kv[j].name);

    ck_assert_uint_eq(stat_find(kv, cnt, "op_hello_calls"), 3);
    ck_assert_uint_eq(stat_find(kv, cnt, "op_ping_calls"), 5);
    ck_assert_uint_eq(stat_find(kv, cnt, "op_stats_calls"), k - 1);
    /* frames_in includes the STATS being answered; frames_out does not include its answer. */
    ck_assert_uint_eq(stat_find(kv, cnt, "frames_in"), 3 + 5 + k);
    ck_assert_uint_eq(stat_find(kv, cnt, "frames_out"), 3 + 5 + k - 1);
    /* Headers of 24 bytes + PING payloads 0+1+2+3+4. */
    ck_assert_uint_eq(stat_find(kv, cnt, "bytes_in"), (3 + 5 + k) * 24 + 10);
    ck_assert_uint_eq(stat_find(kv, cnt, "conns_closed"), 1);
    /* Ours, plus the connection start_worker made to see the worker listening. */
    ck_assert_uint_eq(stat_find(kv, cnt, "conns_accepted"), 2);
    ck_assert_uint_eq(stat_find(kv, cnt, "conns_active"), 1);
    ck_assert_uint_eq(stat_find(kv, cnt, "conns_rejected"), 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "slots"), 3);
    ck_assert_uint_eq(stat_find(kv, cnt, "max_payload"), MIB);
    ck_assert_uint_eq(stat_find(kv, cnt, "errors_bad_frame"), 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "alloc_probe_present"), 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "alloc_calls_after_ready"), 0);
    ck_assert_uint_gt(stat_find(kv, cnt, "op_hello_ns"), 0);
    close(fd);
}
END_TEST

/* ---- malformed input ------------------------------------------------------------------------ */

typedef struct bad_case {
    const char *what;
    uint32_t magic;
    uint16_t version;
    uint16_t op;
    uint16_t want;
} bad_case;

START_TEST(malformed_headers_get_status_and_close)
{
    static const bad_case cases[] = {
        {"bad magic", 0x12345678u, WIRE_VERSION, WIRE_OP_PING, WIRE_E_BAD_FRAME},
        {"version 0", WIRE_MAGIC, 0, WIRE_OP_PING, WIRE_E_BAD_VERSION},
        {"version 1 (keys not bound to blobs)", WIRE_MAGIC, 1, WIRE_OP_PING, WIRE_E_BAD_VERSION},
        {"next version", WIRE_MAGIC, WIRE_VERSION + 1, WIRE_OP_PING, WIRE_E_BAD_VERSION},
        {"op 0", WIRE_MAGIC, WIRE_VERSION, 0, WIRE_E_UNKNOWN_OP},
        {"op = WIRE_OP_MAX", WIRE_MAGIC, WIRE_VERSION, WIRE_OP_MAX, WIRE_E_UNKNOWN_OP},
        {"op 0xffff", WIRE_MAGIC, WIRE_VERSION, 0xFFFF, WIRE_E_UNKNOWN_OP},
        {"op 63 (in range, no kernel)", WIRE_MAGIC, WIRE_VERSION, 63, WIRE_E_UNKNOWN_OP},
    };
    start_worker(small_env);
    int bystander = connect_to(sock_path);
    ck_assert_int_ge(bystander, 0);
    ck_assert_int_eq(ping_ok(bystander, 1), 0);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        int fd = connect_to(sock_path);
        ck_assert_int_ge(fd, 0);
        uint64_t id = 500 + i;
        ck_assert_int_eq(send_hdr(fd, c->magic, c->version, c->op, 0, id), 0);
        uint8_t buf[512];
        wire_header h;
        uint32_t n;
        ck_assert_msg(recv_resp(fd, &h, buf, sizeof buf, &n, 3000) == 0, "%s: no answer", c->what);
        ck_assert_msg(h.status == c->want, "%s: status %u, want %u", c->what, h.status, c->want);
        ck_assert(h.flags & WIRE_F_RESPONSE);
        ck_assert_msg(h.request_id == id, "%s: request id not echoed", c->what);
        /* An unknown op is echoed; under a bad magic or version the op field means nothing. */
        ck_assert_uint_eq(h.op, c->want == WIRE_E_UNKNOWN_OP ? c->op : 0);
        ck_assert_msg(printable(buf, n), "%s: message payload missing or not text", c->what);
        ck_assert_msg(closed_by_peer(fd, 3000), "%s: connection left open", c->what);
        close(fd);
        ck_assert_int_eq(ping_ok(bystander, 100 + i), 0);
    }

    /* Someone speaking HTTP to the socket: bad magic, BAD_FRAME. */
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(send_all(fd, http, strlen(http)), 0);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(closed_by_peer(fd, 3000));
    close(fd);

    ck_assert_int_eq(ping_ok(bystander, 999), 0);
    ck_assert_uint_eq(stat_now("errors_bad_frame"), 2);
    ck_assert_uint_eq(stat_now("errors_bad_version"), 3);
    ck_assert_uint_eq(stat_now("errors_unknown_op"), 4);
    close(bystander);
}
END_TEST

START_TEST(payload_over_max_is_too_large)
{
    start_worker(small_env);
    int bystander = connect_to(sock_path);
    ck_assert_int_ge(bystander, 0);
    ck_assert_int_eq(ping_ok(bystander, 1), 0);

    /* N+1: refused from the header alone, before any payload is sent. */
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, MIB + 1, 4242), 0);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_TOO_LARGE);
    ck_assert(h.request_id == 4242);
    ck_assert(printable(buf, n));
    ck_assert(closed_by_peer(fd, 3000));
    close(fd);

    /* UINT32_MAX as well. */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, UINT32_MAX, 1), 0);
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_TOO_LARGE);
    close(fd);

    /* N exactly is accepted (the echo itself is in ping_echoes_up_to_max_payload). */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    uint8_t *p = calloc(1, MIB);
    ck_assert_int_eq(send_req(fd, WIRE_OP_PING, 5, p, MIB), 0);
    ck_assert_int_eq(recv_resp(fd, &h, p, MIB, &n, 10000), 0);
    ck_assert_uint_eq(h.status, WIRE_OK);
    ck_assert_uint_eq(n, MIB);
    free(p);
    close(fd);

    ck_assert_int_eq(ping_ok(bystander, 2), 0);
    ck_assert_uint_eq(stat_now("errors_too_large"), 2);
    close(bystander);
}
END_TEST

START_TEST(truncated_frames_do_not_disturb_others)
{
    start_worker(small_env);
    int bystander = connect_to(sock_path);
    ck_assert_int_ge(bystander, 0);
    ck_assert_int_eq(ping_ok(bystander, 1), 0);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;

    /* (a) header promises 100 bytes, 10 arrive, then the client half-closes: error frame, close. */
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 100, 31), 0);
    ck_assert_int_eq(send_all(fd, "0123456789", 10), 0);
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(h.request_id == 31);
    ck_assert(printable(buf, n));
    ck_assert(closed_by_peer(fd, 3000));
    close(fd);
    ck_assert_int_eq(ping_ok(bystander, 2), 0);

    /* (b) the same, but the client closes outright: nobody to answer, nothing may break. */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 100, 32), 0);
    ck_assert_int_eq(send_all(fd, "0123456789", 10), 0);
    close(fd);
    ck_assert_int_eq(ping_ok(bystander, 3), 0);

    /* (c) half a header, then half-close: error frame with request id 0. */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(send_all(fd, "VGLW\x01\x00\x02\x00\x00\x00", 10), 0);
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(h.request_id == 0);
    ck_assert(closed_by_peer(fd, 3000));
    close(fd);

    ck_assert_int_eq(ping_ok(bystander, 4), 0);
    ck_assert_uint_eq(stat_wait("errors_truncated", 3, 3000), 3);
    ck_assert_int_eq(ping_ok(bystander, 5), 0);
    close(bystander);
}
END_TEST

/* 1 if fd has something to read (an answer, or the peer's close) right now. */
static int readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* The I/O timeout, shown by events rather than by how fast anything is: a stalled frame gets a
 * BAD_FRAME answer and its connection is closed, another connection is answered while the stalled
 * one is still pending, and one timeout covers header and payload together.  The only clock checks
 * are lower bounds (the timeout is not cut short), which load can never break. */
#define SLOW_IO_TIMEOUT_MS 1000
START_TEST(slow_payload_times_out)
{
    start_worker((const char *const[]){"VIGIL_HOTPATH_MAX_FRAME_MB=1",
                                       "VIGIL_HOTPATH_IO_TIMEOUT_MS=1000", NULL});
    int bystander = connect_to(sock_path);
    ck_assert_int_ge(bystander, 0);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;

    /* Header promising a payload that never comes. */
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    int64_t t0 = wire_now_ms();
    ck_assert_int_eq(send_hdr(fd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 100, 41), 0);
    /* Meanwhile another connection is served: its answer arrives while the stalled connection is
     * still unanswered (a worker blocked reading the stalled payload would answer it only after
     * the timeout, i.e. after the stalled connection's BAD_FRAME). */
    ck_assert_int_eq(ping_ok(bystander, 1), 0);
    ck_assert_msg(!readable_now(fd), "the stalled connection was answered before the bystander");
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 30000), 0);
    ck_assert_int_ge(wire_now_ms() - t0, SLOW_IO_TIMEOUT_MS - 20);
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(h.request_id == 41);
    ck_assert(closed_by_peer(fd, 30000));
    close(fd);

    /* Half a header that is never completed. */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    t0 = wire_now_ms();
    ck_assert_int_eq(send_all(fd, "VGLW\x01\x00", 6), 0);
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 30000), 0);
    ck_assert_int_ge(wire_now_ms() - t0, SLOW_IO_TIMEOUT_MS - 20);
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(closed_by_peer(fd, 30000));
    close(fd);

    /* One I/O timeout covers header and payload together (counted from the first byte), not one
     * each: the header completes after 0.6 timeouts, the payload after 1.2; a worker with a timeout
     * per part would accept both parts in time and answer the PING, this one must not. */
    fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    uint8_t raw[WIRE_HEADER_SIZE], payload[100];
    memset(payload, 'p', sizeof payload);
    wire_header_encode(raw, &(wire_header){.magic = WIRE_MAGIC,
                                           .version = WIRE_VERSION,
                                           .op = WIRE_OP_PING,
                                           .payload_len = sizeof payload,
                                           .request_id = 43});
    ck_assert_int_eq(send_all(fd, raw, sizeof raw - 1), 0);
    sleep_ms(SLOW_IO_TIMEOUT_MS * 6 / 10);
    ck_assert_int_eq(send_all(fd, raw + sizeof raw - 1, 1), 0);
    sleep_ms(SLOW_IO_TIMEOUT_MS * 6 / 10);
    (void)send_all(fd, payload, sizeof payload); /* may fail: the worker has given up already */
    ck_assert_int_eq(recv_resp(fd, &h, buf, sizeof buf, &n, 30000), 0);
    ck_assert_msg(h.status == WIRE_E_BAD_FRAME, "status %u: the payload got its own timeout",
                  (unsigned)h.status);
    ck_assert(closed_by_peer(fd, 30000));
    close(fd);

    ck_assert_int_eq(ping_ok(bystander, 2), 0);
    ck_assert_uint_eq(stat_now("errors_io_timeout"), 3);
    close(bystander);
}
END_TEST

START_TEST(idle_connection_is_closed)
{
    start_worker((const char *const[]){"VIGIL_HOTPATH_MAX_FRAME_MB=1",
                                       "VIGIL_HOTPATH_IDLE_TIMEOUT_S=1", NULL});
    int idle = connect_to(sock_path);
    int busy = connect_to(sock_path);
    ck_assert_int_ge(idle, 0);
    ck_assert_int_ge(busy, 0);
    int64_t t0 = wire_now_ms();
    int closed = 0;
    uint64_t id = 1;
    /* The busy connection speaks every 300 ms and must survive; the idle one must be closed, and
     * not before its second is up.  The loop bound (100 rounds, 30 s or more) only ends a worker
     * that never closes it; when it happens is not asserted. */
    for (int round = 0; round < 100 && !closed; round++) {
        ck_assert_int_eq(ping_ok(busy, id++), 0);
        closed = closed_by_peer(idle, 300);
    }
    ck_assert_msg(closed, "idle connection not closed");
    ck_assert_int_ge(wire_now_ms() - t0, 900);
    ck_assert_int_eq(ping_ok(busy, id++), 0);
    ck_assert_uint_eq(stat_now("idle_closed"), 1);
    close(idle);
    close(busy);
}
END_TEST

START_TEST(more_connections_than_slots_get_busy)
{
    start_worker(
        (const char *const[]){"VIGIL_HOTPATH_MAX_FRAME_MB=1", "VIGIL_HOTPATH_MAX_CONNS=2", NULL});
    int a = connect_slot(1), b = connect_slot(2); /* both hold a slot now */
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(b, 0);

    int c = connect_to(sock_path);
    ck_assert_int_ge(c, 0);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;
    ck_assert_int_eq(recv_resp(c, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_BUSY);
    ck_assert(h.request_id == 0);
    ck_assert(h.flags & WIRE_F_RESPONSE);
    ck_assert(printable(buf, n));
    ck_assert(closed_by_peer(c, 3000));
    close(c);

    ck_assert_int_eq(ping_ok(a, 3), 0);
    ck_assert_int_eq(ping_ok(b, 4), 0);

    /* A freed slot is reused. */
    close(a);
    int d = connect_slot(5);
    ck_assert_int_ge(d, 0);
    close(d);
    ck_assert_int_eq(ping_ok(b, 6), 0);
    close(b);
    ck_assert_uint_ge(stat_wait("conns_rejected", 1, 1000), 1);
}
END_TEST

/* ---- socket file lifecycle ------------------------------------------------------------------ */

START_TEST(socket_and_directory_modes)
{
    /* Directories the worker creates are 0750 and the socket 0660 even under a strict umask. */
    snprintf(sock_path, sizeof sock_path, "%s/a/b/hp.sock", tmpdir);
    mode_t old = umask(0077);
    start_worker(small_env);
    umask(old);
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/a", tmpdir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0750);
    snprintf(p, sizeof p, "%s/a/b", tmpdir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0750);
    ck_assert_int_eq(lstat(sock_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0660);
}
END_TEST

START_TEST(default_socket_path_is_relative_to_cwd)
{
    snprintf(log_path, sizeof log_path, "%s/worker.log", tmpdir);
    pid_t pid = spawn(NULL, (const char *const[]){"NOSOCKET", "VIGIL_HOTPATH_MAX_FRAME_MB=1", NULL},
                      log_path, tmpdir);
    snprintf(sock_path, sizeof sock_path, "%s/var/run/hotpath.sock", tmpdir);
    ck_assert_int_eq(wait_listening(sock_path, pid, 10000), 0);
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ping_ok(fd, 1), 0);
    close(fd);
}
END_TEST

START_TEST(stale_socket_is_replaced)
{
    /* A socket file nobody listens on, as a killed worker leaves behind. */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    fill_sun(&a, sock_path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s);
    ck_assert_int_lt(connect_to(sock_path), 0);

    start_worker(small_env);
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ping_ok(fd, 1), 0);
    close(fd);
    char log[8192];
    slurp(log_path, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "stale_socket_removed"));
}
END_TEST

START_TEST(non_socket_file_is_not_removed)
{
    int f = open(sock_path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(f, 0);
    ck_assert_int_eq(write(f, "keep", 4), 4);
    close(f);
    snprintf(log_path, sizeof log_path, "%s/worker.log", tmpdir);
    pid_t pid = spawn(NULL, small_env, log_path, NULL);
    int st;
    ck_assert(wait_exit(pid, 5000, &st));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char log[8192];
    slurp(log_path, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "not a socket"));
    struct stat sb;
    ck_assert_int_eq(lstat(sock_path, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
}
END_TEST

START_TEST(second_worker_refuses_to_start)
{
    start_worker(small_env);
    struct stat before, after;
    ck_assert_int_eq(lstat(sock_path, &before), 0);
    char log2[PATH_MAX];
    snprintf(log2, sizeof log2, "%s/second.log", tmpdir);
    pid_t second = spawn(NULL, small_env, log2, NULL);
    int st;
    ck_assert_msg(wait_exit(second, 5000, &st), "second worker kept running");
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char log[8192];
    slurp(log2, log, sizeof log);
    ck_assert_msg(strstr(log, "already answering") != NULL, "log: %s", log);
    /* The first one is untouched, socket file included. */
    ck_assert_int_eq(lstat(sock_path, &after), 0);
    ck_assert(before.st_ino == after.st_ino);
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ping_ok(fd, 1), 0);
    close(fd);
}
END_TEST

static void stop_with(int sig)
{
    pid_t pid = start_worker(small_env);
    int idle = connect_to(sock_path); /* an open, idle connection must not delay the exit */
    ck_assert_int_ge(idle, 0);
    ck_assert_int_eq(ping_ok(idle, 1), 0);
    /* The idle connection stays open throughout: the worker exits with it open, without waiting
     * for its idle timeout (300 s by default, far beyond the 30 s this waits for the exit). */
    kill(pid, sig);
    int st;
    ck_assert_msg(wait_exit(pid, 30000, &st), "worker did not exit with a connection open");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    struct stat sb;
    ck_assert_int_ne(lstat(sock_path, &sb), 0);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert(closed_by_peer(idle, 1000));
    close(idle);
    char log[8192];
    slurp(log_path, log, sizeof log);
    ck_assert_ptr_nonnull(strstr(log, "\"event\":\"shutdown\""));
    ck_assert_ptr_nonnull(strstr(log, "\"event\":\"stopped\""));
}

START_TEST(sigterm_exits_zero_and_unlinks)
{
    stop_with(SIGTERM);
}
END_TEST

START_TEST(sigint_exits_zero_and_unlinks)
{
    stop_with(SIGINT);
}
END_TEST

/* ---- command line and environment ----------------------------------------------------------- */

static int run_check(int timeout_ms, char *out, size_t cap)
{
    char lp[PATH_MAX];
    snprintf(lp, sizeof lp, "%s/check.log", tmpdir);
    unlink(lp);
    pid_t pid = spawn("--check", NULL, lp, NULL);
    int st;
    ck_assert_msg(wait_exit(pid, timeout_ms, &st), "--check did not finish");
    slurp(lp, out, cap);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

START_TEST(check_reports_up_and_down)
{
    char out[1024];
    ck_assert_int_eq(run_check(5000, out, sizeof out), 1); /* nothing there */
    ck_assert_ptr_nonnull(strstr(out, sock_path));

    pid_t pid = start_worker(small_env);
    ck_assert_int_eq(run_check(5000, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "ok"));

    kill(pid, SIGTERM);
    int st;
    ck_assert(wait_exit(pid, 5000, &st));
    ck_assert_int_eq(run_check(5000, out, sizeof out), 1);

    /* Something that accepts but never answers: --check gives up on its own (exit 1, saying "2 s")
     * while the listener is still there and silent, and not before its 2 s deadline.  The 30 s
     * wait only ends a --check that would hang forever. */
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    fill_sun(&a, sock_path);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    int64_t t0 = wire_now_ms();
    ck_assert_int_eq(run_check(30000, out, sizeof out), 1);
    ck_assert_int_ge(wire_now_ms() - t0, 1900);
    ck_assert_ptr_nonnull(strstr(out, "2 s"));
    close(l);
}
END_TEST

START_TEST(version_and_bad_arguments)
{
    char lp[PATH_MAX], out[1024];
    int st;
    snprintf(lp, sizeof lp, "%s/v.log", tmpdir);
    pid_t pid = spawn("--version", NULL, lp, NULL);
    ck_assert(wait_exit(pid, 5000, &st));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    slurp(lp, out, sizeof out);
    const char *v = getenv("VIGIL_EXPECT_VERSION");
    char want[128];
    snprintf(want, sizeof want, "vigil-hotpath %s\n", v && *v ? v : EXPECT_VERSION_DEFAULT);
    ck_assert_str_eq(out, want);

    unlink(lp);
    pid = spawn("--frobnicate", NULL, lp, NULL);
    ck_assert(wait_exit(pid, 5000, &st));
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}
END_TEST

START_TEST(bad_environment_fails_naming_the_variable)
{
    static const char *const bad[] = {
        "VIGIL_HOTPATH_MAX_CONNS=0",
        "VIGIL_HOTPATH_MAX_CONNS=1025",
        "VIGIL_HOTPATH_MAX_CONNS=abc",
        "VIGIL_HOTPATH_MAX_CONNS=-1",
        "VIGIL_HOTPATH_MAX_CONNS=16x",
        "VIGIL_HOTPATH_MAX_CONNS= 16",
        "VIGIL_HOTPATH_MAX_FRAME_MB=0",
        "VIGIL_HOTPATH_MAX_FRAME_MB=4096",
        "VIGIL_HOTPATH_SCRATCH_MB=1e3",
        "VIGIL_HOTPATH_IDLE_TIMEOUT_S=0",
        "VIGIL_HOTPATH_IO_TIMEOUT_MS=99999999999999999999999",
        "VIGIL_HOTPATH_IO_TIMEOUT_MS=18446744073709551616",
        "VIGIL_HOTPATH_KERNEL=nosuch",
        "VIGIL_HOTPATH_KERNEL=FOREST",
        "VIGIL_HOTPATH_SOCKET=/tmp/" /* a directory */,
        "VIGIL_HOTPATH_SOCKET=/tmp/"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxx.sock",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char lp[PATH_MAX], out[2048], name[128];
        snprintf(lp, sizeof lp, "%s/env%zu.log", tmpdir, i);
        const char *env[] = {bad[i], NULL};
        pid_t pid = spawn(NULL, env, lp, NULL);
        int st;
        ck_assert_msg(wait_exit(pid, 5000, &st), "%s: worker started", bad[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: exit status not 2", bad[i]);
        slurp(lp, out, sizeof out);
        snprintf(name, sizeof name, "%.*s", (int)(strchr(bad[i], '=') - bad[i]), bad[i]);
        ck_assert_msg(strstr(out, name) != NULL, "%s: message does not name it: %s", bad[i], out);
        ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1, "%s: not one line: %s", bad[i],
                      out);
        ck_assert_int_ne(access(sock_path, F_OK), 0);
    }
    /* The bounds themselves are accepted. */
    start_worker((const char *const[]){"VIGIL_HOTPATH_MAX_CONNS=1", "VIGIL_HOTPATH_MAX_FRAME_MB=1",
                                       "VIGIL_HOTPATH_IDLE_TIMEOUT_S=86400",
                                       "VIGIL_HOTPATH_IO_TIMEOUT_MS=1",
                                       "VIGIL_HOTPATH_SCRATCH_MB=0", NULL});
    ck_assert_uint_eq(stat_now("slots"), 1);
}
END_TEST

/* ---- no allocation after ready -------------------------------------------------------------- */

typedef struct load_arg {
    int index;
    int iterations;
    int failures;
} load_arg;

/* One client thread: a mix of HELLO, PING (varied sizes) and STATS on one connection, plus a
 * malformed frame on a fresh connection every 100 iterations.  Counts failures instead of
 * asserting (Check's asserts are not for threads). */
static void *load_client(void *p)
{
    load_arg *a = p;
    static const bad_case bads[] = {
        {"magic", 0xDEADBEEFu, WIRE_VERSION, WIRE_OP_PING, WIRE_E_BAD_FRAME},
        {"version", WIRE_MAGIC, 9, WIRE_OP_PING, WIRE_E_BAD_VERSION},
        {"op", WIRE_MAGIC, WIRE_VERSION, 40, WIRE_E_UNKNOWN_OP},
        {"size", WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, WIRE_E_TOO_LARGE},
    };
    uint8_t *buf = malloc(MIB), *payload = malloc(65536);
    if (!buf || !payload) {
        a->failures++;
        free(buf);
        free(payload);
        return NULL;
    }
    memset(payload, 'p', 65536);
    int fd = connect_to(sock_path);
    if (fd < 0)
        a->failures++;
    for (int i = 0; fd >= 0 && i < a->iterations; i++) {
        wire_header h;
        uint32_t n;
        uint64_t id = ((uint64_t)a->index << 32) | (uint64_t)i;
        uint16_t op = i % 3 == 0 ? WIRE_OP_HELLO : i % 3 == 1 ? WIRE_OP_PING : WIRE_OP_STATS;
        uint32_t len = op == WIRE_OP_PING ? (uint32_t)(i * 131) % 65536 : 0;
        if (send_req(fd, op, id, payload, len) != 0 || recv_resp(fd, &h, buf, MIB, &n, 5000) != 0 ||
            h.status != WIRE_OK || h.request_id != id || (op == WIRE_OP_PING && n != len)) {
            a->failures++;
            break;
        }
        if (i % 100 == 99) {
            /* Retried while the answer is WIRE_E_BUSY: closed connections of the other clients
             * may still hold their slots for a moment on a loaded machine. */
            const bad_case *c = &bads[(i / 100) % 4];
            uint32_t blen = c->want == WIRE_E_TOO_LARGE ? MIB + 1 : 0;
            int rc = -1;
            for (int tries = 0; tries < 300; tries++) {
                int bfd = connect_to(sock_path);
                if (bfd < 0 || send_hdr(bfd, c->magic, c->version, c->op, blen, id) != 0 ||
                    recv_resp(bfd, &h, buf, MIB, &n, 5000) != 0)
                    rc = -1;
                else
                    rc = h.status;
                if (bfd >= 0)
                    close(bfd);
                if (rc != WIRE_E_BUSY)
                    break;
                sleep_ms(10);
            }
            if (rc != c->want)
                a->failures++;
        }
        if (i % 250 == 249) { /* a truncated frame, then an abrupt close */
            int tfd = connect_to(sock_path);
            if (tfd < 0 || send_hdr(tfd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 50, id) != 0)
                a->failures++;
            if (tfd >= 0)
                close(tfd);
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    free(payload);
    return NULL;
}

/* Per kernel. */
START_TEST(no_allocation_after_ready)
{
    if (asan_build) {
        t_skip("e2e_hotpath", "no_allocation_after_ready",
               "ASan build: the allocation probe cannot be preloaded, nothing counted");
        return;
    }
    ck_assert_msg(access(probe_so, R_OK) == 0, "%s missing: make %s", probe_so, probe_so);
    char preload[PATH_MAX + 64];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", probe_so);
    start_worker((const char *const[]){
        preload, kernel_env(_i), "VIGIL_HOTPATH_MAX_FRAME_MB=1", "VIGIL_HOTPATH_MAX_CONNS=8",
        "VIGIL_HOTPATH_IO_TIMEOUT_MS=200", "VIGIL_HOTPATH_IDLE_TIMEOUT_S=2",
        "VIGIL_ALLOCCOUNT_VERBOSE=1", NULL});
    enum { NTHREADS = 4, ITER = 1000 };
    pthread_t t[NTHREADS];
    load_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (load_arg){.index = i, .iterations = ITER};
        ck_assert_int_eq(pthread_create(&t[i], NULL, load_client, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(args[i].failures == 0, "client %d: %d failures", i, args[i].failures);
    }

    /* The other paths after ready: busy rejection, slowloris timeout, idle close. */
    int held[8];
    for (int i = 0; i < 8; i++) { /* slots free up as the clients' closes are noticed */
        held[i] = connect_slot(1);
        ck_assert_int_ge(held[i], 0);
    }
    int extra = connect_to(sock_path);
    uint8_t buf[512];
    wire_header h;
    uint32_t n;
    ck_assert_int_eq(recv_resp(extra, &h, buf, sizeof buf, &n, 3000), 0);
    ck_assert_uint_eq(h.status, WIRE_E_BUSY);
    close(extra);
    ck_assert_int_eq(send_hdr(held[0], WIRE_MAGIC, WIRE_VERSION, WIRE_OP_PING, 10, 2), 0);
    ck_assert_int_eq(recv_resp(held[0], &h, buf, sizeof buf, &n, 3000), 0); /* io timeout */
    ck_assert_uint_eq(h.status, WIRE_E_BAD_FRAME);
    ck_assert(closed_by_peer(held[1], 5000)); /* idle timeout */
    for (int i = 0; i < 8; i++)
        close(held[i]);

    stat_kv kv[128];
    int fd = connect_slot(3);
    ck_assert_int_ge(fd, 0);
    int cnt = stats_on(fd, kv, 128);
    close(fd);
    ck_assert_int_gt(cnt, 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "alloc_probe_present"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "frames_in"), NTHREADS * ITER);
    ck_assert_uint_ge(stat_find(kv, cnt, "conns_rejected"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "errors_io_timeout"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "idle_closed"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "errors_truncated"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "errors_too_large"), 1);
    char log[16384];
    slurp(log_path, log, sizeof log);
    ck_assert_msg(stat_find(kv, cnt, "alloc_calls_after_ready") == 0,
                  "%llu allocation calls after ready; worker log:\n%s",
                  (unsigned long long)stat_find(kv, cnt, "alloc_calls_after_ready"), log);
}
END_TEST

START_TEST(alloc_probe_counts)
{
    /* The probe itself: with SELFTEST it calls malloc+free right after mark_ready, and the worker
     * must report exactly those 2 - so the zero above is a measurement, not a broken probe. */
    if (asan_build) {
        t_skip("e2e_hotpath", "alloc_probe_counts",
               "ASan build: the allocation probe cannot be preloaded, nothing counted");
        return;
    }
    char preload[PATH_MAX + 64];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", probe_so);
    start_worker((const char *const[]){preload, "VIGIL_HOTPATH_MAX_FRAME_MB=1",
                                       "VIGIL_ALLOCCOUNT_SELFTEST=1", NULL});
    int fd = connect_to(sock_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ping_ok(fd, 1), 0);
    stat_kv kv[128];
    int cnt = stats_on(fd, kv, 128);
    close(fd);
    ck_assert_int_gt(cnt, 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "alloc_probe_present"), 1);
    ck_assert_uint_eq(stat_find(kv, cnt, "alloc_calls_after_ready"), 2);
}
END_TEST

/* ---- LOAD_MODEL / SCORE -------------------------------------------------------------------- */

typedef struct fx_model {
    char name[FX_NAME_MAX];
    uint8_t key[WIRE_MODEL_KEY_SIZE];
    void *blob;
    size_t blob_len;
    float *rows, *pred, *margin;
    size_t nr, nc, npred, nmargin; /* per-row widths of pred and margin */
} fx_model;

/* Compiles fixture name and reads its rows and xgboost's outputs; the key is derived from the
 * fixture index (UUID part) and the name (hash part), as distinct as the API's. */
static void fx_model_load(fx_model *m, const char *name, unsigned index)
{
    char err[256];
    size_t len, r2, r3;
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    char *json = fx_read(name, "model.json", &len);
    ck_assert_msg(json != NULL, "fixture %s missing", name);
    ck_assert_msg(xgb_compile(json, len, NULL, &m->blob, &m->blob_len, err, sizeof err) == XGB_OK,
                  "%s: %s", name, err);
    free(json);
    m->rows = fx_matrix(name, "rows.txt", &m->nr, &m->nc);
    m->pred = fx_matrix(name, "pred.txt", &r2, &m->npred);
    m->margin = fx_matrix(name, "margin.txt", &r3, &m->nmargin);
    ck_assert(m->rows && m->pred && m->margin && r2 == m->nr && r3 == m->nr);
    for (unsigned i = 0; i < 16; i++)
        m->key[i] = (uint8_t)(index * 7 + i);
    sha256(m->blob, m->blob_len, m->key + 16); /* the worker checks the key against the blob */
}

/* A synthetic model of 100 complete depth-8 trees over 10 features (about 300 KiB in the
 * worker's layout, so a few of them overflow a 1 MiB arena), 200 random rows (10% NaN), and its
 * expected outputs from the reference evaluator (common/refeval.c, a second implementation). */
static void synth_model(fx_model *m, unsigned index)
{
    enum { NF = 10, NT = 100, D = 8, NR = 200 };
    uint32_t nn = (2u << D) - 1;
    uint64_t x = 0xD1B54A32D192ED03ull * (index + 1);
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "synthetic-%u", index);
    model_builder *b = model_builder_new(index & 1 ? MODEL_OBJ_BINARY_LOGISTIC : MODEL_OBJ_GAMMA, 0,
                                         NF, 1, 0.5f, 0.25f);
    model_src_node *nodes = calloc(nn, sizeof *nodes);
    char err[256];
    for (int t = 0; t < NT; t++) {
        for (uint32_t i = 0; i < nn; i++) {
            int leaf = 2 * i + 1 >= nn;
            nodes[i].left = leaf ? -1 : (int32_t)(2 * i + 1);
            nodes[i].right = leaf ? -1 : (int32_t)(2 * i + 2);
            nodes[i].feature = (uint32_t)(NEXT() % NF);
            nodes[i].default_left = (int)(NEXT() & 1);
            nodes[i].value = (float)((int64_t)(NEXT() % 2001) - 1000) / (leaf ? 20000.0f : 500.0f);
        }
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, nn, err, sizeof err), 0);
    }
    free(nodes);
    ck_assert_int_eq(model_build(b, &m->blob, &m->blob_len, err, sizeof err), 0);
    model_builder_free(b);
    m->nr = NR;
    m->nc = NF;
    m->npred = m->nmargin = 1;
    m->rows = malloc(NR * NF * sizeof(float));
    m->pred = malloc(NR * sizeof(float));
    m->margin = malloc(NR * sizeof(float));
    for (size_t i = 0; i < NR * NF; i++)
        m->rows[i] = NEXT() % 10 == 0 ? NAN : (float)((int64_t)(NEXT() % 4001) - 2000) / 1000.0f;
#undef NEXT
    model_view v;
    ck_assert_int_eq(model_validate(m->blob, m->blob_len, NULL, 0, &v, err, sizeof err), 0);
    refeval_predict(&v, m->rows, NR, 0, m->pred);
    refeval_predict(&v, m->rows, NR, 1, m->margin);
    memset(m->key, 0, sizeof m->key);
    m->key[0] = 0xEE;
    m->key[1] = (uint8_t)index;
    sha256(m->blob, m->blob_len, m->key + 16);
}

static void fx_model_free(fx_model *m)
{
    free(m->blob);
    free(m->rows);
    free(m->pred);
    free(m->margin);
}

/* One request/response on fd; the answer payload lands in buf (cap bytes).  Returns the status,
 * or -1 on a transport failure. */
static int round_trip(int fd, uint16_t op, const void *p, uint32_t len, uint8_t *buf, size_t cap,
                      uint32_t *n)
{
    static _Atomic uint64_t next_id = 5000; /* client threads share it */
    uint64_t id = ++next_id;
    wire_header h;
    if (send_req(fd, op, id, p, len) != 0 || recv_resp(fd, &h, buf, cap, n, 20000) != 0 ||
        h.request_id != id || h.op != op)
        return -1;
    return h.status;
}

/* LOAD_MODEL of m (or of a blob with one byte flipped at corrupt_at, if >= 0, under a key bound
 * to the corrupted bytes when rebind, else under m's own key). */
static int hp_load_as(int fd, const fx_model *m, long corrupt_at, int rebind, uint8_t *buf,
                      size_t cap)
{
    size_t plen = WIRE_MODEL_KEY_SIZE + 4 + m->blob_len;
    uint8_t *p = malloc(plen);
    ck_assert_ptr_nonnull(p);
    memcpy(p, m->key, WIRE_MODEL_KEY_SIZE);
    wire_st32(p + WIRE_MODEL_KEY_SIZE, (uint32_t)m->blob_len);
    memcpy(p + WIRE_MODEL_KEY_SIZE + 4, m->blob, m->blob_len);
    if (corrupt_at >= 0)
        p[WIRE_MODEL_KEY_SIZE + 4 + corrupt_at] ^= 0x5A;
    if (corrupt_at >= 0 && rebind)
        sha256(p + WIRE_MODEL_KEY_SIZE + 4, m->blob_len, p + 16);
    uint32_t n;
    int st = round_trip(fd, WIRE_OP_LOAD_MODEL, p, (uint32_t)plen, buf, cap, &n);
    free(p);
    return st;
}

static int hp_load(int fd, const fx_model *m, long corrupt_at, uint8_t *buf, size_t cap)
{
    return hp_load_as(fd, m, corrupt_at, 1, buf, cap);
}

/* SCORE of nrows rows of m starting at fixture row row0 (wrapping around), in one section (or the
 * same section twice when twice).  ncols_delta != 0 sends a wrong column count. */
static int hp_score(int fd, const fx_model *m, size_t row0, size_t nrows, int margin, int twice,
                    int ncols_delta, uint8_t *buf, size_t cap, uint32_t *n)
{
    size_t nc = m->nc;
    size_t one = WIRE_MODEL_KEY_SIZE + 12 + nrows * nc * 4;
    size_t plen = 4 + one * (twice ? 2 : 1);
    uint8_t *p = malloc(plen);
    ck_assert_ptr_nonnull(p);
    wire_writer w;
    wire_writer_init(&w, p, plen);
    wire_put_u32(&w, twice ? 2 : 1);
    for (int s = 0; s <= twice; s++) {
        wire_put_bytes(&w, m->key, WIRE_MODEL_KEY_SIZE);
        wire_put_u32(&w, margin ? WIRE_SCORE_MARGIN : 0);
        wire_put_u32(&w, (uint32_t)nrows);
        wire_put_u32(&w, (uint32_t)((long)nc + ncols_delta));
        for (size_t r = 0; r < nrows; r++)
            wire_put_bytes(&w, m->rows + ((row0 + r) % m->nr) * nc, nc * 4);
    }
    ck_assert_int_eq(w.err, 0);
    int st = round_trip(fd, WIRE_OP_SCORE, p, (uint32_t)plen, buf, cap, n);
    free(p);
    return st;
}

/* hp_score (one section) as a traced frame: WIRE_F_TRACE and the 32-byte trace-context block
 * before the payload (wire.h, written out here byte by byte).  The answer must carry WIRE_F_TRACE
 * and the 16-byte timing block (u64 queue_ns, u64 compute_ns; compute > 0 on WIRE_OK), which is
 * taken off so buf holds the op's own answer as hp_score leaves it.  Returns the wire status, -1
 * on a transport failure, -3 when the timing block is wrong (why says how). */
static int hp_score_traced(int fd, const fx_model *m, size_t row0, size_t nrows, int margin,
                           uint8_t *buf, size_t cap, uint32_t *n, char *why, size_t whylen)
{
    static _Atomic uint64_t next_id = 1u << 30;
    size_t nc = m->nc, plen = 32 + 4 + WIRE_MODEL_KEY_SIZE + 12 + nrows * nc * 4;
    uint8_t *p = malloc(WIRE_HEADER_SIZE + plen);
    ck_assert_ptr_nonnull(p);
    uint64_t id = ++next_id;
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = WIRE_VERSION,
                     .op = WIRE_OP_SCORE,
                     .flags = 0x0004,
                     .payload_len = (uint32_t)plen,
                     .request_id = id};
    wire_header_encode(p, &h);
    uint8_t *blk = p + WIRE_HEADER_SIZE;
    for (int i = 0; i < 16; i++)
        blk[i] = (uint8_t)(0xa0 + i); /* trace id */
    for (int i = 0; i < 8; i++)
        blk[16 + i] = (uint8_t)(0xb0 + i); /* the worker span's id */
    blk[24] = 1;                           /* sampled */
    memset(blk + 25, 0, 7);
    wire_writer w;
    wire_writer_init(&w, blk + 32, plen - 32);
    wire_put_u32(&w, 1);
    wire_put_bytes(&w, m->key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, margin ? WIRE_SCORE_MARGIN : 0);
    wire_put_u32(&w, (uint32_t)nrows);
    wire_put_u32(&w, (uint32_t)nc);
    for (size_t r = 0; r < nrows; r++)
        wire_put_bytes(&w, m->rows + ((row0 + r) % m->nr) * nc, nc * 4);
    ck_assert_int_eq(w.err, 0);
    int sent = send_all(fd, p, WIRE_HEADER_SIZE + plen);
    free(p);
    wire_header rh;
    if (sent != 0 || recv_resp(fd, &rh, buf, cap, n, 20000) != 0 || rh.request_id != id)
        return -1;
    if (!(rh.flags & 0x0004) || *n < 16) {
        snprintf(why, whylen, "%s: traced SCORE answered without the timing block", m->name);
        return -3;
    }
    uint64_t compute = 0;
    for (int i = 7; i >= 0; i--)
        compute = compute << 8 | buf[8 + i];
    if (rh.status == WIRE_OK && compute == 0) {
        snprintf(why, whylen, "%s: traced SCORE reports 0 ns of compute", m->name);
        return -3;
    }
    *n -= 16;
    memmove(buf, buf + 16, *n);
    return rh.status;
}

/* Checks an OK SCORE answer against xgboost's outputs.  Returns 0 or -1 (with a message). */
static int check_answer(const fx_model *m, size_t row0, size_t nrows, int margin, int sections,
                        const uint8_t *buf, uint32_t n, char *why, size_t whylen)
{
    wire_reader r;
    wire_reader_init(&r, buf, n);
    size_t w = margin ? m->nmargin : m->npred;
    const float *want = margin ? m->margin : m->pred;
    if (wire_get_u32(&r) != (uint32_t)sections) {
        snprintf(why, whylen, "%s: section count", m->name);
        return -1;
    }
    for (int s = 0; s < sections; s++) {
        uint32_t nr = wire_get_u32(&r), nout = wire_get_u32(&r);
        const uint8_t *o = wire_get_bytes(&r, (size_t)nr * nout * 4);
        if (r.err || nr != nrows || nout != w) {
            snprintf(why, whylen, "%s: section %d header %u x %u, want %zu x %zu", m->name, s, nr,
                     nout, nrows, w);
            return -1;
        }
        for (size_t i = 0; i < nrows; i++) {
            const float *x = want + ((row0 + i) % m->nr) * w;
            if (memcmp(o + i * w * 4, x, w * 4) != 0) {
                float got;
                memcpy(&got, o + i * w * 4, 4);
                snprintf(why, whylen, "%s: row %zu (margin %d): %.9g, xgboost %.9g", m->name,
                         (row0 + i) % m->nr, margin, (double)got, (double)x[0]);
                return -1;
            }
        }
    }
    if (wire_remaining(&r) != 0) {
        snprintf(why, whylen, "%s: trailing bytes", m->name);
        return -1;
    }
    return 0;
}

/* The impl a HELLO answer (u16 proto, str version, u16 n, n x (u16 op, str name, str impl))
 * reports for op, into impl.  0, or -1 if op is not listed or the answer is malformed. */
static int hello_impl(const uint8_t *buf, uint32_t n, unsigned op, char *impl, size_t cap)
{
    char tmp[64];
    wire_reader r;
    wire_reader_init(&r, buf, n);
    wire_get_u16(&r);
    wire_get_str(&r, tmp, sizeof tmp);
    unsigned nk = wire_get_u16(&r);
    for (unsigned i = 0; i < nk && !r.err; i++) {
        unsigned o = wire_get_u16(&r);
        wire_get_str(&r, tmp, sizeof tmp);
        wire_get_str(&r, impl, cap);
        if (!r.err && o == op)
            return 0;
    }
    return -1;
}

/* Per kernel. */
START_TEST(load_and_score_match_xgboost)
{
    start_worker((const char *const[]){kernel_env(_i), NULL});
    int fd = connect_slot(1);
    ck_assert_int_ge(fd, 0);
    size_t cap = 8 * MIB;
    uint8_t *buf = malloc(cap);
    char why[256];
    uint32_t n;
    fx_model m;
    fx_model_load(&m, "multi_softprob", 1);

    /* HELLO names both kernels and the implementation answering them: the one selected. */
    ck_assert_int_eq(round_trip(fd, WIRE_OP_HELLO, NULL, 0, buf, cap, &n), WIRE_OK);
    ck_assert_ptr_nonnull(memmem(buf, n, "load_model", 10));
    char impl[64];
    ck_assert_int_eq(hello_impl(buf, n, WIRE_OP_SCORE, impl, sizeof impl), 0);
    ck_assert_str_eq(impl, kernels[_i]);
    ck_assert_int_eq(hello_impl(buf, n, WIRE_OP_LOAD_MODEL, impl, sizeof impl), 0);
    ck_assert_str_eq(impl, kernels[_i]);

    /* Not loaded yet: UNKNOWN_MODEL naming section 0. */
    ck_assert_int_eq(hp_score(fd, &m, 0, 3, 0, 0, 0, buf, cap, &n), WIRE_E_UNKNOWN_MODEL);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(wire_le32(buf), 0);
    /* A corrupted blob (the first node's left child index) is refused with a message; the model
     * stays unknown. */
    long node0 = MODEL_HEADER_SIZE + 16 * (long)wire_le32((const uint8_t *)m.blob + 24);
    ck_assert_int_eq(hp_load(fd, &m, node0, buf, cap), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(buf, 200, "invalid model blob", 18));
    /* Other bytes under the model's own key (a peer substituting a blob): refused before the
     * blob is even validated, since the key names the blob by its SHA-256. */
    ck_assert_int_eq(hp_load_as(fd, &m, node0, 0, buf, cap), WIRE_E_BAD_PAYLOAD);
    ck_assert_ptr_nonnull(memmem(buf, 200, "SHA-256", 7));
    ck_assert_int_eq(hp_score(fd, &m, 0, 3, 0, 0, 0, buf, cap, &n), WIRE_E_UNKNOWN_MODEL);
    ck_assert_int_eq(hp_load(fd, &m, -1, buf, cap), WIRE_OK);
    ck_assert_int_eq(hp_load(fd, &m, -1, buf, cap), WIRE_OK); /* resident: cheap OK */

    /* Every row, both outputs, one and two sections; odd sizes around the blocks. */
    static const size_t sizes[] = {1, 2, 7, 8, 9, 63, 64, 65, 569, 2000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int margin = 0; margin <= 1; margin++) {
            size_t row0 = i * 37;
            int st = hp_score(fd, &m, row0, sizes[i], margin, (int)(i & 1), 0, buf, cap, &n);
            ck_assert_int_eq(st, WIRE_OK);
            ck_assert_msg(check_answer(&m, row0, sizes[i], margin, 1 + (int)(i & 1), buf, n, why,
                                       sizeof why) == 0,
                          "%s", why);
        }
    /* Wrong column count: BAD_PAYLOAD with a message, and the connection stays usable. */
    ck_assert_int_eq(hp_score(fd, &m, 0, 2, 0, 0, 1, buf, cap, &n), WIRE_E_BAD_PAYLOAD);
    ck_assert(printable(buf, n));
    ck_assert_int_eq(hp_score(fd, &m, 0, 2, 0, 0, -1, buf, cap, &n), WIRE_E_BAD_PAYLOAD);
    ck_assert_int_eq(ping_ok(fd, 9), 0);

    stat_kv kv[128];
    int cnt = stats_on(fd, kv, 128);
    ck_assert_int_gt(cnt, 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "models_resident"), 1);
    ck_assert_uint_eq(stat_find(kv, cnt, "model_loads"), 1);
    ck_assert_uint_eq(stat_find(kv, cnt, "model_load_hits"), 1);
    ck_assert_uint_eq(stat_find(kv, cnt, "arena_bytes_total"), 256u * MIB);
    ck_assert_uint_gt(stat_find(kv, cnt, "arena_bytes_used"), 0);
    ck_assert_uint_eq(stat_find(kv, cnt, "arena_bytes_used") +
                          stat_find(kv, cnt, "arena_bytes_free"),
                      256u * MIB);
    ck_assert_uint_ge(stat_find(kv, cnt, "op_score_calls"), 24);
    char kname[64];
    snprintf(kname, sizeof kname, "kernel_%s", kernels[_i]);
    ck_assert_uint_eq(stat_find(kv, cnt, kname), 1);
    /* The load is in the worker's log, as one JSON line naming the model (UUID from the key). */
    char log[16384];
    slurp(log_path, log, sizeof log);
    const char *line = strstr(log, "\"event\":\"model_loaded\"");
    ck_assert_msg(line != NULL, "no model_loaded line in the worker log:\n%s", log);
    char id[40];
    const uint8_t *k = m.key;
    snprintf(id, sizeof id, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11], k[12], k[13],
             k[14], k[15]);
    ck_assert_ptr_nonnull(strstr(line, id));
    close(fd);
    fx_model_free(&m);
    free(buf);
}
END_TEST

START_TEST(model_bigger_than_arena_is_no_memory)
{
    start_worker((const char *const[]){"VIGIL_HOTPATH_MEMORY_MB=1", NULL});
    int fd = connect_slot(1);
    ck_assert_int_ge(fd, 0);
    /* 40 complete depth-10 trees: 40 x 12 KiB in the worker's layout, over 1 MiB. */
    model_builder *b = model_builder_new(MODEL_OBJ_SQUAREDERROR, 0, 3, 1, 0.5f, 0.0f);
    uint32_t nn = (2u << 10) - 1;
    model_src_node *nodes = calloc(nn, sizeof *nodes);
    for (uint32_t i = 0; i < nn; i++) {
        nodes[i].left = 2 * i + 1 < nn ? (int32_t)(2 * i + 1) : -1;
        nodes[i].right = 2 * i + 1 < nn ? (int32_t)(2 * i + 2) : -1;
        nodes[i].feature = i % 3;
        nodes[i].value = (float)i;
    }
    char err[256];
    for (int t = 0; t < 120; t++)
        ck_assert_int_eq(model_builder_add_tree(b, 0, 1.0f, nodes, nn, err, sizeof err), 0);
    fx_model m = {.name = "big"};
    ck_assert_int_eq(model_build(b, &m.blob, &m.blob_len, err, sizeof err), 0);
    model_builder_free(b);
    free(nodes);
    memset(m.key, 0xB1, sizeof m.key);
    sha256(m.blob, m.blob_len, m.key + 16);
    size_t cap = MIB;
    uint8_t *buf = malloc(cap);
    /* Larger than the whole arena: a permanent refusal (TOO_LARGE), not NO_MEMORY (retry later). */
    ck_assert_int_eq(hp_load(fd, &m, -1, buf, cap), WIRE_E_TOO_LARGE);
    uint32_t n = (uint32_t)strnlen((char *)buf, 300);
    ck_assert_ptr_nonnull(memmem(buf, n, "VIGIL_HOTPATH_MEMORY_MB", 23));
    ck_assert_int_eq(ping_ok(fd, 3), 0);
    free(m.blob);
    free(buf);
    close(fd);
}
END_TEST

typedef struct score_arg {
    fx_model *models;
    unsigned nmodels;
    unsigned index;
    int iterations;
    int failures;
    char why[256];
} score_arg;

/* One client thread: scores random models (single rows and batches, margins and outputs),
 * loading a model again whenever the worker answers UNKNOWN_MODEL (the arena is small, so models
 * are evicted all the time), as the API does.  Counts failures (Check asserts are not for
 * threads). */
static void *score_client(void *p)
{
    score_arg *a = p;
    size_t cap = 8 * MIB;
    uint8_t *buf = malloc(cap);
    int fd = connect_to(sock_path);
    uint64_t x = 0x9E3779B97F4A7C15ull * (a->index + 1);
    for (int i = 0; buf && fd >= 0 && i < a->iterations; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fx_model *m = &a->models[x % a->nmodels];
        /* Every 10th a batch large enough for the compute pool (rows x trees >= 65536 for the
         * synthetic models), else 1..20 rows or a single row. */
        size_t nrows = i % 10 == 0 ? 700 + (x >> 20) % 1300 : i % 3 == 0 ? 1 + (x >> 24) % 20 : 1;
        size_t row0 = (x >> 32) % m->nr;
        int margin = (int)((x >> 40) & 1);
        uint32_t n;
        int st = -1;
        /* Four clients churn a 1 MiB arena, so another client's load may evict this model
         * between our LOAD and SCORE (more often under ASan's slowdown): retry like the API
         * does, backing off a little so the churn cannot livelock the test. */
        for (int tries = 0; tries < 100; tries++) {
            /* Every other one traced (WIRE_F_TRACE): the worker's timing path, allocation-free */
            st = i & 1 ? hp_score_traced(fd, m, row0, nrows, margin, buf, cap, &n, a->why,
                                         sizeof a->why)
                       : hp_score(fd, m, row0, nrows, margin, 0, 0, buf, cap, &n);
            if (st != WIRE_E_UNKNOWN_MODEL)
                break;
            if (tries >= 4) {
                struct timespec ts = {0, 1000000L * (tries - 3)};
                nanosleep(&ts, NULL);
            }
            int ls = hp_load(fd, m, -1, buf, cap);
            if (ls != WIRE_OK) {
                snprintf(a->why, sizeof a->why, "%s: LOAD_MODEL answered %d", m->name, ls);
                st = -2;
                break;
            }
        }
        if (st != WIRE_OK) {
            if (st != -2 && st != -3)
                snprintf(a->why, sizeof a->why, "%s: SCORE answered %d", m->name, st);
            a->failures++;
            break;
        }
        if (check_answer(m, row0, nrows, margin, 1, buf, n, a->why, sizeof a->why) != 0) {
            a->failures++;
            break;
        }
    }
    if (fd < 0 || !buf)
        a->failures++;
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* Under ASan the probe cannot be preloaded: the same load runs without it (ASan then checks the
 * worker's concurrent loads, evictions and scores) and only the allocation count is skipped. */
/* Per kernel. */
/* EXPLAIN of the first up to 40 rows of fixture m over fd (the model must have been loaded):
 * every contribution bit-identical to xgboost 1.7.4's pred_contribs (the committed
 * NAME.contribs.txt; common/treeshap.c is bit-identical to it on every fixture), the margins to
 * xgboost's output_margin.  Returns WIRE_OK, another wire status, or -1 on a mismatch. */
static int hp_explain_check(int fd, const fx_model *m, uint8_t *buf, size_t cap)
{
    size_t cr, cc;
    float *want = fx_matrix(m->name, "contribs.txt", &cr, &cc);
    ck_assert_ptr_nonnull(want);
    uint32_t nr = m->nr < 40 ? (uint32_t)m->nr : 40, n;
    size_t plen = WIRE_MODEL_KEY_SIZE + 12 + (size_t)nr * m->nc * 4;
    uint8_t *p = malloc(plen);
    memcpy(p, m->key, WIRE_MODEL_KEY_SIZE);
    wire_st32(p + WIRE_MODEL_KEY_SIZE, 0);
    wire_st32(p + WIRE_MODEL_KEY_SIZE + 4, nr);
    wire_st32(p + WIRE_MODEL_KEY_SIZE + 8, (uint32_t)m->nc);
    memcpy(p + WIRE_MODEL_KEY_SIZE + 12, m->rows, (size_t)nr * m->nc * 4);
    int st = round_trip(fd, WIRE_OP_EXPLAIN, p, (uint32_t)plen, buf, cap, &n);
    free(p);
    if (st == WIRE_OK) {
        uint32_t k = wire_le32(buf + 4), ncontrib = wire_le32(buf + 8);
        const float *c = (const float *)(buf + 12), *mg = c + (size_t)nr * k * ncontrib;
        if (wire_le32(buf) != nr || (size_t)k * ncontrib != cc || ncontrib != m->nc + 1 ||
            n != 12 + (size_t)nr * k * (ncontrib + 1) * 4 ||
            memcmp(c, want, (size_t)nr * cc * 4) != 0 ||
            memcmp(mg, m->margin, (size_t)nr * k * 4) != 0)
            st = -1;
    }
    free(want);
    return st;
}

/* One SCORE frame of two sections, fixture m's first up to 40 rows with flags (0 or
 * WIRE_SCORE_EXPLAIN) and fixture o's first up to 10 rows without, the answer into buf.  Returns
 * the status; *n the answer's length. */
static int hp_score2(int fd, const fx_model *m, uint32_t flags, const fx_model *o, uint8_t *buf,
                     size_t cap, uint32_t *n)
{
    uint32_t nr = m->nr < 40 ? (uint32_t)m->nr : 40, no = o->nr < 10 ? (uint32_t)o->nr : 10;
    size_t plen = 4 + 2 * (WIRE_MODEL_KEY_SIZE + 12) + ((size_t)nr * m->nc + no * o->nc) * 4;
    uint8_t *p = malloc(plen);
    ck_assert_ptr_nonnull(p);
    wire_writer w;
    wire_writer_init(&w, p, plen);
    wire_put_u32(&w, 2);
    wire_put_bytes(&w, m->key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, flags);
    wire_put_u32(&w, nr);
    wire_put_u32(&w, (uint32_t)m->nc);
    wire_put_bytes(&w, m->rows, (size_t)nr * m->nc * 4);
    wire_put_bytes(&w, o->key, WIRE_MODEL_KEY_SIZE);
    wire_put_u32(&w, 0);
    wire_put_u32(&w, no);
    wire_put_u32(&w, (uint32_t)o->nc);
    wire_put_bytes(&w, o->rows, (size_t)no * o->nc * 4);
    ck_assert(!w.err && w.len == plen);
    int st = round_trip(fd, WIRE_OP_SCORE, p, (uint32_t)plen, buf, cap, n);
    free(p);
    return st;
}

/* SCORE with a WIRE_SCORE_EXPLAIN section (issue 13: a decision's champion + reasons +
 * challenger in one round trip): both sections' outputs are what the same frame without the flag
 * answers, bit for bit, and the explained section's contributions and margins follow them,
 * bit-identical to xgboost 1.7.4's pred_contribs and output_margin.  Returns WIRE_OK, another
 * status, or -1 on a mismatch. */
static int hp_score_explain_check(int fd, const fx_model *m, const fx_model *o, uint8_t *buf,
                                  size_t cap)
{
    uint32_t n0, n;
    int st = hp_score2(fd, m, 0, o, buf, cap, &n0);
    if (st != WIRE_OK)
        return st;
    uint8_t *plain = malloc(n0);
    ck_assert_ptr_nonnull(plain);
    memcpy(plain, buf, n0);
    st = hp_score2(fd, m, WIRE_SCORE_EXPLAIN, o, buf, cap, &n);
    if (st == WIRE_OK) {
        size_t cr, cc;
        float *want = fx_matrix(m->name, "contribs.txt", &cr, &cc);
        ck_assert_ptr_nonnull(want);
        uint32_t nr = wire_le32(plain + 4), nout = wire_le32(plain + 8);
        size_t s0 = 12 + (size_t)nr * nout * 4; /* through section 0's outputs */
        const uint8_t *x = buf + s0;
        uint32_t k = s0 + 8 <= n ? wire_le32(x) : 0, ncontrib = s0 + 8 <= n ? wire_le32(x + 4) : 0;
        size_t xlen = 8 + (size_t)nr * k * (ncontrib + 1) * 4;
        if (memcmp(buf, plain, s0) != 0 || ncontrib != m->nc + 1 || (size_t)k * ncontrib != cc ||
            n != n0 + xlen || memcmp(x + 8, want, (size_t)nr * cc * 4) != 0 ||
            memcmp(x + 8 + (size_t)nr * cc * 4, m->margin, (size_t)nr * k * 4) != 0 ||
            memcmp(buf + s0 + xlen, plain + s0, n0 - s0) != 0)
            st = -1;
        free(want);
    }
    free(plain);
    return st;
}

START_TEST(no_allocation_while_loading_and_scoring)
{
    char preload[PATH_MAX + 64] = "VIGIL_HOTPATH_MAX_FRAME_MB=64";
    if (!asan_build) {
        ck_assert_msg(access(probe_so, R_OK) == 0, "%s missing: make %s", probe_so, probe_so);
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", probe_so);
    }
    /* 1 MiB of arena: the fixtures do not all fit, so loads evict. */
    start_worker((const char *const[]){preload, kernel_env(_i), "VIGIL_HOTPATH_MEMORY_MB=1",
                                       "VIGIL_HOTPATH_MAX_CONNS=6", "VIGIL_ALLOCCOUNT_VERBOSE=1",
                                       NULL});
    char names[64][FX_NAME_MAX];
    size_t nreal = fx_manifest(names, 64);
    ck_assert_uint_ge(nreal, 20);
    enum { NSYNTH = 6 }; /* 6 x ~300 KiB: the arena must evict */
    size_t nfx = nreal + NSYNTH;
    fx_model *models = calloc(nfx, sizeof *models);
    for (size_t i = 0; i < nreal; i++)
        fx_model_load(&models[i], names[i], (unsigned)i);
    for (size_t i = nreal; i < nfx; i++)
        synth_model(&models[i], (unsigned)i);

    int fd = connect_slot(1);
    ck_assert_int_ge(fd, 0);
    size_t cap = 8 * MIB;
    uint8_t *buf = malloc(cap);
    uint32_t n;
    /* Every model once, plus bad blobs (truncated header, corrupted node, bad length). */
    for (size_t i = 0; i < nfx; i++) {
        ck_assert_int_eq(hp_load(fd, &models[i], 0, buf, cap), WIRE_E_BAD_PAYLOAD);
        ck_assert_int_eq(hp_load(fd, &models[i], -1, buf, cap), WIRE_OK);
    }
    uint8_t junk[60] = {0};
    wire_st32(junk + WIRE_MODEL_KEY_SIZE, 1000);
    ck_assert_int_eq(round_trip(fd, WIRE_OP_LOAD_MODEL, junk, 56, buf, cap, &n),
                     WIRE_E_BAD_PAYLOAD);
    ck_assert_int_eq(round_trip(fd, WIRE_OP_SCORE, junk, 7, buf, cap, &n), WIRE_E_BAD_PAYLOAD);
    close(fd);

    enum { NTHREADS = 4, ITER = 750 };
    pthread_t t[NTHREADS];
    score_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (score_arg){
            .models = models, .nmodels = (unsigned)nfx, .index = (unsigned)i, .iterations = ITER};
        ck_assert_int_eq(pthread_create(&t[i], NULL, score_client, &args[i]), 0);
    }
    char log[16384];
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        if (args[i].failures)
            slurp(log_path, log, sizeof log);
        ck_assert_msg(args[i].failures == 0, "client %d: %s; worker log:\n%s", i, args[i].why, log);
    }
    /* EXPLAIN after ready: every fixture (loading again where the 1 MiB arenas evicted it),
     * bit-identical to xgboost's pred_contribs; then its error answers. */
    fd = connect_slot(4);
    ck_assert_int_ge(fd, 0);
    for (size_t i = 0; i < nreal; i++) {
        int st = hp_explain_check(fd, &models[i], buf, cap);
        if (st == WIRE_E_UNKNOWN_MODEL) {
            ck_assert_int_eq(hp_load(fd, &models[i], -1, buf, cap), WIRE_OK);
            st = hp_explain_check(fd, &models[i], buf, cap);
        }
        ck_assert_msg(st == WIRE_OK, "EXPLAIN %s: status %d (-1: differs from xgboost)",
                      models[i].name, st);
    }
    /* SCORE sections with WIRE_SCORE_EXPLAIN after ready: each fixture explained beside the
     * next one scored, in one frame (loading both again where the arenas evicted them) */
    for (size_t i = 0; i < nreal; i++) {
        const fx_model *o = &models[(i + 1) % nreal];
        int st = hp_score_explain_check(fd, &models[i], o, buf, cap);
        for (int tries = 0; st == WIRE_E_UNKNOWN_MODEL && tries < 4; tries++) {
            if (tries == 2) /* the two do not fit the 1 MiB arenas together: the same twice */
                o = &models[i];
            ck_assert_int_eq(hp_load(fd, &models[i], -1, buf, cap), WIRE_OK);
            ck_assert_int_eq(hp_load(fd, o, -1, buf, cap), WIRE_OK);
            st = hp_score_explain_check(fd, &models[i], o, buf, cap);
        }
        ck_assert_msg(st == WIRE_OK, "SCORE+EXPLAIN %s: status %d (-1: differs)", models[i].name,
                      st);
    }
    ck_assert_int_eq(round_trip(fd, WIRE_OP_EXPLAIN, junk, 7, buf, cap, &n), WIRE_E_BAD_PAYLOAD);
    wire_st32(junk + WIRE_MODEL_KEY_SIZE, 0);
    ck_assert_int_eq(round_trip(fd, WIRE_OP_EXPLAIN, junk, 60, buf, cap, &n), WIRE_E_UNKNOWN_MODEL);
    close(fd);
    /* Framing errors on the scoring ops too. */
    int bfd = connect_slot(2);
    ck_assert_int_ge(bfd, 0);
    ck_assert_int_eq(send_hdr(bfd, WIRE_MAGIC, WIRE_VERSION, WIRE_OP_SCORE, 200, 77), 0);
    close(bfd); /* truncated frame */

    stat_kv kv[128];
    fd = connect_slot(3);
    ck_assert_int_ge(fd, 0);
    int cnt = stats_on(fd, kv, 128);
    close(fd);
    ck_assert_int_gt(cnt, 0);
    printf("  e2e: kernel %s: %llu scores (%llu ms in the kernel), %llu loads, %llu evictions, "
           "%llu load "
           "hits, %llu resident, %llu/%llu arena bytes used, %llu pool threads\n",
           kernels[_i], (unsigned long long)stat_find(kv, cnt, "op_score_calls"),
           (unsigned long long)stat_find(kv, cnt, "op_score_ns") / 1000000,
           (unsigned long long)stat_find(kv, cnt, "model_loads"),
           (unsigned long long)stat_find(kv, cnt, "model_evictions"),
           (unsigned long long)stat_find(kv, cnt, "model_load_hits"),
           (unsigned long long)stat_find(kv, cnt, "models_resident"),
           (unsigned long long)stat_find(kv, cnt, "arena_bytes_used"),
           (unsigned long long)stat_find(kv, cnt, "arena_bytes_total"),
           (unsigned long long)stat_find(kv, cnt, "pool_threads"));
    ck_assert_uint_ge(stat_find(kv, cnt, "op_score_calls"), NTHREADS * ITER);
    ck_assert_uint_ge(stat_find(kv, cnt, "model_loads"), nfx);
    ck_assert_uint_ge(stat_find(kv, cnt, "model_evictions"), 1);
    ck_assert_uint_ge(stat_find(kv, cnt, "errors_bad_payload"), nfx + 2);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_uint_eq(stat_find(kv, cnt, "pool_threads"), ncpu > 1 ? (uint64_t)ncpu - 1 : 0);
    if (asan_build) {
        t_skip("e2e_hotpath", "no_allocation_while_loading_and_scoring",
               "ASan build: loads, evictions and scores ran under ASan, but the allocation "
               "count (what this test is for) was not taken");
    } else {
        ck_assert_uint_eq(stat_find(kv, cnt, "alloc_probe_present"), 1);
        slurp(log_path, log, sizeof log);
        ck_assert_msg(stat_find(kv, cnt, "alloc_calls_after_ready") == 0,
                      "%llu allocation calls after ready; worker log:\n%s",
                      (unsigned long long)stat_find(kv, cnt, "alloc_calls_after_ready"), log);
    }
    for (size_t i = 0; i < nfx; i++)
        fx_model_free(&models[i]);
    free(models);
    free(buf);
}
END_TEST

/* ---- runner --------------------------------------------------------------------------------- */

/* Live frames before bulk ones (hp_prio.h), shown by order and by the worker's own count rather
 * than by how fast anything is.  A bulk SCORE frame (WIRE_F_BULK, 1,000,000 rows) is queued on one
 * connection, then a live SCORE frame of 100,000 rows on another, whose answer (400 KB, more than
 * the socket buffer) the test leaves unread for a while: the live frame stays in the worker (its
 * answer cannot be sent), so the bulk frame must wait between its blocks.  Then:
 *   - STATS bulk_yields grows while the live answer is held (the bulk frame's yield found a live
 *     frame in the worker), and STATS shows the bulk frame parked in its wait (bulk_waiting 1);
 *   - the live answer, sent after the bulk frame, is complete and exact while the bulk answer has
 *     not come yet (the bulk frame, at most one 256-row block per bounded wait, is still running);
 *   - the bulk answer then arrives, every row's exact score.
 * The waits are event-driven (STATS polled until the count grows); no time is asserted. */
START_TEST(live_frames_pass_a_bulk_frame)
{
    enum { BULK_ROWS = 1000000, LIVE_ROWS = 100000 };
    start_worker(NULL);
    int a = connect_slot(1), b = connect_slot(2);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(b, 0);
    size_t cap = 8 * MIB;
    uint8_t *buf = malloc(cap), *live = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(live);
    fx_model m;
    synth_model(&m, 41);
    ck_assert_int_eq(hp_load(a, &m, -1, buf, cap), WIRE_OK);

    /* both frames built before either is sent */
    uint8_t *frame[2];
    size_t flen[2];
    const uint32_t rows[2] = {BULK_ROWS, LIVE_ROWS};
    for (int f = 0; f < 2; f++) {
        size_t plen = 4 + WIRE_MODEL_KEY_SIZE + 12 + (size_t)rows[f] * m.nc * 4;
        flen[f] = WIRE_HEADER_SIZE + plen;
        frame[f] = malloc(flen[f]);
        ck_assert_ptr_nonnull(frame[f]);
        wire_header h = {.magic = WIRE_MAGIC,
                         .version = WIRE_VERSION,
                         .op = WIRE_OP_SCORE,
                         .flags = f == 0 ? WIRE_F_BULK : 0,
                         .payload_len = (uint32_t)plen,
                         .request_id = 700u + (uint64_t)f};
        wire_header_encode(frame[f], &h);
        wire_writer w;
        wire_writer_init(&w, frame[f] + WIRE_HEADER_SIZE, plen);
        wire_put_u32(&w, 1);
        wire_put_bytes(&w, m.key, WIRE_MODEL_KEY_SIZE);
        wire_put_u32(&w, 0);
        wire_put_u32(&w, rows[f]);
        wire_put_u32(&w, (uint32_t)m.nc);
        for (size_t r = 0; r < rows[f]; r++)
            wire_put_bytes(&w, m.rows + (r % m.nr) * m.nc, m.nc * 4);
        ck_assert_int_eq(w.err, 0);
    }

    uint64_t yields0 = stat_now("bulk_yields");
    ck_assert_int_eq(send_all(a, frame[0], flen[0]), 0); /* the bulk frame is in */
    ck_assert_int_eq(send_all(b, frame[1], flen[1]), 0); /* then the live one */
    /* the live answer is held unread: the bulk frame waits for it */
    uint64_t yields = stat_wait("bulk_yields", yields0 + 1, 60000);
    ck_assert_msg(yields > yields0, "the bulk frame never waited for the live one");
    ck_assert_msg(stat_wait("bulk_waiting", 1, 60000) == 1, "no bulk frame waits for the live one");
    ck_assert_msg(!readable_now(a), "the bulk frame was answered before the live one");
    wire_header h;
    uint32_t n;
    ck_assert_int_eq(recv_resp(b, &h, live, cap, &n, 60000), 0);
    ck_assert_int_eq(h.status, WIRE_OK);
    ck_assert_uint_eq(h.request_id, 701);
    /* the whole live answer is in, and the bulk one still is not */
    ck_assert_msg(!readable_now(a), "the bulk frame was answered before the live one");
    ck_assert_uint_eq(n, 12 + (size_t)LIVE_ROWS * 4);
    for (size_t r = 0; r < LIVE_ROWS; r++)
        ck_assert_msg(memcmp(live + 12 + r * 4, &m.pred[r % m.nr], 4) == 0, "live row %zu", r);

    ck_assert_int_eq(recv_resp(a, &h, buf, cap, &n, 120000), 0);
    ck_assert_int_eq(h.status, WIRE_OK);
    ck_assert_uint_eq(h.request_id, 700);
    ck_assert_uint_eq(n, 12 + (size_t)BULK_ROWS * 4);
    for (size_t r = 0; r < BULK_ROWS; r++)
        ck_assert_msg(memcmp(buf + 12 + r * 4, &m.pred[r % m.nr], 4) == 0, "bulk row %zu", r);
    fprintf(stderr, "live_frames_pass_a_bulk_frame: %llu bulk yields while the live frame was in\n",
            (unsigned long long)(stat_now("bulk_yields") - yields0));
    for (int f = 0; f < 2; f++)
        free(frame[f]);
    free(buf);
    free(live);
    fx_model_free(&m);
    close(a);
    close(b);
}
END_TEST

static Suite *hotpath_suite(void)
{
    Suite *s = suite_create("hotpath");
    TCase *tc = tcase_create("worker");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hello_reports_version_and_kernels);
    tcase_add_test(tc, ping_echoes_up_to_max_payload);
    tcase_add_test(tc, stats_counts_what_was_sent);
    tcase_add_test(tc, malformed_headers_get_status_and_close);
    tcase_add_test(tc, payload_over_max_is_too_large);
    tcase_add_test(tc, truncated_frames_do_not_disturb_others);
    tcase_add_test(tc, slow_payload_times_out);
    tcase_add_test(tc, idle_connection_is_closed);
    tcase_add_test(tc, more_connections_than_slots_get_busy);
    tcase_add_test(tc, socket_and_directory_modes);
    tcase_add_test(tc, default_socket_path_is_relative_to_cwd);
    tcase_add_test(tc, stale_socket_is_replaced);
    tcase_add_test(tc, non_socket_file_is_not_removed);
    tcase_add_test(tc, second_worker_refuses_to_start);
    tcase_add_test(tc, sigterm_exits_zero_and_unlinks);
    tcase_add_test(tc, sigint_exits_zero_and_unlinks);
    tcase_add_test(tc, check_reports_up_and_down);
    tcase_add_test(tc, version_and_bad_arguments);
    tcase_add_test(tc, bad_environment_fails_naming_the_variable);
    tcase_add_loop_test(tc, no_allocation_after_ready, 0, NKERNELS);
    tcase_add_test(tc, alloc_probe_counts);
    tcase_add_loop_test(tc, load_and_score_match_xgboost, 0, NKERNELS);
    tcase_add_test(tc, model_bigger_than_arena_is_no_memory);
    tcase_add_test(tc, live_frames_pass_a_bulk_frame);
    tcase_add_loop_test(tc, no_allocation_while_loading_and_scoring, 0, NKERNELS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* The worker under test: $VIGIL_BIN_DIR, else the bin dir this test binary was built into
     * (bin/tests/e2e_hotpath -> bin, bin/asan/tests/e2e_hotpath -> bin/asan), else "bin". */
    const char *dir = getenv("VIGIL_BIN_DIR");
    char self[PATH_MAX];
    if (!dir || !*dir) {
        dir = "bin";
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            char *slash = strrchr(self, '/');
            if (slash && slash - self >= 6 && strncmp(slash - 6, "/tests", 6) == 0) {
                slash[-6] = '\0';
                dir = self;
            }
        }
    }
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) {
        fprintf(stderr, "e2e_hotpath: VIGIL_BIN_DIR %s: %s\n", dir, strerror(errno));
        return EXIT_FAILURE;
    }
    snprintf(worker_bin, sizeof worker_bin, "%s/vigil-hotpath", abs);
    snprintf(probe_so, sizeof probe_so, "%s/tests/alloccount.so", abs);
    if (access(worker_bin, X_OK) != 0) {
        fprintf(stderr, "e2e_hotpath: %s not built\n", worker_bin);
        return EXIT_FAILURE;
    }
    const char *asan = getenv("VIGIL_ASAN");
    asan_build = (asan && *asan == '1') || strstr(abs, "asan") != NULL;
    signal(SIGPIPE, SIG_IGN);

    SRunner *sr = srunner_create(hotpath_suite());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (sanitizer_reports)
        fprintf(stderr, "e2e_hotpath: %d sanitizer report line(s) in worker logs\n",
                sanitizer_reports);
    return failed == 0 && sanitizer_reports == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
