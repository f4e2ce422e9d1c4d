/* users.c - the /api/v1/users resource: create, list (keyset pages, newest first), get, partial
 * update, delete.  All SQL is static and parameterised; rows are turned into JSON here.
 * Costs: one statement per request (list: one indexed range scan of limit+1 rows). */
#include "users.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "fields.h"
#include "json.h"
#include "validate.h"

#define USER_METADATA_MAX 4096

/* Column list shared by every statement that returns users; user_row() reads it by index. */
#define USER_COLS                                                                                  \
    "id, external_id, email, name, country, metadata::text, "                                      \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                \
    "(extract(epoch FROM created_at) * 1000000)::bigint"

static void add_text_or_null(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddStringToObject(o, name, PQgetvalue(r, row, col));
}

cJSON *users_row_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, 0));
    cJSON_AddStringToObject(o, "external_id", PQgetvalue(r, row, 1));
    add_text_or_null(o, "email", r, row, 2);
    add_text_or_null(o, "name", r, row, 3);
    add_text_or_null(o, "country", r, row, 4);
    /* PostgreSQL's jsonb text as it is: parsing it into doubles and printing them again would
     * turn 9007199254740991 into 9.00719925474099e+15 */
    cJSON_AddRawToObject(o, "metadata", PQgetvalue(r, row, 5));
    cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 6));
    cJSON_AddStringToObject(o, "updated_at", PQgetvalue(r, row, 7));
    return o;
}

/* Path parameter {id} as a UUID, or 400. */
static int user_id_param(http_req *req, http_resp *resp, const char **id)
{
    *id = req->nparams > 0 ? req->params[0] : NULL;
    if (!*id || !val_uuid(*id)) {
        http_problem(resp, 400, "validation_failed", "id", "user id must be a UUID");
        return -1;
    }
    return 0;
}

typedef struct user_input {
    const char *external_id, *email, *name, *country;
    const cJSON *metadata;
    int has_email, has_name, has_country, has_metadata;
    char *metadata_text; /* malloc'd compact JSON of metadata, or NULL */
} user_input;

/* Reads and validates the mutable fields (and external_id when creating). */
static int read_fields(http_resp *resp, const cJSON *body, int creating, user_input *in)
{
    if (creating &&
        field_string(resp, body, "external_id", 128, FIELD_REQUIRED, &in->external_id, NULL))
        return -1;
    if (field_string(resp, body, "email", 254, FIELD_NULLABLE, &in->email, &in->has_email) ||
        field_string(resp, body, "name", 256, FIELD_NULLABLE, &in->name, &in->has_name) ||
        field_string(resp, body, "country", 2, FIELD_NULLABLE, &in->country, &in->has_country) ||
        field_object(resp, body, "metadata", USER_METADATA_MAX, FIELD_EXACT_NUMBERS, &in->metadata,
                     &in->has_metadata))
        return -1;
    if (in->email && !val_email(in->email)) {
        http_problem(resp, 400, "validation_failed", "email", "'email' is not a valid address");
        return -1;
    }
    if (in->country && !val_country(in->country)) {
        http_problem(resp, 400, "validation_failed", "country",
                     "'country' must be an ISO 3166-1 alpha-2 code in upper case, e.g. \"DE\"");
        return -1;
    }
    if (in->metadata && !(in->metadata_text = json_print_exact(in->metadata))) {
        http_problem(resp, 500, "internal", NULL, "out of memory");
        return -1;
    }
    return 0;
}

static void respond_user(http_resp *resp, int status, const PGresult *r)
{
    http_json(resp, status, users_row_json(r, 0));
}

void users_create(http_req *req, http_resp *resp)
{
    static const char *const allowed[] = {"external_id", "email",    "name",
                                          "country",     "metadata", NULL};
    cJSON *body = NULL;
    db_conn *c = NULL;
    PGresult *r = NULL;
    user_input in = {0};
    if (http_body_object(req, resp, &body) || field_no_unknown(resp, body, allowed) ||
        read_fields(resp, body, 1, &in))
        goto done;
    if (!(c = dbreq_acquire(req, resp)))
        goto done;
    const char *vals[] = {in.external_id, in.email, in.name, in.country,
                          in.metadata_text ? in.metadata_text : "{}"};
    int rc = dbreq_query(req, resp, c,
                         "INSERT INTO users (external_id, email, name, country, metadata) "
                         "VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING " USER_COLS,
                         5, vals, &r);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23505") == 0)
        http_problem(resp, 409, "conflict", "external_id",
                     "a user with this external_id already exists");
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK) {
        snprintf(resp->location, sizeof resp->location, "/api/v1/users/%s", PQgetvalue(r, 0, 0));
        respond_user(resp, 201, r);
    }
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
    free(in.metadata_text);
    cJSON_Delete(body);
}

void users_list(http_req *req, http_resp *resp)
{
    static const char *const args[] = {"limit", "cursor", NULL};
    field_page pg;
    db_conn *c = NULL;
    PGresult *r = NULL;
    if (field_page_args(req, resp, args, &pg))
        return;
    if (!(c = dbreq_acquire(req, resp)))
        return;
    const char *vals[] = {pg.cursor_us, pg.cursor_id, pg.limit_plus_1};
    int rc = dbreq_query(req, resp, c,
                         "SELECT " USER_COLS " FROM users WHERE $1::bigint IS NULL OR "
                         "(created_at, id) < ('epoch'::timestamptz + $1::bigint * interval "
                         "'1 microsecond', $2::uuid) ORDER BY created_at DESC, id DESC LIMIT $3",
                         3, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    if (rc != DB_OK)
        goto done;
    cJSON *out = dbreq_page(r, pg.limit, 8, 0, users_row_json);
    http_json(resp, 200, out);
done:
    PQclear(r);
}

void users_get(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (user_id_param(req, resp, &id) ||
        dbreq_fetch_by_id(req, resp, "SELECT " USER_COLS " FROM users WHERE id = $1", id, "user", 0,
                          &r))
        return;
    respond_user(resp, 200, r);
    PQclear(r);
}

void users_update(http_req *req, http_resp *resp)
{
    static const char *const mutable_fields[] = {"email", "name", "country", "metadata", NULL};
    static const char *const immutable[] = {"id", "external_id", "created_at", "updated_at", NULL};
    const char *id;
    cJSON *body = NULL;
    db_conn *c = NULL;
    PGresult *r = NULL;
    user_input in = {0};
    if (user_id_param(req, resp, &id) || http_body_object(req, resp, &body))
        goto done;
    for (const char *const *f = immutable; *f; f++) {
        if (cJSON_GetObjectItemCaseSensitive(body, *f)) {
            http_problem(resp, 400, "immutable_field", *f, "'%s' cannot be changed", *f);
            goto done;
        }
    }
    if (field_no_unknown(resp, body, mutable_fields) || read_fields(resp, body, 0, &in))
        goto done;
    if (!(c = dbreq_acquire(req, resp)))
        goto done;
    const char *vals[] = {id,
                          in.has_email ? "t" : "f",
                          in.email,
                          in.has_name ? "t" : "f",
                          in.name,
                          in.has_country ? "t" : "f",
                          in.country,
                          in.has_metadata ? "t" : "f",
                          in.metadata_text};
    int rc = dbreq_query(req, resp, c,
                         "UPDATE users SET "
                         "email = CASE WHEN $2::bool THEN $3 ELSE email END, "
                         "name = CASE WHEN $4::bool THEN $5 ELSE name END, "
                         "country = CASE WHEN $6::bool THEN $7 ELSE country END, "
                         "metadata = CASE WHEN $8::bool THEN $9::jsonb ELSE metadata END, "
                         "updated_at = clock_timestamp() WHERE id = $1 RETURNING " USER_COLS,
                         9, vals, &r);
    if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && PQntuples(r) == 0)
        http_problem(resp, 404, "not_found", NULL, "no user with id %s", id);
    else if (rc == DB_OK)
        respond_user(resp, 200, r);
done:
    PQclear(r);
    if (c)
        dbreq_release(req, c);
    free(in.metadata_text);
    cJSON_Delete(body);
}

void users_delete(http_req *req, http_resp *resp)
{
    const char *id;
    PGresult *r = NULL;
    if (user_id_param(req, resp, &id))
        return;
    db_conn *c = dbreq_acquire(req, resp);
    if (!c)
        return;
    const char *vals[] = {id};
    int rc = dbreq_query(req, resp, c, "DELETE FROM users WHERE id = $1", 1, vals, &r);
    dbreq_release(req, c);
    if (rc == DB_ERROR && strcmp(db_sqlstate(r), "23503") == 0)
        http_problem(resp, 409, "conflict", NULL, "user %s has transactions and cannot be deleted",
                     id);
    else if (rc == DB_ERROR)
        dbreq_internal(req, resp, r);
    else if (rc == DB_OK && atoi(PQcmdTuples(r)) == 0)
        http_problem(resp, 404, "not_found", NULL, "no user with id %s", id);
    else if (rc == DB_OK)
        http_raw(resp, 204, NULL, NULL, 0);
    PQclear(r);
}
