/* support.h: small helpers the cmocka unit tests share (prefix ts_): ports
 * on loopback, temporary directories, capturing the log. Test code only. */
#ifndef TS_SUPPORT_H
#define TS_SUPPORT_H

#include <stddef.h>

struct evhttp;

/* A port on 127.0.0.1 where nothing listens (bound, then closed), or -1. */
int ts_closed_port(void);

/* Bind http on 127.0.0.1:port (0: ephemeral). Returns the real port, or -1. */
int ts_evhttp_listen(struct evhttp *http, int port);

/* Send stderr (the log) to a temporary file until ts_capture_end. 0, or -1
 * when the file or the redirection could not be made (stderr unchanged). */
int ts_capture_begin(void);

/* Restore stderr, copy what was logged since ts_capture_begin into buf
 * (cap bytes, NUL-terminated) and echo it to the real stderr so the test
 * output still shows it. Without a capture in progress buf is "". */
void ts_capture_end(char *buf, size_t cap);

/* Occurrences of needle in hay (overlapping ones counted). */
int ts_count_of(const char *hay, const char *needle);

/* Remove dir and everything below it (best effort). Accepts "". */
void ts_remove_tree(const char *dir);

#endif
