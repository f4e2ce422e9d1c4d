/* main.c - vigil-api entry point: the `serve` (default), `migrate` and `keys` commands.
 *
 * serve: load config, open the pools, apply migrations, ensure the bootstrap key, start HTTP, then
 * wait for SIGTERM/SIGINT and drain.  Signals are blocked in every thread and taken with
 * sigwait() here, so no handler runs in async-signal context. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "listcache.h"
#include "rulecat.h"
#include "auth.h"
#include "btjob.h"
#include "batchq.h"
#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "hpclient.h"
#include "http.h"
#include "logline.h"
#include "migrate.h"
#include "routes.h"
#include "scoring.h"
#include "trace.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil-api [serve]                 run the HTTP API (default)\n"
                 "       vigil-api migrate                 apply pending migrations and exit\n"
                 "       vigil-api keys create --name NAME --scopes read,write,admin\n"
                 "       vigil-api keys list\n"
                 "       vigil-api keys revoke KEY_ID\n"
                 "       vigil-api --version\n"
                 "       vigil-api --health-check          exit 0 if GET /health answers 200\n"
                 "Configuration comes from the environment; see README.md.\n");
}

static void die(const char *msg)
{
    logline_event("error", "start_failed", "error", msg);
    fprintf(stderr, "vigil-api: %s\n", msg);
    exit(1);
}

/* --health-check: GET /health on VIGIL_HTTP_ADDR (0.0.0.0 means this host, 127.0.0.1) within
 * 2 s; returns 0 on a 200 answer, else 1.  For container health checks in images without curl. */
static int health_check(void)
{
    static cfg c;
    char err[512], buf[64] = {0};
    if (cfg_load(&c, 0, err, sizeof err) != 0) {
        fprintf(stderr, "vigil-api --health-check: %s\n", err);
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c.http_port)};
    inet_pton(AF_INET, strcmp(c.http_host, "0.0.0.0") == 0 ? "127.0.0.1" : c.http_host,
              &sa.sin_addr);
    struct timeval tv = {.tv_sec = 2};
    const char req[] = "GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n";
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
        connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        ssize_t n;
        while (got < 12 && (n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
            got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    int ok = got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0;
    if (!ok)
        fprintf(stderr, "vigil-api --health-check: no 200 from http://%s:%d/health\n", c.http_host,
                c.http_port);
    return ok ? 0 : 1;
}

static int cmd_keys(db_pool *pool, int argc, char **argv)
{
    char err[512];
    if (argc >= 1 && strcmp(argv[0], "create") == 0) {
        const char *name = NULL, *scopes = "read";
        for (int i = 1; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--name") == 0)
                name = argv[i + 1];
            else if (strcmp(argv[i], "--scopes") == 0)
                scopes = argv[i + 1];
            else {
                usage(stderr);
                return 2;
            }
        }
        unsigned bits;
        if (!name || auth_parse_scopes(scopes, &bits) != 0) {
            fprintf(stderr,
                    "vigil-api: keys create needs --name and --scopes from read,write,admin\n");
            return 2;
        }
        char key[AUTH_KEY_LEN + 1], id[40];
        if (auth_key_create(pool, name, bits, key, id, err, sizeof err) != 0) {
            fprintf(stderr, "vigil-api: %s\n", err);
            return 1;
        }
        printf("id:     %s\nname:   %s\nscopes: %s\nkey:    %s\n(the key is shown only once)\n", id,
               name, scopes, key);
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        if (auth_key_list(pool, stdout, err, sizeof err) != 0) {
            fprintf(stderr, "vigil-api: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
        int rc = auth_key_revoke(pool, argv[1], err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "vigil-api: %s\n", err);
        else if (rc > 0)
            fprintf(stderr, "vigil-api: no active key with id %s\n", argv[1]);
        else
            printf("revoked %s\n", argv[1]);
        return rc == 0 ? 0 : 1;
    }
    usage(stderr);
    return 2;
}

/* The start-up line: where the API listens and how it scores. */
static void log_ready(const cfg *c)
{
    char addr[96];
    snprintf(addr, sizeof addr, "http://%s:%d", c->http_host, c->http_port);
    logline l;
    logline_begin(&l, "info", "ready");
    logline_str(&l, "addr", addr);
    logline_str(&l, "hotpath_mode", c->hotpath_mode);
    logline_str(&l, "hotpath_socket", c->hotpath_socket);
    logline_str(&l, "version", VIGIL_VERSION);
    logline_end(&l);
}

/* The process-wide parts every request may use besides the pools (app.h); dies on failure. */
static void make_parts(app *a, const cfg *c)
{
    char err[512];
    /* Compiled models: scored from here in inprocess mode, reloaded from here into a restarted
     * worker in worker mode. */
    a->cache = scoring_cache_create((size_t)c->model_cache_mb << 20);
    if (!a->cache)
        die("out of memory");
    /* List sets: built by their own thread and connection, off every request's path. */
    a->lists = listcache_create(c->database_url, err, sizeof err);
    if (!a->lists)
        die(err);
    /* Verified API keys, reused for VIGIL_AUTH_CACHE_MS (a revocation waits at most that). */
    if (c->auth_cache_ms > 0 && !(a->keys = auth_cache_create(c->auth_cache_ms)))
        die("out of memory");
    if (!(a->rules = rulecat_cache_create()))
        die("out of memory");
    /* Decisions' reads, up to VIGIL_READ_BATCH in one round trip and VIGIL_READ_LANES round
     * trips at once, and their writes, committed up to VIGIL_COMMIT_BATCH at a time, one
     * transaction at a time. */
    if (!(a->reads = batchq_start(a->db, BATCHQ_READ, c->read_batch, c->read_lanes, c->pool_wait_ms,
                                  err, sizeof err)) ||
        !(a->commits = batchq_start(a->db, BATCHQ_TXN, c->commit_batch, 1, -1, err, sizeof err)))
        die(err);
}

static int serve(app *a, cfg *c)
{
    char err[512];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every thread created below */
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(c->hotpath_mode, "worker") == 0) {
        a->hp = hpc_pool_create(c->hotpath_socket, c->hotpath_pool_size,
                                (uint32_t)c->hotpath_max_frame_mb << 20, c->hotpath_timeout_ms, err,
                                sizeof err);
        if (!a->hp)
            die(err);
    }
    make_parts(a, c);
    if (c->bootstrap_key[0]) {
        int rc = auth_ensure_bootstrap(a->db, c->bootstrap_key, err, sizeof err);
        if (rc < 0)
            die(err);
        if (rc > 0)
            logline_event("warn", "bootstrap_key_revoked", "detail", err);
    }
    /* Backtest jobs queued or left running by an earlier process are resumed from here on. */
    btjob_runner *bt = btjob_start(a, err, sizeof err);
    if (!bt)
        die(err);
    /* Webhook delivery threads, started before the HTTP threads (curl_global_init). */
    dispatch *wh = dispatch_start(c, err, sizeof err);
    if (!wh)
        die(err);
    /* Tracing (OTEL_* variables) before the first request thread: off without an endpoint. */
    trace_cfg tc;
    if (trace_cfg_load(&tc, err, sizeof err) != 0 ||
        trace_start(&tc, VIGIL_VERSION, err, sizeof err))
        die(err);
    /* The HTTP layer gets the route table and the key check from here: it knows no resource. */
    const http_setup setup = {routes_table, routes_count, auth_authenticate,
                              auth_authenticate_cached};
    http_server *srv = http_start(a, &setup, err, sizeof err);
    if (!srv)
        die(err);
    log_ready(c);

    int sig = 0;
    sigwait(&set, &sig);
    logline l;
    logline_begin(&l, "info", "shutdown");
    logline_str(&l, "signal", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "unknown");
    logline_i64(&l, "drain_timeout_s", c->drain_timeout_s);
    logline_end(&l);
    int left = http_stop(srv);
    btjob_stop(bt); /* each runner finishes its chunk; its job resumes at the next start */
    batchq_stop(a->reads, left); /* after the last request */
    batchq_stop(a->commits, left);
    dispatch_stop(wh);
    logline_begin(&l, "info", "stopped");
    logline_i64(&l, "abandoned_requests", left);
    logline_end(&l);
    trace_stop(); /* after the last request: one last export of the queued spans */
    hpc_pool_destroy(a->hp);
    scoring_cache_destroy(a->cache);
    listcache_destroy(a->lists);
    rulecat_cache_destroy(a->rules);
    auth_cache_destroy(a->keys);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "--version") == 0) {
        printf("vigil-api %s\n", VIGIL_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--health-check") == 0)
        return health_check();
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "keys") != 0) {
        usage(stderr);
        return 2;
    }
    static cfg c; /* lives for the whole process; app points at it */
    char err[512];
    if (cfg_load(&c, 1, err, sizeof err) != 0)
        die(err);
    static atomic_int exports; /* likewise */
    app a = {.cfg = &c, .exports = &exports};
    a.db = db_pool_create(c.database_url, c.db_pool_size, c.db_connect_timeout_ms, err, sizeof err);
    if (!a.db)
        die(err);
    int rc = 0;
    if (strcmp(cmd, "keys") == 0) {
        rc = cmd_keys(a.db, argc - 2, argv + 2);
    } else {
        int applied = 0;
        if (migrate_run(a.db, &applied, err, sizeof err) != 0)
            die(err);
        logline l;
        logline_begin(&l, "info", "migrations_up_to_date");
        logline_i64(&l, "applied", applied);
        logline_i64(&l, "known", migrate_nfiles);
        logline_end(&l);
        if (strcmp(cmd, "serve") == 0)
            rc = serve(&a, &c);
    }
    db_pool_destroy(a.db);
    return rc;
}
