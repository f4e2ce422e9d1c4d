/* listset.h - immutable in-memory sets, one per list version (issue 12 lists), and the one
 * canonical text of a list item.
 *
 * Owns: what a list item is (its kind's validation and canonical text), and the set a decision
 * probes: built once from a version's items, then read-only.
 *   - string: exact bytes (case-sensitive, no trimming), 1..LISTSET_ITEM_MAX bytes of valid UTF-8
 *     without U+0000 (PostgreSQL text cannot hold it).
 *     Open-addressing hash set (load <= 1/2) of 32-bit arena offsets + 32-bit hash tags over one
 *     string arena; lookup = one hash + ~1.5 probes, memcmp on a tag match.
 *   - number: a finite double; -0 and 0 are the same item.  Open-addressing hash set of the bit
 *     patterns.  Canonical text: the shortest "%.{1..17}g" that reads back to the same double
 *     ("12", "0.1", "1e+21"), so 12, 12.0 and 1.2e1 are one item.
 *   - ip: single IPv4/IPv6 addresses and CIDR ranges.  Items are merged into sorted disjoint
 *     ranges per family; lookup is a binary search (<= 21 steps for 1M ranges).
 *     Canonical text: inet_ntop's ("2001:db8::1", "10.0.0.0/8").  Rules, decided here once:
 *       - a CIDR whose host bits are set ("10.0.0.1/8") is REFUSED (the message names the network
 *         meant: "10.0.0.0/8"), never silently masked: a typo must not widen a list unseen;
 *       - "/32" (IPv4) and "/128" (IPv6) are the single address: "1.2.3.4/32" canonicalises to
 *         "1.2.3.4" (one item, adding both is idempotent);
 *       - IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, and CIDRs inside ::ffff:0:0/96 with a prefix
 *         >= 96) ARE the IPv4 address/range: "::ffff:10.0.0.1" canonicalises to "10.0.0.1" and
 *         "::ffff:10.0.0.0/104" to "10.0.0.0/8", items and probes alike.  A v6 CIDR with prefix
 *         < 96 that spans the mapped block covers only IPv6 addresses: "::/0" is every IPv6
 *         address, "0.0.0.0/0" every IPv4 one; the families never mix;
 *       - zone ids ("fe80::1%eth0"), leading zeros ("010.0.0.1"), spaces, a prefix beyond the
 *         family's width or with leading zeros/sign ("/08", "/+8") are refused.
 * Costs (measured by `make bench`, bin/tests/bench_rules): 1M string items of 26-29 bytes hold
 * 48.7 MB (a 16 MiB table + a 31 MB arena); a lookup is a few hundred ns, far under 2 us.  Building
 * is O(n) (strings, numbers) or O(n log n) (ip) and allocates; lookups never allocate, never block,
 * and are safe from any number of threads at once on one set (it is immutable after listset_build).
 * API side only (allocates); libc only. */
#ifndef VIGIL_LISTSET_H
#define VIGIL_LISTSET_H

#include <stddef.h>
#include <stdint.h>

typedef enum listset_kind { LISTSET_STRING = 1, LISTSET_NUMBER = 2, LISTSET_IP = 3 } listset_kind;

enum listset_status {
    LISTSET_OK = 0,
    LISTSET_E_INVALID = -1, /* the item is not one of the kind (message in err) */
    LISTSET_E_NOMEM = -2,   /* allocation failed or a size bound (LISTSET_ITEMS_MAX) was hit */
};

#define LISTSET_ITEM_MAX 512       /* bytes of one item's text (any kind) */
#define LISTSET_CANON_MAX 64       /* buffer that holds any number or ip canonical text + NUL */
#define LISTSET_ITEMS_MAX 16777216 /* items one set may hold (2^24) */

/* "string" / "number" / "ip", or NULL for a value outside the enum. */
const char *listset_kind_name(listset_kind k);
/* The kind named by name[0..len), or 0 when it names none. */
listset_kind listset_kind_parse(const char *name, size_t len);

/* Validates one item of kind k given as text in[0..len) and writes its canonical text (NUL-
 * terminated) to out[0..outlen).  The canonical text is the item's identity: two inputs are the
 * same item exactly when their canonical texts are equal (store and compare that).  For strings
 * it is the input itself (outlen must exceed len); for numbers the text must be a JSON number
 * (no leading '+', no leading zeros, no hex/inf/nan) and finite as a double; ip as above.
 * Returns LISTSET_OK, or LISTSET_E_INVALID with a message in err[0..errlen) that says what was
 * expected (errlen may be 0).  Never allocates; thread-safe. */
int listset_canon(listset_kind k, const char *in, size_t len, char *out, size_t outlen, char *err,
                  size_t errlen);

/* The canonical text of the number v (finite; -0 gives "0") in out[0..outlen >= 32).  Returns
 * LISTSET_OK, or LISTSET_E_INVALID for a non-finite v or a short buffer. */
int listset_number_canon(double v, char *out, size_t outlen);

/* An IP address or range in one form for both families.  IPv4 (and IPv4-mapped IPv6) is held as
 * ::ffff:a.b.c.d with v4 = 1 and prefix counted in IPv4 bits (0..32); IPv6 has prefix 0..128. */
typedef struct listset_ip {
    uint8_t addr[16]; /* network order; host bits beyond prefix are zero */
    uint8_t prefix;   /* 32 / 128 for a single address */
    uint8_t v4;       /* 1: IPv4 (or mapped) */
} listset_ip;

/* Parses an address or CIDR in[0..len) under the rules above (a single address when there is no
 * '/').  Returns LISTSET_OK or LISTSET_E_INVALID (message in err, errlen may be 0). */
int listset_ip_parse(const char *in, size_t len, listset_ip *out, char *err, size_t errlen);

/* ---- building -------------------------------------------------------------------------------- */

typedef struct listset_builder listset_builder;
typedef struct listset listset;

/* A builder for a set of kind k; expected is a sizing hint (0 is fine).  NULL when out of memory
 * or k is not a kind.  Free with listset_builder_free unless handed to listset_build. */
listset_builder *listset_builder_new(listset_kind k, size_t expected);

/* Adds one item given as text (it is validated and canonicalised as listset_canon does; adding the
 * same item twice is not an error).  Returns LISTSET_OK, LISTSET_E_INVALID (err says why; the
 * builder is unchanged and still usable) or LISTSET_E_NOMEM (the builder is still the caller's to
 * free, its later adds fail too). */
int listset_builder_add(listset_builder *b, const char *item, size_t len, char *err, size_t errlen);

/* Adds a number item (a number builder only).  Same returns; a non-finite v is LISTSET_E_INVALID.
 */
int listset_builder_add_number(listset_builder *b, double v);

/* Consumes the builder (always: it is freed whatever happens) and returns the immutable set, or
 * NULL when out of memory or after an earlier LISTSET_E_NOMEM.  The set is freed by listset_free.
 */
listset *listset_build(listset_builder *b);

/* Frees a builder never handed to listset_build.  NULL is a no-op. */
void listset_builder_free(listset_builder *b);

/* Frees a set.  NULL is a no-op.  The caller guarantees no thread still reads it. */
void listset_free(listset *s);

/* ---- reading (no allocation, thread-safe) ---------------------------------------------------- */

listset_kind listset_get_kind(const listset *s);
/* Distinct items (after canonicalisation; for ip: distinct addresses/ranges before merging). */
size_t listset_count(const listset *s);
/* Bytes the set holds (everything listset_build allocated), for the README and /metrics. */
size_t listset_bytes(const listset *s);

/* 1 when the string s[0..len) is an item of string set s (exact bytes), else 0; 0 for another
 * kind. */
int listset_has_string(const listset *s, const char *str, size_t len);
/* 1 when v is an item of number set s (-0 == 0; NaN is never a member); 0 for another kind. */
int listset_has_number(const listset *s, double v);
/* 1 when the single address a (prefix ignored) lies in an item (address or range) of ip set s. */
int listset_has_ip(const listset *s, const listset_ip *a);
/* listset_has_ip of the address text str[0..len): 0 when it is not an address (a CIDR is not an
 * address) or s is not an ip set. */
int listset_has_ip_text(const listset *s, const char *str, size_t len);

#endif
