/* netguard.c - SSRF policy: address classes, the allow-list, URL checks.  See netguard.h.
 * Costs: the address checks are a few comparisons; netguard_check_url is one curl URL parse and
 * one bounded host name lookup (resolve.h). */
#include "netguard.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "resolve.h"

/* Refused IPv4 ranges: address, prefix length. */
static const struct {
    uint32_t net;
    int len;
} v4_refused[] = {
    {0x00000000, 8},  /* 0.0.0.0/8 "this network", unspecified */
    {0x0a000000, 8},  /* 10/8 private */
    {0x64400000, 10}, /* 100.64/10 shared (carrier-grade NAT) */
    {0x7f000000, 8},  /* 127/8 loopback */
    {0xa9fe0000, 16}, /* 169.254/16 link-local (cloud metadata) */
    {0xac100000, 12}, /* 172.16/12 private */
    {0xc0000000, 24}, /* 192.0.0/24 IETF protocol assignments */
    {0xc0000200, 24}, /* 192.0.2/24 documentation */
    {0xc0586300, 24}, /* 192.88.99/24 6to4 relay anycast */
    {0xc0a80000, 16}, /* 192.168/16 private */
    {0xc6120000, 15}, /* 198.18/15 benchmarking */
    {0xc6336400, 24}, /* 198.51.100/24 documentation */
    {0xcb007100, 24}, /* 203.0.113/24 documentation */
    {0xe0000000, 4},  /* 224/4 multicast */
    {0xf0000000, 4},  /* 240/4 reserved, 255.255.255.255 broadcast */
};

int netguard_v4_forbidden(uint32_t a)
{
    for (size_t i = 0; i < sizeof v4_refused / sizeof v4_refused[0]; i++) {
        uint32_t mask = 0xffffffffu << (32 - v4_refused[i].len);
        if ((a & mask) == v4_refused[i].net)
            return 1;
    }
    return 0;
}

static uint32_t v4_at(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* 1 when the first n bytes of b are zero. */
static int zeros(const uint8_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

int netguard_v6_forbidden(const uint8_t b[16])
{
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (zeros(b, 10) && b[10] == 0xff && b[11] == 0xff)
        return netguard_v4_forbidden(v4_at(b + 12)); /* ::ffff:a.b.c.d v4-mapped */
    if (zeros(b, 8) && b[8] == 0xff && b[9] == 0xff && zeros(b + 10, 2))
        return netguard_v4_forbidden(v4_at(b + 12)); /* ::ffff:0:a.b.c.d IPv4-translated (SIIT) */
    if (zeros(b, 12))
        return 1; /* ::, ::1 and the deprecated v4-compatible ::a.b.c.d */
    if (memcmp(b, nat64, 12) == 0)
        return netguard_v4_forbidden(v4_at(b + 12)); /* 64:ff9b::/96 NAT64 */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
        return 1; /* 64:ff9b:1::/48 local-use NAT64 */
    if (b[0] == 0x20 && b[1] == 0x02)
        return netguard_v4_forbidden(v4_at(b + 2)); /* 2002::/16 6to4 */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
        return 1; /* 2001::/32 Teredo (the IPv4 address inside is obfuscated) */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return 1; /* 2001:db8::/32 documentation */
    if (b[0] == 0x01 && zeros(b + 1, 7))
        return 1; /* 100::/64 discard-only */
    if ((b[0] & 0xfe) == 0xfc)
        return 1; /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return 1; /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return 1; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return 1; /* ff00::/8 multicast */
    return 0;
}

int netguard_addr_forbidden(const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return netguard_v4_forbidden(ntohl(s4->sin_addr.s_addr));
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        return netguard_v6_forbidden(s6->sin6_addr.s6_addr);
    }
    return 1;
}

int netguard_host_allowed(const char *allowed, const char *host)
{
    size_t hl = strlen(host);
    const char *p = allowed;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n && *s == ' ')
            s++, n--;
        while (n && s[n - 1] == ' ')
            n--;
        if (n && n == hl && strncasecmp(s, host, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Every address host resolves to (before deadline_ms) must be allowed.  Returns a
 * netguard_result. */
static int check_addresses(const char *host, int64_t deadline_ms, char *why, size_t whylen)
{
    struct addrinfo *res = NULL;
    int found = resolve_host(RESOLVE_FOR_WEBHOOK, host, deadline_ms, &res);
    if (found == RESOLVE_TIMEOUT || found == RESOLVE_BUSY) {
        snprintf(why, whylen,
                 found == RESOLVE_BUSY
                     ? "too many host name lookups are waiting for the resolver to check '%.200s'"
                     : "the host '%.200s' did not resolve in time",
                 host);
        return NETGUARD_TIMEOUT;
    }
    if (found != RESOLVE_OK) {
        snprintf(why, whylen, "the host '%.200s' does not resolve", host);
        return NETGUARD_UNRESOLVED;
    }
    int rc = NETGUARD_OK;
    for (struct addrinfo *ai = res; ai && rc == NETGUARD_OK; ai = ai->ai_next) {
        if (!netguard_addr_forbidden(ai->ai_addr))
            continue;
        char txt[INET6_ADDRSTRLEN] = "?";
        const void *src = ai->ai_family == AF_INET6
                              ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                              : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        inet_ntop(ai->ai_family, src, txt, sizeof txt);
        snprintf(why, whylen,
                 "the host '%.200s' resolves to %s, a private, loopback, link-local or reserved "
                 "address (allow it with VIGIL_WEBHOOK_ALLOWED_HOSTS)",
                 host, txt);
        rc = NETGUARD_FORBIDDEN;
    }
    freeaddrinfo(res);
    return rc;
}

int netguard_url_host(const char *url, char *host_out, size_t cap)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0]) {
        size_t n = strlen(host);
        const char *h = host;
        if (host[0] == '[' && n > 2 && host[n - 1] == ']')
            h = host + 1, n -= 2; /* an IPv6 literal: without its brackets */
        if (n < cap) {
            memcpy(host_out, h, n);
            host_out[n] = '\0';
            rc = 0;
        }
    }
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

int netguard_check_url(const char *url, const char *allowed, int64_t deadline_ms, char *why,
                       size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, host[256];
    int rc = NETGUARD_BAD_URL;
    snprintf(why, whylen, "not an absolute http(s) URL with a host");
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
        goto done;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(why, whylen, "only http and https URLs are accepted, not '%.16s'", scheme);
        rc = NETGUARD_BAD_SCHEME;
        goto done;
    }
    if (netguard_url_host(url, host, sizeof host) != 0)
        goto done;
    rc = netguard_host_allowed(allowed, host) ? NETGUARD_OK
                                              : check_addresses(host, deadline_ms, why, whylen);
done:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}
