/* failover.c: see failover.h. */
#include "regclient/failover.h"

#include "core/limits.h"
#include "core/log.h"
#include "regclient/urls.h"

#include <stdarg.h>
#include <stdio.h>

void fo_init(struct fo_caller *c, struct ru_list *urls)
{
    c->urls = urls;
    c->sent = urls->current;
    c->failures = 0;
    c->outage = false;
    c->quiet = false;
}

const char *fo_send(struct fo_caller *c)
{
    c->sent = c->urls->current;
    return ru_current(c->urls);
}

const char *fo_sent_url(const struct fo_caller *c)
{
    if (c->urls->n == 0)
        return "";
    return c->urls->urls[c->sent % c->urls->n];
}

void fo_failed(struct fo_caller *c, const char *why, const char *fmt, ...)
{
    char what[LIM_LOG_LINE_MAX / 2];
    const char *failed = fo_sent_url(c);
    bool moved = false;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (c->urls->current == c->sent && c->urls->n > 1) {
        ru_failover(c->urls);
        moved = true;
    }
    c->failures++;
    if (c->outage) {
        log_debug("registry %s: %s; %s (failure %u)", failed, why, what, c->failures);
        return;
    }
    c->outage = true;
    if (c->quiet)
        log_debug("registry %s: %s; %s", failed, why, what);
    else if (moved)
        log_warn("registry %s: %s; %s (next: %s)", failed, why, what, ru_current(c->urls));
    else
        log_warn("registry %s: %s; %s", failed, why, what);
}

void fo_succeeded(struct fo_caller *c, const char *fmt, ...)
{
    char what[LIM_LOG_LINE_MAX / 2];
    va_list ap;

    if (c->outage && c->quiet) {
        log_debug("registry %s answers again after %u failures", fo_sent_url(c), c->failures);
    } else if (c->outage) {
        if (fmt) {
            va_start(ap, fmt);
            vsnprintf(what, sizeof(what), fmt, ap);
            va_end(ap);
            log_info("registry %s answers again after %u failures; %s", fo_sent_url(c), c->failures,
                     what);
        } else {
            log_info("registry %s answers again after %u failures", fo_sent_url(c), c->failures);
        }
    }
    c->outage = false;
    c->failures = 0;
}
