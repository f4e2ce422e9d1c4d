/* validate.h - field validators shared by the resources: UUIDs, ISO 3166-1 alpha-2 country codes,
 * e-mail sanity, string lengths in characters.  Pure functions, no allocation, thread-safe. */
#ifndef VIGIL_VALIDATE_H
#define VIGIL_VALIDATE_H

#include <stddef.h>

/* Canonical textual UUID: 36 chars, 8-4-4-4-12 hex, either case. */
int val_uuid(const char *s);
/* An assigned ISO 3166-1 alpha-2 code, upper-case ("DE", "JP"). */
int val_country(const char *s);
/* local@domain.tld sanity: 3..254 bytes, one '@', no spaces/controls, a dot in the domain. */
int val_email(const char *s);
/* Minor-unit exponent of an active ISO 4217 currency code ("EUR" -> 2, "JPY" -> 0, "KWD" -> 3),
 * or -1 when the code is not one. */
int val_currency_exponent(const char *s);
/* RFC 3339 date-time shape: YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM), 't'/'z'
 * accepted.  Ranges (month 13, Feb 30) are left to PostgreSQL's parser. */
int val_rfc3339(const char *s);
/* An IPv4 or IPv6 address (inet_pton's syntax) rewritten canonically into out[cap] (inet_ntop:
 * dotted quad, or lower-case RFC 5952 IPv6).  Returns 0, or -1 when s is not one or cap is too
 * small (48 always fits). */
int val_ip_canonical(const char *s, char *out, size_t cap);
/* Number of Unicode code points in valid UTF-8 s. */
size_t val_utf8_chars(const char *s);

#endif
