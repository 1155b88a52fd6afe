/* jsonflat.h: a fast-path, allocation-free reader for a narrow, strict
 * subset of JSON, producing a flat array of tokens.
 *
 * Why: the services exchange small JSON documents on their hot paths, and
 * jansson's json_loadb spends most of its time there on per-value
 * allocations and byte-by-byte lexing (~25% of CPU). jf_parse reads the
 * common shape of those documents in one pass into a token array the caller
 * provides, with no allocation and no copy: strings point into the input.
 *
 * Contract: jansson stays the authority. jf_parse answers JF_OK only for
 * input that json_loadb(buf, len, 0, &err) also accepts and reads as exactly
 * the same value (same structure, byte-identical strings, same integers;
 * object key order aside). For anything outside the subset below, valid JSON
 * or not, it answers JF_OTHER and the caller falls back to jansson, which
 * gives full semantics and the error message. tests/fuzz/fuzz_jsonflat.c
 * checks this against jansson.
 *
 * The subset (JF_OK only when all hold):
 *   - the root is an object or an array, surrounded only by JSON whitespace
 *     (space, tab, LF, CR); nothing else may follow it; empty input is out;
 *   - values are objects, arrays, strings, integers, true, false, null,
 *     nested at most JF_DEPTH_MAX containers deep (the root is depth 1);
 *   - strings (keys too) have no backslash escape, no byte below 0x20, and
 *     are valid UTF-8 by jansson's rules (no overlong form, no surrogate,
 *     nothing above U+10FFFF, no truncated or stray sequence);
 *   - integers are -?(0|[1-9][0-9]*) within int64; no fraction or exponent
 *     ("-0" is read as 0, as jansson does);
 *   - an object has at most JF_KEYS_MAX keys, all distinct (jansson keeps
 *     the last of duplicate keys; we do not guess, we decline);
 *   - the document fits in the caller's token array and is at most
 *     JF_LEN_MAX bytes.
 *
 * Token layout: tokens are in document order. A container's token is
 * followed by its children; an object's children are key, value, key,
 * value... where each key is a JF_STRING token. Every token's `end` is the
 * index just past the value and all its children, so siblings are reached
 * by jumping, never by scanning:
 *
 *   array at a:   for (i = a + 1; i < toks[a].end; i = toks[i].end)
 *                     element toks[i]
 *   object at o:  for (k = o + 1; k < toks[o].end; k = toks[k + 1].end)
 *                     key toks[k], value toks[k + 1]
 *
 * Ownership: jf_ never allocates. The token array is the caller's; every
 * `str` borrows from the input buffer, which must outlive the tokens and
 * must not change while they are used. The input need not be
 * NUL-terminated and is never read past buf + len. Strings in tokens are
 * NOT NUL-terminated: use `len`. */
#ifndef SVC_CODEC_JSONFLAT_H
#define SVC_CODEC_JSONFLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JF_OK    0
#define JF_OTHER (-1) /* outside the subset or invalid: ask jansson */

#define JF_DEPTH_MAX 4  /* containers deep, the root counting as 1 */
#define JF_KEYS_MAX  32 /* keys in one object (bounds the duplicate check) */
/* Input bytes: every length and index fits the uint32_t fields and jf_get's
 * long. */
#define JF_LEN_MAX INT32_MAX

enum jf_type { JF_OBJECT, JF_ARRAY, JF_STRING, JF_INT, JF_TRUE, JF_FALSE, JF_NULL };

/* One value (or object key). 32 bytes on LP64, two per cache line. */
struct jf_tok {
    const char *str; /* JF_STRING: first byte of the content (no quotes,
                        * not NUL-terminated, borrowed from the input); else NULL */
    int64_t num;     /* JF_INT: the value; else 0 */
    uint32_t len;    /* JF_STRING: bytes of content; else 0 */
    uint32_t count;  /* JF_OBJECT: key/value pairs; JF_ARRAY: elements; else 0 */
    uint32_t end;    /* index of the first token after this value and all its children */
    enum jf_type type;
};

/* Parse buf[0, len) (borrowed, need not be NUL-terminated) into toks
 * (borrowed, cap entries; NULL only with cap 0). Returns JF_OK with *ntoks
 * set to the tokens used (toks[0] is the root and toks[0].end == *ntoks), or
 * JF_OTHER with *ntoks set to 0 and the contents of toks unspecified, when
 * the input is outside the subset, invalid, or needs more than cap tokens.
 * ntoks may be NULL. */
int jf_parse(const char *buf, size_t len, struct jf_tok *toks, size_t cap, size_t *ntoks)
    __attribute__((warn_unused_result));

/* The index of the value of `key` (borrowed, NUL-terminated) in the object
 * at toks[obj], or -1 when the key is absent or toks[obj] is not an object.
 * toks must come from a successful jf_parse and obj be below its *ntoks. */
long jf_get(const struct jf_tok *toks, size_t obj, const char *key);

/* True when t (borrowed) is a JF_STRING whose content equals the
 * NUL-terminated s (borrowed). */
bool jf_streq(const struct jf_tok *t, const char *s);

#endif
