/* test_store.c: unit tests of the store contract (store.h). Every
 * behavioural test runs against each backend in the backends table: writes
 * complete on the event loop, never inside the call, in order, and the
 * queue is bounded. The SQLite-only tests cover durability when the
 * completion runs (a second connection sees the row), persistence across
 * reopen, commit failures (another connection holding the write lock: the
 * whole turn's batch fails and nothing of it is stored), and the files the
 * backend must refuse. SQLite files live in a mkdtemp directory per test,
 * removed by the teardown. */
#include "registry/store/store.h"
#include "support.h"

#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define ERRLEN 256
/* mkdtemp names are short; paths below add a short file name. */
#define DIR_LEN  256
#define PATH_LEN 512

struct backend {
    const char *name;
    /* Open a store; path is ignored by backends that keep nothing. */
    struct store *(*open)(const char *path, struct event_base *base, char *err, size_t errlen);
};

struct fixture {
    const struct backend *be;
    struct event_base *base;
    char dir[DIR_LEN];   /* mkdtemp directory, removed by teardown */
    char path[PATH_LEN]; /* dir/store.db */
    struct store *st;
};

/* Adapter so the memory backend fits the backend table. */
static struct store *open_memory(const char *path, struct event_base *base, char *err,
                                 size_t errlen)
{
    struct store *st = NULL;

    (void)path;
    st = store_memory_open(base);
    if (!st && err && errlen > 0)
        snprintf(err, errlen, "memory store: out of memory");
    return st;
}

static struct store *open_sqlite(const char *path, struct event_base *base, char *err,
                                 size_t errlen)
{
    return store_sqlite_open(path, base, err, errlen);
}

static const struct backend backend_memory = {"memory", open_memory};
static const struct backend backend_sqlite = {"sqlite", open_sqlite};

/* Prestate is the backend; makes the temp dir and opens the store. */
static int setup(void **state)
{
    const struct backend *be = *state;
    struct fixture *fx = NULL;
    char err[ERRLEN] = "";
    const char *tmp = getenv("TMPDIR");

    fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    fx->be = be;
    fx->base = event_base_new();
    if (!fx->base) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/test_store.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    fx->st = be->open(fx->path, fx->base, err, sizeof(err));
    if (!fx->st) {
        print_error("open %s: %s\n", be->name, err);
        ts_remove_tree(fx->dir);
        event_base_free(fx->base);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    store_close(fx->st);
    ts_remove_tree(fx->dir);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* Close and reopen the fixture's store on the same path. */
static void reopen(struct fixture *fx)
{
    char err[ERRLEN] = "";

    store_close(fx->st);
    fx->st = fx->be->open(fx->path, fx->base, err, sizeof(err));
    if (!fx->st)
        print_error("reopen: %s\n", err);
    assert_non_null(fx->st);
}

/* What a load saw: how many records, and a copy of the doc of one id. */
struct seen {
    const char *want_id; /* borrowed; NULL to only count */
    size_t count;
    size_t want_hits;
    char *want_doc; /* owned copy of the last doc seen for want_id */
    size_t want_len;
    int stop_after; /* > 0: ask to stop after this many records */
};

static int seen_cb(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct seen *s = arg;

    assert_non_null(id);
    assert_non_null(doc);
    assert_int_equal(doc[doc_len], '\0');
    s->count++;
    if (s->want_id && strcmp(id, s->want_id) == 0) {
        s->want_hits++;
        free(s->want_doc);
        s->want_doc = strndup(doc, doc_len);
        s->want_len = doc_len;
    }
    if (s->stop_after > 0 && s->count >= (size_t)s->stop_after)
        return -1;
    return 0;
}

/* Load everything; returns how many records there are and, when want_id
 * is given, the doc it maps to (caller frees, NULL if absent). */
static size_t load_all(struct store *st, const char *want_id, char **doc)
{
    struct seen s = {.want_id = want_id};
    char err[ERRLEN] = "";
    int rc = store_load(st, seen_cb, &s, err, sizeof(err));

    if (rc != 0)
        print_error("load: %s\n", err);
    assert_int_equal(rc, 0);
    if (want_id)
        assert_true(s.want_hits <= 1);
    if (doc)
        *doc = s.want_doc;
    else
        free(s.want_doc);
    return s.count;
}

/* What completions reported, in the order they ran. */
struct log {
    int calls;
    int fails;
    int order[64]; /* tags of the completions, in call order */
    char err[ERRLEN];
};

/* A completion's argument: its log and its tag. */
struct ticket {
    struct log *log;
    int tag;
};

static void ticket_cb(void *arg, int rc, const char *err)
{
    struct ticket *t = arg;

    if (t->log->calls < 64)
        t->log->order[t->log->calls] = t->tag;
    t->log->calls++;
    if (rc != 0) {
        assert_non_null(err);
        t->log->fails++;
        snprintf(t->log->err, sizeof(t->log->err), "%s", err);
    } else {
        assert_null(err);
    }
}

/* Run the loop until nothing is pending. */
static void settle(struct fixture *fx)
{
    int rounds = 0;

    while (store_pending(fx->st) > 0) {
        assert_true(rounds++ < 100000);
        assert_int_not_equal(event_base_loop(fx->base, EVLOOP_ONCE), -1);
    }
}

/* Queue a put with no completion; asserts it was accepted. */
static void put_q(struct store *st, const char *id, const char *doc)
{
    char err[ERRLEN] = "";
    int rc = store_put(st, id, doc, strlen(doc), NULL, NULL, err, sizeof(err));

    if (rc != 0)
        print_error("put %s: %s\n", id, err);
    assert_int_equal(rc, 0);
}

static void del_q(struct store *st, const char *id)
{
    char err[ERRLEN] = "";

    assert_int_equal(store_del(st, id, NULL, NULL, err, sizeof(err)), 0);
}

/* Put and wait for a successful commit. */
static void put_ok(struct fixture *fx, const char *id, const char *doc)
{
    struct log log = {0};
    struct ticket t = {&log, 1};
    char err[ERRLEN] = "";

    assert_int_equal(store_put(fx->st, id, doc, strlen(doc), ticket_cb, &t, err, sizeof(err)), 0);
    settle(fx);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.fails, 0);
}

/* ---- behaviour every backend shares ---- */

static void test_put_load_roundtrip(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    put_ok(fx, "svc-a", "{\"name\":\"a\",\"port\":1}");
    put_ok(fx, "svc-b", "{\"name\":\"b\",\"port\":2}");
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 2);
    assert_string_equal(doc, "{\"name\":\"a\",\"port\":1}");
    free(doc);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 2);
    assert_string_equal(doc, "{\"name\":\"b\",\"port\":2}");
    free(doc);
}

/* Only doc_len bytes are stored, and the caller's buffer stays its own. */
static void test_put_copies_doc_len_bytes(void **state)
{
    struct fixture *fx = *state;
    char buf[] = "{\"x\":1}trailing";
    char err[ERRLEN] = "";
    char *doc = NULL;

    assert_int_equal(store_put(fx->st, "svc-a", buf, 7, NULL, NULL, err, sizeof(err)), 0);
    memset(buf, 'Z', sizeof(buf) - 1);
    settle(fx);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"x\":1}");
    free(doc);
}

/* The completion never runs inside the call; completions run on the loop
 * in the order of the writes, one each. */
static void test_completions_deferred_and_in_order(void **state)
{
    struct fixture *fx = *state;
    struct log log = {0};
    struct ticket t[6];
    char err[ERRLEN] = "";
    char id[32];
    int i = 0;

    for (i = 0; i < 6; i++) {
        t[i].log = &log;
        t[i].tag = i;
        snprintf(id, sizeof(id), "svc-%d", i % 4);
        if (i == 4)
            assert_int_equal(store_del(fx->st, id, ticket_cb, &t[i], err, sizeof(err)), 0);
        else
            assert_int_equal(store_put(fx->st, id, "{}", 2, ticket_cb, &t[i], err, sizeof(err)), 0);
        assert_int_equal(log.calls, 0);
    }
    assert_int_equal(store_pending(fx->st), 6);
    settle(fx);
    assert_int_equal(log.calls, 6);
    assert_int_equal(log.fails, 0);
    for (i = 0; i < 6; i++)
        assert_int_equal(log.order[i], i);
    assert_int_equal(store_pending(fx->st), 0);
    /* svc-0 was put then deleted (write 4), svc-1 put twice. */
    assert_int_equal(load_all(fx->st, NULL, NULL), 3);
}

static void test_replace(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    /* Twice in one turn (one batch)... */
    put_q(fx->st, "svc-a", "{\"v\":1}");
    put_q(fx->st, "svc-a", "{\"v\":2}");
    settle(fx);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"v\":2}");
    free(doc);

    /* ...and in a later one (an UPDATE of a stored row). */
    put_ok(fx, "svc-a", "{\"v\":3}");
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"v\":3}");
    free(doc);
}

static void test_del(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    put_q(fx->st, "svc-a", "{}");
    put_q(fx->st, "svc-b", "{}");
    settle(fx);
    del_q(fx->st, "svc-a");
    settle(fx);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_null(doc);

    /* put then del in one turn: the del wins. */
    put_q(fx->st, "svc-c", "{}");
    del_q(fx->st, "svc-c");
    /* del then put in one turn: the put wins. */
    del_q(fx->st, "svc-b");
    put_q(fx->st, "svc-b", "{\"back\":true}");
    settle(fx);
    assert_int_equal(load_all(fx->st, "svc-c", &doc), 1);
    assert_null(doc);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 1);
    assert_string_equal(doc, "{\"back\":true}");
    free(doc);
}

static void test_del_unknown(void **state)
{
    struct fixture *fx = *state;
    struct log log = {0};
    struct ticket t = {&log, 0};
    char err[ERRLEN] = "";

    assert_int_equal(store_del(fx->st, "never-put", ticket_cb, &t, err, sizeof(err)), 0);
    settle(fx);
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.fails, 0);
    assert_int_equal(load_all(fx->st, NULL, NULL), 0);
}

/* load is for start-up: refused while writes wait for their commit. */
static void test_load_refused_with_writes_queued(void **state)
{
    struct fixture *fx = *state;
    struct seen s = {0};
    char err[ERRLEN] = "";

    put_q(fx->st, "svc-a", "{\"v\":1}");
    assert_int_equal(store_load(fx->st, seen_cb, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "queued"));
    assert_int_equal(s.count, 0);
    settle(fx);
    assert_int_equal(load_all(fx->st, NULL, NULL), 1);
}

/* The queue is bounded: one write past STORE_PENDING_MAX is refused at
 * once (no completion), and accepted again once the queue moved. */
static void test_pending_bound(void **state)
{
    struct fixture *fx = *state;
    struct log log = {0};
    struct ticket t = {&log, 0};
    char err[ERRLEN] = "";
    char id[64];
    int i = 0;

    for (i = 0; i < STORE_PENDING_MAX; i++) {
        snprintf(id, sizeof(id), "svc-%d", i);
        put_q(fx->st, id, "{}");
    }
    assert_int_equal(store_pending(fx->st), STORE_PENDING_MAX);
    assert_int_equal(store_put(fx->st, "svc-over", "{}", 2, ticket_cb, &t, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(store_del(fx->st, "svc-0", ticket_cb, &t, err, sizeof(err)), -1);
    settle(fx);
    assert_int_equal(log.calls, 0);
    put_ok(fx, "svc-over", "{}");
    assert_int_equal(load_all(fx->st, NULL, NULL), STORE_PENDING_MAX + 1);
}

static void test_many_records(void **state)
{
    struct fixture *fx = *state;
    char id[64];
    char doc[128];
    char *got = NULL;
    int i = 0;

    for (i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "svc-%d", i);
        snprintf(doc, sizeof(doc), "{\"name\":\"svc\",\"port\":%d}", i);
        put_q(fx->st, id, doc);
        if (i % 4096 == 4095)
            settle(fx);
    }
    settle(fx);
    assert_int_equal(store_pending(fx->st), 0);
    assert_int_equal(load_all(fx->st, "svc-12345", &got), 20000);
    assert_string_equal(got, "{\"name\":\"svc\",\"port\":12345}");
    free(got);
}

static void test_load_stops_on_callback(void **state)
{
    struct fixture *fx = *state;
    struct seen s = {.stop_after = 1};
    char err[ERRLEN] = "";

    put_q(fx->st, "svc-a", "{}");
    put_q(fx->st, "svc-b", "{}");
    put_q(fx->st, "svc-c", "{}");
    settle(fx);
    assert_int_equal(store_load(fx->st, seen_cb, &s, err, sizeof(err)), -1);
    assert_int_equal(s.count, 1);
    assert_non_null(strstr(err, "stopped"));
    free(s.want_doc);
    /* The store is usable afterwards. */
    put_ok(fx, "svc-d", "{}");
    assert_int_equal(load_all(fx->st, NULL, NULL), 4);
}

/* A load callback that tries to write to the store it is loading. */
static int writing_cb(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct store *st = arg;
    char err[ERRLEN] = "";

    (void)id;
    assert_int_equal(store_put(st, "svc-new", doc, doc_len, NULL, NULL, err, sizeof(err)), -1);
    assert_int_equal(store_del(st, "svc-a", NULL, NULL, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    return 0;
}

static void test_writes_during_load_refused(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";

    put_ok(fx, "svc-a", "{}");
    assert_int_equal(store_load(fx->st, writing_cb, fx->st, err, sizeof(err)), 0);
    assert_int_equal(store_pending(fx->st), 0);
    assert_int_equal(load_all(fx->st, NULL, NULL), 1);
}

/* close waits for the queued writes and runs their completions. */
static void test_close_completes_queued_writes(void **state)
{
    struct fixture *fx = *state;
    struct log log = {0};
    struct ticket t[2] = {{&log, 0}, {&log, 1}};
    char err[ERRLEN] = "";

    assert_int_equal(store_put(fx->st, "svc-a", "{}", 2, ticket_cb, &t[0], err, sizeof(err)), 0);
    assert_int_equal(store_del(fx->st, "svc-b", ticket_cb, &t[1], err, sizeof(err)), 0);
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(log.calls, 2);
    assert_int_equal(log.fails, 0);
    assert_int_equal(log.order[0], 0);
    assert_int_equal(log.order[1], 1);
    if (strcmp(fx->be->name, "sqlite") == 0) {
        reopen(fx);
        assert_int_equal(load_all(fx->st, NULL, NULL), 1);
    }
}

/* ---- SQLite only ---- */

static void test_sqlite_reopen_after_commit(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    put_ok(fx, "svc-a", "{\"v\":1}");
    put_ok(fx, "svc-b", "{\"v\":2}");
    reopen(fx);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 2);
    assert_string_equal(doc, "{\"v\":2}");
    free(doc);
}

/* Reads id's doc through a separate connection: what is on disk. Caller
 * frees; NULL when absent. */
static char *disk_doc(const char *path, const char *id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    char *doc = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT doc FROM services WHERE id = ?1", -1, &stmt, NULL),
        SQLITE_OK);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        doc = strdup((const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return doc;
}

/* What a completion found on disk when it ran. */
struct on_disk {
    const char *path;
    const char *id;
    int calls;
    int rc;
    char *doc;
};

static void on_disk_cb(void *arg, int rc, const char *err)
{
    struct on_disk *d = arg;

    (void)err;
    d->calls++;
    d->rc = rc;
    d->doc = disk_doc(d->path, d->id);
}

/* When the completion runs, the write is committed: another connection
 * already reads it. Before, it is not (nothing is written in the call). */
static void test_sqlite_committed_when_completed(void **state)
{
    struct fixture *fx = *state;
    struct on_disk d = {fx->path, "svc-a", 0, -1, NULL};
    char err[ERRLEN] = "";
    char *doc = NULL;

    assert_int_equal(store_put(fx->st, "svc-a", "{\"v\":1}", 7, on_disk_cb, &d, err, sizeof(err)),
                     0);
    doc = disk_doc(fx->path, "svc-a");
    assert_null(doc);
    settle(fx);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.rc, 0);
    assert_non_null(d.doc);
    assert_string_equal(d.doc, "{\"v\":1}");
    free(d.doc);
}

/* While another connection holds the write lock, the commit fails (after
 * the busy timeout, on the worker): every write of the turn completes with
 * -1 and an error naming the file, and none of them is stored; once the lock
 * is gone, writes commit again. */
static void test_sqlite_commit_failure_fails_the_batch(void **state)
{
    struct fixture *fx = *state;
    struct log log = {0};
    struct ticket t[3] = {{&log, 0}, {&log, 1}, {&log, 2}};
    char err[ERRLEN] = "";
    sqlite3 *locker = NULL;
    char *doc = NULL;

    put_ok(fx, "svc-kept", "{\"v\":1}");
    assert_int_equal(sqlite3_open(fx->path, &locker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(store_put(fx->st, "svc-a", "{}", 2, ticket_cb, &t[0], err, sizeof(err)), 0);
    assert_int_equal(
        store_put(fx->st, "svc-kept", "{\"v\":2}", 7, ticket_cb, &t[1], err, sizeof(err)), 0);
    assert_int_equal(store_del(fx->st, "svc-kept", ticket_cb, &t[2], err, sizeof(err)), 0);
    settle(fx);
    assert_int_equal(log.calls, 3);
    assert_int_equal(log.fails, 3);
    assert_non_null(strstr(log.err, "locked"));
    assert_non_null(strstr(log.err, fx->path));

    assert_int_equal(sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(locker), SQLITE_OK);
    doc = disk_doc(fx->path, "svc-kept");
    assert_non_null(doc);
    assert_string_equal(doc, "{\"v\":1}");
    free(doc);
    assert_null(disk_doc(fx->path, "svc-a"));

    put_ok(fx, "svc-a", "{}");
    reopen(fx);
    assert_int_equal(load_all(fx->st, NULL, NULL), 2);
}

/* Size of a file in bytes, 0 if missing. */
static long long file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Checkpoints run off the commit path, and do run: once commits have put
 * more than 1000 pages in the log, the checkpoint thread copies them into
 * the database file (seen here while the store is still open; store_drain
 * waits for a checkpoint the writes asked for). */
static void test_sqlite_checkpoints_happen(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_LEN + 8];
    char id[64];
    char doc[512];
    int i = 0;

    memset(doc, 'x', sizeof(doc));
    doc[sizeof(doc) - 1] = '\0';
    for (i = 0; i < 12000; i++) {
        snprintf(id, sizeof(id), "svc-%08x-%d", (unsigned)(i * 2654435761u), i);
        put_q(fx->st, id, doc);
        if (i % 256 == 255)
            settle(fx);
    }
    settle(fx);
    store_drain(fx->st);
    /* 12000 rows of ~540 bytes: over 6 MB of table and index pages. */
    assert_true(file_size(fx->path) > 4 * 1024 * 1024);
    snprintf(path, sizeof(path), "%s-wal", fx->path);
    assert_true(file_size(path) > 0);
    assert_int_equal(load_all(fx->st, NULL, NULL), 12000);
}

static void test_sqlite_open_unwritable_path(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_LEN];
    char err[ERRLEN] = "";
    struct store *st = NULL;

    snprintf(path, sizeof(path), "%s/no-such-dir/store.db", fx->dir);
    st = store_sqlite_open(path, fx->base, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "cannot open"));
    assert_non_null(strstr(err, path));

    /* NULL err buffer is allowed too. */
    st = store_sqlite_open(path, fx->base, NULL, 0);
    assert_null(st);
}

/* SQLite silently opens a file it cannot write read-only; the store must
 * refuse it. Root ignores file modes, so the check cannot be staged then. */
static void test_sqlite_open_readonly_file(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    struct store *st = NULL;

    if (geteuid() == 0)
        skip();
    put_ok(fx, "svc-a", "{}");
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(chmod(fx->path, 0444), 0);
    st = store_sqlite_open(fx->path, fx->base, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "read-only"));
}

static void test_sqlite_refuses_non_database(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_LEN];
    char err[ERRLEN] = "";
    FILE *f = NULL;
    struct store *st = NULL;
    int i = 0;

    snprintf(path, sizeof(path), "%s/garbage.db", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    for (i = 0; i < 512; i++)
        fputs("this is not a database. ", f);
    assert_int_equal(fclose(f), 0);
    st = store_sqlite_open(path, fx->base, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not a database"));
}

/* Stage a file as a newer registry would leave it: user_version 99. */
static void test_sqlite_refuses_newer_schema(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_LEN];
    char err[ERRLEN] = "";
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct store *st = NULL;

    snprintf(path, sizeof(path), "%s/newer.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE services (id TEXT PRIMARY KEY,"
                                  " doc TEXT NOT NULL, updated_at INTEGER NOT"
                                  " NULL, extra TEXT);"
                                  "PRAGMA user_version = 99;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    db = NULL;

    st = store_sqlite_open(path, fx->base, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, path));

    /* The refused file is left as it was. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(stmt, 0), 99);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* A fresh file is stamped with the current schema version (1). */
static void test_sqlite_stamps_schema_version(void **state)
{
    struct fixture *fx = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;

    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(stmt, 0), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* One table entry per backend, named "<backend>: <test>" in the output. */
#define ON(be, f)                                                                                  \
    {                                                                                              \
#be ": " #f, f, setup, teardown, (void *)&backend_##be                                     \
    }
#define BOTH(f)   ON(memory, f), ON(sqlite, f)
#define SQLITE(f) ON(sqlite, f)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_put_load_roundtrip),
        BOTH(test_put_copies_doc_len_bytes),
        BOTH(test_completions_deferred_and_in_order),
        BOTH(test_replace),
        BOTH(test_del),
        BOTH(test_del_unknown),
        BOTH(test_load_refused_with_writes_queued),
        BOTH(test_pending_bound),
        BOTH(test_many_records),
        BOTH(test_load_stops_on_callback),
        BOTH(test_writes_during_load_refused),
        BOTH(test_close_completes_queued_writes),
        SQLITE(test_sqlite_reopen_after_commit),
        SQLITE(test_sqlite_committed_when_completed),
        SQLITE(test_sqlite_commit_failure_fails_the_batch),
        SQLITE(test_sqlite_checkpoints_happen),
        SQLITE(test_sqlite_open_unwritable_path),
        SQLITE(test_sqlite_open_readonly_file),
        SQLITE(test_sqlite_refuses_non_database),
        SQLITE(test_sqlite_refuses_newer_schema),
        SQLITE(test_sqlite_stamps_schema_version),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
