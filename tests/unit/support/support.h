/* support.h: small helpers the cmocka unit tests share (prefix ts_): ports
 * on loopback and temporary directories. Test code only. */
#ifndef TS_SUPPORT_H
#define TS_SUPPORT_H

struct evhttp;

/* A port on 127.0.0.1 where nothing listens (bound, then closed), or -1. */
int ts_closed_port(void);

/* Bind http on 127.0.0.1:port (0: ephemeral). Returns the real port, or -1. */
int ts_evhttp_listen(struct evhttp *http, int port);

/* Remove dir and everything below it (best effort). Accepts "". */
void ts_remove_tree(const char *dir);

#endif
