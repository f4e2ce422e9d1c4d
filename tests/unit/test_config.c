/* test_config.c - unit tests for api/config.{h,c}: defaults, every variable's bad values (the
 * message must name the variable), limits at N and N+1, VIGIL_HTTP_ADDR forms, and
 * cfg_parse_int's edge cases.  Each test starts from an environment with every VIGIL_* variable
 * and DATABASE_URL removed; expected values are the documented defaults written out here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

extern char **environ;

static const char *const all_vars[] = {"DATABASE_URL",
                                       "VIGIL_HTTP_ADDR",
                                       "VIGIL_DATA_DIR",
                                       "VIGIL_HOTPATH_SOCKET",
                                       "VIGIL_HOTPATH_MODE",
                                       "VIGIL_DB_POOL_SIZE",
                                       "VIGIL_HOTPATH_POOL_SIZE",
                                       "VIGIL_POOL_WAIT_MS",
                                       "VIGIL_COMMIT_BATCH",
                                       "VIGIL_READ_BATCH",
                                       "VIGIL_READ_LANES",
                                       "VIGIL_MAX_CONNECTIONS",
                                       "VIGIL_CONN_TIMEOUT_S",
                                       "VIGIL_MAX_CONNECTIONS_PER_IP",
                                       "VIGIL_HEADER_TIMEOUT_S",
                                       "VIGIL_REQUEST_TIMEOUT_MS",
                                       "VIGIL_DB_CONNECT_TIMEOUT_MS",
                                       "VIGIL_HOTPATH_TIMEOUT_MS",
                                       "VIGIL_DRAIN_TIMEOUT_S",
                                       "VIGIL_MAX_BODY_BYTES",
                                       "VIGIL_MAX_MODEL_BYTES",
                                       "VIGIL_MAX_PREDICT_BYTES",
                                       "VIGIL_HOTPATH_MAX_FRAME_MB",
                                       "VIGIL_MAX_PREDICT_ROWS",
                                       "VIGIL_BOOTSTRAP_KEY",
                                       NULL};

static void clean_env(void)
{
    for (const char *const *v = all_vars; *v; v++)
        unsetenv(*v);
    /* Anything else VIGIL_* from the caller's shell as well. */
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "VIGIL_", 6) == 0) {
                char name[128];
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof name, "%.*s", (int)n, *e);
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

static cfg c;
static char err[512];

static int load(int need_db)
{
    err[0] = '\0';
    return cfg_load(&c, need_db, err, sizeof err);
}

/* Sets name=value, expects cfg_load to fail with a message that starts with the name. */
static void expect_bad(const char *name, const char *value)
{
    clean_env();
    setenv(name, value, 1);
    int rc = load(0);
    ck_assert_msg(rc == -1, "%s=%s accepted", name, value);
    ck_assert_msg(strncmp(err, name, strlen(name)) == 0 && err[strlen(name)] == ':',
                  "%s=%s: message '%s' does not name the variable", name, value, err);
    ck_assert_msg(strchr(err, '\n') == NULL, "message is not one line: '%s'", err);
    unsetenv(name);
}

static void expect_ok(const char *name, const char *value)
{
    clean_env();
    setenv(name, value, 1);
    ck_assert_msg(load(0) == 0, "%s=%s rejected: %s", name, value, err);
}

START_TEST(defaults)
{
    clean_env();
    ck_assert_int_eq(load(0), 0);
    ck_assert_str_eq(c.http_host, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 8080);
    ck_assert_str_eq(c.database_url, "");
    ck_assert_str_eq(c.hotpath_socket, "var/run/hotpath.sock");
    ck_assert_str_eq(c.hotpath_mode, "worker");
    ck_assert_int_eq(c.db_pool_size, 8);
    ck_assert_int_eq(c.hotpath_pool_size, 8);
    ck_assert_int_eq(c.pool_wait_ms, 1000);
    ck_assert_int_eq(c.commit_batch, 16);
    ck_assert_int_eq(c.read_batch, 16);
    ck_assert_int_eq(c.read_lanes, 2);
    ck_assert_int_eq(c.max_connections, 256);
    ck_assert_int_eq(c.conn_timeout_s, 30);
    ck_assert_int_eq(c.max_conns_per_ip, 64);
    ck_assert_int_eq(c.header_timeout_s, 10);
    ck_assert_int_eq(c.request_timeout_ms, 10000);
    ck_assert_int_eq(c.db_connect_timeout_ms, 2000);
    ck_assert_int_eq(c.hotpath_timeout_ms, 2000);
    ck_assert_int_eq(c.drain_timeout_s, 10);
    ck_assert_uint_eq(c.max_body_bytes, 1048576);
    ck_assert_uint_eq(c.max_model_bytes, 268435456);
    ck_assert_uint_eq(c.max_predict_bytes, 67108864);
    ck_assert_int_eq(c.hotpath_max_frame_mb, 64);
    ck_assert_int_eq(c.max_predict_rows, 100000);
    ck_assert_str_eq(c.bootstrap_key, "");
}
END_TEST

START_TEST(database_url_required_only_when_asked)
{
    clean_env();
    ck_assert_int_eq(load(1), -1);
    ck_assert(strncmp(err, "DATABASE_URL:", 13) == 0);
    setenv("DATABASE_URL", "", 1);
    ck_assert_int_eq(load(1), -1); /* empty is not set */
    ck_assert(strncmp(err, "DATABASE_URL:", 13) == 0);
    setenv("DATABASE_URL", "postgresql:///vigil?host=/tmp", 1);
    ck_assert_int_eq(load(1), 0);
    ck_assert_str_eq(c.database_url, "postgresql:///vigil?host=/tmp");
    unsetenv("DATABASE_URL");
}
END_TEST

START_TEST(values_are_read)
{
    clean_env();
    setenv("VIGIL_DB_POOL_SIZE", "3", 1);
    setenv("VIGIL_MAX_BODY_BYTES", "1024", 1);
    setenv("VIGIL_DRAIN_TIMEOUT_S", "0", 1);
    setenv("VIGIL_HOTPATH_MODE", "inprocess", 1);
    setenv("VIGIL_DATA_DIR", "/srv/vigil", 1); /* make run's (devrun.sh), not the API's: ignored */
    setenv("VIGIL_BOOTSTRAP_KEY", "0123456789abcdef", 1); /* exactly 16 */
    setenv("VIGIL_MAX_MODEL_BYTES", "4294967296", 1);     /* 4 GiB: above INT_MAX */
    ck_assert_int_eq(load(0), 0);
    ck_assert_int_eq(c.db_pool_size, 3);
    ck_assert_uint_eq(c.max_body_bytes, 1024);
    ck_assert_int_eq(c.drain_timeout_s, 0);
    ck_assert_str_eq(c.hotpath_mode, "inprocess");
    ck_assert_str_eq(c.bootstrap_key, "0123456789abcdef");
    ck_assert_uint_eq(c.max_model_bytes, 4294967296ULL);
    clean_env();
}
END_TEST

/* Every integer variable at its bounds (N ok, N+1 / N-1 refused) and with junk. */
START_TEST(integer_limits)
{
    static const struct {
        const char *name, *min, *below, *max, *above;
    } t[] = {
        {"VIGIL_DB_POOL_SIZE", "1", "0", "256", "257"},
        {"VIGIL_HOTPATH_POOL_SIZE", "1", "0", "256", "257"},
        {"VIGIL_POOL_WAIT_MS", "1", "0", "60000", "60001"},
        {"VIGIL_COMMIT_BATCH", "1", "0", "16", "17"},
        {"VIGIL_READ_BATCH", "1", "0", "16", "17"},
        {"VIGIL_READ_LANES", "1", "0", "8", "9"},
        {"VIGIL_MAX_CONNECTIONS", "1", "0", "100000", "100001"},
        {"VIGIL_CONN_TIMEOUT_S", "1", "0", "3600", "3601"},
        {"VIGIL_MAX_CONNECTIONS_PER_IP", "0", "-1", "100000", "100001"},
        {"VIGIL_HEADER_TIMEOUT_S", "1", "0", "3600", "3601"},
        {"VIGIL_REQUEST_TIMEOUT_MS", "10", "9", "600000", "600001"},
        {"VIGIL_DB_CONNECT_TIMEOUT_MS", "10", "9", "60000", "60001"},
        {"VIGIL_HOTPATH_TIMEOUT_MS", "1", "0", "600000", "600001"},
        {"VIGIL_DRAIN_TIMEOUT_S", "0", "-1", "3600", "3601"},
        {"VIGIL_MAX_BODY_BYTES", "64", "63", "1073741824", "1073741825"},
        {"VIGIL_MAX_MODEL_BYTES", "1024", "1023", "4294967296", "4294967297"},
        {"VIGIL_MAX_PREDICT_BYTES", "64", "63", "4294967296", "4294967297"},
        {"VIGIL_HOTPATH_MAX_FRAME_MB", "1", "0", "4095", "4096"},
        {"VIGIL_MAX_PREDICT_ROWS", "1", "0", "10000000", "10000001"},
    };
    static const char *const junk[] = {
        "", "abc", "12x", " 8", "8 ", "+8", "0x10", "1e3", "8.0", "-", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        expect_ok(t[i].name, t[i].min);
        expect_ok(t[i].name, t[i].max);
        expect_bad(t[i].name, t[i].below);
        expect_bad(t[i].name, t[i].above);
        for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++)
            expect_bad(t[i].name, junk[j]);
    }
    clean_env();
}
END_TEST

/* The value read at the bound is the bound itself. */
START_TEST(limit_values_land)
{
    clean_env();
    setenv("VIGIL_DB_POOL_SIZE", "256", 1);
    setenv("VIGIL_HOTPATH_MAX_FRAME_MB", "4095", 1);
    setenv("VIGIL_MAX_PREDICT_BYTES", "4294967296", 1);
    ck_assert_int_eq(load(0), 0);
    ck_assert_int_eq(c.db_pool_size, 256);
    ck_assert_int_eq(c.hotpath_max_frame_mb, 4095);
    ck_assert_uint_eq(c.max_predict_bytes, 4294967296ULL);
    clean_env();
}
END_TEST

START_TEST(string_variables)
{
    char longv[2048];
    /* VIGIL_HOTPATH_SOCKET: 107 bytes fit (sun_path), 108 do not. */
    memset(longv, 's', 107);
    longv[107] = '\0';
    expect_ok("VIGIL_HOTPATH_SOCKET", longv);
    ck_assert_uint_eq(strlen(c.hotpath_socket), 107);
    longv[107] = 's';
    longv[108] = '\0';
    expect_bad("VIGIL_HOTPATH_SOCKET", longv);
    /* DATABASE_URL: 1023 / 1024. */
    memset(longv, 'u', 1024);
    longv[1023] = '\0';
    expect_ok("DATABASE_URL", longv);
    longv[1023] = 'u';
    longv[1024] = '\0';
    expect_bad("DATABASE_URL", longv);
    /* VIGIL_HOTPATH_MODE: only the two words. */
    expect_ok("VIGIL_HOTPATH_MODE", "worker");
    expect_ok("VIGIL_HOTPATH_MODE", "inprocess");
    expect_bad("VIGIL_HOTPATH_MODE", "Worker");
    expect_bad("VIGIL_HOTPATH_MODE", "");
    expect_bad("VIGIL_HOTPATH_MODE", "threads");
    expect_bad("VIGIL_HOTPATH_MODE", "worker ");
    /* VIGIL_BOOTSTRAP_KEY: 16..255 characters. */
    expect_ok("VIGIL_BOOTSTRAP_KEY", "0123456789abcdef");
    expect_bad("VIGIL_BOOTSTRAP_KEY", "0123456789abcde");
    expect_bad("VIGIL_BOOTSTRAP_KEY", "");
    memset(longv, 'k', 256);
    longv[255] = '\0';
    expect_ok("VIGIL_BOOTSTRAP_KEY", longv);
    longv[255] = 'k';
    longv[256] = '\0';
    expect_bad("VIGIL_BOOTSTRAP_KEY", longv);
    /* The key never appears in the error message. */
    clean_env();
    setenv("VIGIL_BOOTSTRAP_KEY", "shortsecret", 1);
    ck_assert_int_eq(load(0), -1);
    ck_assert_ptr_null(strstr(err, "shortsecret"));
    clean_env();
}
END_TEST

START_TEST(http_addr_forms)
{
    expect_ok("VIGIL_HTTP_ADDR", "127.0.0.1:9000");
    ck_assert_str_eq(c.http_host, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 9000);
    expect_ok("VIGIL_HTTP_ADDR", "0.0.0.0:1");
    ck_assert_str_eq(c.http_host, "0.0.0.0");
    ck_assert_int_eq(c.http_port, 1);
    expect_ok("VIGIL_HTTP_ADDR", "10.1.2.3:65535");
    ck_assert_str_eq(c.http_host, "10.1.2.3");
    ck_assert_int_eq(c.http_port, 65535);
    expect_ok("VIGIL_HTTP_ADDR", "localhost:8081");
    ck_assert_str_eq(c.http_host, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 8081);

    static const char *const bad[] = {
        "",
        "8080",
        ":8080",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:80x",
        "127.0.0.1: 80",
        "127.0.0.1:+80",
        "127.0.0.1:99999999999999999999",
        "example.com:80",
        "256.0.0.1:80",
        "127.0.0.1 :80",
        "::1:8080",
        "[::1]:8080",
        "1.2.3:80",
        "localhost",
        "0x7f.0.0.1:80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad("VIGIL_HTTP_ADDR", bad[i]);
    /* Host longer than the buffer: an error, not a truncation. */
    char longv[200];
    memset(longv, '1', 100);
    snprintf(longv + 100, sizeof longv - 100, ":80");
    expect_bad("VIGIL_HTTP_ADDR", longv);
    clean_env();
}
END_TEST

/* The first bad variable is reported; a bad value does not leave a half-filled config used. */
START_TEST(first_error_is_reported)
{
    clean_env();
    setenv("VIGIL_DB_POOL_SIZE", "0", 1);
    ck_assert_int_eq(load(0), -1);
    ck_assert_str_eq(err, "VIGIL_DB_POOL_SIZE: must be an integer in 1..256");
    clean_env();
}
END_TEST

/* ---- cfg_parse_int ----------------------------------------------------------------------------
 */

START_TEST(parse_int_edges)
{
    long long v = 777;
    ck_assert_int_eq(cfg_parse_int("0", 0, 10, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(cfg_parse_int("10", 0, 10, &v), 0);
    ck_assert_int_eq(v, 10);
    ck_assert_int_eq(cfg_parse_int("-5", -10, 10, &v), 0);
    ck_assert_int_eq(v, -5);
    ck_assert_int_eq(cfg_parse_int("007", 0, 10, &v), 0);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(cfg_parse_int("9223372036854775807", 0, 9223372036854775807LL, &v), 0);
    ck_assert(v == 9223372036854775807LL);
    ck_assert_int_eq(cfg_parse_int("-9223372036854775808", -9223372036854775807LL - 1, 0, &v), 0);
    ck_assert(v == -9223372036854775807LL - 1);

    v = 777;
    static const char *const bad[] = {"",
                                      " 1",
                                      "1 ",
                                      "\t1",
                                      "1\n",
                                      "+1",
                                      "-",
                                      "--1",
                                      "+-1",
                                      "1-",
                                      "1.0",
                                      "1e2",
                                      "0x1",
                                      "abc",
                                      "1a",
                                      "9223372036854775808",  /* LLONG_MAX + 1 */
                                      "-9223372036854775809", /* LLONG_MIN - 1 */
                                      "99999999999999999999999999",
                                      "11",  /* above max */
                                      "-1"}; /* below min */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(cfg_parse_int(bad[i], 0, 10, &v) == -1, "'%s' accepted", bad[i]);
        ck_assert_msg(v == 777, "'%s' wrote the output on failure", bad[i]);
    }
    ck_assert_int_eq(cfg_parse_int(NULL, 0, 10, &v), -1);
    ck_assert_int_eq(v, 777);
    /* Overflow saturating inside a wide range must still be refused. */
    ck_assert_int_eq(
        cfg_parse_int("9223372036854775808", -9223372036854775807LL - 1, 9223372036854775807LL, &v),
        -1);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("env");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, database_url_required_only_when_asked);
    tcase_add_test(tc, values_are_read);
    tcase_add_test(tc, integer_limits);
    tcase_add_test(tc, limit_values_land);
    tcase_add_test(tc, string_variables);
    tcase_add_test(tc, http_addr_forms);
    tcase_add_test(tc, first_error_is_reported);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse_int");
    tcase_add_test(tc, parse_int_edges);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
