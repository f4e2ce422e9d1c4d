/* hp_server.c - socket, slots, slot threads, frame loop.  See hp_server.h.
 *
 * Threads: the caller of hp_server_run is the acceptor; each slot has its own thread that sleeps on
 * its condition variable until the acceptor hands it a connection, then runs the frame loop for
 * that connection alone.  srv->mu guards the free-slot list, every slot's fd and srv->stopping;
 * a slot closes its fd only while holding mu, so the stopping thread can shutdown() it without
 * racing a reuse of the descriptor number.
 *
 * Failure policy: anything wrong with a frame's framing (magic, version, op, length, truncation,
 * timeout) gets one error frame (best effort) and the connection is closed, because the byte
 * stream can no longer be trusted.  A kernel's non-OK status keeps the connection open. */
#include "hp_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "hp_assert.h"
#include "hp_kernels.h"
#include "hp_log.h"
#include "hp_prio.h"
#include "hp_stats.h"
#include "logline.h"
#include "wire.h"

/* How long the acceptor may spend writing the one WIRE_E_BUSY frame to a rejected client. */
#define BUSY_WRITE_MS 100

typedef struct hp_slot {
    hp_server *srv;
    unsigned index;
    pthread_t thread;
    int thread_started;
    pthread_cond_t cv;
    int fd;                    /* connection being served, -1 when idle; guarded by srv->mu */
    struct hp_slot *next_free; /* guarded by srv->mu */
    uint8_t *region;           /* one mapping: in | guard | out | guard | scratch | guard */
    size_t region_len;
    uint8_t *in;  /* cfg.max_payload bytes: request payload */
    uint8_t *out; /* WIRE_HEADER_SIZE + cfg.max_payload bytes: response header + payload */
    hp_ctx ctx;
} hp_slot;

struct hp_server {
    hp_config cfg;
    unsigned nslots;
    hp_slot *slots;
    hp_stats stats; /* shards 0..nslots-1 belong to the slots, shard nslots to the acceptor */
    hp_stats_shard *acc_shard;
    pthread_mutex_t mu;
    int mu_ready;
    hp_slot *free_list;
    int stopping;
    int stop_efd; /* eventfd, readable once stopping: wakes slots waiting for the next frame */
    int listen_fd;
    int bound;      /* we created the socket file at cfg.socket_path ... */
    dev_t sock_dev; /* ... with this identity, so we only ever unlink our own */
    ino_t sock_ino;
    size_t scratch_bytes;
    unsigned ncpu;
    int64_t started_ms;
    const hp_kernels *kernels;
    hp_prio prio; /* live frames before bulk ones; every slot's ctx.prio points here */
    int prio_ready;
};

/* ---- logging helpers (allocation-free, rate-limited for peer-caused lines) ------------------- */

static void log_peer_event(const char *event, const hp_slot *sl, const char *status,
                           const char *detail, uint64_t request_id)
{
    uint64_t suppressed;
    if (!hp_log_ratelimit(&suppressed))
        return;
    hp_log_line l;
    hp_log_begin(&l, "warn", event);
    if (sl)
        hp_log_u64(&l, "slot", sl->index);
    if (status)
        hp_log_str(&l, "status", status);
    hp_log_str(&l, "detail", detail);
    hp_log_u64(&l, "request_id", request_id);
    if (suppressed)
        hp_log_u64(&l, "suppressed", suppressed);
    hp_log_end(&l);
}

static void set_err(char *err, size_t errlen, const char *what, const char *path, int errnum)
{
    char buf[128];
    snprintf(err, errlen, "%s %s: %s", what, path, strerror_r(errnum, buf, sizeof buf));
}

/* ---- socket path ----------------------------------------------------------------------------- */

/* mkdir -p of path's directory part.  Directories we create get exactly 0750 (chmod after mkdir,
 * so the umask cannot widen or narrow it); existing ones are left alone. */
static int make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char buf[HP_SOCKET_PATH_MAX];
    size_t n = strlen(path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0750) == 0) {
            if (chmod(buf, 0750) != 0) {
                set_err(err, errlen, "chmod", buf, errno);
                return -1;
            }
        } else if (errno != EEXIST) {
            set_err(err, errlen, "mkdir", buf, errno);
            return -1;
        } else {
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s exists and is not a directory", buf);
                return -1;
            }
        }
        buf[i] = '/';
    }
    return 0;
}

static void fill_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, strlen(path) + 1); /* length checked by hp_config_load */
}

/* Leaves the socket path free for bind: refuses if a live worker answers there or the path is not
 * a socket; removes a socket file nobody listens on. */
static int clear_stale_socket(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "stat", path, errno);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; refusing to remove it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        set_err(err, errlen, "socket for", path, errno);
        return -1;
    }
    struct sockaddr_un a;
    fill_addr(&a, path);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int cerr = errno;
    close(fd);
    /* EAGAIN: a live listener whose backlog is full - still alive. */
    if (rc == 0 || cerr == EAGAIN || cerr == EINPROGRESS) {
        snprintf(err, errlen, "another worker is already answering on %s; refusing to start", path);
        return -1;
    }
    if (cerr != ECONNREFUSED) {
        set_err(err, errlen, "probe of existing socket", path, cerr);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        set_err(err, errlen, "unlink stale socket", path, errno);
        return -1;
    }
    hp_log_line l;
    hp_log_begin(&l, "info", "stale_socket_removed");
    hp_log_str(&l, "socket", path);
    hp_log_end(&l);
    return 0;
}

static int bind_and_listen(hp_server *s, char *err, size_t errlen)
{
    const char *path = s->cfg.socket_path;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        set_err(err, errlen, "socket for", path, errno);
        return -1;
    }
    struct sockaddr_un a;
    fill_addr(&a, path);
    /* The umask decides the mode bind() gives the socket file: 0777 & ~0117 = 0660, so there is no
     * window in which a wider mode exists.  The umask is process-wide; the slot threads already
     * run, but they create no files, so the brief change cannot affect them. */
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int berr = errno;
    umask(old);
    if (rc != 0) {
        if (berr == EADDRINUSE)
            snprintf(err, errlen, "another worker is already answering on %s; refusing to start",
                     path);
        else
            set_err(err, errlen, "bind", path, berr);
        close(fd);
        return -1;
    }
    struct stat st;
    if (chmod(path, 0660) != 0 || stat(path, &st) != 0 || listen(fd, 128) != 0) {
        set_err(err, errlen, "chmod/listen", path, errno);
        unlink(path);
        close(fd);
        return -1;
    }
    s->listen_fd = fd;
    s->bound = 1;
    s->sock_dev = st.st_dev;
    s->sock_ino = st.st_ino;
    return 0;
}

static void unlink_own_socket(hp_server *s)
{
    struct stat st;
    if (!s->bound)
        return;
    if (stat(s->cfg.socket_path, &st) == 0 && st.st_dev == s->sock_dev && st.st_ino == s->sock_ino)
        unlink(s->cfg.socket_path);
    s->bound = 0;
}

/* ---- memory --------------------------------------------------------------------------------- */

static size_t round_up(size_t n, size_t page)
{
    return (n + page - 1) / page * page;
}

/* Maps in | guard | out | guard | scratch | guard for one slot.  MAP_NORESERVE: pages are only
 * committed when first touched, so a large max frame costs address space, not RAM.  The guard
 * pages turn a buffer overrun into SIGSEGV instead of silent corruption of the next buffer. */
static int map_slot(hp_server *s, hp_slot *sl)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t in_len = round_up(s->cfg.max_payload, page);
    size_t out_len = round_up((size_t)WIRE_HEADER_SIZE + s->cfg.max_payload, page);
    size_t scr_len = round_up(s->scratch_bytes, page);
    size_t total = in_len + page + out_len + page + scr_len + page;
    uint8_t *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    if (mprotect(p + in_len, page, PROT_NONE) != 0 ||
        mprotect(p + in_len + page + out_len, page, PROT_NONE) != 0 ||
        mprotect(p + total - page, page, PROT_NONE) != 0) {
        int e = errno;
        munmap(p, total);
        errno = e;
        return -1;
    }
    sl->region = p;
    sl->region_len = total;
    sl->in = p;
    sl->out = p + in_len + page;
    sl->ctx.scratch = p + in_len + page + out_len + page;
    sl->ctx.scratch_len = s->scratch_bytes;
    return 0;
}

/* ---- the frame loop ------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    return (uint64_t)clock_now_ns();
}

/* Sends one response frame whose payload (len bytes) is already at sl->out + WIRE_HEADER_SIZE.
 * Returns WIRE_IO_OK or the wire_io error. */
static int send_response(hp_slot *sl, int fd, uint16_t op, uint64_t request_id, int status,
                         size_t len, uint16_t flags)
{
    hp_server *s = sl->srv;
    wire_header h = {
        .magic = WIRE_MAGIC,
        .version = WIRE_VERSION,
        .op = op,
        .flags = (uint16_t)(WIRE_F_RESPONSE | flags),
        .status = (uint16_t)status,
        .payload_len = (uint32_t)len,
        .request_id = request_id,
    };
    wire_header_encode(sl->out, &h);
    size_t total = WIRE_HEADER_SIZE + len;
    int rc = wire_write_full(fd, sl->out, total, wire_now_ms() + s->cfg.io_timeout_ms);
    if (rc == WIRE_IO_OK) {
        hp_stats_add(sl->ctx.shard, HP_C_FRAMES_OUT, 1);
        hp_stats_add(sl->ctx.shard, HP_C_BYTES_OUT, total);
    }
    return rc;
}

/* Best-effort error frame with msg as payload before the connection is closed.  The peer may have
 * gone already; a failed write here is expected and not counted. */
static void send_error(hp_slot *sl, int fd, uint16_t op, uint64_t request_id, int status,
                       const char *msg)
{
    size_t n = strlen(msg);
    memcpy(sl->out + WIRE_HEADER_SIZE, msg, n); /* messages are short; out holds >= 1 MiB */
    send_response(sl, fd, op, request_id, status, n, 0);
}

enum { WAIT_READABLE, WAIT_IDLE, WAIT_STOP, WAIT_ERR };

/* Waits for the first byte of the next frame, the idle deadline, or the server stopping. */
static int wait_next_frame(hp_slot *sl, int fd)
{
    hp_server *s = sl->srv;
    int64_t deadline = wire_now_ms() + s->cfg.idle_timeout_ms;
    for (;;) {
        int64_t left = deadline - wire_now_ms();
        if (left <= 0)
            return WAIT_IDLE;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop_efd, .events = POLLIN}};
        int rc = poll(p, 2, left > 60000 ? 60000 : (int)left);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            return WAIT_ERR;
        }
        if (p[1].revents)
            return WAIT_STOP;
        if (p[0].revents) /* data, EOF, or an error: the read will tell which */
            return WAIT_READABLE;
    }
}

/* Counts, logs and answers a read that failed inside a frame (header or payload). */
static void frame_read_failed(hp_slot *sl, int fd, int rc, const wire_header *h, const char *part)
{
    char msg[128];
    if (rc == WIRE_IO_TIMEOUT) {
        hp_stats_add(sl->ctx.shard, HP_C_ERR_IO_TIMEOUT, 1);
        snprintf(msg, sizeof msg, "frame %s incomplete after %lld ms", part,
                 (long long)sl->srv->cfg.io_timeout_ms);
    } else {
        hp_stats_add(sl->ctx.shard, HP_C_ERR_TRUNCATED, 1);
        snprintf(msg, sizeof msg, "truncated frame %s", part);
    }
    log_peer_event("protocol_error", sl, wire_status_name(WIRE_E_BAD_FRAME), msg,
                   h ? h->request_id : 0);
    send_error(sl, fd, h ? h->op : 0, h ? h->request_id : 0, WIRE_E_BAD_FRAME, msg);
}

/* Counts, logs and answers a header that decoded to status st (or whose op has no kernel). */
static void header_rejected(hp_slot *sl, int fd, const wire_header *h, int st)
{
    char msg[128];
    enum hp_counter c;
    switch (st) {
    case WIRE_E_BAD_VERSION:
        c = HP_C_ERR_BAD_VERSION;
        snprintf(msg, sizeof msg, "protocol version %u not supported (want %u)",
                 (unsigned)h->version, WIRE_VERSION);
        break;
    case WIRE_E_UNKNOWN_OP:
        c = HP_C_ERR_UNKNOWN_OP;
        snprintf(msg, sizeof msg, "no kernel for op %u", (unsigned)h->op);
        break;
    case WIRE_E_TOO_LARGE:
        c = HP_C_ERR_TOO_LARGE;
        snprintf(msg, sizeof msg, "payload_len %lu over the maximum %lu",
                 (unsigned long)h->payload_len, (unsigned long)sl->srv->cfg.max_payload);
        break;
    default:
        c = HP_C_ERR_BAD_FRAME;
        snprintf(msg, sizeof msg, "bad magic 0x%08lx", (unsigned long)h->magic);
        break;
    }
    hp_stats_add(sl->ctx.shard, c, 1);
    log_peer_event("protocol_error", sl, wire_status_name(st), msg, h->request_id);
    /* Under a wrong magic or version the op field means nothing: answer with op 0. */
    uint16_t op = st == WIRE_E_BAD_FRAME || st == WIRE_E_BAD_VERSION ? 0 : h->op;
    send_error(sl, fd, op, h->request_id, st, msg);
}

/* Runs the kernel on the payload read into sl->in and sends its answer.  A WIRE_F_TRACE frame's
 * trace-context block is taken off the payload first (its ids go into this thread's log lines
 * until the caller clears them) and the answer gets the timing block before the kernel's payload
 * (wire.h).  Returns WIRE_IO_OK, or the write error after counting and logging it. */
static int run_frame(hp_slot *sl, int fd, const hp_kernel *k, void *kstate, const wire_header *h,
                     uint64_t t_ready)
{
    hp_server *s = sl->srv;
    hp_stats_shard *sh = sl->ctx.shard;
    const uint8_t *in = sl->in;
    size_t in_len = h->payload_len, pre = 0;
    int traced = (h->flags & WIRE_F_TRACE) != 0;
    wire_writer out;
    if (traced) {
        pre = WIRE_TRACE_TIMING_SIZE;
        if (in_len >= WIRE_TRACE_CTX_SIZE) {
            wire_trace_ctx tc;
            wire_trace_ctx_decode(in, &tc);
            logline_trace_set(tc.trace_id, tc.span_id);
        }
    }
    wire_writer_init(&out, sl->out + WIRE_HEADER_SIZE + pre, s->cfg.max_payload - pre);
    sl->ctx.request_id = h->request_id;
    sl->ctx.bulk = (h->flags & WIRE_F_BULK) != 0;
    uint64_t t0 = now_ns();
    int st;
    if (traced && in_len < WIRE_TRACE_CTX_SIZE)
        st = hp_kernel_fail(&out, WIRE_E_BAD_PAYLOAD, "WIRE_F_TRACE frame shorter than its block");
    else
        st = k->fn(kstate, &sl->ctx, in + (traced ? WIRE_TRACE_CTX_SIZE : 0),
                   in_len - (traced ? WIRE_TRACE_CTX_SIZE : 0), &out);
    uint64_t t1 = now_ns();
    hp_stats_op(sh, h->op, t1 - t0);
    if (out.err)
        st = hp_kernel_fail(&out, WIRE_E_INTERNAL, "response larger than the maximum frame");
    else if (st < 0 || st >= WIRE_STATUS_MAX)
        st = hp_kernel_fail(&out, WIRE_E_INTERNAL, "kernel returned an invalid status");
    if (st == WIRE_E_BAD_PAYLOAD)
        hp_stats_add(sh, HP_C_ERR_BAD_PAYLOAD, 1);
    else if (st == WIRE_E_INTERNAL)
        hp_stats_add(sh, HP_C_ERR_INTERNAL, 1);
    if (st == WIRE_E_BAD_PAYLOAD || st == WIRE_E_INTERNAL) {
        /* The kernel's message is the payload (not NUL-terminated): a line about this frame. */
        char msg[160];
        size_t n = out.len < sizeof msg - 1 ? out.len : sizeof msg - 1;
        memcpy(msg, out.buf, n);
        msg[n] = '\0';
        log_peer_event("frame_failed", sl, wire_status_name(st), msg, h->request_id);
    }
    if (traced)
        wire_trace_timing_encode(sl->out + WIRE_HEADER_SIZE, t0 - t_ready, t1 - t0);

    int rc =
        send_response(sl, fd, h->op, h->request_id, st, pre + out.len, traced ? WIRE_F_TRACE : 0);
    if (rc != WIRE_IO_OK) {
        hp_stats_add(sh, HP_C_ERR_WRITE, 1);
        log_peer_event("connection_error", sl, NULL,
                       rc == WIRE_IO_TIMEOUT ? "response write timed out" : "response write failed",
                       h->request_id);
    }
    return rc;
}

/* Serves one connection until it closes, misbehaves, idles out or the server stops. */
static void serve_connection(hp_slot *sl, int fd)
{
    hp_server *s = sl->srv;
    hp_stats_shard *sh = sl->ctx.shard;
    uint8_t raw[WIRE_HEADER_SIZE];
    wire_header h;

    for (;;) {
        int w = wait_next_frame(sl, fd);
        if (w == WAIT_IDLE) {
            hp_stats_add(sh, HP_C_IDLE_CLOSED, 1);
            log_peer_event("idle_close", sl, NULL, "no frame within VIGIL_HOTPATH_IDLE_TIMEOUT_S",
                           0);
            return;
        }
        if (w != WAIT_READABLE)
            return;

        uint64_t t_ready = now_ns(); /* the frame's first byte is readable: its queue wait starts */
        /* Slowloris guard: the whole rest of the frame, header and payload together, must arrive
         * within one I/O timeout of its first byte (not one timeout each). */
        int64_t frame_deadline = wire_now_ms() + s->cfg.io_timeout_ms;
        int rc = wire_read_full(fd, raw, sizeof raw, frame_deadline);
        if (rc == WIRE_IO_EOF)
            return; /* clean close between frames */
        if (rc != WIRE_IO_OK) {
            frame_read_failed(sl, fd, rc, NULL, "header");
            return;
        }
        int st = wire_header_decode(raw, s->cfg.max_payload, &h);
        const hp_kernel *k = NULL;
        void *kstate = NULL;
        if (st == WIRE_OK && (k = hp_kernels_find(s->kernels, h.op, &kstate)) == NULL)
            st = WIRE_E_UNKNOWN_OP;
        if (st != WIRE_OK) {
            header_rejected(sl, fd, &h, st);
            return;
        }
        rc = wire_read_full(fd, sl->in, h.payload_len, frame_deadline);
        if (rc != WIRE_IO_OK) {
            frame_read_failed(sl, fd, rc, &h, "payload");
            return;
        }
        hp_stats_add(sh, HP_C_FRAMES_IN, 1);
        hp_stats_add(sh, HP_C_BYTES_IN, WIRE_HEADER_SIZE + (uint64_t)h.payload_len);

        /* A live frame counts until its answer is sent: bulk work yields to it meanwhile. */
        int live = !(h.flags & WIRE_F_BULK);
        if (live)
            hp_prio_live_begin(&s->prio);
        rc = run_frame(sl, fd, k, kstate, &h, t_ready);
        if (live)
            hp_prio_live_end(&s->prio);
        logline_trace_clear();
        if (rc != WIRE_IO_OK)
            return;
    }
}

static void *slot_main(void *arg)
{
    hp_slot *sl = arg;
    hp_server *s = sl->srv;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (sl->fd < 0 && !s->stopping)
            pthread_cond_wait(&sl->cv, &s->mu);
        if (sl->fd < 0)
            break; /* stopping, and idle */
        int fd = sl->fd;
        pthread_mutex_unlock(&s->mu);

        serve_connection(sl, fd);

        pthread_mutex_lock(&s->mu);
        close(fd);
        sl->fd = -1;
        hp_stats_add(sl->ctx.shard, HP_C_CONNS_CLOSED, 1);
        /* Back on the free list before mu is released: a client that saw our close and
         * reconnects at once finds the slot free, not WIRE_E_BUSY. */
        sl->next_free = s->free_list;
        s->free_list = sl;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- acceptor ------------------------------------------------------------------------------- */

static void reject_busy(hp_server *s, int fd)
{
    static const char msg[] = "all connection slots are busy";
    uint8_t frame[WIRE_HEADER_SIZE + sizeof msg - 1];
    wire_header h = {
        .magic = WIRE_MAGIC,
        .version = WIRE_VERSION,
        .flags = WIRE_F_RESPONSE,
        .status = WIRE_E_BUSY,
        .payload_len = sizeof msg - 1,
    };
    wire_header_encode(frame, &h);
    memcpy(frame + WIRE_HEADER_SIZE, msg, sizeof msg - 1);
    if (wire_write_full(fd, frame, sizeof frame, wire_now_ms() + BUSY_WRITE_MS) == WIRE_IO_OK) {
        hp_stats_add(s->acc_shard, HP_C_FRAMES_OUT, 1);
        hp_stats_add(s->acc_shard, HP_C_BYTES_OUT, sizeof frame);
    }
    close(fd);
    hp_stats_add(s->acc_shard, HP_C_CONNS_REJECTED, 1);
    log_peer_event("connection_rejected", NULL, wire_status_name(WIRE_E_BUSY), msg, 0);
}

static void accept_one(hp_server *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED)
            return;
        hp_stats_add(s->acc_shard, HP_C_ERR_ACCEPT, 1);
        uint64_t suppressed;
        if (hp_log_ratelimit(&suppressed)) {
            hp_log_line l;
            hp_log_begin(&l, "error", "accept_failed");
            hp_log_errno(&l, "error", e);
            if (suppressed)
                hp_log_u64(&l, "suppressed", suppressed);
            hp_log_end(&l);
        }
        /* Out of descriptors or memory: the listen socket stays readable, so back off instead of
         * spinning until a connection closes. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        return;
    }
    pthread_mutex_lock(&s->mu);
    hp_slot *sl = s->free_list;
    if (sl) {
        s->free_list = sl->next_free;
        sl->next_free = NULL;
        sl->fd = fd;
        hp_stats_add(s->acc_shard, HP_C_CONNS_ACCEPTED, 1);
        pthread_cond_signal(&sl->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (!sl)
        reject_busy(s, fd);
}

int hp_server_run(hp_server *s, int stop_fd)
{
    struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
                          {.fd = stop_fd, .events = POLLIN}};
    for (;;) {
        int rc = poll(p, 2, -1);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            hp_log_line l;
            hp_log_begin(&l, "error", "poll_failed");
            hp_log_errno(&l, "error", errno);
            hp_log_end(&l);
            return -1;
        }
        if (p[1].revents)
            return 0;
        if (p[0].revents)
            accept_one(s);
    }
}

/* ---- start / ready / stop ------------------------------------------------------------------- */

int hp_server_start(const hp_config *cfg, unsigned ncpu, const hp_kernels *ks, hp_server **out,
                    char *err, size_t errlen)
{
    HP_ASSERT(cfg != NULL && ks != NULL && out != NULL);
    HP_ASSERT(!hp_after_ready());
    hp_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->cfg = *cfg;
    s->nslots = cfg->max_conns;
    s->listen_fd = -1;
    s->stop_efd = -1;
    s->ncpu = ncpu;
    s->started_ms = wire_now_ms();
    s->kernels = ks;
    s->scratch_bytes = cfg->scratch_bytes;
    if (hp_kernels_scratch_bytes() > s->scratch_bytes)
        s->scratch_bytes = hp_kernels_scratch_bytes();

    if (make_parent_dirs(cfg->socket_path, err, errlen) != 0 ||
        clear_stale_socket(cfg->socket_path, err, errlen) != 0)
        goto fail;

    if (hp_stats_init(&s->stats, s->nslots + 1) != 0) {
        snprintf(err, errlen, "out of memory for counters");
        goto fail;
    }
    s->acc_shard = &s->stats.shards[s->nslots];
    s->slots = calloc(s->nslots, sizeof *s->slots);
    if (!s->slots) {
        snprintf(err, errlen, "out of memory for %u slots", s->nslots);
        goto fail;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        snprintf(err, errlen, "pthread_mutex_init failed");
        goto fail;
    }
    s->mu_ready = 1;
    if (hp_prio_init(&s->prio) != 0) {
        snprintf(err, errlen, "hp_prio_init failed");
        goto fail;
    }
    s->prio_ready = 1;
    s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->stop_efd < 0) {
        set_err(err, errlen, "eventfd", "", errno);
        goto fail;
    }

    for (unsigned i = 0; i < s->nslots; i++) {
        hp_slot *sl = &s->slots[i];
        sl->index = i;
        sl->fd = -1;
        sl->ctx = (hp_ctx){.cfg = &s->cfg,
                           .stats = &s->stats,
                           .shard = &s->stats.shards[i],
                           .slot = i,
                           .nslots = s->nslots,
                           .ncpu = ncpu,
                           .started_ms = s->started_ms,
                           .kernels = ks,
                           .prio = &s->prio};
        if (pthread_cond_init(&sl->cv, NULL) != 0) {
            snprintf(err, errlen, "pthread_cond_init failed");
            goto fail;
        }
        sl->srv = s; /* also marks cv as initialised for hp_server_stop */
        if (map_slot(s, sl) != 0) {
            char eb[128];
            snprintf(err, errlen,
                     "cannot reserve memory for slot %u (VIGIL_HOTPATH_MAX_CONNS=%u x "
                     "VIGIL_HOTPATH_MAX_FRAME_MB=%lu): %s",
                     i, s->nslots, (unsigned long)(cfg->max_payload >> 20),
                     strerror_r(errno, eb, sizeof eb));
            goto fail;
        }
        /* Free list in slot order, so slot 0 is used first. */
        sl->next_free = NULL;
    }
    for (unsigned i = s->nslots; i-- > 0;) {
        s->slots[i].next_free = s->free_list;
        s->free_list = &s->slots[i];
    }
    for (unsigned i = 0; i < s->nslots; i++) {
        hp_slot *sl = &s->slots[i];
        int rc = pthread_create(&sl->thread, NULL, slot_main, sl);
        if (rc != 0) {
            char eb[128];
            snprintf(err, errlen, "pthread_create for slot %u: %s", i,
                     strerror_r(rc, eb, sizeof eb));
            goto fail;
        }
        sl->thread_started = 1;
        char name[16];
        snprintf(name, sizeof name, "hp-slot-%u", i & 0xffffu); /* max_conns <= 1024 */
        pthread_setname_np(sl->thread, name);
    }
    if (bind_and_listen(s, err, errlen) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    hp_server_stop(s);
    return -1;
}

void hp_ready(hp_server *s)
{
    hp_log_line l;
    hp_log_begin(&l, "info", "ready");
    hp_log_str(&l, "socket", s->cfg.socket_path);
    hp_log_str(&l, "kernel", hp_kernels_scorer(s->kernels)->name);
    hp_log_u64(&l, "slots", s->nslots);
    hp_log_u64(&l, "max_frame_bytes", s->cfg.max_payload);
    hp_log_u64(&l, "scratch_bytes", s->scratch_bytes);
    hp_log_i64(&l, "idle_timeout_ms", s->cfg.idle_timeout_ms);
    hp_log_i64(&l, "io_timeout_ms", s->cfg.io_timeout_ms);
    hp_log_u64(&l, "cpus", s->ncpu);
    hp_log_u64(&l, "alloc_probe", (uint64_t)hp_alloc_probe_present());
    hp_log_end(&l);
    /* From here on: no malloc, mmap or thread creation until hp_server_stop(). */
    hp_alloc_probe_mark_ready();
}

void hp_server_stop(hp_server *s)
{
    if (!s)
        return;
    /* New clients first: after this, connecting fails instead of queueing. */
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    unlink_own_socket(s);

    if (s->mu_ready) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        if (s->stop_efd >= 0) {
            uint64_t one = 1;
            ssize_t wr = write(s->stop_efd, &one, sizeof one);
            (void)wr; /* cannot fail for a fresh counter; the SHUT_RD below also wakes slots */
        }
        for (unsigned i = 0; s->slots && i < s->nslots; i++) {
            /* A slot in the middle of a frame reads EOF and gives up; one running a kernel finishes
             * it and still writes the answer (SHUT_RD leaves the write side open). */
            if (s->slots[i].fd >= 0)
                shutdown(s->slots[i].fd, SHUT_RD);
            if (s->slots[i].thread_started)
                pthread_cond_signal(&s->slots[i].cv);
        }
        pthread_mutex_unlock(&s->mu);
    }
    for (unsigned i = 0; s->slots && i < s->nslots; i++) {
        hp_slot *sl = &s->slots[i];
        if (sl->thread_started)
            pthread_join(sl->thread, NULL);
        if (sl->region)
            munmap(sl->region, sl->region_len);
        if (sl->srv)
            pthread_cond_destroy(&sl->cv);
    }
    if (s->stop_efd >= 0)
        close(s->stop_efd);
    if (s->mu_ready)
        pthread_mutex_destroy(&s->mu);
    if (s->prio_ready)
        hp_prio_destroy(&s->prio);
    free(s->slots);
    hp_stats_free(&s->stats);
    free(s);
}
