/* lists.h - the list resource (issue 12): named lists of strings, numbers or IP addresses/CIDR
 * ranges that rules probe with `in @name`.
 *
 *   POST   /api/v1/lists                     {name, kind, description} -> 201
 *   GET    /api/v1/lists, /api/v1/lists/{id}
 *   DELETE /api/v1/lists/{id}                204; 409 list_in_use when the active policy's rules
 *                                            name it
 *   POST   /api/v1/lists/{id}/items          {"items": [...]} adds (idempotent), <= 100,000 a call
 *   DELETE /api/v1/lists/{id}/items          same body, removes (absent items are no error)
 *   GET    /api/v1/lists/{id}/items          pages of items in byte order
 *   GET    /api/v1/lists/{id}/items/{value}  membership, answered from the in-memory set of the
 *                                            current version (an address inside a CIDR item counts)
 *   GET    /api/v1/lists/{id}/changes        the list's audit: who (API key id and name), when,
 *                                            items added/removed, the version after
 * Items are stored in their canonical text (listset_canon, common/listset.h), so "1.2.3.4/32" and
 * "1.2.3.4" are one item.  Every change bumps the list's version (when it changed anything), is
 * recorded in list_changes, and NOTIFYs "vigil_lists" so every replica rebuilds its set
 * (listcache.h).  A change is one statement: items, version, count and audit commit together. */
#ifndef VIGIL_LISTS_H
#define VIGIL_LISTS_H

#include "http.h"

#define LISTS_ITEMS_PER_CALL 100000

void lists_create(http_req *req, http_resp *resp);
void lists_list(http_req *req, http_resp *resp);
void lists_get(http_req *req, http_resp *resp);
void lists_delete(http_req *req, http_resp *resp);
void lists_items_add(http_req *req, http_resp *resp);
void lists_items_remove(http_req *req, http_resp *resp);
void lists_items_page(http_req *req, http_resp *resp);
void lists_item_member(http_req *req, http_resp *resp);
void lists_changes(http_req *req, http_resp *resp);

#endif
