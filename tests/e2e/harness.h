/* harness.h - end-to-end test harness: a throwaway PostgreSQL cluster (temp dir, free port), a real
 * vigil-hotpath and a real vigil-api as child processes, and a small libcurl HTTP client.
 *
 * Every process is started here and stopped by h_stop (also registered with atexit and for fatal
 * signals), so a failing test never leaves servers behind; tests/run.sh additionally sweeps its
 * temp root after each binary.  Binaries come from $VIGIL_BIN_DIR (default "bin").
 * Not thread-safe: one h_env per test process. */
#ifndef VIGIL_HARNESS_H
#define VIGIL_HARNESS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct h_env {
    char dir[256]; /* the temp dir holding everything below */
    char pg_data[300];
    char pg_sock[300];
    int pg_port;
    int pg_running;
    char db_url[512];
    char hp_sock[300];
    pid_t hp_pid;
    pid_t api_pid;
    int api_port;
    char base[64];              /* "http://127.0.0.1:PORT" */
    char key[64];               /* the bootstrap admin key */
    char bin[256];              /* binaries directory */
    const char *const *api_env; /* extra NAME=VALUE for the API, NULL-terminated (may be NULL) */
    const char *const *hp_env;  /* extra NAME=VALUE for the worker */
} h_env;

typedef struct h_resp {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    char *headers; /* raw response headers of the final response */
    cJSON *json;   /* parsed body when it is JSON, else NULL */
} h_resp;

/* Creates the temp dir and starts PostgreSQL, the worker and the API (in that order).
 * Returns 0, or -1 after printing what failed (with the tail of the relevant log). */
int h_start(h_env *e);
/* Stops whatever is running and removes the temp dir.  Idempotent. */
void h_stop(h_env *e);

int h_pg_start(h_env *e);
void h_pg_stop(h_env *e);
/* Starts the worker and waits until its socket accepts.  0 or -1. */
int h_hp_start(h_env *e);
/* Sends sig to the worker and reaps it; returns its exit status (or 128+signal). */
int h_hp_stop(h_env *e, int sig);
int h_api_start(h_env *e);
int h_api_stop(h_env *e, int sig);

/* One HTTP request to the API.  key: Bearer key or NULL; ctype: Content-Type or NULL; body may be
 * NULL; extra_headers: NULL-terminated "Name: value" list or NULL.  Returns 0 when a response
 * arrived (any status), -1 on transport failure.  Free with h_resp_free. */
int h_http(h_env *e, const char *method, const char *path, const char *key, const char *ctype,
           const char *body, size_t len, const char *const *extra_headers, h_resp *out);
/* Shorthand: JSON body (may be NULL) with the bootstrap key. */
int h_json(h_env *e, const char *method, const char *path, const char *body, h_resp *out);
void h_resp_free(h_resp *r);
/* Value of a response header (case-insensitive) copied into out[cap]; NULL when absent. */
const char *h_header(const h_resp *r, const char *name, char *out, size_t cap);
/* Member of the JSON body: string value or NULL. */
const char *h_str(const h_resp *r, const char *name);

/* Runs argv (execvp) with extra environment, stdout+stderr to a file in e->dir; returns the exit
 * status (or -1).  Used for `vigil-api keys ...` and friends.  out (may be NULL) gets stdout. */
int h_run(h_env *e, const char *const *argv, const char *const *env, char *out, size_t cap);

/* Creates an API key with `vigil-api keys create --scopes SCOPES` against e's database and
 * copies the printed secret into key[cap].  Returns 0, or -1 (output in key for the message). */
int h_create_key(h_env *e, const char *scopes, char *key, size_t cap);

/* Prints the last lines of a log in e->dir ("api.log", "hotpath.log", "pg.log") to stderr. */
void h_dump_log(h_env *e, const char *name);

/* A free TCP port on 127.0.0.1 (bind to 0 and read it back). */
int h_free_port(void);

/* Starts argv (execvp) in the background with e->api_env and env added to the environment,
 * stdout+stderr appended to e->dir/logname.  Returns the pid (reap it with h_wait) or -1. */
pid_t h_spawn(h_env *e, const char *const *argv, const char *const *env, const char *logname);
/* Waits up to timeout_ms for pid to exit; returns its exit status, 128+signal, or -1.  After the
 * timeout the process is killed (SIGKILL) and 128+9 returned. */
int h_wait(pid_t pid, int timeout_ms);
/* Runs one SQL command with psql on the test cluster (database db, NULL = "vigil") and copies
 * its unaligned, tuples-only output (trailing newlines removed) into out[cap] (may be NULL).
 * Returns psql's exit status (0 = success). */
int h_psql(h_env *e, const char *db, const char *sql, char *out, size_t cap);
/* Sends req[0..len) as-is on a new TCP connection to the API and reads the answer into out[cap]
 * (NUL-terminated) until the peer closes, a complete response (headers + Content-Length bytes)
 * has arrived, or timeout_ms passes.  The write side stays open, so a server that waits for a
 * body it was promised does not see EOF.  Returns the number of bytes read, or -1. */
long h_raw(h_env *e, const char *req, size_t len, char *out, size_t cap, int timeout_ms);
/* Reads e->dir/name into a malloc'd NUL-terminated buffer (caller frees); NULL if missing. */
char *h_read_file(h_env *e, const char *name);

#endif
