/* members.c: the replicas' member set and its leader (see members.h). The
 * live set is a small array kept sorted by (create revision, id), so the
 * leader is its first entry and rmb_foreach walks it in order. This
 * replica's own lease runs on one timer: every third of the lease's TTL a
 * keepalive, or a grant and a put when no lease is held. */
#include "members.h"

#include "codec/uid.h"
#include "core/clock.h"
#include "core/errbuf.h"
#include "core/limits.h"
#include "core/log.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utlist.h>

#define RMB_ID_MAX 63 /* bytes of a member id (a UUID is 36) */

/* The shortest keepalive interval, whatever the TTL. */
#define RMB_KEEP_MIN_MS 100

/* One live member. */
struct rmb_member {
    char id[RMB_ID_MAX + 1];
    char url[LIM_MEMBER_URL_MAX + 1];
    uint64_t rev; /* the store revision its record was put at */
    int64_t started_ms;
    bool seen; /* put again since the running reset began */
};

/* A lease grant, keepalive or record put on its way; m is NULL once
 * rmb_free ran (the op then frees itself when its completion comes). */
struct rmb_op {
    struct rmb_op *prev, *next; /* in m->ops */
    struct rmb_members *m;
    int64_t lease;
};

struct rmb_members {
    struct store *store;     /* borrowed */
    struct event_base *base; /* borrowed */
    struct rmb_options opt;  /* url and self_id point into the copies below */
    char self[RMB_ID_MAX + 1];
    char url[LIM_MEMBER_URL_MAX + 1];
    int64_t started_ms;
    bool through_store; /* shared with leases: membership goes through the store */
    char reason[128];   /* why not, else "" */
    struct rmb_member live[LIM_MEMBERS_MAX]; /* sorted by (rev, id) */
    size_t n;
    bool leading;
    char leader[RMB_ID_MAX + 1]; /* "" when no member is live */
    struct event *timer;         /* owned: the keepalive */
    int64_t keep_ms;             /* keepalive interval */
    int64_t lease;               /* this replica's member lease; 0: none held */
    bool busy;                   /* a grant, keepalive or put of it is on its way */
    bool leaving;                /* rmb_leave ran: no lease or record any more */
    bool resetting;
    struct rmb_op *ops; /* utlist DL head: owned until their completion */
};

static int64_t rmb_now(const struct rmb_members *m)
{
    return m->opt.clock ? m->opt.clock(m->opt.clock_arg) : clk_wall_ms();
}

/* The member id a record id names, or NULL when it is no member record. */
static const char *rmb_target(const char *id)
{
    size_t n = sizeof(RMB_RECORD_PREFIX) - 1;

    return id && strncmp(id, RMB_RECORD_PREFIX, n) == 0 && id[n] != '\0' ? id + n : NULL;
}

/* Whether a sorts before b: the older record first, then the lower id. */
static bool rmb_before(const struct rmb_member *a, const struct rmb_member *b)
{
    if (a->rev != b->rev)
        return a->rev < b->rev;
    return strcmp(a->id, b->id) < 0;
}

/* The position of id in the live set, or -1. */
static long rmb_find(const struct rmb_members *m, const char *id)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        if (strcmp(m->live[i].id, id) == 0)
            return (long)i;
    return -1;
}

static void rmb_drop_at(struct rmb_members *m, size_t i)
{
    memmove(&m->live[i], &m->live[i + 1], (m->n - i - 1) * sizeof(m->live[0]));
    m->n--;
}

/* Insert (or replace) id at rev with doc ("url\nstarted_ms"; borrowed, may
 * be NULL), keeping the order. 0, or -1 when the set is full. */
static int rmb_put(struct rmb_members *m, const char *id, uint64_t rev, const char *doc, size_t len)
{
    struct rmb_member mb;
    const char *nl = doc ? memchr(doc, '\n', len) : NULL;
    size_t ulen = nl ? (size_t)(nl - doc) : (doc ? len : 0);
    long at = rmb_find(m, id);
    size_t i;

    memset(&mb, 0, sizeof(mb));
    snprintf(mb.id, sizeof(mb.id), "%s", id);
    if (ulen > LIM_MEMBER_URL_MAX)
        ulen = LIM_MEMBER_URL_MAX;
    if (doc)
        memcpy(mb.url, doc, ulen);
    if (nl) {
        char num[24];
        size_t nlen = len - (size_t)(nl + 1 - doc);

        if (nlen >= sizeof(num))
            nlen = sizeof(num) - 1;
        memcpy(num, nl + 1, nlen);
        num[nlen] = '\0';
        mb.started_ms = strtoll(num, NULL, 10);
    }
    mb.rev = rev;
    mb.seen = true;
    if (at >= 0)
        rmb_drop_at(m, (size_t)at);
    if (m->n >= LIM_MEMBERS_MAX) {
        log_warn("member %.64s ignored: %d replicas are known already", id, LIM_MEMBERS_MAX);
        return -1;
    }
    for (i = 0; i < m->n && rmb_before(&m->live[i], &mb); i++)
        ;
    memmove(&m->live[i + 1], &m->live[i], (m->n - i) * sizeof(m->live[0]));
    m->live[i] = mb;
    m->n++;
    return 0;
}

/* The member set changed: find the leader again and tell of a change of
 * this replica's leadership. */
static void rmb_elect(struct rmb_members *m)
{
    const char *now = m->n ? m->live[0].id : "";
    bool leading;

    if (strcmp(now, m->leader) != 0) {
        if (now[0])
            log_info("replicas: %s leads (of %zu live)%s", now, m->n,
                     strcmp(now, m->self) == 0 ? ", this replica" : "");
        else
            log_warn("replicas: no live member, no leader");
        snprintf(m->leader, sizeof(m->leader), "%s", now);
    }
    leading = now[0] && strcmp(now, m->self) == 0;
    if (leading == m->leading)
        return;
    m->leading = leading;
    if (m->opt.on_change)
        m->opt.on_change(m->opt.change_arg, leading);
}

/* ---------------------------------------------------------------------- */
/* this replica's lease and record */

static struct rmb_op *rmb_op_new(struct rmb_members *m)
{
    struct rmb_op *op = calloc(1, sizeof(*op));

    if (!op)
        return NULL;
    op->m = m;
    DL_APPEND(m->ops, op);
    return op;
}

static void rmb_op_end(struct rmb_op *op)
{
    if (op->m)
        DL_DELETE(op->m->ops, op);
    free(op);
}

static void rmb_grant(struct rmb_members *m);

/* Completion of the record's put: this replica is live from that commit. */
static void rmb_put_done(void *arg, int rc, const char *err)
{
    struct rmb_op *op = arg;
    struct rmb_members *m = op->m;

    if (m) {
        m->busy = false;
        if (rc == 0 && op->lease == m->lease) {
            char doc[LIM_MEMBER_URL_MAX + 32];
            int n = snprintf(doc, sizeof(doc), "%s\n%" PRId64, m->url, m->started_ms);

            (void)rmb_put(m, m->self, store_revision(m->store), doc, (size_t)n);
            if (m->opt.on_commit)
                m->opt.on_commit(m->opt.commit_arg);
            rmb_elect(m);
        } else if (rc != 0) {
            log_warn("replicas: could not put this replica's member record (tried again): %s",
                     err ? err : "unknown error");
            m->lease = 0; /* that lease lapses unused; the next tick grants one */
        }
    }
    rmb_op_end(op);
}

/* A member lease was granted: put the record bound to it. */
static void rmb_granted(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct rmb_op *op = arg;
    struct rmb_members *m = op->m;
    char rid[sizeof(RMB_RECORD_PREFIX) + RMB_ID_MAX], doc[LIM_MEMBER_URL_MAX + 32], perr[256];
    int n;

    rmb_op_end(op);
    if (!m)
        return;
    m->busy = false;
    if (m->leaving)
        return; /* that lease lapses unused */
    if (rc != 0) {
        log_warn("replicas: could not grant the member lease (tried again): %s",
                 err ? err : "unknown error");
        return;
    }
    m->lease = lease;
    m->keep_ms = ttl_s * 1000 / 3;
    if (m->keep_ms < RMB_KEEP_MIN_MS)
        m->keep_ms = RMB_KEEP_MIN_MS;
    op = rmb_op_new(m);
    if (!op) {
        m->lease = 0;
        return;
    }
    op->lease = lease;
    snprintf(rid, sizeof(rid), "%s%s", RMB_RECORD_PREFIX, m->self);
    n = snprintf(doc, sizeof(doc), "%s\n%" PRId64, m->url, m->started_ms);
    m->busy = true;
    if (store_put_leased(m->store, rid, doc, (size_t)n, lease, rmb_put_done, op, perr,
                         sizeof(perr)) != 0) {
        log_warn("replicas: could not queue the member record: %s", perr);
        m->busy = false;
        m->lease = 0;
        rmb_op_end(op);
    }
}

/* Grant a new member lease (its completion puts the record). */
static void rmb_grant(struct rmb_members *m)
{
    struct rmb_op *op = NULL;
    char err[256];

    if (m->busy || m->leaving)
        return;
    op = rmb_op_new(m);
    if (!op)
        return;
    m->busy = true;
    if (store_lease_grant(m->store, m->opt.ttl_ms, rmb_granted, op, err, sizeof(err)) != 0) {
        log_warn("replicas: could not grant the member lease: %s", err);
        m->busy = false;
        rmb_op_end(op);
    }
}

/* The keepalive answered: a lease gone gets a new one at once. */
static void rmb_kept(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct rmb_op *op = arg;
    struct rmb_members *m = op->m;
    int64_t asked = op->lease;

    (void)lease;
    rmb_op_end(op);
    if (!m)
        return;
    m->busy = false;
    if (rc != 0) {
        log_warn("replicas: could not keep the member lease alive (tried again): %s",
                 err ? err : "unknown error");
        return;
    }
    if (ttl_s <= 0 && m->lease == asked) {
        log_warn("replicas: this replica's member lease lapsed; joining again");
        m->lease = 0;
        rmb_grant(m);
    }
}

/* The keepalive timer. */
static void rmb_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rmb_members *m = arg;
    struct rmb_op *op = NULL;
    char err[256];

    (void)fd;
    (void)what;
    if (m->leaving)
        return;
    if (clk_timers_arm(m->opt.timers, m->timer, m->keep_ms) != 0)
        log_error("replicas: cannot arm the member keepalive timer");
    if (m->busy)
        return;
    if (m->lease == 0) {
        rmb_grant(m);
        return;
    }
    op = rmb_op_new(m);
    if (!op)
        return;
    op->lease = m->lease;
    m->busy = true;
    if (store_lease_keepalive(m->store, m->lease, rmb_kept, op, err, sizeof(err)) != 0) {
        log_warn("replicas: could not keep the member lease alive: %s", err);
        m->busy = false;
        rmb_op_end(op);
    }
}

/* ---------------------------------------------------------------------- */

struct rmb_members *rmb_new(struct store *st, struct event_base *base,
                            const struct rmb_options *opt)
{
    struct rmb_members *m = NULL;

    if (!st || !base)
        return NULL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->store = st;
    m->base = base;
    if (opt)
        m->opt = *opt;
    if (m->opt.ttl_ms <= 0)
        m->opt.ttl_ms = LIM_MEMBER_TTL_MS;
    if (m->opt.self_id && m->opt.self_id[0])
        snprintf(m->self, sizeof(m->self), "%s", m->opt.self_id);
    else
        uid_generate(m->self);
    snprintf(m->url, sizeof(m->url), "%s", m->opt.url ? m->opt.url : "");
    m->opt.self_id = m->self;
    m->opt.url = m->url;
    m->keep_ms = m->opt.ttl_ms / 3 > RMB_KEEP_MIN_MS ? m->opt.ttl_ms / 3 : RMB_KEEP_MIN_MS;
    m->through_store =
        st->ops->follow && st->ops->lease_grant && st->ops->put_leased && st->ops->lease_keepalive;
    if (!st->ops->follow)
        snprintf(m->reason, sizeof(m->reason), "the %s store is not shared", st->ops->name);
    else if (!m->through_store)
        snprintf(m->reason, sizeof(m->reason), "the %s store has no leases", st->ops->name);
    return m;
}

void rmb_free(struct rmb_members *m)
{
    struct rmb_op *op, *tmp;

    if (!m)
        return;
    DL_FOREACH_SAFE (m->ops, op, tmp) {
        DL_DELETE(m->ops, op);
        op->m = NULL;
    }
    if (m->timer) {
        clk_timers_disarm(m->opt.timers, m->timer);
        event_free(m->timer);
    }
    free(m);
}

int rmb_load_record(struct rmb_members *m, const char *id, const char *doc, size_t len)
{
    const char *who = rmb_target(id);

    if (!who || !m->through_store)
        return 0;
    (void)rmb_put(m, who, store_revision(m->store), doc, len);
    return 0;
}

void rmb_apply_change(struct rmb_members *m, enum store_change kind, const char *id,
                      const char *doc, size_t len)
{
    const char *who = rmb_target(id);
    size_t i;
    long at;

    if (!m->through_store)
        return;
    switch (kind) {
    case STORE_CH_RESET:
        for (i = 0; i < m->n; i++)
            m->live[i].seen = false;
        m->resetting = true;
        return;
    case STORE_CH_RESET_END:
        for (i = m->n; i-- > 0;)
            if (!m->live[i].seen)
                rmb_drop_at(m, i);
        m->resetting = false;
        break;
    case STORE_CH_PUT:
        if (!who)
            return;
        at = rmb_find(m, who);
        if (m->resetting && at >= 0) {
            /* a reset reads every record at one revision: the one known
             * keeps the revision it was created at */
            m->live[at].seen = true;
            return;
        }
        (void)rmb_put(m, who, store_revision(m->store), doc, len);
        break;
    case STORE_CH_DEL:
        if (!who)
            return;
        at = rmb_find(m, who);
        if (at >= 0)
            rmb_drop_at(m, (size_t)at);
        if (strcmp(who, m->self) == 0 && !m->busy && m->timer && !m->leaving) {
            /* our lease lapsed (nobody's write): join again */
            log_warn("replicas: this replica's member record is gone; joining again");
            m->lease = 0;
            rmb_grant(m);
        }
        break;
    }
    if ((kind == STORE_CH_PUT || kind == STORE_CH_DEL) && !m->resetting && m->opt.on_commit)
        m->opt.on_commit(m->opt.commit_arg);
    if (!m->resetting)
        rmb_elect(m);
}

/* Completion of the record's deletion at rmb_leave. */
static void rmb_left(void *arg, int rc, const char *err)
{
    struct rmb_op *op = arg;
    struct rmb_members *m = op->m;
    long at = m ? rmb_find(m, m->self) : -1;

    if (rc != 0)
        log_warn("replicas: could not delete this replica's member record (it lapses with its "
                 "lease): %s",
                 err ? err : "unknown error");
    else if (m) {
        /* our own write: the store does not bring it back through the follow */
        if (at >= 0)
            rmb_drop_at(m, (size_t)at);
        if (m->opt.on_commit)
            m->opt.on_commit(m->opt.commit_arg);
        rmb_elect(m);
    }
    rmb_op_end(op);
}

void rmb_leave(struct rmb_members *m)
{
    struct rmb_op *op = NULL;
    char rid[sizeof(RMB_RECORD_PREFIX) + RMB_ID_MAX], err[256];

    if (!m || !m->through_store || !m->timer || m->leaving)
        return;
    m->leaving = true;
    clk_timers_disarm(m->opt.timers, m->timer);
    op = rmb_op_new(m);
    if (!op)
        return;
    snprintf(rid, sizeof(rid), "%s%s", RMB_RECORD_PREFIX, m->self);
    if (store_del(m->store, rid, rmb_left, op, err, sizeof(err)) != 0) {
        log_warn("replicas: could not delete this replica's member record: %s", err);
        rmb_op_end(op);
    }
}

void rmb_set_url(struct rmb_members *m, const char *url)
{
    snprintf(m->url, sizeof(m->url), "%s", url ? url : "");
}

int rmb_start(struct rmb_members *m, char *err, size_t errlen)
{
    if (!m->through_store) {
        char doc[LIM_MEMBER_URL_MAX + 32];
        int n;

        m->started_ms = rmb_now(m);
        n = snprintf(doc, sizeof(doc), "%s\n%" PRId64, m->url, m->started_ms);
        m->n = 0;
        (void)rmb_put(m, m->self, 0, doc, (size_t)n);
        snprintf(m->leader, sizeof(m->leader), "%s", m->self);
        m->leading = true;
        return 0;
    }
    m->started_ms = rmb_now(m);
    m->timer = event_new(m->base, -1, 0, rmb_timer_cb, m);
    if (!m->timer || clk_timers_arm(m->opt.timers, m->timer, m->keep_ms) != 0) {
        errbuf_set(err, errlen, "cannot arm the member keepalive timer");
        return -1;
    }
    rmb_grant(m);
    rmb_elect(m); /* the members loaded: who leads until we join */
    return 0;
}

bool rmb_through_store(const struct rmb_members *m) { return m->through_store; }
const char *rmb_local_reason(const struct rmb_members *m) { return m->reason; }
bool rmb_is_leader(const struct rmb_members *m) { return m->leading; }
const char *rmb_leader_id(const struct rmb_members *m) { return m->leader; }
const char *rmb_self_id(const struct rmb_members *m) { return m->self; }
size_t rmb_count(const struct rmb_members *m) { return m->n; }

int rmb_foreach(const struct rmb_members *m, rmb_each_fn fn, void *arg)
{
    struct rmb_view v;
    size_t i;

    for (i = 0; i < m->n; i++) {
        v.id = m->live[i].id;
        v.url = m->live[i].url;
        v.create_revision = m->live[i].rev;
        v.started_ms = m->live[i].started_ms;
        v.is_self = strcmp(m->live[i].id, m->self) == 0;
        v.is_leader = i == 0;
        if (fn(&v, arg) != 0)
            return -1;
    }
    return 0;
}
