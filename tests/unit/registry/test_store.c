/* test_store.c: unit tests of the store contract (store.h). Every
 * behavioural test runs against each backend in the backends table; the
 * SQLite-only tests cover persistence across reopen, the pending queue and
 * its bound, and the files the SQLite backend must refuse. SQLite files live
 * in a mkdtemp directory per test, removed by the teardown. */
#include "registry/store/store.h"
#include "support.h"

#include <errno.h>
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
    struct store *(*open)(const char *path, char *err, size_t errlen);
};

struct fixture {
    const struct backend *be;
    char dir[DIR_LEN];   /* mkdtemp directory, removed by teardown */
    char path[PATH_LEN]; /* dir/store.db */
    struct store *st;
};

/* Adapter so the memory backend fits the backend table. */
static struct store *open_memory(const char *path, char *err, size_t errlen)
{
    struct store *st = NULL;

    (void)path;
    st = store_memory_open();
    if (!st && err && errlen > 0)
        snprintf(err, errlen, "memory store: out of memory");
    return st;
}

static struct store *open_sqlite(const char *path, char *err, size_t errlen)
{
    return store_sqlite_open(path, err, errlen);
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
    snprintf(fx->dir, sizeof(fx->dir), "%s/test_store.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/store.db", fx->dir);
    fx->st = be->open(fx->path, err, sizeof(err));
    if (!fx->st) {
        print_error("open %s: %s\n", be->name, err);
        ts_remove_tree(fx->dir);
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
    free(fx);
    return 0;
}

/* Close and reopen the fixture's store on the same path. */
static void reopen(struct fixture *fx)
{
    char err[ERRLEN] = "";

    store_close(fx->st);
    fx->st = fx->be->open(fx->path, err, sizeof(err));
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

static void put_ok(struct store *st, const char *id, const char *doc)
{
    char err[ERRLEN] = "";
    int rc = store_put(st, id, doc, strlen(doc), err, sizeof(err));

    if (rc != 0)
        print_error("put %s: %s\n", id, err);
    assert_int_equal(rc, 0);
}

static void flush_ok(struct store *st)
{
    char err[ERRLEN] = "";
    int rc = store_flush(st, err, sizeof(err));

    if (rc != 0)
        print_error("flush: %s\n", err);
    assert_int_equal(rc, 0);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- behaviour every backend shares ---- */

static void test_put_load_roundtrip(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    put_ok(fx->st, "svc-a", "{\"name\":\"a\",\"port\":1}");
    put_ok(fx->st, "svc-b", "{\"name\":\"b\",\"port\":2}");
    flush_ok(fx->st);
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

    assert_int_equal(store_put(fx->st, "svc-a", buf, 7, err, sizeof(err)), 0);
    memset(buf, 'Z', sizeof(buf) - 1);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"x\":1}");
    free(doc);
}

static void test_replace(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    /* Twice before a flush (coalesced in the queue)... */
    put_ok(fx->st, "svc-a", "{\"v\":1}");
    put_ok(fx->st, "svc-a", "{\"v\":2}");
    flush_ok(fx->st);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"v\":2}");
    free(doc);

    /* ...and across a flush (an UPDATE of a stored row). */
    put_ok(fx->st, "svc-a", "{\"v\":3}");
    flush_ok(fx->st);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"v\":3}");
    free(doc);
}

static void test_del(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    char *doc = NULL;

    put_ok(fx->st, "svc-a", "{}");
    put_ok(fx->st, "svc-b", "{}");
    flush_ok(fx->st);
    assert_int_equal(store_del(fx->st, "svc-a", err, sizeof(err)), 0);
    flush_ok(fx->st);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_null(doc);

    /* put then del before any flush: the del wins. */
    put_ok(fx->st, "svc-c", "{}");
    assert_int_equal(store_del(fx->st, "svc-c", err, sizeof(err)), 0);
    /* del then put before any flush: the put wins. */
    assert_int_equal(store_del(fx->st, "svc-b", err, sizeof(err)), 0);
    put_ok(fx->st, "svc-b", "{\"back\":true}");
    flush_ok(fx->st);
    assert_int_equal(load_all(fx->st, "svc-c", &doc), 1);
    assert_null(doc);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 1);
    assert_string_equal(doc, "{\"back\":true}");
    free(doc);
}

static void test_del_unknown(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";

    assert_int_equal(store_del(fx->st, "never-put", err, sizeof(err)), 0);
    flush_ok(fx->st);
    assert_int_equal(load_all(fx->st, NULL, NULL), 0);
}

static void test_load_sees_unflushed(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    char *doc = NULL;

    put_ok(fx->st, "svc-a", "{\"v\":1}");
    put_ok(fx->st, "svc-b", "{\"v\":1}");
    assert_int_equal(store_del(fx->st, "svc-b", err, sizeof(err)), 0);
    assert_int_equal(load_all(fx->st, "svc-a", &doc), 1);
    assert_string_equal(doc, "{\"v\":1}");
    free(doc);
    /* load made the queue durable on its way (or had none). */
    assert_int_equal(store_pending(fx->st), 0);
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
        put_ok(fx->st, id, doc);
    }
    flush_ok(fx->st);
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

    put_ok(fx->st, "svc-a", "{}");
    put_ok(fx->st, "svc-b", "{}");
    put_ok(fx->st, "svc-c", "{}");
    assert_int_equal(store_load(fx->st, seen_cb, &s, err, sizeof(err)), -1);
    assert_int_equal(s.count, 1);
    assert_non_null(strstr(err, "stopped"));
    free(s.want_doc);
    /* The store is usable afterwards. */
    put_ok(fx->st, "svc-d", "{}");
    assert_int_equal(load_all(fx->st, NULL, NULL), 4);
}

/* A load callback that tries to write to the store it is loading. */
static int writing_cb(const char *id, const char *doc, size_t doc_len, void *arg)
{
    struct store *st = arg;
    char err[ERRLEN] = "";

    (void)id;
    assert_int_equal(store_put(st, "svc-new", doc, doc_len, err, sizeof(err)), -1);
    assert_int_equal(store_del(st, "svc-a", err, sizeof(err)), -1);
    assert_int_equal(store_flush(st, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    return 0;
}

static void test_writes_during_load_refused(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";

    put_ok(fx->st, "svc-a", "{}");
    assert_int_equal(store_load(fx->st, writing_cb, fx->st, err, sizeof(err)), 0);
    assert_int_equal(load_all(fx->st, NULL, NULL), 1);
}

/* ---- SQLite only ---- */

static void test_sqlite_reopen_after_flush(void **state)
{
    struct fixture *fx = *state;
    char *doc = NULL;

    put_ok(fx->st, "svc-a", "{\"v\":1}");
    put_ok(fx->st, "svc-b", "{\"v\":2}");
    flush_ok(fx->st);
    reopen(fx);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 2);
    assert_string_equal(doc, "{\"v\":2}");
    free(doc);
}

static void test_sqlite_close_flushes(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    char *doc = NULL;

    put_ok(fx->st, "svc-a", "{\"v\":1}");
    flush_ok(fx->st);
    put_ok(fx->st, "svc-b", "{\"v\":2}");
    assert_int_equal(store_del(fx->st, "svc-a", err, sizeof(err)), 0);
    assert_int_equal(store_pending(fx->st), 2);
    reopen(fx);
    assert_int_equal(load_all(fx->st, "svc-b", &doc), 1);
    assert_string_equal(doc, "{\"v\":2}");
    free(doc);
}

static void test_sqlite_pending_counts(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";

    assert_int_equal(store_pending(fx->st), 0);
    put_ok(fx->st, "svc-a", "{}");
    put_ok(fx->st, "svc-b", "{}");
    assert_int_equal(store_pending(fx->st), 2);
    put_ok(fx->st, "svc-a", "{\"again\":1}"); /* same id: coalesced */
    assert_int_equal(store_pending(fx->st), 2);
    assert_int_equal(store_del(fx->st, "svc-c", err, sizeof(err)), 0);
    assert_int_equal(store_pending(fx->st), 3);
    flush_ok(fx->st);
    assert_int_equal(store_pending(fx->st), 0);
    flush_ok(fx->st); /* nothing pending: still fine */
}

static void test_sqlite_open_unwritable_path(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_LEN];
    char err[ERRLEN] = "";
    struct store *st = NULL;

    snprintf(path, sizeof(path), "%s/no-such-dir/store.db", fx->dir);
    st = store_sqlite_open(path, err, sizeof(err));
    assert_null(st);
    assert_non_null(strstr(err, "cannot open"));
    assert_non_null(strstr(err, path));

    /* NULL err buffer is allowed too. */
    st = store_sqlite_open(path, NULL, 0);
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
    put_ok(fx->st, "svc-a", "{}");
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(chmod(fx->path, 0444), 0);
    st = store_sqlite_open(fx->path, err, sizeof(err));
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
    st = store_sqlite_open(path, err, sizeof(err));
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

    st = store_sqlite_open(path, err, sizeof(err));
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

/* Fill the queue to STORE_PENDING_MAX distinct ids. */
static void fill_queue(struct store *st)
{
    char id[64];
    int i = 0;

    for (i = 0; i < STORE_PENDING_MAX; i++) {
        snprintf(id, sizeof(id), "svc-%d", i);
        put_ok(st, id, "{}");
    }
    assert_int_equal(store_pending(st), STORE_PENDING_MAX);
}

static void test_sqlite_pending_max_autoflush(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    struct store *other = NULL;

    fill_queue(fx->st);
    /* A queued id does not grow the queue, so no flush yet. */
    put_ok(fx->st, "svc-0", "{\"v\":2}");
    assert_int_equal(store_pending(fx->st), STORE_PENDING_MAX);

    /* One more distinct id flushes the full queue, then queues itself. */
    put_ok(fx->st, "svc-overflow", "{}");
    assert_int_equal(store_pending(fx->st), 1);

    /* A second connection sees the flushed rows on disk, not the queued. */
    other = store_sqlite_open(fx->path, err, sizeof(err));
    assert_non_null(other);
    assert_int_equal(load_all(other, "svc-overflow", NULL), STORE_PENDING_MAX);
    store_close(other);

    /* A del counts against the bound too. */
    flush_ok(fx->st);
    fill_queue(fx->st);
    assert_int_equal(store_del(fx->st, "svc-overflow", err, sizeof(err)), 0);
    assert_int_equal(store_pending(fx->st), 1);
}

/* While another connection holds the write lock, flush fails after the
 * busy timeout, keeps the queue, and a put that would need a flush is
 * refused; once the lock is gone the next flush commits everything. */
static void test_sqlite_flush_failure_keeps_pending(void **state)
{
    struct fixture *fx = *state;
    char err[ERRLEN] = "";
    sqlite3 *locker = NULL;

    fill_queue(fx->st);
    assert_int_equal(sqlite3_open(fx->path, &locker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(store_flush(fx->st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "locked"));
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(store_pending(fx->st), STORE_PENDING_MAX);

    err[0] = '\0';
    assert_int_equal(store_put(fx->st, "svc-overflow", "{}", 2, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(store_pending(fx->st), STORE_PENDING_MAX);
    /* Replacing a queued id needs no flush, so it still works. */
    put_ok(fx->st, "svc-1", "{\"v\":2}");

    assert_int_equal(sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(locker), SQLITE_OK);

    flush_ok(fx->st);
    assert_int_equal(store_pending(fx->st), 0);
    reopen(fx);
    assert_int_equal(load_all(fx->st, NULL, NULL), STORE_PENDING_MAX);
}

/* Not a pass/fail test: prints how long 100,000 registrations take, the
 * registry's target being well under 10 s. Docs are the size of a typical
 * registration (~300 bytes). */
static void test_bench_100k(void **state)
{
    struct fixture *fx = *state;
    char id[64];
    char doc[512];
    double t0 = 0;
    double t1 = 0;
    double t2 = 0;
    int i = 0;

    t0 = now_s();
    for (i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "orders-%08x-1111-4222-8333-%012d", i, i);
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"%s\",\"name\":\"orders\",\"type\":\"http\","
                 "\"host\":\"10.0.%d.%d\",\"port\":%d,\"ttl\":30,"
                 "\"tags\":[\"v1\",\"blue\",\"eu-west-1a\"],"
                 "\"meta\":{\"version\":\"1.4.2\",\"owner\":\"team-orders\","
                 "\"weight\":\"100\"},\"registered_at\":1700000000}",
                 id, (i >> 8) & 255, i & 255, 1024 + i % 50000);
        put_ok(fx->st, id, doc);
    }
    t1 = now_s();
    flush_ok(fx->st);
    t2 = now_s();
    print_message("[  BENCH   ] %s: 100000 puts %.3f s (incl. automatic "
                  "flushes), final flush %.3f s, total %.3f s\n",
                  fx->be->name, t1 - t0, t2 - t1, t2 - t0);
    assert_int_equal(load_all(fx->st, NULL, NULL), 100000);
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
        BOTH(test_replace),
        BOTH(test_del),
        BOTH(test_del_unknown),
        BOTH(test_load_sees_unflushed),
        BOTH(test_many_records),
        BOTH(test_load_stops_on_callback),
        BOTH(test_writes_during_load_refused),
        SQLITE(test_sqlite_reopen_after_flush),
        SQLITE(test_sqlite_close_flushes),
        SQLITE(test_sqlite_pending_counts),
        SQLITE(test_sqlite_open_unwritable_path),
        SQLITE(test_sqlite_open_readonly_file),
        SQLITE(test_sqlite_refuses_non_database),
        SQLITE(test_sqlite_refuses_newer_schema),
        SQLITE(test_sqlite_stamps_schema_version),
        SQLITE(test_sqlite_pending_max_autoflush),
        SQLITE(test_sqlite_flush_failure_keeps_pending),
        BOTH(test_bench_100k),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
