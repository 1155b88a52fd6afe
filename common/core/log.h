/* log.h: levelled logging to stderr, one line per event:
 *   2026-11-22T05:46:27.123Z INFO registry listening on http://127.0.0.1:8500
 * (UTC). Each line is one write(2) of at most 4096 bytes: longer messages
 * end in "...", and newlines and other control characters in the message
 * become spaces. Process-wide state: the service name and the minimum
 * level (default info), set from main before logging starts. A request's
 * trace id, while a handler sets it around its synchronous work, ends the
 * line (kept whole when the message is cut):
 *   2026-11-22T05:46:27.123Z WARN facade-service retrying ... trace=4bf9...4736 */
#ifndef SVC_CORE_LOG_H
#define SVC_CORE_LOG_H

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

/* Set the service name printed on every line (borrowed: must outlive logging). */
void log_init(const char *service);
/* Set the minimum level from a name (debug, info, warn or warning, error;
 * any case).
 * Returns 0, or -1 for an unknown name (level unchanged). */
int log_set_level_name(const char *name) __attribute__((warn_unused_result));
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Write one line at level if it is at least the minimum (below it nothing
 * is formatted). errno is preserved. */
/* Longest trace id printed (a W3C trace id: 32 hex digits). */
#define LOG_TRACE_MAX 32

/* End every line with " trace=<id>" from now until the next call: id is
 * copied (cut to LOG_TRACE_MAX bytes); NULL or "" prints none. When prev is
 * not NULL the id in force before the call is copied there (LOG_TRACE_MAX +
 * 1 bytes, "" for none), so a caller restores it with log_trace_set(prev,
 * NULL) once its synchronous work is done: the id must never outlive the
 * work it belongs to (the loop runs other requests between callbacks). */
void log_trace_set(const char *id, char *prev);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOGL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOGL_ERROR, __VA_ARGS__)

#endif
