/* sqlite.c: the SQLite store backend, so a registry restarted on the
 * same file knows every registration. One table, services(id, doc,
 * updated_at), in a WAL database.
 *
 * put and del never touch the disk: they go to a pending queue (a uthash
 * keyed by id, so a later write to an id replaces the queued one) and
 * store_flush applies the whole queue in one transaction. The registry
 * flushes at the end of each event-loop turn that wrote, which turns a burst
 * of registrations into a few commits (group commit) instead of one fsync
 * each. The connection is opened without SQLite's mutexes: a store belongs
 * to the one thread running the event loop. */
#include "core/errbuf.h"
#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A failed allocation inside HASH_ADD leaves the element out (hh.tbl NULL)
 * instead of calling exit(): library code never decides to exit. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

/* Schema version written to PRAGMA user_version. A file with a newer
 * version was written by a newer registry: refuse it rather than guess. */
#define SQLITE_STORE_SCHEMA_VERSION 1

/* How long a statement waits on a lock held by another connection before
 * failing with SQLITE_BUSY. Short: this runs on the event loop. */
#define SQLITE_STORE_BUSY_TIMEOUT_MS 1000

/* One queued write. A pending del has doc NULL. Iterating the hash visits
 * entries in the order they were first queued; a later write to the same id
 * replaces the entry in place, which is safe because writes to distinct ids
 * commute. */
struct sqlite_pending {
    char *id;  /* owned; the hash key */
    char *doc; /* owned; NULL for a delete */
    size_t doc_len;
    sqlite3_int64 updated_at; /* unix seconds when the write was queued */
    UT_hash_handle hh;
};

struct sqlite_store {
    struct store base; /* must stay first: struct store * casts to this */
    sqlite3 *db;
    char *path; /* owned copy, for error messages */
    sqlite3_stmt *put_stmt;
    sqlite3_stmt *del_stmt;
    sqlite3_stmt *select_stmt;
    sqlite3_stmt *begin_stmt;
    sqlite3_stmt *commit_stmt;
    sqlite3_stmt *rollback_stmt;
    struct sqlite_pending *pending; /* uthash head */
    int loading;                    /* inside load(): calls back into the store are refused */
};

static const char sqlite_store_schema[] = "CREATE TABLE IF NOT EXISTS services ("
                                          " id TEXT PRIMARY KEY,"
                                          " doc TEXT NOT NULL,"
                                          " updated_at INTEGER NOT NULL)"; /* unix seconds */

/* Free one queued write (already out of the hash). Accepts NULL. */
static void sqlite_pending_free(struct sqlite_pending *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->doc);
    free(p);
}

/* Drop every queued write. */
static void sqlite_store_clear_pending(struct sqlite_store *st)
{
    struct sqlite_pending *p = NULL;
    struct sqlite_pending *tmp = NULL;

    HASH_ITER (hh, st->pending, p, tmp) {
        HASH_DEL(st->pending, p);
        sqlite_pending_free(p);
    }
}

/* Step a statement that returns no row (or whose rows are ignored), then
 * reset it and drop its bindings (they may point at memory about to be
 * freed). 0, or -1 with err "sqlite: <path>: <what>: <errmsg>". */
static int sqlite_store_run(struct sqlite_store *st, sqlite3_stmt *stmt, const char *what,
                            char *err, size_t errlen)
{
    int rc = sqlite3_step(stmt);
    int ret = 0;

    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        errbuf_set(err, errlen, "sqlite: %s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
        ret = -1;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return ret;
}

/* sqlite3_exec one or more statements that are not kept (setup only).
 * 0, or -1 with err. */
static int sqlite_store_exec(struct sqlite_store *st, const char *sql, const char *what, char *err,
                             size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: %s: %s: %s", st->path, what,
                   msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Prepare a statement that lives as long as the store; *out owned by st.
 * 0, or -1 with err. */
static int sqlite_store_prepare(struct sqlite_store *st, const char *sql, sqlite3_stmt **out,
                                char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

    if (rc != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: %s: prepare \"%s\": %s", st->path, sql,
                   sqlite3_errmsg(st->db));
        return -1;
    }
    return 0;
}

/* Roll back the open transaction, if SQLite has not already done so (some
 * errors end the transaction themselves). Errors are ignored: the caller is
 * already reporting the one that made it roll back. */
static void sqlite_store_rollback(struct sqlite_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        (void)sqlite3_step(st->rollback_stmt);
    sqlite3_reset(st->rollback_stmt);
}

/* Create the schema or check the file's one, in one write transaction so
 * two registries opening a fresh file at once cannot interleave. Refuses a
 * version newer than SQLITE_STORE_SCHEMA_VERSION. 0, or -1 with err. */
static int sqlite_store_migrate(struct sqlite_store *st, char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    char sql[64];
    int version = 0;
    int in_tx = 0;
    int rc = -1;

    if (sqlite_store_exec(st, "BEGIN IMMEDIATE", "begin", err, errlen) < 0)
        goto cleanup;
    in_tx = 1;

    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: %s: read schema version: %s", st->path,
                   sqlite3_errmsg(st->db));
        goto cleanup;
    }
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        errbuf_set(err, errlen, "sqlite: %s: read schema version: %s", st->path,
                   sqlite3_errmsg(st->db));
        goto cleanup;
    }
    version = sqlite3_column_int(stmt, 0);
    if (version > SQLITE_STORE_SCHEMA_VERSION || version < 0) {
        errbuf_set(err, errlen,
                   "sqlite: %s: schema version %d is not supported "
                   "(this registry knows up to %d); refusing to open "
                   "a file written by a newer registry",
                   st->path, version, SQLITE_STORE_SCHEMA_VERSION);
        goto cleanup;
    }

    /* Version 0 is a fresh (or empty) file. Future migrations go here,
     * one step per version, before user_version is raised. */
    if (sqlite_store_exec(st, sqlite_store_schema, "create schema", err, errlen) < 0)
        goto cleanup;
    if (version < SQLITE_STORE_SCHEMA_VERSION) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SQLITE_STORE_SCHEMA_VERSION);
        if (sqlite_store_exec(st, sql, "set schema version", err, errlen) < 0)
            goto cleanup;
    }

    sqlite3_finalize(stmt);
    stmt = NULL;
    if (sqlite_store_exec(st, "COMMIT", "commit schema", err, errlen) < 0)
        goto cleanup;
    in_tx = 0;
    rc = 0;

cleanup:
    sqlite3_finalize(stmt);
    if (in_tx && !sqlite3_get_autocommit(st->db))
        (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Apply every queued write in one transaction, then empty the queue. On
 * failure the transaction is rolled back and the queue kept whole, so the
 * next flush retries all of it. 0, or -1 with err. */
static int sqlite_store_flush(struct store *base, char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    struct sqlite_pending *p = NULL;
    struct sqlite_pending *tmp = NULL;
    int in_tx = 0;
    int rc = -1;

    if (st->loading) {
        errbuf_set(err, errlen, "sqlite: %s: flush called during load", st->path);
        return -1;
    }
    if (!st->pending)
        return 0;

    if (sqlite_store_run(st, st->begin_stmt, "begin", err, errlen) < 0)
        goto cleanup;
    in_tx = 1;

    HASH_ITER (hh, st->pending, p, tmp) {
        if (p->doc) {
            /* SQLITE_STATIC: p outlives the step; run() clears bindings. */
            sqlite3_bind_text(st->put_stmt, 1, p->id, -1, SQLITE_STATIC);
            sqlite3_bind_text(st->put_stmt, 2, p->doc, (int)p->doc_len, SQLITE_STATIC);
            sqlite3_bind_int64(st->put_stmt, 3, p->updated_at);
            if (sqlite_store_run(st, st->put_stmt, "put", err, errlen) < 0)
                goto cleanup;
        } else {
            sqlite3_bind_text(st->del_stmt, 1, p->id, -1, SQLITE_STATIC);
            if (sqlite_store_run(st, st->del_stmt, "del", err, errlen) < 0)
                goto cleanup;
        }
    }

    if (sqlite_store_run(st, st->commit_stmt, "commit", err, errlen) < 0)
        goto cleanup;
    in_tx = 0;
    sqlite_store_clear_pending(st);
    rc = 0;

cleanup:
    if (in_tx)
        sqlite_store_rollback(st);
    return rc;
}

/* Queue a write of id: doc is a copy to store, or NULL for a delete (both
 * borrowed, copied here). Replaces a queued write to the same id; flushes
 * first if a new entry would exceed STORE_PENDING_MAX. On failure nothing is
 * queued or changed. 0, or -1 with err. */
static int sqlite_store_enqueue(struct sqlite_store *st, const char *id, const char *doc,
                                size_t doc_len, char *err, size_t errlen)
{
    struct sqlite_pending *p = NULL;
    struct sqlite_pending *fresh = NULL;
    char *copy = NULL;
    int rc = -1;

    if (st->loading) {
        errbuf_set(err, errlen, "sqlite: %s: write called during load", st->path);
        goto cleanup;
    }
    if (doc) {
        copy = malloc(doc_len + 1);
        if (!copy)
            goto oom;
        memcpy(copy, doc, doc_len);
        copy[doc_len] = '\0';
    }

    HASH_FIND_STR(st->pending, id, p);
    if (p) {
        free(p->doc);
        p->doc = copy;
        p->doc_len = doc_len;
        p->updated_at = (sqlite3_int64)time(NULL);
        copy = NULL;
        rc = 0;
        goto cleanup;
    }

    if (HASH_COUNT(st->pending) >= STORE_PENDING_MAX &&
        sqlite_store_flush(&st->base, err, errlen) < 0)
        goto cleanup;

    fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        goto oom;
    fresh->id = strdup(id);
    if (!fresh->id)
        goto oom;
    fresh->doc = copy;
    fresh->doc_len = doc_len;
    fresh->updated_at = (sqlite3_int64)time(NULL);
    copy = NULL;
    HASH_ADD_KEYPTR(hh, st->pending, fresh->id, strlen(fresh->id), fresh);
    if (!fresh->hh.tbl)
        goto oom;
    fresh = NULL;
    rc = 0;
    goto cleanup;

oom:
    errbuf_set(err, errlen, "sqlite: %s: out of memory", st->path);
cleanup:
    sqlite_pending_free(fresh);
    free(copy);
    return rc;
}

/* Queue id -> doc (both borrowed, copied). See sqlite_store_enqueue. */
static int sqlite_store_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                            char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;

    if (!id || !doc) {
        errbuf_set(err, errlen, "sqlite: %s: put: NULL id or doc", st->path);
        return -1;
    }
    /* Beyond SQLite's string limit (1e9 by default, below INT_MAX, which
     * bind_text's int length needs) the flush could never succeed. */
    if (doc_len > (size_t)sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1)) {
        errbuf_set(err, errlen, "sqlite: %s: put %s: document too large", st->path, id);
        return -1;
    }
    return sqlite_store_enqueue(st, id, doc, doc_len, err, errlen);
}

/* Queue the deletion of id (borrowed). An unknown id is not an error: the
 * DELETE then simply matches nothing. */
static int sqlite_store_del(struct store *base, const char *id, char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;

    if (!id) {
        errbuf_set(err, errlen, "sqlite: %s: del: NULL id", st->path);
        return -1;
    }
    return sqlite_store_enqueue(st, id, NULL, 0, err, errlen);
}

/* Flush, then call fn on every stored record; id and doc are lent to fn for
 * the call only. -1 with err if the flush or the read fails or fn asks to
 * stop. */
static int sqlite_store_load(struct store *base, store_load_fn fn, void *arg, char *err,
                             size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    const char *id = NULL;
    const char *doc = NULL;
    size_t doc_len = 0;
    int step = 0;
    int rc = -1;

    if (!fn) {
        errbuf_set(err, errlen, "sqlite: %s: load: NULL callback", st->path);
        return -1;
    }
    if (st->loading) {
        errbuf_set(err, errlen, "sqlite: %s: load called during load", st->path);
        return -1;
    }
    if (sqlite_store_flush(base, err, errlen) < 0)
        return -1;

    st->loading = 1;
    for (;;) {
        step = sqlite3_step(st->select_stmt);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            errbuf_set(err, errlen, "sqlite: %s: load: %s", st->path, sqlite3_errmsg(st->db));
            goto cleanup;
        }
        /* The SELECT excludes NULLs, so NULL here means out of memory. */
        id = (const char *)sqlite3_column_text(st->select_stmt, 0);
        doc = (const char *)sqlite3_column_text(st->select_stmt, 1);
        doc_len = (size_t)sqlite3_column_bytes(st->select_stmt, 1);
        if (!id || !doc) {
            errbuf_set(err, errlen, "sqlite: %s: load: out of memory", st->path);
            goto cleanup;
        }
        if (fn(id, doc, doc_len, arg) != 0) {
            errbuf_set(err, errlen, "sqlite: %s: load stopped by callback at id %s", st->path, id);
            goto cleanup;
        }
    }
    rc = 0;

cleanup:
    /* Reset ends the read transaction, so WAL checkpoints are not held up. */
    sqlite3_reset(st->select_stmt);
    st->loading = 0;
    return rc;
}

/* Number of queued writes (distinct ids). */
static size_t sqlite_store_pending(const struct store *base)
{
    const struct sqlite_store *st = (const struct sqlite_store *)base;

    return HASH_COUNT(st->pending);
}

/* Free the statements, connection and memory of st, whatever state the
 * open left it in. Pending writes are dropped: the caller flushed first if
 * it wanted them. */
static void sqlite_store_free(struct sqlite_store *st)
{
    if (!st)
        return;
    sqlite_store_clear_pending(st);
    sqlite3_finalize(st->put_stmt);
    sqlite3_finalize(st->del_stmt);
    sqlite3_finalize(st->select_stmt);
    sqlite3_finalize(st->begin_stmt);
    sqlite3_finalize(st->commit_stmt);
    sqlite3_finalize(st->rollback_stmt);
    /* All statements are finalized, so close cannot be busy. */
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/* Flush best effort (a failure loses the queued writes), then free. */
static void sqlite_store_close(struct store *base)
{
    struct sqlite_store *st = (struct sqlite_store *)base;

    if (st->pending)
        (void)sqlite_store_flush(base, NULL, 0);
    sqlite_store_free(st);
}

static const struct store_ops sqlite_store_ops = {
    .name = "sqlite",
    .put = sqlite_store_put,
    .del = sqlite_store_del,
    .load = sqlite_store_load,
    .flush = sqlite_store_flush,
    .pending = sqlite_store_pending,
    .close = sqlite_store_close,
};

/* Open (creating if missing) the database at path (borrowed): WAL journal,
 * synchronous=NORMAL (a commit survives a crash of the process; a power cut
 * may lose the last commits but never corrupts the file), schema created or
 * checked. Returns the store, caller closes it with store_close; or NULL
 * with err filled. */
struct store *store_sqlite_open(const char *path, char *err, size_t errlen)
{
    struct sqlite_store *st = NULL;
    int rc = 0;

    if (!path) {
        errbuf_set(err, errlen, "sqlite: open: NULL path");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        goto oom;
    st->base.ops = &sqlite_store_ops;
    st->path = strdup(path);
    if (!st->path)
        goto oom;

    rc = sqlite3_open_v2(path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: cannot open %s: %s", path,
                   st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    /* SQLite quietly falls back to read-only when the file is not
     * writable; every put would then fail at flush time. Refuse now. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        errbuf_set(err, errlen, "sqlite: cannot open %s: file is read-only", path);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, SQLITE_STORE_BUSY_TIMEOUT_MS);

    /* The first statement reads the file: a non-database fails here. */
    if (sqlite_store_exec(st, "PRAGMA journal_mode = WAL", "set WAL journal", err, errlen) < 0)
        goto fail;
    if (sqlite_store_exec(st, "PRAGMA synchronous = NORMAL", "set synchronous", err, errlen) < 0)
        goto fail;
    if (sqlite_store_migrate(st, err, errlen) < 0)
        goto fail;

    if (sqlite_store_prepare(st,
                             "INSERT INTO services (id, doc, updated_at) "
                             "VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE "
                             "SET doc = excluded.doc, "
                             "updated_at = excluded.updated_at",
                             &st->put_stmt, err, errlen) < 0 ||
        sqlite_store_prepare(st, "DELETE FROM services WHERE id = ?1", &st->del_stmt, err, errlen) <
            0 ||
        sqlite_store_prepare(st,
                             "SELECT id, doc FROM services "
                             "WHERE id IS NOT NULL",
                             &st->select_stmt, err, errlen) < 0 ||
        sqlite_store_prepare(st, "BEGIN IMMEDIATE", &st->begin_stmt, err, errlen) < 0 ||
        sqlite_store_prepare(st, "COMMIT", &st->commit_stmt, err, errlen) < 0 ||
        sqlite_store_prepare(st, "ROLLBACK", &st->rollback_stmt, err, errlen) < 0)
        goto fail;

    return &st->base;

oom:
    errbuf_set(err, errlen, "sqlite: open %s: out of memory", path);
fail:
    sqlite_store_free(st);
    return NULL;
}
