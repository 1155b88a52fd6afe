/* failstore.c: the registry unit tests' store whose writes fail on demand
 * (see failstore.h). */
#include "failstore.h"

#include "registry/store/store.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FSTORE_QUEUE_MAX 64 /* failed writes waiting for the loop */

struct fstore {
    struct store base;   /* first: struct store * casts to this */
    struct store *inner; /* owned */
    struct event *kick;  /* owned: runs the failed completions */
    bool failing;
    int refuse_in; /* >0: the write that brings it to 0 is refused at queue time */
    struct {
        store_done_fn done;
        void *arg;
    } queue[FSTORE_QUEUE_MAX];
    size_t n;
};

static const struct store_ops fstore_ops;

static struct fstore *fstore_of(struct store *st)
{
    assert_ptr_equal(st->ops, &fstore_ops);
    return (struct fstore *)st;
}

/* Complete every queued write with -1 (from a copy: a completion may
 * queue again). */
static void fstore_run(struct fstore *fs)
{
    size_t i, n = fs->n;
    store_done_fn done[FSTORE_QUEUE_MAX];
    void *arg[FSTORE_QUEUE_MAX];

    for (i = 0; i < n; i++) {
        done[i] = fs->queue[i].done;
        arg[i] = fs->queue[i].arg;
    }
    fs->n = 0;
    for (i = 0; i < n; i++)
        done[i](arg[i], -1, "injected commit failure");
}

static void fstore_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fstore_run(arg);
}

static int fstore_queue(struct fstore *fs, store_done_fn done, void *arg)
{
    assert_true(fs->n < FSTORE_QUEUE_MAX);
    fs->queue[fs->n].done = done;
    fs->queue[fs->n].arg = arg;
    fs->n++;
    event_active(fs->kick, EV_TIMEOUT, 0);
    return 0;
}

/* Whether this write is the one fstore_refuse_in armed (err filled). */
static bool fstore_refused(struct fstore *fs, char *err, size_t errlen)
{
    if (fs->refuse_in > 0 && --fs->refuse_in == 0) {
        snprintf(err, errlen, "injected queue refusal");
        return true;
    }
    return false;
}

static int fstore_put(struct store *st, const char *id, const char *doc, size_t doc_len,
                      store_done_fn done, void *arg, char *err, size_t errlen)
{
    struct fstore *fs = (struct fstore *)st;

    if (fstore_refused(fs, err, errlen))
        return -1;
    if (fs->failing)
        return fstore_queue(fs, done, arg);
    return store_put(fs->inner, id, doc, doc_len, done, arg, err, errlen);
}

static int fstore_del(struct store *st, const char *id, store_done_fn done, void *arg, char *err,
                      size_t errlen)
{
    struct fstore *fs = (struct fstore *)st;

    if (fstore_refused(fs, err, errlen))
        return -1;
    if (fs->failing)
        return fstore_queue(fs, done, arg);
    return store_del(fs->inner, id, done, arg, err, errlen);
}

static int fstore_load(struct store *st, store_load_fn fn, void *arg, char *err, size_t errlen)
{
    return store_load(((struct fstore *)st)->inner, fn, arg, err, errlen);
}

static size_t fstore_pending(const struct store *st)
{
    const struct fstore *fs = (const struct fstore *)st;

    return fs->n + store_pending(fs->inner);
}

static void fstore_drain(struct store *st)
{
    struct fstore *fs = (struct fstore *)st;

    fstore_run(fs);
    store_drain(fs->inner);
}

static void fstore_close(struct store *st)
{
    struct fstore *fs = (struct fstore *)st;

    fstore_drain(st);
    store_close(fs->inner);
    event_free(fs->kick);
    free(fs);
}

static const struct store_ops fstore_ops = {
    .name = "failing",
    .put = fstore_put,
    .del = fstore_del,
    .load = fstore_load,
    .pending = fstore_pending,
    .drain = fstore_drain,
    .close = fstore_close,
};

struct store *fstore_new(struct event_base *base, struct store *inner)
{
    struct fstore *fs = NULL;

    if (!inner)
        return NULL;
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->kick = event_new(base, -1, 0, fstore_kick_cb, fs);
    if (!fs->kick) {
        free(fs);
        return NULL;
    }
    fs->base.ops = &fstore_ops;
    fs->inner = inner;
    return &fs->base;
}

void fstore_set_failing(struct store *st, bool on) { fstore_of(st)->failing = on; }

void fstore_refuse_in(struct store *st, int n) { fstore_of(st)->refuse_in = n; }
