/* uri.c: the query string and echo helpers of the server (see uri.h). */
#include "http/uri.h"

#include <string.h>

/* Value of one hex digit, or -1. */
static int hu_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t hu_form_decode(char *s)
{
    char *start = s, *out = s;

    for (; *s; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && hu_hex(s[1]) >= 0 && hu_hex(s[2]) >= 0) {
            *out++ = (char)(hu_hex(s[1]) * 16 + hu_hex(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
    return (size_t)(out - start);
}

int hu_query_split(char *query, const char **keys, const char **values, int max, int *bad)
{
    char *p, *next;
    int n = 0;

    for (p = query; p && n < max; p = next) {
        char *eq;
        size_t klen, vlen = 0;

        next = strchr(p, '&');
        if (next)
            *next++ = '\0';
        if (!*p)
            continue;
        eq = strchr(p, '=');
        if (eq)
            *eq++ = '\0';
        klen = hu_form_decode(p);
        if (eq)
            vlen = hu_form_decode(eq);
        keys[n] = p;
        values[n] = eq ? eq : "";
        if (strlen(p) != klen || (eq && strlen(eq) != vlen)) {
            if (bad)
                *bad = n;
            return -1;
        }
        n++;
    }
    return n;
}

/* Length of the valid UTF-8 sequence at s (1..4; s is NUL-terminated, so
 * a truncated sequence stops at the NUL), or 0 when the bytes there are
 * not one (overlong forms and surrogates included). */
static size_t hu_utf8_len(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void hu_echo_scrub(char *s, size_t max)
{
    unsigned char *p = (unsigned char *)s;
    size_t off = 0, n;

    while (p[off]) {
        n = hu_utf8_len(p + off);
        if (n == 0) {
            p[off] = '?';
            n = 1;
        }
        if (off + n > max) {
            memcpy(p + off, "...", 4);
            return;
        }
        off += n;
    }
}
