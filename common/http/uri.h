/* uri.h: what the server does with a request's text before a handler runs,
 * as pure functions (no I/O, no libevent): splitting and form-decoding the
 * query string, and making an echoed value safe for a JSON error body.
 * server.c calls them; the fuzz harness tests/fuzz/fuzz_request.c feeds
 * them any bytes. */
#ifndef SVC_HTTP_URI_H
#define SVC_HTTP_URI_H

#include <stddef.h>

/* Decode a form-encoded query component in place ('+' is a space, %XX a
 * byte; a malformed escape stays as it is). Returns the decoded length,
 * which is less than strlen(s) afterwards when it holds a NUL byte. */
size_t hu_form_decode(char *s);

/* Split query (NUL-terminated, modified in place, borrowed: keys and
 * values point into it) at '&' into at most max decoded key=value pairs
 * (a key without '=' has the value ""; empty pieces are skipped; pairs
 * past max are ignored). Returns the number of pairs, or -1 when a key or
 * value decodes to text holding a NUL byte: then *bad (may be NULL) is
 * the index of that pair, whose key is decoded up to its first NUL. */
int hu_query_split(char *query, const char **keys, const char **values, int max, int *bad);

/* Make the NUL-terminated text s (modified in place) safe to send as a
 * JSON string: bytes that are not well-formed UTF-8 become '?', and past
 * max bytes it is cut on a character boundary and ends "...". s must have
 * room for max + 4 bytes. */
void hu_echo_scrub(char *s, size_t max);

#endif
