/* b64.c: standard base64 (see b64.h). */
#include "codec/b64.h"

#include <stdbool.h>
#include <stdint.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encode(const unsigned char *src, size_t n, char *dst)
{
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = b64_alphabet[(v >> 6) & 63];
        dst[o++] = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);

        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}

/* The 6-bit value of c, or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int b64_decode(const char *src, size_t n, unsigned char *dst, size_t *out_len)
{
    size_t i, o = 0;

    if (n % 4 != 0)
        return -1;
    for (i = 0; i < n; i += 4) {
        int a = b64_value(src[i]), b = b64_value(src[i + 1]);
        int c = src[i + 2] == '=' ? 0 : b64_value(src[i + 2]);
        int d = src[i + 3] == '=' ? 0 : b64_value(src[i + 3]);
        bool last = i + 4 == n;
        uint32_t v;

        if (a < 0 || b < 0 || c < 0 || d < 0)
            return -1;
        if (!last && (src[i + 2] == '=' || src[i + 3] == '='))
            return -1;
        if (src[i + 2] == '=' && src[i + 3] != '=')
            return -1;
        v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o++] = (unsigned char)(v >> 16);
        if (src[i + 2] != '=')
            dst[o++] = (unsigned char)(v >> 8);
        if (src[i + 3] != '=')
            dst[o++] = (unsigned char)v;
    }
    *out_len = o;
    return 0;
}
