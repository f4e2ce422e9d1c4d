/* main.c - vigil-hotpath: command line, start-up, signals, shutdown, and the --check client.
 *
 *   vigil-hotpath            serve on $VIGIL_HOTPATH_SOCKET until SIGTERM/SIGINT (exit 0)
 *   vigil-hotpath --check    exit 0 if a worker answers HELLO on the socket within 2 s, else 1
 *   vigil-hotpath --version  print the version
 *
 * Exit codes: 0 clean shutdown / check passed; 1 start-up or runtime failure / check failed;
 * 2 bad command line or environment. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hp_config.h"
#include "hp_kernels.h"
#include "hp_log.h"
#include "hp_scorer.h"
#include "hp_server.h"
#include "wire.h"

#define CHECK_TIMEOUT_MS 2000
#define CHECK_REQUEST_ID 0x636865636bull /* "check" */

static void usage(FILE *f)
{
    char names[256];
    fprintf(f,
            "usage: vigil-hotpath [--check | --version | --help]\n"
            "environment: VIGIL_HOTPATH_SOCKET (default %s), VIGIL_HOTPATH_MAX_CONNS (%u),\n"
            "  VIGIL_HOTPATH_MAX_FRAME_MB (%u), VIGIL_HOTPATH_SCRATCH_MB (%u),\n"
            "  VIGIL_HOTPATH_IDLE_TIMEOUT_S (%u), VIGIL_HOTPATH_IO_TIMEOUT_MS (%u),\n"
            "  VIGIL_HOTPATH_MEMORY_MB (%u), VIGIL_HOTPATH_KERNEL (%s; one of: %s)\n",
            HP_DEFAULT_SOCKET, HP_DEFAULT_MAX_CONNS, HP_DEFAULT_MAX_FRAME_MB, HP_DEFAULT_SCRATCH_MB,
            HP_DEFAULT_IDLE_TIMEOUT_S, HP_DEFAULT_IO_TIMEOUT_MS, HP_DEFAULT_MEMORY_MB,
            hp_scorer_at(0)->name, hp_scorer_names(names, sizeof names));
}

/* --check: one HELLO round trip.  A WIRE_E_BUSY answer also passes: the worker is alive and
 * answering, only every slot is taken (by the API's pool); failing the health check then would
 * restart a healthy worker under load. */
static int run_check(const hp_config *cfg)
{
    const char *path = cfg->socket_path;
    int64_t deadline = wire_now_ms() + CHECK_TIMEOUT_MS;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        printf("vigil-hotpath --check: socket: %s\n", strerror(errno));
        return 1;
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("vigil-hotpath --check: connect %s: %s\n", path,
               errno == EAGAIN ? "listen backlog full" : strerror(errno));
        close(fd);
        return 1;
    }
    wire_header h = {.magic = WIRE_MAGIC,
                     .version = WIRE_VERSION,
                     .op = WIRE_OP_HELLO,
                     .request_id = CHECK_REQUEST_ID};
    uint8_t raw[WIRE_HEADER_SIZE];
    uint8_t payload[4096];
    const char *why = NULL;
    int rc = wire_send_frame(fd, &h, NULL, deadline);
    if (rc == WIRE_IO_OK)
        rc = wire_read_full(fd, raw, sizeof raw, deadline);
    if (rc == WIRE_IO_TIMEOUT)
        why = "no answer within 2 s";
    else if (rc == WIRE_IO_EOF)
        why = "worker closed the connection without answering";
    else if (rc != WIRE_IO_OK)
        why = strerror(errno);
    wire_header r;
    int st = WIRE_OK;
    if (!why) {
        st = wire_header_decode(raw, sizeof payload, &r);
        if (st == WIRE_E_TOO_LARGE)
            why = "answer larger than a HELLO can be";
        else if (st != WIRE_OK || !(r.flags & WIRE_F_RESPONSE))
            why = "answer is not a valid response frame";
        else if (wire_read_full(fd, payload, r.payload_len, deadline) != WIRE_IO_OK)
            why = "answer truncated";
        else if (r.status == WIRE_E_BUSY && r.request_id == 0)
            why = NULL; /* alive, all slots busy: see above */
        else if (r.request_id != CHECK_REQUEST_ID || r.op != WIRE_OP_HELLO)
            why = "answer does not match the request";
        else if (r.status != WIRE_OK)
            why = wire_status_name(r.status);
    }
    close(fd);
    if (why) {
        printf("vigil-hotpath --check: %s: %s\n", path, why);
        return 1;
    }
    if (r.status == WIRE_E_BUSY) {
        printf("vigil-hotpath --check: %s: alive, all connection slots busy\n", path);
        return 0;
    }
    wire_reader rd;
    char version[64];
    wire_reader_init(&rd, payload, r.payload_len);
    uint16_t proto = wire_get_u16(&rd);
    wire_get_str(&rd, version, sizeof version);
    uint16_t nk = wire_get_u16(&rd);
    if (rd.err) {
        printf("vigil-hotpath --check: %s: malformed HELLO answer\n", path);
        return 1;
    }
    printf("vigil-hotpath --check: %s: ok (worker %s, protocol %u, %u kernels)\n", path, version,
           (unsigned)proto, (unsigned)nk);
    return 0;
}

static const char *signal_name(uint32_t signo)
{
    switch (signo) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    default:
        return "signal";
    }
}

int main(int argc, char **argv)
{
    char err[512];
    hp_config cfg;
    int check = 0;

    if (argc > 2) {
        usage(stderr);
        return 2;
    }
    if (argc == 2) {
        if (strcmp(argv[1], "--version") == 0) {
            printf("vigil-hotpath %s\n", VIGIL_VERSION);
            return 0;
        } else if (strcmp(argv[1], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[1], "--check") == 0) {
            check = 1;
        } else {
            fprintf(stderr, "vigil-hotpath: unknown argument '%s'\n", argv[1]);
            usage(stderr);
            return 2;
        }
    }
    if (hp_config_load(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "vigil-hotpath: %s\n", err);
        return 2;
    }
    if (check)
        return run_check(&cfg);

    hp_log_line l;
    hp_log_begin(&l, "info", "start");
    hp_log_str(&l, "version", VIGIL_VERSION);
    hp_log_str(&l, "kernel", cfg.kernel);
    hp_log_i64(&l, "pid", (int64_t)getpid());
    hp_log_end(&l);

    /* Block the stop signals before any thread exists, so every thread inherits the mask and the
     * signals are only ever consumed through the signalfd the acceptor polls. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    signal(SIGPIPE, SIG_IGN); /* belt and braces: every send already uses MSG_NOSIGNAL */
    int sfd = -1;
    hp_server *srv = NULL;
    hp_kernels *ks = NULL;
    const char *fail_event = "start_failed";
    if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0 || (sfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0) {
        snprintf(err, sizeof err, "signalfd: %s", strerror(errno));
        goto fail;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (hp_kernels_create(&cfg, (unsigned)ncpu, &ks, err, sizeof err) != 0)
        goto fail;
    if (hp_server_start(&cfg, (unsigned)ncpu, ks, &srv, err, sizeof err) != 0) {
        hp_kernels_destroy(ks);
        goto fail;
    }
    hp_ready(srv);

    if (hp_server_run(srv, sfd) != 0) {
        snprintf(err, sizeof err, "accept loop failed");
        fail_event = "run_failed";
        hp_server_stop(srv);
        hp_kernels_destroy(ks);
        goto fail;
    }
    struct signalfd_siginfo si = {0};
    ssize_t got = read(sfd, &si, sizeof si);
    hp_log_begin(&l, "info", "shutdown");
    hp_log_str(&l, "signal", got == (ssize_t)sizeof si ? signal_name(si.ssi_signo) : "unknown");
    hp_log_end(&l);
    hp_server_stop(srv);
    hp_kernels_destroy(ks);
    close(sfd);
    hp_log_begin(&l, "info", "stopped");
    hp_log_end(&l);
    return 0;

fail:
    hp_log_begin(&l, "error", fail_event);
    hp_log_str(&l, "error", err);
    hp_log_end(&l);
    if (sfd >= 0)
        close(sfd);
    return 1;
}
