/* harness.c - throwaway PostgreSQL + vigil-hotpath + vigil-api for end-to-end tests.  See
 * harness.h. */
#include "harness.h"

#include "resplog.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static h_env *g_env; /* for atexit/fatal-signal cleanup only */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

void h_dump_log(h_env *e, const char *name)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "echo '--- tail of %s/%s'; tail -n 30 '%s/%s' >&2", e->dir, name,
             e->dir, name);
    int rc = system(cmd);
    (void)rc;
}

/* fork+exec with extra env and output to logname (appending).  Returns the child pid or -1. */
static pid_t spawn(h_env *e, const char *const *argv, const char *const *env1,
                   const char *const *env2, const char *logname)
{
    char log[400];
    snprintf(log, sizeof log, "%s/%s", e->dir, logname);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    for (const char *const *p = env1; p && *p; p++)
        putenv((char *)*p);
    for (const char *const *p = env2; p && *p; p++)
        putenv((char *)*p);
    /* Children get default signal dispositions and their own process group is not needed: the
     * harness kills them by pid. */
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], (char *const *)argv);
    /* Say why in the log: a binary being relinked by a concurrent build shows up here. */
    fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    int st = 0;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return 128 + SIGKILL;
        }
        sleep_ms(10);
    }
}

int h_run(h_env *e, const char *const *argv, const char *const *env, char *out, size_t cap)
{
    char outname[64];
    static int seq;
    snprintf(outname, sizeof outname, "run-%d.out", ++seq);
    pid_t pid = spawn(e, argv, e->api_env, env, outname);
    if (pid < 0)
        return -1;
    int rc = wait_exit(pid, 30000);
    if (out && cap) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", e->dir, outname);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(out, 1, cap - 1, f) : 0;
        out[n] = '\0';
        if (f)
            fclose(f);
    }
    return rc;
}

static int run_sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

int h_pg_start(h_env *e)
{
    char cmd[1400];
    if (e->pg_running)
        return 0;
    snprintf(cmd, sizeof cmd,
             "VIGIL_PG_FAST=1 bash api/scripts/pgctl.sh start '%s' '%s' %d '%s/pg.log' "
             ">>'%s/pg.log' 2>&1",
             e->pg_data, e->pg_sock, e->pg_port, e->dir, e->dir);
    if (run_sh(cmd) != 0) {
        fprintf(stderr, "harness: PostgreSQL did not start\n");
        h_dump_log(e, "pg.log");
        return -1;
    }
    e->pg_running = 1;
    return 0;
}

void h_pg_stop(h_env *e)
{
    if (!e->pg_running)
        return;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "bash api/scripts/pgctl.sh stop '%s' >/dev/null 2>&1", e->pg_data);
    run_sh(cmd);
    e->pg_running = 0;
}

static int sock_accepts(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int h_hp_start(h_env *e)
{
    char exe[400], env_sock[400];
    snprintf(exe, sizeof exe, "%s/vigil-hotpath", e->bin);
    snprintf(env_sock, sizeof env_sock, "VIGIL_HOTPATH_SOCKET=%s", e->hp_sock);
    const char *argv[] = {exe, NULL};
    const char *env[] = {env_sock, NULL};
    e->hp_pid = spawn(e, argv, env, e->hp_env, "hotpath.log");
    for (int i = 0; i < 500; i++) {
        if (sock_accepts(e->hp_sock))
            return 0;
        if (waitpid(e->hp_pid, NULL, WNOHANG) == e->hp_pid) {
            e->hp_pid = 0;
            break;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "harness: vigil-hotpath did not come up\n");
    h_dump_log(e, "hotpath.log");
    return -1;
}

int h_hp_stop(h_env *e, int sig)
{
    if (e->hp_pid <= 0)
        return -1;
    kill(e->hp_pid, sig);
    int rc = wait_exit(e->hp_pid, 15000);
    e->hp_pid = 0;
    return rc;
}

int h_api_start(h_env *e)
{
    static char env_buf[8][700];
    char exe[400];
    snprintf(exe, sizeof exe, "%s/vigil-api", e->bin);
    snprintf(env_buf[0], sizeof env_buf[0], "DATABASE_URL=%s", e->db_url);
    snprintf(env_buf[1], sizeof env_buf[1], "VIGIL_HTTP_ADDR=127.0.0.1:%d", e->api_port);
    snprintf(env_buf[2], sizeof env_buf[2], "VIGIL_HOTPATH_SOCKET=%s", e->hp_sock);
    snprintf(env_buf[3], sizeof env_buf[3], "VIGIL_BOOTSTRAP_KEY=%s", e->key);
    const char *env[] = {env_buf[0], env_buf[1], env_buf[2], env_buf[3], NULL};
    const char *argv[] = {exe, "serve", NULL};
    e->api_pid = spawn(e, argv, env, e->api_env, "api.log");
    for (int i = 0; i < 1000; i++) {
        h_resp r;
        if (h_http(e, "GET", "/health", NULL, NULL, NULL, 0, NULL, &r) == 0) {
            long st = r.status;
            h_resp_free(&r);
            if (st == 200)
                return 0;
        }
        if (waitpid(e->api_pid, NULL, WNOHANG) == e->api_pid) {
            e->api_pid = 0;
            break;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "harness: vigil-api did not come up\n");
    h_dump_log(e, "api.log");
    return -1;
}

int h_api_stop(h_env *e, int sig)
{
    if (e->api_pid <= 0)
        return -1;
    kill(e->api_pid, sig);
    int rc = wait_exit(e->api_pid, 30000);
    e->api_pid = 0;
    return rc;
}

static void fatal_signal(int sig)
{
    if (g_env) {
        if (g_env->api_pid > 0)
            kill(g_env->api_pid, SIGKILL);
        if (g_env->hp_pid > 0)
            kill(g_env->hp_pid, SIGKILL);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void at_exit(void)
{
    if (g_env)
        h_stop(g_env);
}

int h_start(h_env *e)
{
    const char *root = getenv("VIGIL_TEST_TMP");
    const char *bin = getenv("VIGIL_BIN_DIR");
    snprintf(e->bin, sizeof e->bin, "%s", bin && *bin ? bin : "bin");
    if (e->bin[0] != '/') {
        char cwd[200];
        if (getcwd(cwd, sizeof cwd)) {
            char tmp[256];
            snprintf(tmp, sizeof tmp, "%s/%s", cwd, e->bin);
            snprintf(e->bin, sizeof e->bin, "%s", tmp);
        }
    }
    snprintf(e->dir, sizeof e->dir, "%s/vigil-e2e-XXXXXX", root && *root ? root : "/tmp");
    if (!mkdtemp(e->dir)) {
        perror("harness: mkdtemp");
        return -1;
    }
    chmod(e->dir, 0755); /* the postgres user must reach its data dir when we run as root */
    snprintf(e->pg_data, sizeof e->pg_data, "%s/pg", e->dir);
    snprintf(e->pg_sock, sizeof e->pg_sock, "%s/pgsock", e->dir);
    snprintf(e->hp_sock, sizeof e->hp_sock, "%s/run/hotpath.sock", e->dir);
    e->pg_port = h_free_port();
    e->api_port = h_free_port();
    snprintf(e->db_url, sizeof e->db_url, "postgresql://vigil@/vigil?host=%s&port=%d", e->pg_sock,
             e->pg_port);
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%d", e->api_port);
    snprintf(e->key, sizeof e->key, "vgl_e2e_bootstrap_%08x", (unsigned)getpid());
    g_env = e;
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(at_exit);
        signal(SIGSEGV, fatal_signal);
        signal(SIGABRT, fatal_signal);
        signal(SIGTERM, fatal_signal);
        signal(SIGINT, fatal_signal);
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
    }
    if (h_pg_start(e) || h_hp_start(e) || h_api_start(e)) {
        h_stop(e);
        return -1;
    }
    return 0;
}

void h_stop(h_env *e)
{
    if (e->api_pid > 0)
        h_api_stop(e, SIGTERM);
    if (e->hp_pid > 0)
        h_hp_stop(e, SIGTERM);
    h_pg_stop(e);
    if (e->dir[0] && !getenv("VIGIL_KEEP_TMP")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
        run_sh(cmd);
    }
    e->dir[0] = '\0';
    if (g_env == e)
        g_env = NULL;
}

/* ---- HTTP client ------------------------------------------------------------------------------
 */

typedef struct buf {
    char *p;
    size_t len;
} buf;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t add = size * n;
    char *np = realloc(b->p, b->len + add + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, ptr, add);
    b->p = np;
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t add = size * n;
    if (add >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
        b->len = 0; /* a new response (after 100 Continue): keep only the final headers */
    return on_data(ptr, size, n, ud);
}

int h_http(h_env *e, const char *method, const char *path, const char *key, const char *ctype,
           const char *body, size_t len, const char *const *extra_headers, h_resp *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char url[2048], auth[400], ct[200];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    struct curl_slist *hdrs = NULL;
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hdrs = curl_slist_append(hdrs, ct);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (const char *const *h = extra_headers; h && *h; h++)
        hdrs = curl_slist_append(hdrs, *h);
    buf b = {0}, hb = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.p);
        free(hb.p);
        return -1;
    }
    out->body = b.p ? b.p : strdup("");
    out->len = b.len;
    out->headers = hb.p ? hb.p : strdup("");
    out->json = cJSON_Parse(out->body);
    char rct[256];
    resplog_record(method, path, out->status, h_header(out, "Content-Type", rct, sizeof rct),
                   out->body, out->len, 0);
    return 0;
}

int h_json(h_env *e, const char *method, const char *path, const char *body, h_resp *out)
{
    return h_http(e, method, path, e->key, body ? "application/json" : NULL, body,
                  body ? strlen(body) : 0, NULL, out);
}

void h_resp_free(h_resp *r)
{
    free(r->body);
    free(r->headers);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

const char *h_header(const h_resp *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t linelen = eol ? (size_t)(eol - p) : strlen(p);
        if (linelen > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = linelen - (size_t)(v - p);
            snprintf(out, cap, "%.*s", (int)vl, v);
            return out;
        }
        if (!eol)
            break;
        p = eol + 2;
    }
    return NULL;
}

const char *h_str(const h_resp *r, const char *name)
{
    const cJSON *v = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, name) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- extensions: background processes, psql, raw HTTP ------------------------------------------
 */

pid_t h_spawn(h_env *e, const char *const *argv, const char *const *env, const char *logname)
{
    return spawn(e, argv, e->api_env, env, logname);
}

int h_wait(pid_t pid, int timeout_ms)
{
    return pid > 0 ? wait_exit(pid, timeout_ms) : -1;
}

int h_psql(h_env *e, const char *db, const char *sql, char *out, size_t cap)
{
    char port[16];
    snprintf(port, sizeof port, "%d", e->pg_port);
    const char *argv[] = {"psql",     "-X", "-q", "-t", "-A",    "-v", "ON_ERROR_STOP=1", "-h",
                          e->pg_sock, "-p", port, "-U", "vigil", "-d", db ? db : "vigil", "-c",
                          sql,        NULL};
    int rc = h_run(e, argv, NULL, out, cap);
    if (out && cap) {
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
            out[--n] = '\0';
    }
    return rc;
}

/* True once buf holds a full response: headers and Content-Length bytes of body. */
static int response_complete(const char *txt, size_t n)
{
    const char *end = strstr(txt, "\r\n\r\n");
    if (!end)
        return 0;
    size_t hlen = (size_t)(end - txt) + 4;
    long cl = 0;
    for (const char *p = txt; p < end;) {
        const char *eol = strstr(p, "\r\n");
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            cl = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    return n >= hlen + (size_t)cl;
}

long h_raw(h_env *e, const char *req, size_t len, char *out, size_t cap, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->api_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading everything */
        off += (size_t)w;
    }
    size_t n = 0;
    out[0] = '\0';
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (n + 1 < cap) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= timeout_ms)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(timeout_ms - el)) <= 0)
            break;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
        if (response_complete(out, n))
            break;
    }
    close(fd);
    resplog_raw(req, len, out, n);
    return (long)n;
}

char *h_read_file(h_env *e, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", e->dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    for (size_t r; b && (r = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b)
        b[n] = '\0';
    return b;
}

int h_create_key(h_env *e, const char *scopes, char *key, size_t cap)
{
    char exe[400], dburl[600], out[4096];
    snprintf(exe, sizeof exe, "%s/vigil-api", e->bin);
    snprintf(dburl, sizeof dburl, "DATABASE_URL=%s", e->db_url);
    const char *argv[] = {exe, "keys", "create", "--name", "e2e", "--scopes", scopes, NULL};
    const char *env[] = {dburl, NULL};
    int rc = h_run(e, argv, env, out, sizeof out);
    const char *p = strstr(out, "key:");
    if (rc != 0 || !p) {
        snprintf(key, cap, "%s", out);
        return -1;
    }
    p += 4;
    while (*p == ' ')
        p++;
    snprintf(key, cap, "%.*s", (int)strcspn(p, "\n"), p);
    return 0;
}
