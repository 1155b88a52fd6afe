/* watch.c: svcctl watch (see watch.h). The stream is one blocking libcurl
 * transfer; SIGINT/SIGTERM only set a flag, which libcurl's progress
 * callback (called about once a second, also while the stream is idle)
 * reads to end the transfer, so the command exits 0 within a second. */
#include "watch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"
#include "evline.h"
#include "proto/registry_v1.h"
#include "sse.h"

static volatile sig_atomic_t cwat_signalled;

static void cwat_on_signal(int sig)
{
    (void)sig;
    cwat_signalled = 1;
}

static bool cwat_should_stop(void *arg)
{
    (void)arg;
    return cwat_signalled != 0;
}

/* What the stream's callbacks share. */
struct cwat_state {
    const struct sc_ctx *c;
    struct sse_parser *sse;
    bool bad; /* an event passed LIM_CLI_EVENT_MAX or memory ran out */
    bool oom; /* a line could not be made */
};

/* One event: its line on stdout, flushed so a pipe sees it at once. */
static int cwat_event(const char *id, const char *event, const char *data, void *arg)
{
    struct cwat_state *s = arg;
    json_t *ev;
    char *line;

    (void)id;
    if (s->c->json) {
        printf("%s\n", data);
        fflush(stdout);
        return 0;
    }
    ev = json_loads(data, 0, NULL);
    line = evl_line(event, ev, time(NULL));
    json_decref(ev);
    if (!line) {
        s->oom = true;
        return 1;
    }
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    return 0;
}

static int cwat_chunk(const char *data, size_t len, void *arg)
{
    struct cwat_state *s = arg;
    int rc = sse_feed(s->sse, data, len, cwat_event, s);

    if (rc < 0)
        s->bad = true;
    return rc != 0;
}

/* path of the stream with the filters given, escaped, into buf. */
static int cwat_path(const struct sc_ctx *c, char *buf, size_t len)
{
    char *type = c->type ? sch_escape(c->type, false) : NULL;
    char *name = c->name ? sch_escape(c->name, false) : NULL;
    int n = -1;

    if ((!c->type || type) && (!c->name || name))
        n = snprintf(buf, len, "%s" REGV1_EVENTS "%s%s%s%s%s%s", c->registry,
                     type || name ? "?" : "", type ? REGV1_Q_TYPE "=" : "", type ? type : "",
                     type && name ? "&" : "", name ? REGV1_Q_NAME "=" : "", name ? name : "");
    free(type);
    free(name);
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

int cwat_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen)
{
    struct cwat_state s = {.c = c};
    struct sigaction sa, old_int, old_term;
    struct sch_resp r = {0};
    char url[4096], why[512];
    int rc;

    (void)args;
    if (argc != 0) {
        snprintf(err, errlen, "usage: svcctl watch [--type T] [--name N]");
        return SC_USAGE;
    }
    if (cwat_path(c, url, sizeof(url)) != 0) {
        snprintf(err, errlen, "watch: the filters make too long a URL");
        return SC_USAGE;
    }
    s.sse = sse_new(LIM_CLI_EVENT_MAX);
    if (!s.sse) {
        snprintf(err, errlen, "out of memory");
        return SC_FAIL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cwat_on_signal; /* no SA_RESTART: a blocked poll wakes up */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = sch_stream(&c->reg, url, "text/event-stream", cwat_chunk, cwat_should_stop, &s, &r, why,
                    sizeof(why));
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc == 1 && cwat_signalled) {
        rc = SC_OK;
    } else if (s.bad || s.oom) {
        snprintf(err, errlen, "watch: %s", s.oom ? "out of memory" : "an event is over the limit");
        rc = SC_FAIL;
    } else if (rc < 0) {
        snprintf(err, errlen, "watch: registry %s unreachable: %s", c->registry, why);
        rc = SC_UNREACHABLE;
    } else if (r.status != 200) {
        json_t *doc = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(doc, REGV1_F_ERROR));

        snprintf(err, errlen, "watch: %s", msg ? msg : "the registry refused the stream");
        if (!msg)
            snprintf(err, errlen, "watch: HTTP %ld", r.status);
        json_decref(doc);
        rc = r.status >= 400 && r.status < 500 ? SC_FAIL : SC_UNREACHABLE;
    } else {
        snprintf(err, errlen, "watch: the registry ended the stream");
        rc = SC_UNREACHABLE;
    }
    sch_resp_clear(&r);
    sse_free(s.sse);
    return rc;
}
