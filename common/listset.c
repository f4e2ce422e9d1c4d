/* listset.c - see listset.h.  Stub: compiles, refuses everything (being implemented). */
#include "listset.h"

#include <stddef.h>

const char *listset_kind_name(listset_kind k)
{
    return k == LISTSET_STRING   ? "string"
           : k == LISTSET_NUMBER ? "number"
           : k == LISTSET_IP     ? "ip"
                                 : NULL;
}
listset_kind listset_kind_parse(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return 0;
}
int listset_canon(listset_kind k, const char *in, size_t len, char *out, size_t outlen, char *err,
                  size_t errlen)
{
    (void)k;
    (void)in;
    (void)len;
    (void)out;
    (void)outlen;
    (void)err;
    (void)errlen;
    return LISTSET_E_INVALID;
}
int listset_number_canon(double v, char *out, size_t outlen)
{
    (void)v;
    (void)out;
    (void)outlen;
    return LISTSET_E_INVALID;
}
int listset_ip_parse(const char *in, size_t len, listset_ip *out, char *err, size_t errlen)
{
    (void)in;
    (void)len;
    (void)out;
    (void)err;
    (void)errlen;
    return LISTSET_E_INVALID;
}
listset_builder *listset_builder_new(listset_kind k, size_t expected)
{
    (void)k;
    (void)expected;
    return NULL;
}
int listset_builder_add(listset_builder *b, const char *item, size_t len, char *err, size_t errlen)
{
    (void)b;
    (void)item;
    (void)len;
    (void)err;
    (void)errlen;
    return LISTSET_E_NOMEM;
}
int listset_builder_add_number(listset_builder *b, double v)
{
    (void)b;
    (void)v;
    return LISTSET_E_NOMEM;
}
listset *listset_build(listset_builder *b)
{
    (void)b;
    return NULL;
}
void listset_builder_free(listset_builder *b)
{
    (void)b;
}
void listset_free(listset *s)
{
    (void)s;
}
listset_kind listset_get_kind(const listset *s)
{
    (void)s;
    return 0;
}
size_t listset_count(const listset *s)
{
    (void)s;
    return 0;
}
size_t listset_bytes(const listset *s)
{
    (void)s;
    return 0;
}
int listset_has_string(const listset *s, const char *str, size_t len)
{
    (void)s;
    (void)str;
    (void)len;
    return 0;
}
int listset_has_number(const listset *s, double v)
{
    (void)s;
    (void)v;
    return 0;
}
int listset_has_ip(const listset *s, const listset_ip *a)
{
    (void)s;
    (void)a;
    return 0;
}
int listset_has_ip_text(const listset *s, const char *str, size_t len)
{
    (void)s;
    (void)str;
    (void)len;
    return 0;
}
