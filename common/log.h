/* log.h: levelled logging to stderr, one line per event:
 *   2026-11-22T05:46:27.123Z INFO registry listening on http://127.0.0.1:8500
 * Process-wide state: the service name and the minimum level. */
#ifndef SVC_LOG_H
#define SVC_LOG_H

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

/* Set the service name printed on every line (borrowed: must outlive logging). */
void log_init(const char *service);
/* Set the minimum level from a name (debug, info, warn, error; any case).
 * Returns 0, or -1 for an unknown name (level unchanged). */
int log_set_level_name(const char *name) __attribute__((warn_unused_result));
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOGL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOGL_ERROR, __VA_ARGS__)

#endif
