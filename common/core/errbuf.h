/* errbuf.h: the error-buffer convention of the project's library code: a
 * fallible function takes (char *err, size_t errlen) and, on failure, writes
 * one line saying what went wrong. The caller decides what to do with it. */
#ifndef SVC_CORE_ERRBUF_H
#define SVC_CORE_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Format into err when the caller gave one (err may be NULL, errlen 0). */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a va_list, for wrappers of their own. */
void errbuf_vset(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
