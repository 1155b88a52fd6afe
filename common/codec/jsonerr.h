/* jsonerr.h: why jansson refused a text, said in the terms of whoever sent
 * it ("body is not valid JSON (line 1, column 4)") instead of jansson's own
 * wording ("end of file expected near 'x'", "...not allowed without
 * JSON_ALLOW_NUL"), which names parser internals and echoes input. Every
 * reply that reports a JSON text jansson could not read goes through it. */
#ifndef SVC_CODEC_JSONERR_H
#define SVC_CODEC_JSONERR_H

#include <jansson.h>
#include <stddef.h>

/* Write into buf[0..buflen) why text[0..len) (borrowed; the bytes jansson
 * was given) was refused with e (borrowed, filled by json_loadb): empty,
 * holds a NUL byte, not UTF-8, a duplicate key, trailing text, nesting too
 * deep, a number out of range, or not valid JSON, with jansson's line and
 * column. what names the text, e.g. "body". Returns buf. */
const char *jerr_describe(const json_error_t *e, const char *text, size_t len, const char *what,
                          char *buf, size_t buflen);

#endif
