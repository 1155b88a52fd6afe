/* log.c: levelled logging to stderr, one line per event (see log.h).
 * Each line is built in a bounded stack buffer and handed to a single
 * write(2), so lines from one process never interleave (a write of at most
 * PIPE_BUF bytes to a pipe is atomic) and no stdio buffer is involved. */
#include "core/log.h"

#include "core/limits.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Longest line written, newline included; longer messages end in "...".
 * 4096 is PIPE_BUF on Linux, the bound for an atomic write to a pipe. */
#define LOG_LINE_MAX LIM_LOG_LINE_MAX
#define LOG_ELLIPSIS "..."

/* Process-wide state, set at startup from main (not thread-safe to change). */
static const char *log_service = ""; /* borrowed, see log_init */
static enum log_level log_min = LOGL_INFO;
/* The trace of the work running now ("" none): set and restored around a
 * request's synchronous work by its handler (see log_trace_set); printed
 * at the end of each line, after the message (room is kept for it). */
static char log_trace[LOG_TRACE_MAX + 1];

static const char *const log_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* Set the service name (borrowed; NULL means none). */
void log_init(const char *service) { log_service = service != NULL ? service : ""; }

/* Set the minimum level from a name, any case; "warning" means warn.
 * Borrows name. Returns 0, or -1 (level unchanged) for an unknown name. */
int log_set_level_name(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcasecmp(name, "debug") == 0)
        log_min = LOGL_DEBUG;
    else if (strcasecmp(name, "info") == 0)
        log_min = LOGL_INFO;
    else if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0)
        log_min = LOGL_WARN;
    else if (strcasecmp(name, "error") == 0)
        log_min = LOGL_ERROR;
    else
        return -1;
    return 0;
}

/* Set the minimum level; values past LOGL_ERROR are clamped to it. */
void log_set_level(enum log_level level)
{
    log_min = (unsigned)level > LOGL_ERROR ? LOGL_ERROR : level;
}

/* Set the trace printed on each line (copied); the previous into prev. */
void log_trace_set(const char *id, char *prev)
{
    if (prev != NULL)
        memcpy(prev, log_trace, sizeof(log_trace));
    snprintf(log_trace, sizeof(log_trace), "%s", id != NULL ? id : "");
}

/* The current minimum level. */
enum log_level log_get_level(void) { return log_min; }

/* Write "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, now) into buf; returns its length,
 * or 0 when the clock or the conversion fails. */
static size_t log_timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;
    int m;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    if (gmtime_r(&ts.tv_sec, &tm) == NULL)
        return 0;
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0)
        return 0;
    m = snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
    if (m < 0 || (size_t)m >= len - n)
        return 0;
    return n + (size_t)m;
}

/* Write all of buf to stderr: one write(2) in practice; the loop only
 * resumes after a signal or a short write, and gives up on other errors
 * (there is nowhere left to report them). */
static void log_emit(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

/* Format and write one line at level when level is at least the minimum;
 * below it, nothing is formatted. Control characters in the message
 * (newlines above all) become spaces so one event stays one line.
 * errno is preserved, so "%m" and callers checking errno after logging work. */
void log_write(enum log_level level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    char tail[sizeof(" trace=") + LOG_TRACE_MAX] = "";
    size_t tail_len = 0;
    size_t body_max; /* keep room for the trace and the '\n' */
    size_t len;
    size_t msg;
    size_t i;
    int saved_errno = errno;
    int n;
    va_list ap;

    if ((unsigned)level > LOGL_ERROR)
        level = LOGL_ERROR;
    if (level < log_min)
        return;
    if (log_trace[0]) {
        n = snprintf(tail, sizeof(tail), " trace=%s", log_trace);
        tail_len = n > 0 ? (size_t)n : 0;
    }
    body_max = sizeof line - 1 - tail_len;

    len = log_timestamp(line, body_max);
    if (len == 0)
        len = (size_t)snprintf(line, body_max, "-");
    n = snprintf(line + len, body_max - len, " %s %s ", log_names[level], log_service);
    if (n < 0)
        n = 0;
    len += (size_t)n;
    if (len > body_max - sizeof LOG_ELLIPSIS) /* absurd service name: cut it */
        len = body_max - sizeof LOG_ELLIPSIS;

    msg = len;
    errno = saved_errno;
    va_start(ap, fmt);
    n = vsnprintf(line + len, body_max - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n < body_max - len) {
        len += (size_t)n;
    } else {
        /* Truncated: cut back to a UTF-8 character boundary, then mark it. */
        len = body_max - (sizeof LOG_ELLIPSIS - 1);
        while (len > msg && ((unsigned char)line[len] & 0xC0) == 0x80)
            len--;
        memcpy(line + len, LOG_ELLIPSIS, sizeof LOG_ELLIPSIS - 1);
        len += sizeof LOG_ELLIPSIS - 1;
    }
    for (i = msg; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            line[i] = ' ';
    }
    /* the trace ends the line, also a cut one: it is what lines are grepped by */
    memcpy(line + len, tail, tail_len);
    len += tail_len;
    line[len++] = '\n';
    log_emit(line, len);
    errno = saved_errno;
}
