/* validate.c - see validate.h. */
#include "validate.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int val_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* Officially assigned ISO 3166-1 alpha-2 codes (249), concatenated. */
static const char countries[] =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCI"
    "CKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQ"
    "GRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLS"
    "LTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPG"
    "PHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTK"
    "TLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

int val_country(const char *s)
{
    if (!s || strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
        return 0;
    for (size_t i = 0; i + 1 < sizeof countries; i += 2)
        if (countries[i] == s[0] && countries[i + 1] == s[1])
            return 1;
    return 0;
}

int val_email(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > 254)
        return 0;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return 0;
    const char *dot = strrchr(at + 1, '.');
    if (!dot || dot == at + 1 || dot[1] == '\0')
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

size_t val_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* Active ISO 4217 codes by minor-unit exponent (ISO 4217 amendment list; funds codes included). */
static const char cur0[] = "BIFCLPDJFGNFISKJPYKMFKRWPYGRWFUGXUYIVNDVUVXAFXOFXPF";
static const char cur3[] = "BHDIQDJODKWDLYDOMRTND";
static const char cur4[] = "CLFUYW";
static const char cur2[] =
    "AEDAFNALLAMDANGAOAARSAUDAWGAZNBAMBBDBDTBGNBMDBNDBOBBOVBRLBSDBTNBWPBYNBZDCADCDFCHECHFCHWCNY"
    "COPCOUCRCCUCCUPCVECZKDKKDOPDZDEGPERNETBEURFJDFKPGBPGELGHSGIPGMDGTQGYDHKDHNLHTGHUFIDRILSINR"
    "IRRJMDKESKGSKHRKPWKYDKZTLAKLBPLKRLRDLSLMADMDLMGAMKDMMKMNTMOPMRUMURMVRMWKMXNMXVMYRMZNNADNGN"
    "NIONOKNPRNZDPABPENPGKPHPPKRPLNQARRONRSDRUBSARSBDSCRSDGSEKSGDSHPSLESLLSOSSRDSSPSTNSVCSYPSZL"
    "THBTJSTMTTOPTRYTTDTWDTZSUAHUSDUSNUYUUZSVEDVESWSTXCDYERZARZMWZWL";

static int in_list(const char *list, const char *s)
{
    for (size_t i = 0; list[i]; i += 3)
        if (memcmp(list + i, s, 3) == 0)
            return 1;
    return 0;
}

int val_currency_exponent(const char *s)
{
    if (!s || strlen(s) != 3)
        return -1;
    for (int i = 0; i < 3; i++)
        if (s[i] < 'A' || s[i] > 'Z')
            return -1;
    if (in_list(cur2, s))
        return 2;
    if (in_list(cur0, s))
        return 0;
    if (in_list(cur3, s))
        return 3;
    if (in_list(cur4, s))
        return 4;
    return -1;
}

int val_rfc3339(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++) {
        char c = s[i];
        if (shape[i] == 'd'   ? !(c >= '0' && c <= '9')
            : shape[i] == 'T' ? (c != 'T' && c != 't')
                              : c != shape[i])
            return 0;
    }
    if (s[i] == '.') {
        size_t d = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++)
            d++;
        if (d == 0 || d > 9)
            return 0;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0')
        return 1;
    return (s[i] == '+' || s[i] == '-') && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' &&
           s[i + 2] <= '9' && s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9' &&
           s[i + 5] >= '0' && s[i + 5] <= '9' && s[i + 6] == '\0';
}

int val_ip_canonical(const char *s, char *out, size_t cap)
{
    unsigned char a[16];
    int af = strchr(s, ':') ? AF_INET6 : AF_INET;
    if (cap < 48 || inet_pton(af, s, a) != 1 || !inet_ntop(af, a, out, (socklen_t)cap))
        return -1;
    return 0;
}
