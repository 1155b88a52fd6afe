/* utf8.c: UTF-8 validation (see utf8.h). */
#include "codec/utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    uint32_t cp;
    size_t n, i;

    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4) /* continuation byte, overlong lead, past U+10FFFF */
        return 0;
    n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (len < n)
        return 0;
    cp = c & (0x7fu >> n);
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0; /* overlong */
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        /* ASCII runs eight bytes at a time */
        if (len - i >= 8) {
            uint64_t w;

            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
        } else {
            size_t n = utf8_seq_len(p + i, len - i);

            if (n == 0)
                return false;
            i += n;
        }
    }
    return true;
}
