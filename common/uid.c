/* uid.c: UUID generation and validation (see uid.h). Generation is
 * libuuid's random (version 4) UUID; validation is a pure syntax check. */
#include "uid.h"

#include <stddef.h>
#include <uuid/uuid.h>

/* Write a fresh random UUID, lower case, NUL-terminated, into out
 * (borrowed, UID_STR_LEN + 1 bytes). */
void uid_generate(char out[UID_STR_LEN + 1])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
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
