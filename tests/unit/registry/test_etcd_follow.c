/* test_etcd_follow.c: the etcd store backend (registry/store/etcd.c)
 * against a real etcd cluster, the shared-store part of store.h: two
 * handles on one prefix, A's writes reach B's follow callback in order with
 * growing revisions and the revision A's completion saw; a handle never
 * hears its own writes through fn; a load after the writes gives the state
 * (and never the writer keys); following from a compacted revision gives
 * RESET, the whole state, RESET_END, then the later commits as usual; the
 * loss of the member both handles talk to loses and repeats nothing;
 * keepalives of many leases asked at once are each answered; a lapsed
 * lease in a txn costs only its leased puts; writes of different ids
 * queued in turn go out in several txns at once, those of one id keep
 * their order (and one turn may write an id twice).
 *
 * Needs ETCD_ENDPOINTS (tests/integration/etcd_run.py starts a 3-member
 * cluster and sets it; ctest runs it that way). Each test works under a
 * fresh prefix. */
#include "common/codec/b64.h"
#include "common/core/limits.h"
#include "registry/store/store.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define ERRLEN     256
#define SEEN_MAX   64
#define WAIT_MS    10000
#define ID_MAX     64
#define DOC_MAX    64
#define PREFIX_MAX 64

/* One change a follower heard, or one completion a writer got. */
struct seen {
    int kind; /* enum store_change, or -1 for a completion */
    int rc;
    char id[ID_MAX];
    char doc[DOC_MAX];
    uint64_t rev;
};

/* What one handle heard. */
struct log {
    struct store *st; /* borrowed: the handle store_revision is read on */
    struct seen s[SEEN_MAX];
    size_t n;
};

struct fixture {
    struct event_base *base;
    char prefix[PREFIX_MAX];
    struct store *a, *b;
    struct log la, lb; /* changes heard by fn */
    struct log da, db; /* completions */
};

static const char *endpoints(void) { return getenv("ETCD_ENDPOINTS"); }

static void log_add(struct log *l, int kind, int rc, const char *id, const char *doc)
{
    struct seen *s = NULL;

    assert_true(l->n < SEEN_MAX);
    s = &l->s[l->n++];
    s->kind = kind;
    s->rc = rc;
    snprintf(s->id, sizeof(s->id), "%s", id ? id : "");
    snprintf(s->doc, sizeof(s->doc), "%s", doc ? doc : "");
    s->rev = store_revision(l->st);
}

static void on_change(void *arg, enum store_change kind, const char *id, const char *doc,
                      size_t doc_len)
{
    (void)doc_len;
    log_add(arg, (int)kind, 0, id, doc);
}

/* A completion: arg is a struct log; the id is not known here, so the
 * writes of a test are told apart by their order. */
static void on_done(void *arg, int rc, const char *err)
{
    log_add(arg, -1, rc, NULL, err); /* the error where a doc would be */
}

static int count_load(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct log *l = arg;

    (void)doc_len;
    log_add(l, STORE_CH_PUT, 0, id, doc);
    return 0;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Print what each log holds (for a failing test's reader). */
static void dump_log(const char *name, const struct log *l)
{
    size_t i = 0;

    for (i = 0; i < l->n; i++)
        fprintf(stderr, "  %s[%zu]: kind %d rc %d id '%s' doc '%s' rev %llu\n", name, i,
                l->s[i].kind, l->s[i].rc, l->s[i].id, l->s[i].doc, (unsigned long long)l->s[i].rev);
}

static void dump(const struct fixture *f)
{
    dump_log("A heard", &f->la);
    dump_log("B heard", &f->lb);
    dump_log("A done", &f->da);
    dump_log("B done", &f->db);
}

/* Run the loop until *n reaches want, or WAIT_MS passed. */
static void run_until(struct fixture *f, const size_t *n, size_t want)
{
    struct event *wake = evtimer_new(f->base, wake_cb, NULL);
    struct timeval tv = {0, 20 * 1000};
    struct timespec start, now;

    assert_non_null(wake);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (*n < want) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > WAIT_MS)
            break;
        evtimer_add(wake, &tv);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
    event_free(wake);
    if (*n != want) {
        dump(f);
        fail_msg("waited %d s for %zu records, got %zu", WAIT_MS / 1000, want, *n);
    }
}

/* Run the loop for ms milliseconds (to show that nothing more arrives). */
static void run_for(struct fixture *f, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(f->base, &tv);
    event_base_dispatch(f->base);
}

static struct store *open_store(struct fixture *f)
{
    struct store_etcd_options opt = {.endpoints = endpoints(), .prefix = f->prefix};
    char err[ERRLEN] = "";
    struct store *st = store_etcd_open(&opt, f->base, err, sizeof(err));

    if (!st)
        fail_msg("store_etcd_open: %s", err);
    return st;
}

static void load_and_follow(struct store *st, struct log *heard)
{
    char err[ERRLEN] = "";
    struct log ignored = {.st = st};

    heard->st = st;
    if (store_load(st, count_load, &ignored, err, sizeof(err)) != 0)
        fail_msg("store_load: %s", err);
    if (store_follow(st, on_change, heard, err, sizeof(err)) != 0)
        fail_msg("store_follow: %s", err);
}

static void put(struct store *st, const char *id, const char *doc, struct log *done)
{
    char err[ERRLEN] = "";

    if (store_put(st, id, doc, strlen(doc), on_done, done, err, sizeof(err)) != 0)
        fail_msg("store_put %s: %s", id, err);
}

static void del(struct store *st, const char *id, struct log *done)
{
    char err[ERRLEN] = "";

    if (store_del(st, id, on_done, done, err, sizeof(err)) != 0)
        fail_msg("store_del %s: %s", id, err);
}

/* Blocking POST to endpoint number which (0: the first) of ETCD_ENDPOINTS
 * (the test's own calls to etcd, off any loop); the answer into answer
 * (NUL-terminated, cut at answer_len) unless NULL. Returns the HTTP
 * status. */
static long etcd_post_to(int which, const char *path, const char *body, char *answer,
                         size_t answer_len)
{
    char url[512];
    const char *eps = endpoints();
    size_t n = 0;
    CURL *e = curl_easy_init();
    long status = 0;
    FILE *sink = answer ? fmemopen(answer, answer_len, "w") : fopen("/dev/null", "w");

    for (; which > 0 && strchr(eps, ','); which--)
        eps = strchr(eps, ',') + 1;
    n = strcspn(eps, ",");
    snprintf(url, sizeof(url), "%.*s%s", (int)n, eps, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    fclose(sink);
    return status;
}

static long etcd_post(const char *path, const char *body)
{
    return etcd_post_to(0, path, body, NULL, 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    static unsigned counter;

    if (!f || !endpoints())
        return -1;
    f->base = event_base_new();
    if (!f->base)
        return -1;
    snprintf(f->prefix, sizeof(f->prefix), "/follow-%ld-%u-%ld/", (long)getpid(), counter++,
             (long)time(NULL));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    store_close(f->a);
    store_close(f->b);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* A's writes reach B in order, with growing revisions equal to those A's
 * completions saw; writes queued in one turn share one revision (one txn);
 * neither handle hears its own writes through fn. */
static void test_writes_reach_the_other_in_order(void **state)
{
    struct fixture *f = *state;
    size_t i = 0;

    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    f->db.st = f->b;
    load_and_follow(f->a, &f->la);
    load_and_follow(f->b, &f->lb);

    put(f->a, "x1", "one", &f->da);
    put(f->a, "x2", "two", &f->da); /* same turn: same txn */
    run_until(f, &f->da.n, 2);
    put(f->a, "x3", "three", &f->da);
    run_until(f, &f->da.n, 3);
    del(f->a, "x1", &f->da);
    run_until(f, &f->da.n, 4);
    run_until(f, &f->lb.n, 4);

    for (i = 0; i < 4; i++)
        assert_int_equal(f->da.s[i].rc, 0);
    assert_int_equal(f->lb.s[0].kind, STORE_CH_PUT);
    assert_string_equal(f->lb.s[0].id, "x1");
    assert_string_equal(f->lb.s[0].doc, "one");
    assert_string_equal(f->lb.s[1].id, "x2");
    assert_string_equal(f->lb.s[1].doc, "two");
    assert_string_equal(f->lb.s[2].id, "x3");
    assert_int_equal(f->lb.s[3].kind, STORE_CH_DEL);
    assert_string_equal(f->lb.s[3].id, "x1");
    /* one txn, one revision; then strictly growing */
    assert_int_equal(f->lb.s[0].rev, f->lb.s[1].rev);
    assert_true(f->lb.s[2].rev > f->lb.s[1].rev);
    assert_true(f->lb.s[3].rev > f->lb.s[2].rev);
    for (i = 0; i < 4; i++)
        assert_int_equal(f->da.s[i].rev, f->lb.s[i].rev);

    /* B writes: A hears it, B only through its completion */
    put(f->b, "y1", "from-b", &f->db);
    run_until(f, &f->db.n, 1);
    run_until(f, &f->la.n, 1);
    assert_int_equal(f->db.s[0].rc, 0);
    assert_string_equal(f->la.s[0].id, "y1");
    assert_string_equal(f->la.s[0].doc, "from-b");
    assert_int_equal(f->la.s[0].rev, f->db.s[0].rev);
    assert_true(f->db.s[0].rev > f->lb.s[3].rev);
    run_for(f, 300);
    assert_int_equal(f->la.n, 1); /* A never heard x1..x3 */
    assert_int_equal(f->lb.n, 4); /* B never heard y1 */
    assert_int_equal(store_revision(f->a), store_revision(f->b));
    assert_true(store_writable(f->a));
}

/* Keys under <prefix>!writer/ in etcd now. */
static long writer_keys(const struct fixture *f)
{
    char from[PREFIX_MAX + 16], to[PREFIX_MAX + 16], body[512], answer[4096] = "";
    char f64[B64_ENCODED_LEN(sizeof(from))], t64[B64_ENCODED_LEN(sizeof(to))];
    const char *count = NULL;

    snprintf(from, sizeof(from), "%s!writer/", f->prefix);
    snprintf(to, sizeof(to), "%s!writer0", f->prefix); /* '/' + 1 */
    b64_encode((const unsigned char *)from, strlen(from), f64);
    b64_encode((const unsigned char *)to, strlen(to), t64);
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\",\"count_only\":true}", f64,
             t64);
    assert_int_equal(etcd_post_to(0, "/v3/kv/range", body, answer, sizeof(answer)), 200);
    count = strstr(answer, "\"count\":\"");
    return count ? strtol(count + 9, NULL, 10) : 0; /* 0 is left out */
}

/* A load after the writes gives the state: what is put and not deleted,
 * without the writers' keys. */
static void test_load_gives_the_state(void **state)
{
    struct fixture *f = *state;
    struct log loaded = {0};
    char err[ERRLEN] = "";

    f->a = open_store(f);
    f->da.st = f->a;
    load_and_follow(f->a, &f->la);
    put(f->a, "k1", "v1", &f->da);
    put(f->a, "k2", "v2", &f->da);
    run_until(f, &f->da.n, 2);
    del(f->a, "k1", &f->da);
    put(f->a, "k3", "v3", &f->da);
    run_until(f, &f->da.n, 4);

    f->b = open_store(f);
    loaded.st = f->b;
    assert_int_equal(store_load(f->b, count_load, &loaded, err, sizeof(err)), 0);
    assert_int_equal(loaded.n, 2);
    assert_true((strcmp(loaded.s[0].id, "k2") == 0 && strcmp(loaded.s[1].id, "k3") == 0) ||
                (strcmp(loaded.s[0].id, "k3") == 0 && strcmp(loaded.s[1].id, "k2") == 0));
    assert_int_equal(store_revision(f->b), f->da.s[3].rev);

    /* A's writer key (under <prefix>!writer/) is gone once A is closed */
    assert_int_equal(writer_keys(f), 1);
    store_close(f->a);
    f->a = NULL;
    assert_int_equal(writer_keys(f), 0);
}

/* B loaded, then the history past its revision was compacted before it
 * could follow: following reports RESET, the state as PUTs, RESET_END, at
 * one revision; later commits arrive as usual. */
static void test_compaction_resets(void **state)
{
    struct fixture *f = *state;
    struct log ignored = {0};
    char err[ERRLEN] = "";
    char body[128];
    size_t i = 0, puts = 0;
    uint64_t rev = 0;

    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    load_and_follow(f->a, &f->la);
    ignored.st = f->b;
    f->lb.st = f->b;
    assert_int_equal(store_load(f->b, count_load, &ignored, err, sizeof(err)), 0);
    assert_int_equal(ignored.n, 0);

    put(f->a, "c1", "a", &f->da);
    run_until(f, &f->da.n, 1);
    put(f->a, "c2", "b", &f->da);
    run_until(f, &f->da.n, 2);
    del(f->a, "c1", &f->da);
    run_until(f, &f->da.n, 3);
    rev = f->da.s[2].rev;
    snprintf(body, sizeof(body), "{\"revision\":%llu,\"physical\":true}", (unsigned long long)rev);
    assert_int_equal(etcd_post("/v3/kv/compaction", body), 200);

    assert_int_equal(store_follow(f->b, on_change, &f->lb, err, sizeof(err)), 0);
    run_until(f, &f->lb.n, 3);
    assert_int_equal(f->lb.s[0].kind, STORE_CH_RESET);
    assert_int_equal(f->lb.s[f->lb.n - 1].kind, STORE_CH_RESET_END);
    for (i = 1; i + 1 < f->lb.n; i++) {
        assert_int_equal(f->lb.s[i].kind, STORE_CH_PUT);
        assert_string_equal(f->lb.s[i].id, "c2");
        assert_string_equal(f->lb.s[i].doc, "b");
        puts++;
    }
    assert_int_equal(puts, 1);
    for (i = 0; i < f->lb.n; i++)
        assert_true(f->lb.s[i].rev >= rev);

    put(f->a, "c3", "c", &f->da);
    run_until(f, &f->da.n, 4);
    run_until(f, &f->lb.n, 4);
    assert_int_equal(f->lb.s[3].kind, STORE_CH_PUT);
    assert_string_equal(f->lb.s[3].id, "c3");
    assert_int_equal(f->lb.s[3].rev, f->da.s[3].rev);
}

/* Where id is in l, or -1. */
static int log_find(const struct log *l, const char *id)
{
    size_t i = 0;

    for (i = 0; i < l->n; i++) {
        if (strcmp(l->s[i].id, id) == 0)
            return (int)i;
    }
    return -1;
}

/* The first member (the endpoint both handles use) is killed while they
 * follow. A write sent on a connection the kill reset has an unknown
 * outcome and fails (-1); every acknowledged write reaches B in order at
 * the revision A's completion had; a failed one reaches B only if etcd
 * applied it after all, and then A's fn hears it too (it is not A's any
 * more); once failed over, writes are acknowledged again. Then a second
 * member is killed: the store turns unwritable and a write fails. Last:
 * it leaves the cluster without quorum. */
static void test_follow_survives_member_loss(void **state)
{
    struct fixture *f = *state;
    const char *pids = getenv("ETCD_PIDS");
    long pid = pids ? strtol(pids, NULL, 10) : 0;
    struct timespec pause = {0, 100 * 1000 * 1000};
    size_t acked = 0, k = 0;
    int i = 0, last = -1;
    char id[16];

    if (pid <= 0)
        skip();
    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    load_and_follow(f->a, &f->la);
    load_and_follow(f->b, &f->lb);
    put(f->a, "m1", "one", &f->da);
    run_until(f, &f->lb.n, 1);

    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    /* the other two elect a leader if the dead one was it */
    for (i = 0; i < 100 && etcd_post_to(1, "/v3/kv/range", "{\"key\":\"eA==\"}", NULL, 0) != 200;
         i++)
        nanosleep(&pause, NULL);
    for (k = 2; k <= 6; k++) {
        snprintf(id, sizeof(id), "m%zu", k);
        put(f->a, id, "after", &f->da);
        run_until(f, &f->da.n, k);
    }
    /* m1 too may have failed: B heard it, but the kill cut A's txn before
     * its answer */
    for (k = 1; k <= 6; k++)
        acked += f->da.s[k - 1].rc == 0;
    assert_int_equal(f->da.s[5].rc, 0); /* failed over by then */
    run_for(f, 500);
    if (f->lb.n < acked) {
        dump(f);
        fail_msg("B heard %zu of the %zu writes A had acknowledged", f->lb.n, acked);
    }
    for (k = 1; k <= 6; k++) {
        int at = 0;

        snprintf(id, sizeof(id), "m%zu", k);
        at = log_find(&f->lb, id);
        if (f->da.s[k - 1].rc == 0) {
            assert_true(at >= 0);
            assert_int_equal(f->lb.s[at].rev, f->da.s[k - 1].rev);
            assert_int_equal(log_find(&f->la, id), -1);
        } else {
            assert_int_equal(at >= 0, log_find(&f->la, id) >= 0);
        }
        if (at >= 0) {
            assert_true(at > last); /* in the order of the writes */
            assert_true(last < 0 || f->lb.s[at].rev > f->lb.s[last].rev);
            last = at;
        }
    }
    assert_int_equal((size_t)last + 1, f->lb.n); /* nothing else, nothing twice */
    assert_true(store_writable(f->a));

    /* a second member gone: no quorum. The probe notices (writable false)
     * and a write fails, never a yes. */
    pid = strchr(pids, ',') ? strtol(strchr(pids, ',') + 1, NULL, 10) : 0;
    assert_true(pid > 0);
    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    for (i = 0; i < 50 && store_writable(f->a); i++)
        run_for(f, 100);
    assert_false(store_writable(f->a));
    put(f->a, "m7", "no quorum", &f->da);
    run_until(f, &f->da.n, 7);
    assert_int_equal(f->da.s[6].rc, -1);
    assert_non_null(strstr(f->da.s[6].doc, "etcd store"));
}

/* Lease answers of one handle: leases[i] is the grant of lease i, and the
 * keepalives of lease i land in kept[i] (each adds one, its TTL in ttl[i]
 * and rc in rc[i]; a failure is counted in failed). */
#define LEASES (LIM_ETCD_KA_BATCH + 44)

struct leases {
    int64_t id[LEASES + 1];
    size_t granted, answers, failed;
    int kept[LEASES + 1];
    int64_t ttl[LEASES + 1];
};

struct lease_slot {
    struct leases *l;
    size_t i;
};

static struct lease_slot slots[LEASES + 1];

static void on_granted(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct lease_slot *s = arg;

    (void)ttl_s;
    if (rc != 0)
        fail_msg("grant %zu: %s", s->i, err ? err : "?");
    s->l->id[s->i] = lease;
    s->l->granted++;
}

static void on_kept(void *arg, int rc, int64_t lease, int64_t ttl_s, const char *err)
{
    struct lease_slot *s = arg;

    (void)err;
    s->l->answers++;
    if (rc != 0) {
        s->l->failed++;
        return;
    }
    assert_int_equal(lease, s->l->id[s->i]);
    s->l->kept[s->i]++;
    s->l->ttl[s->i] = ttl_s;
}

/* Grant n leases of 30 s on f->a into l (slots 0..n-1, l reset first),
 * waiting for every grant; then revoke lease number revoke through etcd
 * itself, so that etcd no longer knows it. */
static void grant_leases(struct fixture *f, struct leases *l, size_t n, size_t revoke)
{
    char err[ERRLEN] = "", body[96];
    size_t i = 0;

    memset(l, 0, sizeof(*l));
    for (i = 0; i < n; i++) {
        slots[i] = (struct lease_slot){l, i};
        if (store_lease_grant(f->a, 30000, on_granted, &slots[i], err, sizeof(err)) != 0)
            fail_msg("store_lease_grant: %s", err);
    }
    run_until(f, &l->granted, n);
    snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)l->id[revoke]);
    assert_int_equal(etcd_post("/v3/lease/revoke", body), 200);
}

/* Keepalives asked in one turn, more than one request holds, each lease
 * asked twice, and one lease revoked: every lease is answered on its own
 * (the TTL left; 0 for the revoked one), the second asking of a lease
 * joins the first (same answer), none fails. */
static void test_keepalives_share_requests(void **state)
{
    struct fixture *f = *state;
    static struct leases l;
    char err[ERRLEN] = "";
    size_t i = 0;

    f->a = open_store(f);
    load_and_follow(f->a, &f->la);
    grant_leases(f, &l, LEASES + 1, LEASES);

    for (i = 0; i <= LEASES; i++)
        if (store_lease_keepalive(f->a, l.id[i], on_kept, &slots[i], err, sizeof(err)) != 0 ||
            (i < LEASES &&
             store_lease_keepalive(f->a, l.id[i], on_kept, &slots[i], err, sizeof(err)) != 0))
            fail_msg("store_lease_keepalive %zu: %s", i, err);
    run_until(f, &l.answers, 2 * LEASES + 1);
    assert_int_equal(l.failed, 0);
    for (i = 0; i < LEASES; i++) {
        assert_int_equal(l.kept[i], 2);
        assert_true(l.ttl[i] > 0 && l.ttl[i] <= 30);
    }
    assert_int_equal(l.kept[LEASES], 1);
    assert_int_equal(l.ttl[LEASES], 0); /* revoked: gone */
}

/* Writes of one turn share a txn, leased puts among them. A put bound to
 * a lease etcd no longer has makes etcd refuse the txn: that put alone
 * fails (-1, etcd's message), the plain writes around it are committed
 * (in one txn: one revision) and reach B; a put on a live lease in the
 * same turn is lost with the revoked one (both leased), and that is all. */
static void test_a_lapsed_lease_fails_only_leased_puts(void **state)
{
    struct fixture *f = *state;
    static struct leases l;
    char err[ERRLEN] = "";

    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    load_and_follow(f->a, &f->la);
    load_and_follow(f->b, &f->lb);
    grant_leases(f, &l, 2, 0);

    put(f->a, "k1", "one", &f->da);
    if (store_put_leased(f->a, "a1", "gone", 4, l.id[0], on_done, &f->da, err, sizeof(err)) != 0 ||
        store_put_leased(f->a, "a2", "live", 4, l.id[1], on_done, &f->da, err, sizeof(err)) != 0)
        fail_msg("store_put_leased: %s", err);
    put(f->a, "k2", "two", &f->da);
    run_until(f, &f->da.n, 4);
    /* the leased ones fail first, ahead of their turn; then k1 and k2 */
    assert_int_equal(f->da.s[0].rc, -1);
    assert_non_null(strstr(f->da.s[0].doc, "lease not found"));
    assert_int_equal(f->da.s[1].rc, -1);
    assert_int_equal(f->da.s[2].rc, 0);
    assert_int_equal(f->da.s[3].rc, 0);
    assert_int_equal(f->da.s[2].rev, f->da.s[3].rev);
    run_until(f, &f->lb.n, 2);
    run_for(f, 300);
    assert_int_equal(f->lb.n, 2);
    assert_string_equal(f->lb.s[0].id, "k1");
    assert_string_equal(f->lb.s[1].id, "k2");
    assert_int_equal(f->lb.s[1].rev, f->da.s[3].rev);
}

/* Run what the loop has ready now, without waiting: the end of a turn
 * (the store sends what the turn queued). */
static void end_turn(struct fixture *f) { event_base_loop(f->base, EVLOOP_NONBLOCK); }

#define TURNS 10

/* One write of a different id in each of TURNS turns, queued faster than
 * etcd answers: several txns go out together (the first
 * LIM_ETCD_TXNS_MAX turns each in one of their own, the rest after them),
 * so B hears more revisions than LIM_ETCD_TXNS_MAX; every write commits,
 * and A's completions come in the order of their revisions, each at the
 * revision B heard for some write. */
static void test_txns_in_flight_write_disjoint_ids(void **state)
{
    struct fixture *f = *state;
    size_t i = 0, j = 0, revs = 0;
    char id[ID_MAX], doc[DOC_MAX];

    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    load_and_follow(f->a, &f->la);
    load_and_follow(f->b, &f->lb);
    for (i = 0; i < TURNS; i++) {
        snprintf(id, sizeof(id), "d%zu", i);
        snprintf(doc, sizeof(doc), "v%zu", i);
        put(f->a, id, doc, &f->da);
        end_turn(f);
    }
    run_until(f, &f->da.n, TURNS);
    run_until(f, &f->lb.n, TURNS);
    for (i = 0; i < TURNS; i++) {
        bool heard = false;

        assert_int_equal(f->da.s[i].rc, 0);
        if (i > 0)
            assert_true(f->da.s[i].rev >= f->da.s[i - 1].rev);
        for (j = 0; j < TURNS; j++)
            heard = heard || f->lb.s[j].rev == f->da.s[i].rev;
        assert_true(heard);
        snprintf(id, sizeof(id), "d%zu", i);
        for (j = 0; j < TURNS && strcmp(f->lb.s[j].id, id) != 0; j++)
            ;
        assert_true(j < TURNS); /* each id heard */
        snprintf(doc, sizeof(doc), "v%zu", i);
        assert_string_equal(f->lb.s[j].doc, doc);
        revs += i == 0 || f->lb.s[i].rev != f->lb.s[i - 1].rev;
    }
    if (revs <= LIM_ETCD_TXNS_MAX) {
        dump(f);
        fail_msg("%zu turns made %zu txns: they did not go out together", (size_t)TURNS, revs);
    }
}

/* Writes of one id keep their order whatever else is out: two puts and
 * a delete of x in one turn (etcd refuses a txn that names a key twice,
 * so they take a txn each), then a put of x in each of the next turns
 * beside a write of another id; every write of x commits, in order, at
 * growing revisions, and B hears them in that order. */
static void test_one_id_keeps_its_order(void **state)
{
    struct fixture *f = *state;
    struct log others = {0};
    size_t i = 0, j = 0;
    char id[ID_MAX], doc[DOC_MAX];
    const char *want[3 + TURNS];

    f->a = open_store(f);
    f->b = open_store(f);
    f->da.st = f->a;
    others.st = f->a;
    load_and_follow(f->a, &f->la);
    load_and_follow(f->b, &f->lb);
    put(f->a, "x", "first", &f->da);
    put(f->a, "x", "second", &f->da);
    del(f->a, "x", &f->da);
    want[0] = "first";
    want[1] = "second";
    want[2] = "";
    end_turn(f);
    for (i = 0; i < TURNS; i++) {
        static char docs[TURNS][DOC_MAX];

        snprintf(docs[i], sizeof(docs[i]), "x%zu", i);
        want[3 + i] = docs[i];
        put(f->a, "x", docs[i], &f->da);
        snprintf(id, sizeof(id), "o%zu", i);
        snprintf(doc, sizeof(doc), "o%zu", i);
        put(f->a, id, doc, &others);
        end_turn(f);
    }
    run_until(f, &f->da.n, 3 + TURNS);
    run_until(f, &others.n, TURNS);
    run_until(f, &f->lb.n, 3 + 2 * TURNS);
    for (i = 0; i < 3 + TURNS; i++) {
        assert_int_equal(f->da.s[i].rc, 0);
        if (i > 0)
            assert_true(f->da.s[i].rev > f->da.s[i - 1].rev);
    }
    for (i = 0; i < TURNS; i++)
        assert_int_equal(others.s[i].rc, 0);
    for (i = 0, j = 0; i < f->lb.n; i++) {
        if (strcmp(f->lb.s[i].id, "x") != 0)
            continue;
        assert_true(j < 3 + TURNS);
        assert_int_equal(f->lb.s[i].kind, j == 2 ? STORE_CH_DEL : STORE_CH_PUT);
        if (j != 2)
            assert_string_equal(f->lb.s[i].doc, want[j]);
        assert_int_equal(f->lb.s[i].rev, f->da.s[j].rev);
        j++;
    }
    assert_int_equal(j, 3 + TURNS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_reach_the_other_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_gives_the_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalives_share_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lapsed_lease_fails_only_leased_puts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_txns_in_flight_write_disjoint_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_id_keeps_its_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_survives_member_loss, setup, teardown),
    };

    if (!endpoints() || !endpoints()[0]) {
        fprintf(stderr, "test_etcd_follow: ETCD_ENDPOINTS is not set (run it through "
                        "tests/integration/etcd_run.py)\n");
        return 77;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
