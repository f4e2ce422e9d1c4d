/* test_json.c - unit tests for api/json.{h,c}: the strict front end to cJSON.  Every rejected
 * input is a byte string spelled out here by hand (overlong encodings, surrogates, truncated
 * sequences, control characters, duplicate keys, nesting at 32 and 33, ...); accepted inputs are
 * checked both by json_validate and json_parse_strict, and the parsed values are compared with
 * values written in the test. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "logline.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

/* Both entry points must agree; returns 0 when buf[0..len) is accepted. */
static int accept_n(const char *buf, size_t len)
{
    char err[256] = "";
    cJSON *root = (cJSON *)1;
    int v = json_validate(buf, len, err, sizeof err);
    int p = json_parse_strict(buf, len, &root, err, sizeof err);
    if (p == 0) {
        ck_assert_ptr_nonnull(root);
        cJSON_Delete(root);
    } else {
        ck_assert_ptr_null(root); /* *out is NULL on failure */
        ck_assert_msg(err[0] != '\0', "rejection without a reason");
    }
    /* json_validate does not look for duplicate keys; it may accept what parse_strict rejects,
     * never the reverse. */
    ck_assert_msg(!(v != 0 && p == 0), "json_validate rejected what parse_strict accepted");
    return p;
}

static int accept_s(const char *s)
{
    return accept_n(s, strlen(s));
}

#define ACCEPT(s) ck_assert_msg(accept_s(s) == 0, "should accept: %s", s)
#define REJECT(s) ck_assert_msg(accept_s(s) != 0, "should reject: %s", s)
#define REJECT_N(s, n) ck_assert_msg(accept_n(s, n) != 0, "should reject %zu bytes", (size_t)(n))

/* The reason printed for buf (parse_strict). */
static void reason(const char *buf, size_t len, char *err, size_t errlen)
{
    cJSON *root = NULL;
    err[0] = '\0';
    ck_assert_int_ne(json_parse_strict(buf, len, &root, err, errlen), 0);
}

/* "[[[...]]]" with depth opening brackets; caller frees. */
static char *nested_arrays(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

/* {"a":{"a":...{}...}} with depth objects; caller frees. */
static char *nested_objects(int depth)
{
    size_t cap = (size_t)depth * 8 + 8, o = 0;
    char *s = malloc(cap);
    for (int i = 0; i < depth - 1; i++)
        o += (size_t)snprintf(s + o, cap - o, "{\"a\":");
    o += (size_t)snprintf(s + o, cap - o, "{}");
    for (int i = 0; i < depth - 1; i++)
        s[o++] = '}';
    s[o] = '\0';
    return s;
}

/* ---- valid input ------------------------------------------------------------------------------
 */

START_TEST(valid_documents_accepted)
{
    ACCEPT("{}");
    ACCEPT("[]");
    ACCEPT("0");
    ACCEPT("-0");
    ACCEPT("-0.5e+10");
    ACCEPT("1E-3");
    ACCEPT("123456789");
    ACCEPT("true");
    ACCEPT("false");
    ACCEPT("null");
    ACCEPT("\"\"");
    ACCEPT(" \t\r\n{ \"a\" : [ 1 , 2 ] } \t\r\n");
    ACCEPT("{\"a\":{\"b\":[{\"c\":null}]},\"b\":{\"a\":1}}"); /* same key, different objects */
    ACCEPT("[{\"a\":1},{\"a\":2}]");                          /* same key, sibling objects */
    ACCEPT("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
    ACCEPT("\"\\u0001 \\u001f \\u00e9 \\uFFFF\"");
    ACCEPT("\"\\ud83d\\ude00\"");   /* surrogate pair (U+1F600) */
    ACCEPT("\"\xc3\xa9\"");         /* U+00E9, 2 bytes */
    ACCEPT("\"\xe2\x82\xac\"");     /* U+20AC, 3 bytes */
    ACCEPT("\"\xf0\x9f\x98\x80\""); /* U+1F600, 4 bytes */
    ACCEPT("\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF, the last code point */
    ACCEPT("\"\xed\x9f\xbf\"");     /* U+D7FF, just below the surrogates */
    ACCEPT("\"\xee\x80\x80\"");     /* U+E000, just above them */
    ACCEPT("\"\x7f\"");             /* DEL is not a control char in JSON */
}
END_TEST

START_TEST(parsed_values_match)
{
    const char *doc = "{\"s\":\"x\\u00e9\\ud83d\\ude00\",\"n\":-12.5e1,\"a\":[true,null],\"o\":{}}";
    cJSON *root = NULL;
    char err[200];
    ck_assert_int_eq(json_parse_strict(doc, strlen(doc), &root, err, sizeof err), 0);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "s");
    ck_assert(cJSON_IsString(s));
    ck_assert_str_eq(s->valuestring, "x\xc3\xa9\xf0\x9f\x98\x80");
    ck_assert(cJSON_GetObjectItemCaseSensitive(root, "n")->valuedouble == -125.0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "a")), 2);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "o")));
    cJSON_Delete(root);
}
END_TEST

/* The length is honoured: bytes after len are not looked at, bytes before it all are. */
START_TEST(length_is_respected)
{
    const char buf[] = "{\"a\":1}GARBAGE";
    ck_assert_int_eq(accept_n(buf, 7), 0);
    ck_assert_int_ne(accept_n(buf, 8), 0);
    ck_assert_int_ne(accept_n(buf, 6), 0); /* truncated before the closing brace */
}
END_TEST

/* ---- grammar ----------------------------------------------------------------------------------
 */

START_TEST(empty_and_blank_rejected)
{
    char err[200];
    REJECT_N("", 0);
    reason("", 0, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "empty"));
    REJECT(" ");
    REJECT("\n\t ");
}
END_TEST

START_TEST(trailing_garbage_rejected)
{
    char err[200];
    REJECT("{}x");
    REJECT("{} {}");
    REJECT("{}}");
    REJECT("[1]]");
    REJECT("1 2");
    REJECT("true false");
    REJECT("nulll");
    REJECT("{}\x01");
    REJECT_N("{}\0", 3); /* a NUL after the document is garbage too */
    reason("{\"a\":1} x", 9, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "trailing"));
    ck_assert_ptr_nonnull(strstr(err, "byte 8")); /* offset of the 'x' */
}
END_TEST

START_TEST(leading_zeros_and_bad_numbers_rejected)
{
    REJECT("01");
    REJECT("-01");
    REJECT("00");
    REJECT("[007]");
    REJECT("{\"a\":00.5}");
    REJECT("+1");
    REJECT("-");
    REJECT(".5");
    REJECT("1.");
    REJECT("1.e5");
    REJECT("1e");
    REJECT("1e+");
    REJECT("0x10");
    REJECT("NaN");
    REJECT("Infinity");
    REJECT("-Infinity");
    ACCEPT("0.01");
    ACCEPT("10");
    ACCEPT("-0e0");
}
END_TEST

START_TEST(structural_errors_rejected)
{
    REJECT("{");
    REJECT("[");
    REJECT("{\"a\"}");
    REJECT("{\"a\":}");
    REJECT("{\"a\":1,}");
    REJECT("[1,]");
    REJECT("[,1]");
    REJECT("{,}");
    REJECT("{a:1}");
    REJECT("{'a':1}");
    REJECT("['a']");
    REJECT("{\"a\" 1}");
    REJECT("[1 2]");
    REJECT("{1:2}");
    REJECT("tru");
    REJECT("True");
    REJECT("\"abc");
    REJECT("[\"a\"");
    REJECT("/* c */ {}");
}
END_TEST

/* ---- strings ----------------------------------------------------------------------------------
 */

START_TEST(unescaped_control_chars_rejected)
{
    char doc[8];
    for (int c = 0x01; c < 0x20; c++) {
        doc[0] = '"';
        doc[1] = 'a';
        doc[2] = (char)c;
        doc[3] = '"';
        ck_assert_msg(accept_n(doc, 4) != 0, "control char 0x%02x accepted", c);
    }
    REJECT_N("\"a\0b\"", 5); /* a raw NUL inside a string */
    REJECT("{\"a\tb\":1}");  /* in a key too */
}
END_TEST

START_TEST(nul_escape_rejected)
{
    char err[200];
    REJECT("\"\\u0000\"");
    REJECT("\"abc\\u0000def\"");
    REJECT("{\"k\\u0000\":1}");
    reason("\"\\u0000\"", 8, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "u0000"));
    ACCEPT("\"\\u0001\"");
}
END_TEST

START_TEST(bad_escapes_rejected)
{
    REJECT("\"\\a\"");
    REJECT("\"\\x41\"");
    REJECT("\"\\'\"");
    REJECT("\"\\u12\"");
    REJECT("\"\\u12G4\"");
    REJECT("\"\\U0041\"");
    REJECT("\"\\");
    REJECT("\"\\u00");
    REJECT_N("\"\\\0\"", 4);
}
END_TEST

START_TEST(lone_surrogates_rejected)
{
    REJECT("\"\\ud800\""); /* high alone */
    REJECT("\"\\udbff\"");
    REJECT("\"\\udc00\""); /* low alone */
    REJECT("\"\\udfff\"");
    REJECT("\"\\ud800x\"");       /* high followed by a char */
    REJECT("\"\\ud800\\n\"");     /* high followed by another escape */
    REJECT("\"\\ud800\\u0041\""); /* high followed by a non-surrogate */
    REJECT("\"\\ud800\\ud800\""); /* high followed by high */
    REJECT("\"\\ude00\\ud83d\""); /* reversed pair */
    REJECT("\"\\ud800\\");
    ACCEPT("\"\\ud800\\udc00\""); /* U+10000 */
    ACCEPT("\"\\udbff\\udfff\""); /* U+10FFFF */
}
END_TEST

START_TEST(invalid_utf8_rejected)
{
    /* Overlong forms. */
    REJECT("\"\xc0\xaf\""); /* '/' in 2 bytes */
    REJECT("\"\xc1\xbf\"");
    REJECT("\"\xe0\x80\xaf\"");     /* '/' in 3 bytes */
    REJECT("\"\xe0\x9f\xbf\"");     /* U+07FF in 3 bytes */
    REJECT("\"\xf0\x80\x80\xaf\""); /* '/' in 4 bytes */
    REJECT("\"\xf0\x8f\xbf\xbf\""); /* U+FFFF in 4 bytes */
    /* UTF-16 surrogates encoded directly. */
    REJECT("\"\xed\xa0\x80\"");             /* U+D800 */
    REJECT("\"\xed\xbf\xbf\"");             /* U+DFFF */
    REJECT("\"\xed\xa0\xbd\xed\xb8\x80\""); /* CESU-8 pair */
    /* Above U+10FFFF, and bytes that never occur. */
    REJECT("\"\xf4\x90\x80\x80\"");
    REJECT("\"\xf5\x80\x80\x80\"");
    REJECT("\"\xf8\x88\x80\x80\x80\"");
    REJECT("\"\xfe\"");
    REJECT("\"\xff\"");
    /* Stray continuation bytes. */
    REJECT("\"\x80\"");
    REJECT("\"a\xbf\"");
    /* Truncated sequences: inside the string and at the very end of the input. */
    REJECT("\"\xc3\"");
    REJECT("\"\xe2\x82\"");
    REJECT("\"\xf0\x9f\x98\"");
    REJECT("\"\xe2\x82x\"");
    REJECT_N("\"\xe2\x82", 3);
    REJECT_N("\"\xf0\x9f\x98", 4);
    /* Invalid UTF-8 in a key, and outside strings. */
    REJECT("{\"\xc3\":1}");
    REJECT("\xef\xbb\xbf{}"); /* a BOM is not whitespace */
}
END_TEST

START_TEST(utf8_valid_helper)
{
    ck_assert(json_utf8_valid("", 0));
    ck_assert(json_utf8_valid("abc", 3));
    ck_assert(json_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    ck_assert(!json_utf8_valid("\xc3", 1));
    ck_assert(!json_utf8_valid("\xc0\x80", 2));
    ck_assert(!json_utf8_valid("\xed\xa0\x80", 3));
    ck_assert(!json_utf8_valid("\xf4\x90\x80\x80", 4));
    ck_assert(!json_utf8_valid("ab\xe2\x82\xac", 4)); /* length cuts the sequence */
}
END_TEST

/* ---- duplicate keys ---------------------------------------------------------------------------
 */

START_TEST(duplicate_keys_rejected)
{
    char err[200];
    REJECT("{\"a\":1,\"a\":2}");
    REJECT("{\"a\":1,\"b\":2,\"a\":1}");
    REJECT("{\"a\":1,\"\\u0061\":2}");                /* the same key after unescaping */
    REJECT("{\"x\":{\"k\":1,\"k\":1}}");              /* nested */
    REJECT("{\"x\":[{\"ok\":1},{\"k\":1,\"k\":2}]}"); /* nested in an array */
    REJECT("[[[{\"a\":{\"b\":{\"c\":1,\"c\":null}}}]]]");
    REJECT("{\"\":1,\"\":2}");
    reason("{\"name\":1,\"name\":2}", 19, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "duplicate"));
    ck_assert_ptr_nonnull(strstr(err, "name"));
    ACCEPT("{\"a\":1,\"A\":2}"); /* keys are case-sensitive */
    ACCEPT("{\"a\":1,\"ab\":2,\"b\":3}");
}
END_TEST

/* ---- nesting ----------------------------------------------------------------------------------
 */

START_TEST(nesting_limit_at_32_and_33)
{
    ck_assert_int_eq(JSON_MAX_DEPTH, 32);
    char *a32 = nested_arrays(32), *a33 = nested_arrays(33);
    char *o32 = nested_objects(32), *o33 = nested_objects(33);
    /* Hand check of the generators: 32 '[' then 32 ']'. */
    ck_assert_uint_eq(strlen(a32), 64);
    ck_assert_int_eq(a32[31], '[');
    ck_assert_int_eq(a32[32], ']');
    ck_assert_uint_eq(strlen(o32), 31 * 5 + 2 + 31);
    ACCEPT(a32);
    REJECT(a33);
    ACCEPT(o32);
    REJECT(o33);
    char err[200];
    reason(a33, strlen(a33), err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "nesting"));
    /* Mixed: 16 objects around 16 arrays = 32. */
    char mixed[256];
    size_t o = 0;
    for (int i = 0; i < 16; i++)
        o += (size_t)snprintf(mixed + o, sizeof mixed - o, "{\"k\":");
    for (int i = 0; i < 16; i++)
        mixed[o++] = '[';
    for (int i = 0; i < 16; i++)
        mixed[o++] = ']';
    for (int i = 0; i < 16; i++)
        mixed[o++] = '}';
    mixed[o] = '\0';
    ACCEPT(mixed);
    /* Very deep input is rejected without blowing the stack. */
    char *deep = nested_arrays(100000);
    REJECT(deep);
    free(deep);
    free(a32);
    free(a33);
    free(o32);
    free(o33);
}
END_TEST

/* ---- json_unknown_member ----------------------------------------------------------------------
 */

START_TEST(unknown_member)
{
    static const char *const allowed[] = {"a", "b", NULL};
    static const char *const none[] = {NULL};
    cJSON *o = cJSON_Parse("{\"a\":1,\"b\":2}");
    ck_assert_ptr_null(json_unknown_member(o, allowed));
    ck_assert_str_eq(json_unknown_member(o, none), "a");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"a\":1,\"c\":2,\"d\":3}");
    ck_assert_str_eq(json_unknown_member(o, allowed), "c"); /* the first one, in document order */
    cJSON_Delete(o);
    o = cJSON_Parse("{\"A\":1}");
    ck_assert_str_eq(json_unknown_member(o, allowed), "A"); /* case-sensitive */
    cJSON_Delete(o);
    o = cJSON_Parse("{\"ab\":1}");
    ck_assert_str_eq(json_unknown_member(o, allowed), "ab"); /* no prefix match */
    cJSON_Delete(o);
    o = cJSON_Parse("{}");
    ck_assert_ptr_null(json_unknown_member(o, none));
    cJSON_Delete(o);
    ck_assert_ptr_null(json_unknown_member(NULL, allowed));
}
END_TEST

START_TEST(print_is_compact)
{
    cJSON *o = cJSON_Parse("{ \"a\" : [ 1 , \"x\" ] , \"b\" : { } }");
    char *s = json_print(o);
    ck_assert_str_eq(s, "{\"a\":[1,\"x\"],\"b\":{}}");
    free(s);
    cJSON_Delete(o);
}
END_TEST

/* logline_escape (common/logline.c) feeds every log line: its output inside quotes must be strict
 * JSON whatever the input bytes.  Expected escapes written by hand. */
START_TEST(log_escape_is_strict_json)
{
    static const struct {
        const char *in, *want;
    } t[] = {
        {"plain", "plain"},
        {"a\"b\\c", "a\\\"b\\\\c"},
        {"x\x01y\x1fz\x7f", "x\\u0001y\\u001fz\\u007f"},
        {"\n\t", "\\u000a\\u0009"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"/\xff\xfe", "/\\ufffd\\ufffd"},
        {"\xc3(", "\\ufffd("},                     /* truncated 2-byte sequence */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"}, /* encoded surrogate */
        {"\xc0\xaf", "\\ufffd\\ufffd"},            /* overlong */
        {"end\xe2\x82", "end\\ufffd\\ufffd"},      /* cut at the end of the string */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[256], doc[300], err[128];
        logline_escape(t[i].in, out, sizeof out);
        ck_assert_str_eq(out, t[i].want);
        snprintf(doc, sizeof doc, "\"%s\"", out);
        ck_assert_msg(json_validate(doc, strlen(doc), err, sizeof err) == 0, "case %zu: %s", i,
                      err);
    }
    /* Bounded: a long input is cut, never overrun, and still valid. */
    char small[10], doc[20], err[128];
    logline_escape("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"\"\"", small, sizeof small);
    ck_assert_uint_lt(strlen(small), sizeof small);
    snprintf(doc, sizeof doc, "\"%s\"", small);
    ck_assert_int_eq(json_validate(doc, strlen(doc), err, sizeof err), 0);
}
END_TEST

/* Regression (tests/fuzz/fuzz_json.c): json_unknown_member on a parsed array or scalar passed an
 * element's NULL name to strcmp.  Not an object, so no members: NULL, and no crash. */
START_TEST(unknown_member_of_non_object)
{
    static const char *const allowed[] = {"a", NULL};
    static const char *const docs[] = {
        "[0]", "[{\"a\":1},{\"b\":2}]", "[[],\"x\",null]", "0", "\"a\"", "[]"};
    char err[256];
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        cJSON *o = NULL;
        ck_assert_int_eq(json_parse_strict(docs[i], strlen(docs[i]), &o, err, sizeof err), 0);
        ck_assert_ptr_null(json_unknown_member(o, allowed));
        cJSON_Delete(o);
    }
}
END_TEST

/* Issue 9 item 12: numbers in stored client JSON are within 2^53 - 1 and printed exactly; the
 * expected texts are written out by hand. */
START_TEST(exact_numbers)
{
    static const struct {
        const char *in, *out; /* out NULL: refused, path in want_path */
        const char *want_path;
    } cases[] = {
        {"{\"a\":9007199254740991}", "{\"a\":9007199254740991}", NULL},
        {"{\"a\":-9007199254740991}", "{\"a\":-9007199254740991}", NULL},
        {"{\"a\":[1,0.1,1.5,-0.25,1e-7,123456789012]}",
         "{\"a\":[1,0.1,1.5,-0.25,1e-07,123456789012]}", NULL},
        {"{\"a\":0.30000000000000004}", "{\"a\":0.30000000000000004}", NULL},
        {"{\"a\":1E3,\"b\":true,\"c\":null,\"d\":\"9007199254740993\"}",
         "{\"a\":1000,\"b\":true,\"c\":null,\"d\":\"9007199254740993\"}", NULL},
        {"{\"a\":9007199254740992}", NULL, "m.a"},
        {"{\"a\":{\"b\":[0,12345678901234567890]}}", NULL, "m.a.b[1]"},
        {"{\"x\":1e400}", NULL, "m.x"},
        {"{\"x\":-1e400}", NULL, "m.x"},
        {"{\"x\":1e300}", NULL, "m.x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(cases[i].in);
        ck_assert_ptr_nonnull(j);
        char path[256] = "";
        int bad = json_find_inexact_number(j, "m", path, sizeof path);
        if (cases[i].out == NULL) {
            ck_assert_msg(bad, "%s accepted", cases[i].in);
            ck_assert_str_eq(path, cases[i].want_path);
        } else {
            ck_assert_msg(!bad, "%s refused at %s", cases[i].in, path);
            char *s = json_print_exact(j);
            ck_assert_str_eq(s, cases[i].out);
            free(s);
        }
        cJSON_Delete(j);
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("strict");
    tcase_add_test(tc, valid_documents_accepted);
    tcase_add_test(tc, parsed_values_match);
    tcase_add_test(tc, length_is_respected);
    tcase_add_test(tc, empty_and_blank_rejected);
    tcase_add_test(tc, trailing_garbage_rejected);
    tcase_add_test(tc, leading_zeros_and_bad_numbers_rejected);
    tcase_add_test(tc, structural_errors_rejected);
    tcase_add_test(tc, unescaped_control_chars_rejected);
    tcase_add_test(tc, nul_escape_rejected);
    tcase_add_test(tc, bad_escapes_rejected);
    tcase_add_test(tc, lone_surrogates_rejected);
    tcase_add_test(tc, invalid_utf8_rejected);
    tcase_add_test(tc, utf8_valid_helper);
    tcase_add_test(tc, duplicate_keys_rejected);
    tcase_add_test(tc, nesting_limit_at_32_and_33);
    tcase_add_test(tc, unknown_member);
    tcase_add_test(tc, print_is_compact);
    tcase_add_test(tc, log_escape_is_strict_json);
    tcase_add_test(tc, unknown_member_of_non_object);
    tcase_add_test(tc, exact_numbers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
