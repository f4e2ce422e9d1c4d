/* netguard.h - the SSRF policy of outgoing webhook requests: which URLs an endpoint may have and
 * which addresses a delivery may connect to.
 *
 * Only http and https URLs.  A host resolving to an address that is not publicly routable is
 * refused: unspecified, loopback, private (RFC 1918, IPv6 unique local), shared (100.64/10),
 * link-local, multicast, reserved/benchmark/documentation ranges, and IPv6 forms that embed an
 * IPv4 address (v4-mapped, v4-translated, v4-compatible, NAT64 64:ff9b::/96, 6to4) are judged
 * by that address; Teredo and local NAT64 are refused outright.  A host written exactly as one of
 * the entries of VIGIL_WEBHOOK_ALLOWED_HOSTS (comma-separated, compared without regard to case) is
 * exempt. The check runs at create/update time on every address the name resolves to, and again at
 * delivery time on the address actually connected (dispatch.c's socket callback), so a name that
 * resolves differently later (DNS rebinding) cannot reach a refused address.
 *
 * Pure functions except netguard_check_url, which resolves names (resolve.h: blocks until the
 * answer or the caller's deadline, whichever comes first).  Thread-safe. */
#ifndef VIGIL_NETGUARD_H
#define VIGIL_NETGUARD_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

enum netguard_result {
    NETGUARD_OK = 0,
    NETGUARD_BAD_URL,    /* not an absolute URL with a host */
    NETGUARD_BAD_SCHEME, /* not http or https */
    NETGUARD_UNRESOLVED, /* the host does not resolve */
    NETGUARD_FORBIDDEN,  /* the host is or resolves to a refused address */
    NETGUARD_TIMEOUT,    /* no answer before the deadline, or too many lookups waiting */
};

/* 1 when the IPv4 address a (host byte order) is refused, else 0. */
int netguard_v4_forbidden(uint32_t a);
/* 1 when the IPv6 address b[16] is refused (embedded IPv4 addresses judged as IPv4), else 0. */
int netguard_v6_forbidden(const uint8_t b[16]);
/* 1 when sa (AF_INET or AF_INET6; any other family is refused) is refused, else 0. */
int netguard_addr_forbidden(const struct sockaddr *sa);

/* 1 when host (without IPv6 brackets) is one of the comma-separated entries of allowed (spaces
 * around entries ignored, case-insensitive), else 0.  allowed may be NULL or "". */
int netguard_host_allowed(const char *allowed, const char *host);

/* The host of url (IPv6 literals without brackets) into host_out[cap].  0, or -1 when url has no
 * host or it does not fit. */
int netguard_url_host(const char *url, char *host_out, size_t cap);

/* Checks url under the policy above: scheme, host, then every address it resolves to (looked up
 * before deadline_ms, clock_now_ms()) unless the host is allowed.  Returns a netguard_result;
 * why[whylen] gets a one-line reason for a refusal (naming the refused address). */
int netguard_check_url(const char *url, const char *allowed, int64_t deadline_ms, char *why,
                       size_t whylen);

#endif
