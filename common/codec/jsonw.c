/* jsonw.c: hand-written JSON text (see jsonw.h). */
#include "codec/jsonw.h"

#include <string.h>

/* The escape of byte c, one that needs escaping ('"', '\\' or below 0x20),
 * as jansson writes it: control characters without a short form become
 * \u00XX with upper-case hex digits. Returns a literal or tmp. */
static const char *jw_escape(unsigned char c, char tmp[7])
{
    static const char hex[] = "0123456789ABCDEF";

    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        break;
    }
    memcpy(tmp, "\\u00", 4);
    tmp[4] = hex[c >> 4];
    tmp[5] = hex[c & 0x0f];
    tmp[6] = '\0';
    return tmp;
}

/* Bytes the escape of c adds beyond c itself: 0 when c is copied. */
static size_t jw_extra(unsigned char c)
{
    if (c >= 0x20)
        return c == '"' || c == '\\' ? 1 : 0;
    return c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t' ? 1 : 5;
}

size_t jw_string_len(const char *s, size_t len)
{
    size_t n = len + 2, i;

    for (i = 0; i < len; i++)
        n += jw_extra((unsigned char)s[i]);
    return n;
}

char *jw_string_put(char *dst, const char *s, size_t len)
{
    size_t i, run = 0;
    char tmp[7];

    *dst++ = '"';
    for (i = 0; i < len; i++) {
        const char *e = NULL;
        size_t elen;

        if (jw_extra((unsigned char)s[i]) == 0)
            continue;
        e = jw_escape((unsigned char)s[i], tmp);
        /* copy the plain bytes before this one in one go */
        memcpy(dst, s + run, i - run);
        dst += i - run;
        elen = strlen(e);
        memcpy(dst, e, elen);
        dst += elen;
        run = i + 1;
    }
    memcpy(dst, s + run, len - run);
    dst += len - run;
    *dst++ = '"';
    return dst;
}

char *jw_int_put(char *dst, int64_t v)
{
    char digits[JW_INT_MAX_LEN];
    /* work on the magnitude as unsigned so INT64_MIN does not overflow */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        *dst++ = '-';
    while (n > 0)
        *dst++ = digits[--n];
    return dst;
}

#define JW_MSG_HEAD "{\"uuid\":"
#define JW_MSG_MID  ",\"msg\":"
#define JW_MSG_TS   ",\"ts\":"

size_t jw_message_len(const char *uuid, const char *msg, size_t len)
{
    return sizeof(JW_MSG_HEAD) - 1 + jw_string_len(uuid, strlen(uuid)) + sizeof(JW_MSG_MID) - 1 +
           jw_string_len(msg, len) + sizeof(JW_MSG_TS) - 1 + JW_INT_MAX_LEN + 1;
}

char *jw_message_put(char *dst, const char *uuid, const char *msg, size_t len, int64_t ts)
{
    memcpy(dst, JW_MSG_HEAD, sizeof(JW_MSG_HEAD) - 1);
    dst += sizeof(JW_MSG_HEAD) - 1;
    dst = jw_string_put(dst, uuid, strlen(uuid));
    memcpy(dst, JW_MSG_MID, sizeof(JW_MSG_MID) - 1);
    dst += sizeof(JW_MSG_MID) - 1;
    dst = jw_string_put(dst, msg, len);
    memcpy(dst, JW_MSG_TS, sizeof(JW_MSG_TS) - 1);
    dst += sizeof(JW_MSG_TS) - 1;
    dst = jw_int_put(dst, ts);
    *dst++ = '}';
    return dst;
}
