/* decision_parse.c - the parse stage of a decision: the Idempotency-Key header, the strict JSON
 * body and every field of it, and the request hash an idempotency record is compared by.
 * No database, no clock.  Costs O(body) (cJSON tree, two compact re-prints, one SHA-256). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"
#include "fields.h"
#include "json.h"
#include "sha256.h"
#include "validate.h"

static int bad(http_resp *resp, const char *field, const char *msg)
{
    http_problem(resp, 400, "validation_failed", field, "%s", msg);
    return -1;
}

int decision_idem_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n < 1 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return 0;
    return 1;
}

/* Presence, type and length of every member (fields.c). */
static int read_members(http_resp *resp, const cJSON *body, decision_input *in, const cJSON **meta)
{
    static const char *const allowed[] = {"user_id",    "user_external_id", "amount",
                                          "currency",   "merchant_id",      "merchant_category",
                                          "country",    "channel",          "occurred_at",
                                          "features",   "metadata",         "email",
                                          "ip_address", "device_id",        "card_fingerprint",
                                          "card_bin",   "card_country",     "shipping_country",
                                          NULL};
    if (field_no_unknown(resp, body, allowed) ||
        field_string(resp, body, "user_id", 36, 0, &in->user_id, NULL) ||
        field_string(resp, body, "user_external_id", 128, 0, &in->user_external_id, NULL) ||
        field_string(resp, body, "currency", 3, FIELD_REQUIRED, &in->currency, NULL) ||
        field_string(resp, body, "merchant_id", 128, FIELD_REQUIRED, &in->merchant_id, NULL) ||
        field_string(resp, body, "merchant_category", 4, FIELD_REQUIRED, &in->mcc, NULL) ||
        field_string(resp, body, "country", 2, FIELD_REQUIRED, &in->country, NULL) ||
        field_string(resp, body, "channel", 16, FIELD_REQUIRED, &in->channel, NULL) ||
        field_string(resp, body, "occurred_at", 40, 0, &in->occurred_at, NULL) ||
        field_object(resp, body, "features", 64 * 1024, 0, &in->features, NULL) ||
        field_object(resp, body, "metadata", DECISION_METADATA_MAX, FIELD_EXACT_NUMBERS, meta,
                     NULL) ||
        field_string(resp, body, "email", 254, 0, &in->email, NULL) ||
        field_string(resp, body, "ip_address", 64, 0, &in->ip_address, NULL) ||
        field_string(resp, body, "device_id", 256, 0, &in->device_id, NULL) ||
        field_string(resp, body, "card_fingerprint", 256, 0, &in->card_fingerprint, NULL) ||
        field_string(resp, body, "card_bin", 8, 0, &in->card_bin, NULL) ||
        field_string(resp, body, "card_country", 2, 0, &in->card_country, NULL) ||
        field_string(resp, body, "shipping_country", 2, 0, &in->shipping_country, NULL))
        return -1;
    return 0;
}

/* The identity fields: e-mail shape, an IPv4/IPv6 address (kept in canonical form), a BIN of
 * 6..8 digits, ISO 3166-1 country codes. */
static int check_identity(http_resp *resp, decision_input *in)
{
    size_t bin = in->card_bin ? strlen(in->card_bin) : 0;
    if (in->email && !val_email(in->email))
        return bad(resp, "email", "'email' must be an e-mail address");
    if (in->ip_address) {
        if (val_ip_canonical(in->ip_address, in->ip_canon, sizeof in->ip_canon) != 0)
            return bad(resp, "ip_address", "'ip_address' must be an IPv4 or IPv6 address");
        in->ip_address = in->ip_canon;
    }
    if (in->card_bin && (bin < 6 || bin > 8 || strspn(in->card_bin, "0123456789") != bin))
        return bad(resp, "card_bin", "'card_bin' must be 6 to 8 digits");
    if (in->card_country && !val_country(in->card_country))
        return bad(resp, "card_country",
                   "'card_country' must be an ISO 3166-1 alpha-2 code, e.g. \"DE\"");
    if (in->shipping_country && !val_country(in->shipping_country))
        return bad(resp, "shipping_country",
                   "'shipping_country' must be an ISO 3166-1 alpha-2 code, e.g. \"DE\"");
    return 0;
}

/* The user reference and the amount in minor units. */
static int check_user_and_amount(http_resp *resp, const cJSON *body, decision_input *in)
{
    if (!in->user_id == !in->user_external_id)
        return bad(resp, in->user_id ? "user_external_id" : "user_id",
                   "exactly one of 'user_id' and 'user_external_id' is required");
    if (in->user_id && !val_uuid(in->user_id))
        return bad(resp, "user_id", "'user_id' must be a UUID");
    const cJSON *amt = cJSON_GetObjectItemCaseSensitive(body, "amount");
    if (!amt)
        return bad(resp, "amount", "'amount' is required");
    if (!cJSON_IsNumber(amt) || amt->valuedouble != floor(amt->valuedouble) ||
        amt->valuedouble <= 0 || amt->valuedouble > DECISION_AMOUNT_MAX)
        return bad(resp, "amount",
                   "'amount' must be an integer number of minor units in 1..9007199254740991");
    in->amount = amt->valuedouble;
    return 0;
}

/* The payment's codes and time. */
static int check_codes(http_resp *resp, decision_input *in)
{
    if ((in->exponent = val_currency_exponent(in->currency)) < 0)
        return bad(resp, "currency", "'currency' must be an ISO 4217 code such as \"EUR\"");
    if (strlen(in->mcc) != 4 || strspn(in->mcc, "0123456789") != 4)
        return bad(resp, "merchant_category", "'merchant_category' must be a 4-digit MCC");
    if (!val_country(in->country))
        return bad(resp, "country", "'country' must be an ISO 3166-1 alpha-2 code, e.g. \"DE\"");
    if (strcmp(in->channel, "card_present") && strcmp(in->channel, "ecommerce") &&
        strcmp(in->channel, "transfer") && strcmp(in->channel, "wallet"))
        return bad(resp, "channel",
                   "'channel' must be card_present, ecommerce, transfer or wallet");
    if (in->occurred_at && !val_rfc3339(in->occurred_at))
        return bad(resp, "occurred_at", "'occurred_at' must be an RFC 3339 date-time");
    return 0;
}

/* The smallest magnitude that rounds to infinity as a float32 (FLT_MAX + half its last unit):
 * below it a double rounds to a finite float32, which is what is scored and stored. */
#define DECISION_FLOAT32_OVERFLOW 0x1.ffffffp+127

/* The client's features: at most 256, names of 1..128 characters, values null or numbers that
 * are finite as float32 (1e400 parses as inf and 1e39 rounds to inf: scoring inf while storing
 * null would make the snapshot lie, so both are refused). */
static int check_client_features(http_resp *resp, const cJSON *features)
{
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, features)
    {
        char field[160];
        snprintf(field, sizeof field, "features.%.128s", f->string);
        if (++n > DECISION_MAX_CLIENT_FEATURES)
            return bad(resp, "features", "at most 256 client features");
        if (strlen(f->string) == 0 || val_utf8_chars(f->string) > 128)
            return bad(resp, "features", "feature names must be 1..128 characters");
        if (!cJSON_IsNull(f) && !cJSON_IsNumber(f))
            return bad(resp, field, "client features must be numbers or null");
        if (cJSON_IsNumber(f) && !(fabs(f->valuedouble) < DECISION_FLOAT32_OVERFLOW))
            return bad(resp, field,
                       "client features must be finite float32 values (|x| <= 3.40282347e38)");
    }
    return 0;
}

int decision_parse_body(http_resp *resp, const cJSON *body, decision_input *in)
{
    const cJSON *meta = NULL;
    memset(in, 0, sizeof *in);
    if (read_members(resp, body, in, &meta) || check_user_and_amount(resp, body, in) ||
        check_codes(resp, in) || check_identity(resp, in) ||
        (in->features && check_client_features(resp, in->features)))
        return -1;
    in->amount_major = in->amount / pow(10, in->exponent);
    /* json_print_exact: cJSON's printer rounds 9007199254740991 to 9.00719925474099e+15 */
    if (in->features && !(in->features_text = json_print_exact(in->features)))
        goto oom;
    if (meta && !(in->metadata_text = json_print_exact(meta)))
        goto oom;
    return 0;
oom:
    http_problem(resp, 500, "internal", NULL, "out of memory");
    return -1;
}

void decision_input_free(decision_input *in)
{
    free(in->features_text);
    free(in->metadata_text);
    in->features_text = in->metadata_text = NULL;
}

/* The hash an idempotency record is compared by: method and path, then the exact body bytes. */
static void request_hash(const http_req *req, char out[65])
{
    static const char prefix[] = "POST /api/v1/transactions\n";
    sha256_ctx h;
    uint8_t digest[32];
    sha256_init(&h);
    sha256_update(&h, prefix, sizeof prefix - 1);
    sha256_update(&h, req->body, req->body_len);
    sha256_final(&h, digest);
    sha256_hex(digest, out);
}

int decision_stage_parse(decision_request *d)
{
    d->idem_key = http_header(d->req, "Idempotency-Key");
    if (d->idem_key && !decision_idem_key_ok(d->idem_key)) {
        http_problem(d->resp, 400, "validation_failed", "Idempotency-Key",
                     "Idempotency-Key must be 1..255 printable ASCII characters");
        return DECISION_STOP;
    }
    if (http_body_object(d->req, d->resp, &d->body) ||
        decision_parse_body(d->resp, d->body, &d->in))
        return DECISION_STOP;
    if (d->idem_key)
        request_hash(d->req, d->idem_hash);
    return DECISION_NEXT;
}
