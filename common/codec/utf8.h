/* utf8.h: UTF-8 validation, by the rules jansson applies to every string
 * it reads or builds, so text checked here is text jansson accepts. */
#ifndef SVC_CODEC_UTF8_H
#define SVC_CODEC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) (borrowed; NUL bytes are ordinary characters) is
 * well-formed UTF-8: no stray continuation bytes, no truncated sequence,
 * no overlong form, no surrogate (U+D800..U+DFFF), nothing past U+10FFFF. */
bool utf8_valid(const char *s, size_t len);

/* Length of the well-formed sequence starting at s[0..len) (1 to 4), or 0
 * when none starts there. */
size_t utf8_seq_len(const unsigned char *s, size_t len);

#endif
