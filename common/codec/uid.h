/* uid.h: UUID generation (random version 4, from getrandom; libuuid as
 * the fallback) and validation, in the canonical lower-case 36-character
 * text form. */
#ifndef SVC_CODEC_UID_H
#define SVC_CODEC_UID_H

#include <stdbool.h>
#include <stdint.h>

#define UID_STR_LEN 36 /* without the terminating NUL */

/* Write a fresh random (version 4) UUID into out (UID_STR_LEN + 1 bytes).
 * For the event-loop thread only: not thread-safe. */
void uid_generate(char out[UID_STR_LEN + 1]);
/* True when s is exactly a canonical UUID text (any case, hyphens at 8-13-18-23). */
bool uid_is_valid(const char *s);

/* Copy a valid UUID text (see uid_is_valid) into out in lower case: UUIDs
 * are case-insensitive, so "ABC..." and "abc..." name one message. */
void uid_normalize(const char *s, char out[UID_STR_LEN + 1]);

/* Parse a canonical UUID text (either case) into its 16 bytes. 0, or -1
 * when s is not one. */
int uid_parse(const char *s, uint8_t out[16]) __attribute__((warn_unused_result));

#endif
