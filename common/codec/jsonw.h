/* jsonw.h: JSON text written by hand on the hot paths, where building a
 * jansson tree only to dump it costs more than the request it serves. The
 * output is byte for byte what jansson's json_dumps(..., JSON_COMPACT)
 * writes for the same value (checked by tests/unit/test_jsonw.c), so a
 * reader cannot tell which wrote it.
 *
 * Strings must be valid UTF-8 (the callers' strings come from jansson's
 * parser or were checked); bytes >= 0x80 are copied as they are, '"', '\\'
 * and the control characters are escaped as jansson escapes them. */
#ifndef SVC_CODEC_JSONW_H
#define SVC_CODEC_JSONW_H

#include <stddef.h>
#include <stdint.h>

/* Longest text of an int64_t in decimal, sign included. */
#define JW_INT_MAX_LEN 20

/* Bytes the JSON string literal of s[0..len) takes, quotes included. */
size_t jw_string_len(const char *s, size_t len);

/* Write that literal at dst (borrowed, at least jw_string_len(s, len)
 * bytes; not NUL-terminated). Returns the byte after it. */
char *jw_string_put(char *dst, const char *s, size_t len);

/* Write v in decimal at dst (at least JW_INT_MAX_LEN bytes; not
 * NUL-terminated). Returns the byte after it. */
char *jw_int_put(char *dst, int64_t v);

/* A stored message as the services exchange and journal it:
 * {"uuid":"<uuid>","msg":"<msg>","ts":<ts>}, uuid NUL-terminated, msg
 * len bytes. jw_message_len is an upper bound of the bytes jw_message_put
 * writes (exact but for the digits of ts); jw_message_put returns the byte
 * after the closing brace (not NUL-terminated). */
size_t jw_message_len(const char *uuid, const char *msg, size_t len);
char *jw_message_put(char *dst, const char *uuid, const char *msg, size_t len, int64_t ts);

#endif
