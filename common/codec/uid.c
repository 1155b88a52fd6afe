/* uid.c: UUID generation and validation (see uid.h). Generation is a
 * random (version 4) UUID whose 122 random bits come from the kernel's
 * CSPRNG through getrandom(2), read 4 KiB at a time into a pool so that a
 * busy facade pays one system call per 256 UUIDs instead of one (plus a
 * reseed of random(3)) per UUID as libuuid does; libuuid is the fallback
 * when getrandom is unavailable. Validation is a pure syntax check. */
#include "codec/uid.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

#define UID_BYTES      16
#define UID_POOL_BYTES 4096 /* 256 UUIDs per getrandom call */

/* Random bytes not handed out yet are pool[used..UID_POOL_BYTES). The pool
 * belongs to the process: uid_generate is for the event-loop thread only
 * (not thread-safe), and a forked child would repeat the parent's ids
 * (the services never fork). */
static unsigned char uid_pool[UID_POOL_BYTES];
static size_t uid_used = UID_POOL_BYTES;

/* Take 16 fresh random bytes into out. 0, or -1 when the kernel gave none. */
static int uid_random16(unsigned char out[UID_BYTES])
{
    if (uid_used + UID_BYTES > UID_POOL_BYTES) {
        size_t got = 0;

        while (got < UID_POOL_BYTES) {
            ssize_t n = getrandom(uid_pool + got, UID_POOL_BYTES - got, 0);

            if (n <= 0)
                return -1; /* ENOSYS, or a signal before any byte: fall back */
            got += (size_t)n;
        }
        uid_used = 0;
    }
    memcpy(out, uid_pool + uid_used, UID_BYTES);
    /* never hand the same bytes out twice */
    memset(uid_pool + uid_used, 0, UID_BYTES);
    uid_used += UID_BYTES;
    return 0;
}

/* Write a fresh random UUID, lower case, NUL-terminated, into out
 * (borrowed, UID_STR_LEN + 1 bytes). */
void uid_generate(char out[UID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char u[UID_BYTES];
    size_t i, o = 0;

    if (uid_random16(u) != 0) {
        uuid_generate_random(u);
        uuid_unparse_lower(u, out);
        return;
    }
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* variant 10xx (RFC 4122) */
    for (i = 0; i < UID_BYTES; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 0x0f];
    }
    out[o] = '\0';
}
/* True for a hex digit of either case; not locale-dependent like isxdigit. */
static bool uid_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* True when s (borrowed, may be NULL) is exactly 36 characters: hex digits
 * with hyphens at 8, 13, 18 and 23. The version nibble is not checked, so
 * ids from other generators are accepted. Never reads past the NUL. */
bool uid_is_valid(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; i < UID_STR_LEN; i++) {
        int hyphen = i == 8 || i == 13 || i == 18 || i == 23;

        if (s[i] == '\0')
            return false;
        if (hyphen ? s[i] != '-' : !uid_is_hex(s[i]))
            return false;
    }
    return s[UID_STR_LEN] == '\0';
}

void uid_normalize(const char *s, char out[UID_STR_LEN + 1])
{
    size_t i;

    for (i = 0; i < UID_STR_LEN; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
    out[UID_STR_LEN] = '\0';
}

int uid_parse(const char *s, uint8_t out[16])
{
    size_t i, k = 0;
    int hi = -1;

    for (i = 0; s[i] && k < 16; i++) {
        int d;

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        if (s[i] >= '0' && s[i] <= '9')
            d = s[i] - '0';
        else if (s[i] >= 'a' && s[i] <= 'f')
            d = s[i] - 'a' + 10;
        else if (s[i] >= 'A' && s[i] <= 'F')
            d = s[i] - 'A' + 10;
        else
            return -1;
        if (hi < 0) {
            hi = d;
        } else {
            out[k++] = (uint8_t)(hi << 4 | d);
            hi = -1;
        }
    }
    return (k == 16 && i == 36 && s[i] == '\0') ? 0 : -1;
}
