/* test_ingest.c: unit tests of the logging-service's ingest
 * (logging-service/ingest.h): the item rules and their error texts, alike
 * for the jsonflat and the jansson reader; duplicates and conflicts within
 * one batch and against stored messages; a batch whose journal write fails
 * for real (a file size limit, SIGXFSZ ignored, as the service does: write
 * fails with EFBIG) leaving the store exactly as before; replay of a journal
 * holding repeated uuids. Each test has a real journal in its own mkdtemp
 * directory, removed by the teardown. */
#include "logging-service/ingest.h"

#include "codec/jsonflat.h"
#include "core/log.h"
#include "dedup/store.h"
#include "logging-service/journal.h"
#include "support.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>

#define ERRLEN    512
#define DIR_LEN   256
#define FILE_NAME "logging-5001.jsonl"
#define TOKS_MAX  64
#define NOW       1700000000000LL /* the "now" items without ts get */

#define UA "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define UB "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define UC "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
#define UD "dddddddd-dddd-4ddd-8ddd-dddddddddddd"

struct fixture {
    char dir[DIR_LEN]; /* mkdtemp directory, removed by teardown */
    char path[DIR_LEN + sizeof(FILE_NAME) + 1];
    struct ds_store *store;
    struct jn_journal *journal;
    struct ig_ingest *ig;
};

/* Close and free what the fixture opened (each may be NULL). */
static void fixture_close(struct fixture *fx)
{
    ig_free(fx->ig);
    jn_close(fx->journal);
    ds_free(fx->store);
    fx->ig = NULL;
    fx->journal = NULL;
    fx->store = NULL;
}

/* A fresh store and an ingest over the journal of fx->dir (replayed when
 * replay). Returns ig_replay's count (0 without replay). */
static long fixture_open(struct fixture *fx, bool replay)
{
    char err[ERRLEN] = "";
    long n = 0;

    fx->store = ds_new();
    assert_non_null(fx->store);
    fx->journal = jn_open(fx->dir, FILE_NAME, JN_FSYNC_NO, 0, err, sizeof(err));
    if (!fx->journal)
        print_error("jn_open: %s\n", err);
    assert_non_null(fx->journal);
    fx->ig = ig_new(fx->store, fx->journal);
    assert_non_null(fx->ig);
    if (replay) {
        n = ig_replay(fx->ig, err, sizeof(err));
        if (n < 0)
            print_error("ig_replay: %s\n", err);
        assert_true(n >= 0);
    }
    return n;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/test_ingest.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, FILE_NAME);
    log_set_level(LOGL_WARN); /* no INFO line per stored message */
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    fixture_close(fx);
    ts_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* --- helpers ---------------------------------------------------------- */

/* A valid item (strings borrowed: literals). */
static struct ig_item item(const char *uuid, const char *msg)
{
    struct ig_fields f = {0};
    struct ig_item it;

    f.is_object = true;
    f.uuid_kind = IG_STR;
    f.uuid = uuid;
    f.uuid_len = strlen(uuid);
    f.msg_kind = IG_STR;
    f.msg = msg;
    f.msg_len = strlen(msg);
    assert_int_equal(ig_check_item(&f, NOW, &it), 0);
    return it;
}

static void apply_ok(struct fixture *fx, struct ig_item *items, size_t n)
{
    char err[ERRLEN] = "";
    int rc = ig_apply(fx->ig, items, n, err, sizeof(err));

    if (rc != 0)
        print_error("ig_apply: %s\n", err);
    assert_int_equal(rc, 0);
}

/* The message stored at position i is uuid with msg. */
static void assert_at(struct fixture *fx, size_t i, const char *uuid, const char *msg)
{
    struct ds_view v;

    assert_true(ds_at(fx->store, i, &v));
    assert_string_equal(v.uuid, uuid);
    assert_string_equal(v.msg, msg);
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* --- the rules --------------------------------------------------------- */

/* One posted item and what both readers must say about it. */
struct rule_case {
    const char *body;  /* one JSON object (or value) in jsonflat's subset */
    int status;        /* 0 (valid) or 400 */
    const char *error; /* the exact error text of a 400 */
};

/* Each item gets the same verdict and the same error text from the fields
 * jansson read and from those jsonflat read; a valid one has its uuid in
 * lower case and now as its ts when it gave none. */
static void test_rules_alike_for_both_readers(void **state)
{
    static char big[LG_MSG_MAX + 64];
    static const struct rule_case cases[] = {
        {"[1]", 400, "a message must be a JSON object with \"uuid\" and \"msg\""},
        {"{\"msg\":\"m\"}", 400, "field 'uuid' is required"},
        {"{\"uuid\":7,\"msg\":\"m\"}", 400, "field 'uuid' must be a string"},
        {"{\"uuid\":\"nope\",\"msg\":\"m\"}", 400,
         "field 'uuid' must be a canonical UUID (8-4-4-4-12 hex digits), got 'nope'"},
        {"{\"uuid\":\"" UA "\"}", 400, "field 'msg' is required"},
        {"{\"uuid\":\"" UA "\",\"msg\":true}", 400, "field 'msg' must be a string"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"\"}", 400, "field 'msg' must not be empty"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"ts\":\"x\"}", 400,
         "field 'ts' must be an integer (milliseconds since the epoch)"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"ts\":-1}", 400,
         "field 'ts' must be between 0 and 253402300799999, got -1"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"ts\":253402300800000}", 400,
         "field 'ts' must be between 0 and 253402300799999, got 253402300800000"},
        {"{\"uuid\":\"AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA\",\"msg\":\"m\"}", 0, ""},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"ts\":5}", 0, ""},
        /* the optional trace: a valid id is kept, anything else refused */
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"trace\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}", 0,
         ""},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"trace\":7}", 400,
         "field 'trace' must be a W3C trace id (32 lower-case hex digits, not all zero)"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"trace\":\"4bf9\"}", 400,
         "field 'trace' must be a W3C trace id (32 lower-case hex digits, not all zero)"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"trace\":\"4BF92F3577B34DA6A3CE929D0E0E4736\"}", 400,
         "field 'trace' must be a W3C trace id (32 lower-case hex digits, not all zero)"},
        {"{\"uuid\":\"" UA "\",\"msg\":\"m\",\"trace\":\"00000000000000000000000000000000\"}", 400,
         "field 'trace' must be a W3C trace id (32 lower-case hex digits, not all zero)"},
    };
    struct jf_tok toks[TOKS_MAX];
    struct ig_fields ff, fj;
    struct ig_item a, b;
    json_error_t jerr;
    size_t i, obj;
    int len;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *body = cases[i].body;
        json_t *root = json_loads(body, 0, &jerr);

        assert_non_null(root);
        assert_int_equal(jf_parse(body, strlen(body), toks, TOKS_MAX, NULL), JF_OK);
        /* "[1]": the item is the array's element, as in a batch */
        obj = toks[0].type == JF_ARRAY ? 1 : 0;
        ig_fields_flat(toks, obj, &ff);
        ig_fields_json(json_is_array(root) ? json_array_get(root, 0) : root, &fj);
        assert_int_equal(ig_check_item(&ff, NOW, &a), cases[i].status ? -1 : 0);
        assert_int_equal(ig_check_item(&fj, NOW, &b), cases[i].status ? -1 : 0);
        assert_int_equal(a.status, cases[i].status);
        assert_int_equal(b.status, cases[i].status);
        assert_string_equal(a.error, cases[i].error);
        assert_string_equal(b.error, cases[i].error);
        if (cases[i].status == 0) {
            assert_string_equal(a.uuid, UA);
            assert_string_equal(b.uuid, UA);
            assert_int_equal(a.ts, strstr(body, "\"ts\"") ? 5 : NOW);
            assert_int_equal(b.ts, a.ts);
            assert_int_equal(a.len, 1);
            assert_string_equal(
                a.trace, strstr(body, "\"trace\"") ? "4bf92f3577b34da6a3ce929d0e0e4736" : "");
            assert_string_equal(b.trace, a.trace);
        }
        json_decref(root);
    }

    /* a msg one byte over the limit */
    memset(big, 'x', sizeof(big));
    len = snprintf(big, sizeof(big), "{\"uuid\":\"%s\",\"msg\":\"", UA);
    memset(big + len, 'x', LG_MSG_MAX + 1);
    memcpy(big + len + LG_MSG_MAX + 1, "\"}", 3);
    assert_int_equal(jf_parse(big, strlen(big), toks, TOKS_MAX, NULL), JF_OK);
    ig_fields_flat(toks, 0, &ff);
    assert_int_equal(ig_check_item(&ff, NOW, &a), -1);
    assert_int_equal(a.status, 400);
    assert_string_equal(a.error, "field 'msg' is 65537 bytes, over the limit of 65536");
}

/* --- store + journal --------------------------------------------------- */

/* Within one batch and against stored messages: a new uuid is 201, the
 * same uuid and msg again 200 (also twice in one batch), another msg 409
 * with its error; items refused by the rules keep their 400. Only the new
 * messages reach the journal, in order; the counters say what happened. */
static void test_duplicates_and_conflicts(void **state)
{
    struct fixture *fx = *state;
    struct ig_item first[2] = {item(UA, "a"), item(UB, "b")};
    struct ig_item batch[7] = {
        item(UC, "c"),     /* new */
        item(UA, "a"),     /* duplicate of a stored one */
        item(UB, "other"), /* conflict with a stored one */
        item(UC, "c"),     /* duplicate of an earlier item */
        item(UD, "d"),     /* new */
        item(UD, "x"),     /* conflict with an earlier item */
        item(UA, "a"),     /* made invalid below */
    };
    const int want[7] = {201, 200, 409, 200, 201, 409, 400};
    struct ig_stats st;
    size_t i;

    fixture_open(fx, false);
    apply_ok(fx, first, 2);
    assert_int_equal(first[0].status, 201);
    assert_int_equal(first[1].status, 201);

    batch[6].status = 400;
    snprintf(batch[6].error, sizeof(batch[6].error), "refused by the rules");
    apply_ok(fx, batch, 7);
    for (i = 0; i < 7; i++)
        assert_int_equal(batch[i].status, want[i]);
    assert_string_equal(batch[2].error, "uuid " UB " is already stored with a different msg");
    assert_string_equal(batch[5].error, "uuid " UD " is already stored with a different msg");
    assert_string_equal(batch[6].error, "refused by the rules");
    assert_string_equal(batch[0].error, "");
    assert_string_equal(batch[1].error, "");

    assert_int_equal(ds_count(fx->store), 4);
    assert_at(fx, 0, UA, "a");
    assert_at(fx, 1, UB, "b");
    assert_at(fx, 2, UC, "c");
    assert_at(fx, 3, UD, "d");
    ig_get_stats(fx->ig, &st);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.conflicts, 2);
    assert_int_equal(st.write_failures, 0);

    /* the journal holds the four new messages once each, in order */
    fixture_close(fx);
    assert_int_equal(fixture_open(fx, true), 4);
    assert_at(fx, 2, UC, "c");
    assert_at(fx, 3, UD, "d");
}

/* A batch whose journal write fails for real (a file size limit: write
 * gets EFBIG) is refused as a whole: the store is exactly as before (its
 * count, its messages), the journal file too, the items are undecided
 * again, and the failure is counted. Once there is room, the same uuid is a
 * new message (201), not a duplicate of something half kept. */
static void test_failed_journal_write_rolls_back(void **state)
{
    struct fixture *fx = *state;
    static char big[4096];
    struct ig_item first[2] = {item(UA, "a"), item(UB, "b")};
    struct ig_item batch[4];
    struct ig_item again[2];
    struct rlimit old, lim;
    struct ig_stats st;
    char err[ERRLEN] = "";
    off_t size;
    size_t i;
    int rc;

    memset(big, 'y', sizeof(big) - 1);
    batch[0] = item(UC, "c");     /* new */
    batch[1] = item(UA, "a");     /* duplicate */
    batch[2] = item(UB, "other"); /* conflict */
    batch[3] = item(UD, big);     /* new, and too big for the limit */
    fixture_open(fx, false);
    apply_ok(fx, first, 2);
    size = file_size(fx->path);

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 100; /* room for C's line, not for D's */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = ig_apply(fx->ig, batch, 4, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(ds_count(fx->store), 2);
    assert_at(fx, 0, UA, "a");
    assert_at(fx, 1, UB, "b");
    assert_false(ds_get(fx->store, UC, NULL));
    assert_false(ds_get(fx->store, UD, NULL));
    assert_int_equal(file_size(fx->path), size);
    for (i = 0; i < 4; i++) {
        assert_int_equal(batch[i].status, 0);
        assert_string_equal(batch[i].error, "");
    }
    ig_get_stats(fx->ig, &st);
    assert_int_equal(st.write_failures, 1);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.conflicts, 0);

    /* room again: C and D are new messages */
    again[0] = item(UC, "c");
    again[1] = item(UD, "d");
    apply_ok(fx, again, 2);
    assert_int_equal(again[0].status, 201);
    assert_int_equal(again[1].status, 201);
    assert_int_equal(ds_count(fx->store), 4);
    assert_at(fx, 3, UD, "d");

    /* and disk agrees with memory */
    fixture_close(fx);
    assert_int_equal(fixture_open(fx, true), 4);
    assert_at(fx, 0, UA, "a");
    assert_at(fx, 1, UB, "b");
    assert_at(fx, 2, UC, "c");
    assert_at(fx, 3, UD, "d");
}

/* --- replay ------------------------------------------------------------ */

/* A journal holding a uuid more than once (the same msg again, another msg,
 * the same uuid in upper case) replays as if posted again: each uuid once,
 * with its first message and ts, in the order first written; what was
 * replayed is a duplicate for a later post. */
static void test_replay_with_duplicates(void **state)
{
    struct fixture *fx = *state;
    const struct jn_record recs[] = {
        {UA, "a", 1, 10, "4bf92f3577b34da6a3ce929d0e0e4736"}, /* with a trace */
        {UB, "b", 1, 20, NULL},
        {UA, "a", 1, 30, NULL},                                     /* the same again */
        {UA, "changed", 7, 40, NULL},                               /* another msg */
        {"BBBBBBBB-BBBB-4BBB-8BBB-BBBBBBBBBBBB", "b", 1, 50, NULL}, /* upper case */
        {UC, "c", 1, 60, NULL},
    };
    struct ig_item post[2] = {item(UA, "a"), item(UC, "not c")};
    struct ds_view v;
    char err[ERRLEN] = "";

    fixture_open(fx, false);
    assert_int_equal(jn_append(fx->journal, recs, sizeof(recs) / sizeof(recs[0]), err, sizeof(err)),
                     0);
    fixture_close(fx);

    assert_int_equal(fixture_open(fx, true), 3);
    assert_int_equal(ds_count(fx->store), 3);
    assert_at(fx, 0, UA, "a");
    assert_at(fx, 1, UB, "b");
    assert_at(fx, 2, UC, "c");
    assert_true(ds_get(fx->store, UA, &v));
    assert_int_equal(v.ts, 10);
    assert_true(ds_get(fx->store, UB, &v));
    assert_int_equal(v.ts, 20);
    /* the trace comes back with its message; a line without one has none */
    assert_non_null(ig_trace_at(fx->ig, 0));
    assert_memory_equal(ig_trace_at(fx->ig, 0), "4bf92f3577b34da6a3ce929d0e0e4736", 32);
    assert_null(ig_trace_at(fx->ig, 1));

    apply_ok(fx, post, 2);
    assert_int_equal(post[0].status, 200);
    assert_int_equal(post[1].status, 409);
    assert_int_equal(ds_count(fx->store), 3);
}

/* Finding 1 of "Harden what exists": replay applies the rules of a POST.
 * Lines with a ts of -5 or 10^17 or a msg of 70,000 bytes (well formed,
 * but no POST could have stored them) used to be loaded; now they are kept
 * out of memory and copied to the .rejected file, and the good lines around
 * them are served. */
static void test_replay_applies_the_post_rules(void **state)
{
    struct fixture *fx = *state;
    static char huge[70001];
    const struct jn_record recs[] = {
        {UA, "good", 4, 10, NULL},
        {UB, "ts below zero", 13, -5, NULL},
        {UC, "ts far ahead", 12, 100000000000000000LL, NULL},
        {UD, huge, sizeof(huge) - 1, 20, NULL},
        {UB, "good too", 8, LG_TS_MAX, NULL},
    };
    char rej[DIR_LEN + sizeof(FILE_NAME) + 16];
    char err[ERRLEN] = "";
    char line[128];
    FILE *f = NULL;
    size_t lines = 0;

    memset(huge, 'h', sizeof(huge) - 1);
    fixture_open(fx, false);
    assert_int_equal(jn_append(fx->journal, recs, sizeof(recs) / sizeof(recs[0]), err, sizeof(err)),
                     0);
    fixture_close(fx);

    assert_int_equal(fixture_open(fx, true), 2);
    assert_at(fx, 0, UA, "good");
    assert_at(fx, 1, UB, "good too");
    assert_false(ds_get(fx->store, UC, NULL));
    assert_false(ds_get(fx->store, UD, NULL));
    snprintf(rej, sizeof(rej), "%s.rejected", fx->path);
    f = fopen(rej, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        lines += strchr(line, '\n') != NULL;
    fclose(f);
    assert_int_equal(lines, 3);
}

/* Finding 2 of "Harden what exists": a journal deleted while the instance
 * runs used to take writes that vanished on restart. The next batch now
 * notices it (one fstat after the write) and writes every stored message
 * to a new file at the path before it succeeds; when even that cannot be
 * done (the directory is gone too) the batch fails with nothing kept and
 * jn_health says why, and the next batch once the directory is back
 * recreates the whole journal. */
static void test_deleted_journal_is_written_again(void **state)
{
    struct fixture *fx = *state;
    struct ig_item first[2] = {item(UA, "a"), item(UB, "b")};
    struct ig_item second[1] = {item(UC, "c")};
    struct ig_item third[1] = {item(UD, "d")};
    char err[ERRLEN] = "", why[ERRLEN] = "";

    fixture_open(fx, false);
    apply_ok(fx, first, 2);
    assert_int_equal(unlink(fx->path), 0);
    apply_ok(fx, second, 1);
    assert_int_equal(second[0].status, 201);
    assert_int_equal(jn_health(fx->journal, why, sizeof(why)), 0);

    /* the journal and its directory gone: refused, nothing kept */
    assert_int_equal(unlink(fx->path), 0);
    assert_int_equal(rmdir(fx->dir), 0);
    assert_int_equal(ig_apply(fx->ig, third, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "deleted"));
    assert_int_equal(third[0].status, 0);
    assert_int_equal(ds_count(fx->store), 3);
    assert_int_equal(jn_health(fx->journal, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "deleted"));
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    apply_ok(fx, third, 1);
    assert_int_equal(third[0].status, 201);
    assert_int_equal(jn_health(fx->journal, why, sizeof(why)), 0);

    fixture_close(fx);
    assert_int_equal(fixture_open(fx, true), 4);
    assert_at(fx, 0, UA, "a");
    assert_at(fx, 1, UB, "b");
    assert_at(fx, 2, UC, "c");
    assert_at(fx, 3, UD, "d");
}

/* Finding 2: a rewrite of a deleted journal that fails part way (a file
 * size limit lets its first IG_REWRITE_CHUNK lines in, not the rest)
 * refuses the batch and is started over by the next one once there is
 * room (no line twice); a file someone put at the path meanwhile is never
 * overwritten (the batch is refused). */
static void test_deleted_journal_rewrite_failures(void **state)
{
    enum { N = IG_REWRITE_CHUNK + 44 };
    struct fixture *fx = *state;
    static char uuids[N][UID_STR_LEN + 1], msgs[N][8];
    static struct ig_item first[N];
    struct ig_item late[1] = {item(UD, "d")};
    struct ig_item later[1];
    struct rlimit old, lim;
    char err[ERRLEN] = "";
    FILE *f = NULL;
    off_t line;
    size_t i;
    int rc;

    for (i = 0; i < N; i++) {
        snprintf(uuids[i], sizeof(uuids[i]), "00000000-0000-4000-8000-%012zu", i);
        snprintf(msgs[i], sizeof(msgs[i]), "m%04zu", i);
        first[i] = item(uuids[i], msgs[i]);
    }
    fixture_open(fx, false);
    apply_ok(fx, first, N);
    line = file_size(fx->path) / N; /* every line is as long */
    assert_int_equal(file_size(fx->path), line * N);

    assert_int_equal(unlink(fx->path), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)(line * IG_REWRITE_CHUNK + line / 2); /* the first chunk fits */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = ig_apply(fx->ig, late, 1, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, -1);
    assert_int_equal(ds_count(fx->store), N);
    assert_int_equal(late[0].status, 0);
    assert_int_equal(file_size(fx->path), line * IG_REWRITE_CHUNK); /* part way */

    apply_ok(fx, late, 1);
    assert_int_equal(late[0].status, 201);
    fixture_close(fx);
    assert_int_equal(fixture_open(fx, true), N + 1);
    assert_at(fx, N, UD, "d");

    /* another file at the path after a deletion: left alone */
    assert_int_equal(unlink(fx->path), 0);
    f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs("not ours\n", f);
    fclose(f);
    later[0] = item(UD, "d");
    apply_ok(fx, later, 1); /* a duplicate: nothing to write, nothing noticed */
    assert_int_equal(later[0].status, 200);
    later[0] = item("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "e");
    assert_int_equal(ig_apply(fx->ig, later, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot be created again"));
    assert_int_equal(file_size(fx->path), (off_t)strlen("not ours\n"));
    assert_int_equal(unlink(fx->path), 0);

    /* the path free again: the whole journal comes back */
    later[0] = item("eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "e");
    apply_ok(fx, later, 1);
    fixture_close(fx);
    assert_int_equal(fixture_open(fx, true), N + 2);
    assert_at(fx, N, UD, "d");
    assert_at(fx, N + 1, "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", "e");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        /* clang-format off */
        T(test_rules_alike_for_both_readers),
        T(test_duplicates_and_conflicts),
        T(test_failed_journal_write_rolls_back),
        T(test_replay_with_duplicates),
        T(test_replay_applies_the_post_rules),
        T(test_deleted_journal_is_written_again),
        T(test_deleted_journal_rewrite_failures),
        /* clang-format on */
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
