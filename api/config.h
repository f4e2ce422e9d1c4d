/* config.h - vigil-api configuration, read once from the environment at start-up.
 *
 * Owns: the cfg struct, its defaults, and the validation of every VIGIL_* variable the API reads.
 * The README's configuration table lists the same names and defaults; keep them in step.
 * Costs: O(number of variables), once.  The struct is immutable after cfg_load. */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct cfg {
    char http_host[64];       /* VIGIL_HTTP_ADDR host part, default 127.0.0.1 */
    int http_port;            /* VIGIL_HTTP_ADDR port part, default 8080 */
    char database_url[1024];  /* DATABASE_URL (required to serve) */
    char hotpath_socket[108]; /* VIGIL_HOTPATH_SOCKET, default var/run/hotpath.sock */
    char hotpath_mode[16];    /* VIGIL_HOTPATH_MODE: worker | inprocess */
    int db_pool_size;         /* VIGIL_DB_POOL_SIZE, default 8 */
    int hotpath_pool_size;    /* VIGIL_HOTPATH_POOL_SIZE, default 8 */
    int pool_wait_ms;         /* VIGIL_POOL_WAIT_MS, default 1000 */
    int commit_batch;         /* VIGIL_COMMIT_BATCH decisions per commit (batchq.h), default 16 */
    int read_batch;           /* VIGIL_READ_BATCH decisions' reads per round trip (batchq.h), 16 */
    int read_lanes;           /* VIGIL_READ_LANES read round trips at once (batchq.h), 2 */
    int auth_cache_ms;        /* VIGIL_AUTH_CACHE_MS, default 1000 (0 = no key cache) */
    int max_connections;      /* VIGIL_MAX_CONNECTIONS, default 256 */
    int http_threads;         /* VIGIL_HTTP_THREADS event threads, default 2 */
    int access_log_probes;    /* VIGIL_ACCESS_LOG_PROBES 0/1: log /health, /ready, /metrics (1) */
    int conn_timeout_s;       /* VIGIL_CONN_TIMEOUT_S idle keep-alive, default 30 */
    int max_conns_per_ip;     /* VIGIL_MAX_CONNECTIONS_PER_IP, default 64; 0 = no per-address cap */
    int header_timeout_s;     /* VIGIL_HEADER_TIMEOUT_S to receive a complete request head, 10 */
    int request_timeout_ms;   /* VIGIL_REQUEST_TIMEOUT_MS total per request, default 10000 */
    int db_connect_timeout_ms; /* VIGIL_DB_CONNECT_TIMEOUT_MS, default 2000 */
    int hotpath_timeout_ms;    /* VIGIL_HOTPATH_TIMEOUT_MS bound of one worker call, default 2000 */
    int drain_timeout_s;       /* VIGIL_DRAIN_TIMEOUT_S, default 10 */
    size_t max_body_bytes;     /* VIGIL_MAX_BODY_BYTES for JSON resources, default 1 MiB */
    size_t max_model_bytes;    /* VIGIL_MAX_MODEL_BYTES model uploads, default 256 MiB */
    size_t max_predict_bytes;  /* VIGIL_MAX_PREDICT_BYTES predict bodies, default 64 MiB */
    int hotpath_max_frame_mb;  /* VIGIL_HOTPATH_MAX_FRAME_MB, default 64 (same as the worker's) */
    int model_cache_mb;        /* VIGIL_MODEL_CACHE_MB compiled models kept, default 512 */
    int idempotency_retention_h; /* VIGIL_IDEMPOTENCY_RETENTION_H, default 48, at least 24 */
    int max_predict_rows;        /* VIGIL_MAX_PREDICT_ROWS, default 100000 */
    char bootstrap_key[256];     /* VIGIL_BOOTSTRAP_KEY, optional; never logged */
    int backtest_concurrency;    /* VIGIL_BACKTEST_CONCURRENCY jobs run at once, default 1, 0..16 */
    int export_concurrency;      /* VIGIL_EXPORT_CONCURRENCY exports streamed at once, default 2 */
    int backtest_chunk_rows;     /* VIGIL_BACKTEST_CHUNK_ROWS per read/score, default 5000 */
    int backtest_pause_ms;       /* VIGIL_BACKTEST_PAUSE_MS between chunks (throttle), default 0 */
    /* webhooks (dispatch.c, netguard.c) */
    char webhook_allowed_hosts[1024]; /* VIGIL_WEBHOOK_ALLOWED_HOSTS, comma-separated, default "" */
    int webhook_concurrency; /* VIGIL_WEBHOOK_CONCURRENCY deliveries in flight, 4; 0 = off */
    int webhook_timeout_ms;  /* VIGIL_WEBHOOK_TIMEOUT_MS of one attempt, default 10000 */
    int webhook_poll_ms; /* VIGIL_WEBHOOK_POLL_MS the poller's wait between claims, default 50 */
    int webhook_batch;   /* VIGIL_WEBHOOK_BATCH deliveries per claim, default 32 */
    long long webhook_backoff_ms;     /* VIGIL_WEBHOOK_BACKOFF_MS first retry delay, 30000 */
    long long webhook_backoff_max_ms; /* VIGIL_WEBHOOK_BACKOFF_MAX_MS delay cap, 3600000 */
    long long webhook_retry_window_s; /* VIGIL_WEBHOOK_RETRY_WINDOW_S, default 259200 (72 h) */
    int webhook_disable_after;        /* VIGIL_WEBHOOK_DISABLE_AFTER consecutive failures, 500 */
    long long webhook_retention_s;    /* VIGIL_WEBHOOK_RETENTION_S finished events kept, 30 days */
} cfg;

/* Fills c from the environment (defaults for unset variables).  need_db: DATABASE_URL must be
 * set.  Returns 0, or -1 with a one-line message naming the variable in err. */
int cfg_load(cfg *c, int need_db, char *err, size_t errlen);

/* Parses a decimal integer in [min, max] from s.  Returns 0 or -1 (no partial parses, no
 * whitespace, no overflow).  Shared by cfg_load and request query parsing. */
int cfg_parse_int(const char *s, long long min, long long max, long long *out);

#endif
