/* test_netguard.c - unit tests for api/netguard.c, the SSRF policy: every refused IPv4 and IPv6
 * class at its edges (the first and last address of a range refused, the neighbours outside it
 * accepted; the ranges written here from the IANA special-purpose registries), IPv4 embedded in
 * IPv6 (v4-mapped, v4-compatible, NAT64, 6to4), the allow-list matching, and URL checks on literal
 * addresses and on "localhost" (resolved by the system: /etc/hosts maps it to loopback). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "netguard.h"

/* Every lookup of these tests is local (numbers, localhost, .invalid): 5 s is generous. */
#define DL (clock_now_ms() + 5000)

static int v4(const char *s)
{
    struct in_addr a;
    ck_assert_int_eq(inet_pton(AF_INET, s, &a), 1);
    return netguard_v4_forbidden(ntohl(a.s_addr));
}

static int v6(const char *s)
{
    struct in6_addr a;
    ck_assert_int_eq(inet_pton(AF_INET6, s, &a), 1);
    return netguard_v6_forbidden(a.s6_addr);
}

START_TEST(ipv4_classes)
{
    const char *refused[] = {
        "0.0.0.0",         "0.255.255.255",   "10.0.0.0",        "10.255.255.255",
        "100.64.0.0",      "100.127.255.255", "127.0.0.1",       "127.255.255.254",
        "169.254.169.254", "172.16.0.1",      "172.31.255.255",  "192.0.0.1",
        "192.0.2.5",       "192.168.0.1",     "192.168.255.255", "198.18.0.1",
        "198.19.255.255",  "198.51.100.7",    "203.0.113.9",     "224.0.0.1",
        "239.255.255.250", "240.0.0.1",       "255.255.255.255", "192.88.99.1"};
    const char *accepted[] = {"1.1.1.1",     "9.255.255.255",   "11.0.0.0",   "100.63.255.255",
                              "100.128.0.0", "126.255.255.255", "128.0.0.0",  "169.253.255.255",
                              "169.255.0.0", "172.15.255.255",  "172.32.0.0", "192.167.255.255",
                              "192.169.0.0", "198.17.255.255",  "198.20.0.0", "223.255.255.255",
                              "8.8.8.8",     "93.184.216.34"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        ck_assert_msg(v4(refused[i]), "%s should be refused", refused[i]);
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        ck_assert_msg(!v4(accepted[i]), "%s should be accepted", accepted[i]);
}
END_TEST

START_TEST(ipv6_classes)
{
    const char *refused[] = {"::",
                             "::1",
                             "::ffff:127.0.0.1",
                             "::ffff:10.1.2.3",
                             "::ffff:169.254.169.254",
                             "::127.0.0.1",
                             "::ffff:0:127.0.0.1",
                             "::ffff:0:10.0.0.1",
                             "64:ff9b::7f00:1",
                             "64:ff9b:1::1",
                             "2002:7f00:1::",
                             "2002:c0a8:101::1",
                             "2001:0:1::1",
                             "2001:db8::1",
                             "100::1",
                             "fc00::1",
                             "fdff:ffff::1",
                             "fe80::1",
                             "febf:ffff::1",
                             "fec0::1",
                             "ff02::1",
                             "ff05::fb"};
    const char *accepted[] = {"2606:4700:4700::1111",
                              "2a00:1450:4001:80b::200e",
                              "::ffff:8.8.8.8",
                              "::ffff:0:8.8.8.8",
                              "64:ff9b::808:808",
                              "2002:808:808::1",
                              "fbff:ffff::1",
                              "2001:1::1",
                              "101::1"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        ck_assert_msg(v6(refused[i]), "%s should be refused", refused[i]);
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        ck_assert_msg(!v6(accepted[i]), "%s should be accepted", accepted[i]);
}
END_TEST

START_TEST(sockaddr_families)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
    ck_assert(netguard_addr_forbidden((struct sockaddr *)&s4));
    inet_pton(AF_INET, "8.8.4.4", &s4.sin_addr);
    ck_assert(!netguard_addr_forbidden((struct sockaddr *)&s4));
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:192.168.1.1", &s6.sin6_addr);
    ck_assert(netguard_addr_forbidden((struct sockaddr *)&s6));
    struct sockaddr su = {.sa_family = AF_UNIX};
    ck_assert(netguard_addr_forbidden(&su));
    ck_assert(netguard_addr_forbidden(NULL));
}
END_TEST

START_TEST(allow_list)
{
    ck_assert(netguard_host_allowed("127.0.0.1", "127.0.0.1"));
    ck_assert(netguard_host_allowed(" a.example , 127.0.0.1,::1", "::1"));
    ck_assert(netguard_host_allowed("Hooks.Example", "hooks.example"));
    ck_assert(!netguard_host_allowed("127.0.0.1", "127.0.0.10"));
    ck_assert(!netguard_host_allowed("127.0.0.10", "127.0.0.1"));
    ck_assert(!netguard_host_allowed("", "127.0.0.1"));
    ck_assert(!netguard_host_allowed(NULL, "x"));
    ck_assert(!netguard_host_allowed(",,", ""));
}
END_TEST

START_TEST(urls)
{
    char why[256];
    ck_assert_int_eq(netguard_check_url("http://127.0.0.1:9/x", "", DL, why, sizeof why),
                     NETGUARD_FORBIDDEN);
    ck_assert_ptr_nonnull(strstr(why, "127.0.0.1"));
    ck_assert_int_eq(netguard_check_url("http://127.0.0.1:9/x", "127.0.0.1", DL, why, sizeof why),
                     NETGUARD_OK);
    ck_assert_int_eq(netguard_check_url("http://localhost:9/", "127.0.0.1", DL, why, sizeof why),
                     NETGUARD_FORBIDDEN); /* the allow-list names hosts as written */
    ck_assert_int_eq(netguard_check_url("https://[::1]/", "", DL, why, sizeof why),
                     NETGUARD_FORBIDDEN);
    ck_assert_int_eq(netguard_check_url("https://[::1]/", "::1", DL, why, sizeof why), NETGUARD_OK);
    ck_assert_int_eq(netguard_check_url("http://[::ffff:10.0.0.1]/", "", DL, why, sizeof why),
                     NETGUARD_FORBIDDEN);
    ck_assert_int_eq(netguard_check_url("http://0x7f000001/", "", DL, why, sizeof why),
                     NETGUARD_FORBIDDEN); /* getaddrinfo reads the hex form as 127.0.0.1 */
    ck_assert_int_eq(netguard_check_url("ftp://8.8.8.8/", "", DL, why, sizeof why),
                     NETGUARD_BAD_SCHEME);
    ck_assert_int_eq(netguard_check_url("file:///etc/passwd", "", DL, why, sizeof why),
                     NETGUARD_BAD_SCHEME);
    ck_assert_int_eq(netguard_check_url("not a url", "", DL, why, sizeof why), NETGUARD_BAD_URL);
    ck_assert_int_eq(netguard_check_url("http://8.8.8.8/hook", "", DL, why, sizeof why),
                     NETGUARD_OK);
    ck_assert_int_eq(netguard_check_url("http://nonexistent.invalid/", "", DL, why, sizeof why),
                     NETGUARD_UNRESOLVED);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("netguard");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, ipv4_classes);
    tcase_add_test(tc, ipv6_classes);
    tcase_add_test(tc, sockaddr_families);
    tcase_add_test(tc, allow_list);
    tcase_add_test(tc, urls);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
