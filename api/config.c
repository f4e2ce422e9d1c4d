/* config.c - environment parsing for vigil-api.  See config.h. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_parse_int(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Reads an integer variable; unset keeps *dst.  Returns 0 or -1 with err filled. */
static int env_int(const char *name, long long min, long long max, long long *dst, char *err,
                   size_t errlen)
{
    const char *s = getenv(name);
    if (!s)
        return 0;
    if (cfg_parse_int(s, min, max, dst) != 0) {
        snprintf(err, errlen, "%s: must be an integer in %lld..%lld", name, min, max);
        return -1;
    }
    return 0;
}

static int env_int32(const char *name, long long min, long long max, int *dst, char *err,
                     size_t errlen)
{
    long long v = *dst;
    if (env_int(name, min, max, &v, err, errlen) != 0)
        return -1;
    *dst = (int)v;
    return 0;
}

static int env_size(const char *name, long long min, long long max, size_t *dst, char *err,
                    size_t errlen)
{
    long long v = (long long)*dst;
    if (env_int(name, min, max, &v, err, errlen) != 0)
        return -1;
    *dst = (size_t)v;
    return 0;
}

/* Copies an optional string variable into dst[cap]; too long is an error, not a truncation. */
static int env_str(const char *name, char *dst, size_t cap, char *err, size_t errlen)
{
    const char *s = getenv(name);
    if (!s)
        return 0;
    if (strlen(s) >= cap) {
        snprintf(err, errlen, "%s: longer than %zu bytes", name, cap - 1);
        return -1;
    }
    strcpy(dst, s);
    return 0;
}

/* "host:port" with host an IPv4 literal or "localhost"; port 1..65535. */
static int parse_addr(cfg *c, char *err, size_t errlen)
{
    const char *s = getenv("VIGIL_HTTP_ADDR");
    if (!s)
        return 0;
    const char *colon = strrchr(s, ':');
    long long port = 0;
    size_t hostlen = colon ? (size_t)(colon - s) : 0;
    if (!colon || hostlen == 0 || hostlen >= sizeof c->http_host ||
        cfg_parse_int(colon + 1, 1, 65535, &port) != 0) {
        snprintf(err, errlen, "VIGIL_HTTP_ADDR: expected HOST:PORT (e.g. 127.0.0.1:8080)");
        return -1;
    }
    memcpy(c->http_host, s, hostlen);
    c->http_host[hostlen] = '\0';
    if (strcmp(c->http_host, "localhost") == 0)
        strcpy(c->http_host, "127.0.0.1");
    /* Checked here, not only at bind time, so a typo fails cfg_load with the variable's name. */
    struct in_addr ia;
    if (inet_pton(AF_INET, c->http_host, &ia) != 1) {
        snprintf(err, errlen, "VIGIL_HTTP_ADDR: host must be an IPv4 address or localhost");
        return -1;
    }
    c->http_port = (int)port;
    return 0;
}

/* The variables of the jobs over the history: the backtest runner's (api/btjob.h) and the bound
 * of exports streamed at once (api/export.c: each holds a pooled connection while it streams). */
static int parse_backtest(cfg *c, char *err, size_t errlen)
{
    c->export_concurrency = 2;
    c->backtest_concurrency = 1;
    c->backtest_chunk_rows = 5000;
    c->backtest_pause_ms = 0;
    return env_int32("VIGIL_EXPORT_CONCURRENCY", 1, 256, &c->export_concurrency, err, errlen) ||
           env_int32("VIGIL_BACKTEST_CONCURRENCY", 0, 16, &c->backtest_concurrency, err, errlen) ||
           env_int32("VIGIL_BACKTEST_CHUNK_ROWS", 100, 100000, &c->backtest_chunk_rows, err,
                     errlen) ||
           env_int32("VIGIL_BACKTEST_PAUSE_MS", 0, 60000, &c->backtest_pause_ms, err, errlen);
}

/* The VIGIL_WEBHOOK_* variables.  The retry window may be shortened (tests); its default is
 * 72 h, so that a receiver down for a day still gets every event. */
/* The webhook settings: their defaults, then the environment. */
static int load_webhooks(cfg *c, char *err, size_t errlen)
{
    c->webhook_concurrency = 4;
    c->webhook_timeout_ms = 10000;
    c->webhook_poll_ms = 50;
    c->webhook_batch = 32;
    c->webhook_backoff_ms = 30000;
    c->webhook_backoff_max_ms = 3600000;
    c->webhook_retry_window_s = 72 * 3600;
    c->webhook_disable_after = 500;
    c->webhook_retention_s = 30 * 86400;
    return env_str("VIGIL_WEBHOOK_ALLOWED_HOSTS", c->webhook_allowed_hosts,
                   sizeof c->webhook_allowed_hosts, err, errlen) ||
           env_int32("VIGIL_WEBHOOK_CONCURRENCY", 0, 64, &c->webhook_concurrency, err, errlen) ||
           env_int32("VIGIL_WEBHOOK_TIMEOUT_MS", 100, 60000, &c->webhook_timeout_ms, err, errlen) ||
           env_int32("VIGIL_WEBHOOK_POLL_MS", 10, 60000, &c->webhook_poll_ms, err, errlen) ||
           env_int32("VIGIL_WEBHOOK_BATCH", 1, 256, &c->webhook_batch, err, errlen) ||
           env_int("VIGIL_WEBHOOK_BACKOFF_MS", 1, 86400000, &c->webhook_backoff_ms, err, errlen) ||
           env_int("VIGIL_WEBHOOK_BACKOFF_MAX_MS", 1, 86400000, &c->webhook_backoff_max_ms, err,
                   errlen) ||
           env_int("VIGIL_WEBHOOK_RETRY_WINDOW_S", 1, 30 * 86400, &c->webhook_retry_window_s, err,
                   errlen) ||
           env_int32("VIGIL_WEBHOOK_DISABLE_AFTER", 1, 1000000, &c->webhook_disable_after, err,
                     errlen) ||
           env_int("VIGIL_WEBHOOK_RETENTION_S", 1, 3650LL * 86400, &c->webhook_retention_s, err,
                   errlen);
}

int cfg_load(cfg *c, int need_db, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    strcpy(c->http_host, "127.0.0.1");
    c->http_port = 8080;
    strcpy(c->hotpath_socket, "var/run/hotpath.sock");
    strcpy(c->hotpath_mode, "worker");
    c->db_pool_size = 8;
    c->hotpath_pool_size = 8;
    c->pool_wait_ms = 1000;
    c->commit_batch = 16;
    c->read_batch = 16;
    c->read_lanes = 2;
    c->auth_cache_ms = 1000;
    c->max_connections = 256;
    c->http_threads = 2;
    c->access_log_probes = 1;
    c->conn_timeout_s = 30;
    c->max_conns_per_ip = 64;
    c->header_timeout_s = 10;
    c->request_timeout_ms = 10000;
    c->db_connect_timeout_ms = 2000;
    c->hotpath_timeout_ms = 2000;
    c->drain_timeout_s = 10;
    c->max_body_bytes = 1u << 20;
    c->max_model_bytes = 256u << 20;
    c->max_predict_bytes = 64u << 20;
    c->max_predict_rows = 100000;
    c->hotpath_max_frame_mb = 64;
    c->model_cache_mb = 512;
    c->idempotency_retention_h = 48;

    if (parse_addr(c, err, errlen) || parse_backtest(c, err, errlen) ||
        env_str("DATABASE_URL", c->database_url, sizeof c->database_url, err, errlen) ||
        env_str("VIGIL_HOTPATH_SOCKET", c->hotpath_socket, sizeof c->hotpath_socket, err, errlen) ||
        env_str("VIGIL_HOTPATH_MODE", c->hotpath_mode, sizeof c->hotpath_mode, err, errlen) ||
        env_int32("VIGIL_DB_POOL_SIZE", 1, 256, &c->db_pool_size, err, errlen) ||
        env_int32("VIGIL_HOTPATH_POOL_SIZE", 1, 256, &c->hotpath_pool_size, err, errlen) ||
        env_int32("VIGIL_POOL_WAIT_MS", 1, 60000, &c->pool_wait_ms, err, errlen) ||
        env_int32("VIGIL_COMMIT_BATCH", 1, 16, &c->commit_batch, err, errlen) ||
        env_int32("VIGIL_READ_BATCH", 1, 16, &c->read_batch, err, errlen) ||
        env_int32("VIGIL_READ_LANES", 1, 8, &c->read_lanes, err, errlen) ||
        env_int32("VIGIL_AUTH_CACHE_MS", 0, 1000, &c->auth_cache_ms, err, errlen) ||
        env_int32("VIGIL_MAX_CONNECTIONS", 1, 100000, &c->max_connections, err, errlen) ||
        env_int32("VIGIL_HTTP_THREADS", 1, 64, &c->http_threads, err, errlen) ||
        env_int32("VIGIL_ACCESS_LOG_PROBES", 0, 1, &c->access_log_probes, err, errlen) ||
        env_int32("VIGIL_CONN_TIMEOUT_S", 1, 3600, &c->conn_timeout_s, err, errlen) ||
        env_int32("VIGIL_MAX_CONNECTIONS_PER_IP", 0, 100000, &c->max_conns_per_ip, err, errlen) ||
        env_int32("VIGIL_HEADER_TIMEOUT_S", 1, 3600, &c->header_timeout_s, err, errlen) ||
        env_int32("VIGIL_REQUEST_TIMEOUT_MS", 10, 600000, &c->request_timeout_ms, err, errlen) ||
        env_int32("VIGIL_DB_CONNECT_TIMEOUT_MS", 10, 60000, &c->db_connect_timeout_ms, err,
                  errlen) ||
        env_int32("VIGIL_HOTPATH_TIMEOUT_MS", 1, 600000, &c->hotpath_timeout_ms, err, errlen) ||
        env_int32("VIGIL_DRAIN_TIMEOUT_S", 0, 3600, &c->drain_timeout_s, err, errlen) ||
        env_size("VIGIL_MAX_BODY_BYTES", 64, 1LL << 30, &c->max_body_bytes, err, errlen) ||
        env_size("VIGIL_MAX_MODEL_BYTES", 1024, 4LL << 30, &c->max_model_bytes, err, errlen) ||
        env_size("VIGIL_MAX_PREDICT_BYTES", 64, 4LL << 30, &c->max_predict_bytes, err, errlen) ||
        env_int32("VIGIL_HOTPATH_MAX_FRAME_MB", 1, 4095, &c->hotpath_max_frame_mb, err, errlen) ||
        env_int32("VIGIL_MODEL_CACHE_MB", 1, 1 << 20, &c->model_cache_mb, err, errlen) ||
        env_int32("VIGIL_IDEMPOTENCY_RETENTION_H", 24, 24 * 3650, &c->idempotency_retention_h, err,
                  errlen) ||
        env_int32("VIGIL_MAX_PREDICT_ROWS", 1, 10000000, &c->max_predict_rows, err, errlen) ||
        env_str("VIGIL_BOOTSTRAP_KEY", c->bootstrap_key, sizeof c->bootstrap_key, err, errlen) ||
        load_webhooks(c, err, errlen))
        return -1;

    if (strcmp(c->hotpath_mode, "worker") != 0 && strcmp(c->hotpath_mode, "inprocess") != 0) {
        snprintf(err, errlen, "VIGIL_HOTPATH_MODE: must be 'worker' or 'inprocess'");
        return -1;
    }
    if (getenv("VIGIL_BOOTSTRAP_KEY") && strlen(c->bootstrap_key) < 16) {
        snprintf(err, errlen, "VIGIL_BOOTSTRAP_KEY: must be at least 16 characters");
        return -1;
    }
    if (need_db && c->database_url[0] == '\0') {
        snprintf(err, errlen, "DATABASE_URL: not set (e.g. postgresql:///vigil?host=/tmp)");
        return -1;
    }
    return 0;
}
