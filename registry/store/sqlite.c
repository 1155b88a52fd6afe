/* sqlite.c: the SQLite store backend, so a registry restarted on the
 * same file knows every registration. One table, services(id, doc,
 * updated_at), in a WAL database; PRAGMA user_version is the file's schema
 * version.
 *
 * The event loop never waits for SQLite (the shape of redis's bio.c): put
 * and del append the write to the batch of the current loop turn; an event
 * made active by the turn's first write hands the batch to a worker thread
 * (a mutex-guarded queue of batches and a condition variable). The worker
 * commits everything queued in one transaction (BEGIN IMMEDIATE, the writes
 * in order, COMMIT), so one turn's writes commit together, and a worker that
 * was busy takes the turns that queued meanwhile in one go. It moves the
 * batches with their result to a done queue and writes a byte to a pipe;
 * the pipe's read event on the loop calls the completions in order.
 *
 * WAL checkpoints (copying the log into the database file, with its fsyncs)
 * are not left to SQLite's automatic checkpoint, which would run inside a
 * commit and hold up every request waiting for it: a third thread with its
 * own connection runs a passive checkpoint (which does not block writers)
 * whenever a commit leaves more than SQLITE_STORE_CHECKPOINT_PAGES pages in
 * the log. libevent
 * itself is only touched from the loop thread, so no evthread locking is
 * needed. The connection is opened without SQLite's mutexes: it is used by
 * one thread at a time (the opener for the schema and store_load, before any
 * write; the worker after), handed over through the queue's mutex. */
#include "core/errbuf.h"
#include "store.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Schema version written to PRAGMA user_version. A file with a newer
 * version was written by a newer registry: refuse it rather than guess. */
#define SQLITE_STORE_SCHEMA_VERSION 1

/* How long a statement waits on a lock held by another connection before
 * failing with SQLITE_BUSY (the writes of that batch then fail). It runs on
 * the worker thread, never on the event loop. */
#define SQLITE_STORE_BUSY_TIMEOUT_MS 1000

/* Log pages past which a commit asks the checkpoint thread for a passive
 * checkpoint (SQLite's own automatic checkpoint default, 4 MB of pages). */
#define SQLITE_STORE_CHECKPOINT_PAGES 1000

/* Log pages past which the checkpoint thread also runs a RESTART
 * checkpoint (64 MB of 4 KB pages): a passive one never resets the log while
 * commits keep coming, so under a long burst the log would grow without
 * bound. RESTART holds up commits for as long as it takes (a few ms to tens
 * of ms), which happens once per this many pages. */
#define SQLITE_STORE_WAL_RESTART_PAGES 16000

/* Room for one error text handed from the worker to the completions. */
#define SQLITE_STORE_ERR_MAX 512

/* One queued write. A del has doc NULL. */
struct sqlite_op {
    struct sqlite_op *next;
    char *id;  /* owned */
    char *doc; /* owned; NULL for a delete */
    size_t doc_len;
    sqlite3_int64 updated_at; /* unix seconds when the write was queued */
    store_done_fn done;
    void *arg;
};

/* The writes of one loop turn, committed together, with their result. */
struct sqlite_batch {
    struct sqlite_batch *next;
    struct sqlite_op *ops, **ops_end; /* FIFO, owned */
    int rc;                           /* set by the worker */
    char err[SQLITE_STORE_ERR_MAX];   /* set by the worker when rc != 0 */
};

struct sqlite_store {
    struct store base; /* must stay first: struct store * casts to this */
    sqlite3 *db;       /* the opener's until the worker starts, then the worker's */
    char *path;        /* owned copy, for error messages */
    size_t doc_max;    /* SQLite's string limit, read at open */
    sqlite3_stmt *put_stmt;
    sqlite3_stmt *del_stmt;
    sqlite3_stmt *select_stmt;
    sqlite3_stmt *begin_stmt;
    sqlite3_stmt *commit_stmt;
    sqlite3_stmt *rollback_stmt;
    int loading; /* inside load(): calls back into the store are refused */

    /* Loop thread only. */
    struct sqlite_batch *forming; /* this turn's writes; NULL when none */
    struct event *seal;           /* owned: hands the forming batch to the worker */
    struct event *wake;           /* owned: read event of pipe_rd, runs completions */
    size_t pending;               /* writes queued whose completion has not run */
    int pipe_rd, pipe_wr;         /* worker -> loop wake-up; -1 when closed */

    /* Shared with the worker, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sqlite_batch *todo, **todo_end; /* sealed, waiting for the worker */
    struct sqlite_batch *done, **done_end; /* committed or failed, for the loop */
    int stop;                              /* the threads should exit */
    int ckpt_wanted;                       /* the log is long: checkpoint */
    int wal_pages;                         /* log length the worker saw last */
    int ckpt_running;                      /* the checkpoint thread is at work */
    pthread_cond_t ckpt_cv;                /* broadcast: ckpt_wanted, a checkpoint over, stop */
    pthread_t worker, ckpt;
    int worker_started, ckpt_started, mu_ready;
    sqlite3 *ckpt_db; /* the checkpoint thread's own connection */
};

static const char sqlite_store_schema[] = "CREATE TABLE IF NOT EXISTS services ("
                                          " id TEXT PRIMARY KEY,"
                                          " doc TEXT NOT NULL,"
                                          " updated_at INTEGER NOT NULL)"; /* unix seconds */

/* Free one write. Accepts NULL. */
static void sqlite_op_free(struct sqlite_op *op)
{
    if (!op)
        return;
    free(op->id);
    free(op->doc);
    free(op);
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

/* Worker thread: apply every op of the batches list in one transaction and
 * record the result in each batch. On failure the transaction is rolled back
 * (nothing of it is stored) and every batch carries the error. */
static void sqlite_store_commit(struct sqlite_store *st, struct sqlite_batch *batches)
{
    struct sqlite_batch *b = NULL;
    struct sqlite_op *op = NULL;
    char err[SQLITE_STORE_ERR_MAX] = "";
    int in_tx = 0;
    int rc = -1;

    if (sqlite_store_run(st, st->begin_stmt, "begin", err, sizeof(err)) < 0)
        goto cleanup;
    in_tx = 1;
    for (b = batches; b; b = b->next) {
        for (op = b->ops; op; op = op->next) {
            if (op->doc) {
                /* SQLITE_STATIC: op outlives the step; run() clears bindings. */
                sqlite3_bind_text(st->put_stmt, 1, op->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(st->put_stmt, 2, op->doc, (int)op->doc_len, SQLITE_STATIC);
                sqlite3_bind_int64(st->put_stmt, 3, op->updated_at);
                if (sqlite_store_run(st, st->put_stmt, "put", err, sizeof(err)) < 0)
                    goto cleanup;
            } else {
                sqlite3_bind_text(st->del_stmt, 1, op->id, -1, SQLITE_STATIC);
                if (sqlite_store_run(st, st->del_stmt, "del", err, sizeof(err)) < 0)
                    goto cleanup;
            }
        }
    }
    if (sqlite_store_run(st, st->commit_stmt, "commit", err, sizeof(err)) < 0)
        goto cleanup;
    in_tx = 0;
    rc = 0;

cleanup:
    if (in_tx)
        sqlite_store_rollback(st);
    for (b = batches; b; b = b->next) {
        b->rc = rc;
        if (rc != 0)
            snprintf(b->err, sizeof(b->err), "%s", err);
    }
}

/* SQLite's WAL hook, on the worker after each commit: when the log holds
 * more than SQLITE_STORE_CHECKPOINT_PAGES pages, wake the checkpoint
 * thread. Always SQLITE_OK (the commit stands). */
static int sqlite_store_wal_cb(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct sqlite_store *st = arg;

    (void)db;
    (void)name;
    if (pages >= SQLITE_STORE_CHECKPOINT_PAGES) {
        pthread_mutex_lock(&st->mu);
        st->ckpt_wanted = 1;
        st->wal_pages = pages;
        pthread_cond_broadcast(&st->ckpt_cv);
        pthread_mutex_unlock(&st->mu);
    }
    return SQLITE_OK;
}

/* The checkpoint thread, each time the worker asks, until told to stop: a
 * passive checkpoint, which copies the log into the database while commits
 * go on (the log restarts from its beginning at the first commit after a
 * pass that caught up). When the log is past SQLITE_STORE_WAL_RESTART_PAGES
 * anyway, a RESTART checkpoint follows: it waits for the writer lock (the
 * worker's busy handler waits meanwhile), copies the frames committed during
 * the first pass and makes the next commit restart the log. Failures are
 * left for the next round. */
static void *sqlite_store_checkpointer(void *arg)
{
    struct sqlite_store *st = arg;
    int pages = 0;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->ckpt_wanted && !st->stop)
            pthread_cond_wait(&st->ckpt_cv, &st->mu);
        if (st->stop)
            break;
        if (!st->ckpt_wanted)
            continue;
        st->ckpt_wanted = 0;
        st->ckpt_running = 1;
        pages = st->wal_pages;
        pthread_mutex_unlock(&st->mu);
        (void)sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (pages >= SQLITE_STORE_WAL_RESTART_PAGES)
            (void)sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, SQLITE_CHECKPOINT_RESTART, NULL,
                                            NULL);
        pthread_mutex_lock(&st->mu);
        st->ckpt_running = 0;
        pthread_cond_broadcast(&st->ckpt_cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* The worker thread: wait for sealed batches, commit all that are queued in
 * one transaction, hand them back and wake the loop, until told to stop
 * with nothing left to do. */
static void *sqlite_store_worker(void *arg)
{
    struct sqlite_store *st = arg;
    struct sqlite_batch *batches = NULL;
    struct sqlite_batch *last = NULL;
    ssize_t n = 0;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->todo && !st->stop)
            pthread_cond_wait(&st->cv, &st->mu);
        if (!st->todo)
            break;
        batches = st->todo;
        st->todo = NULL;
        st->todo_end = &st->todo;
        pthread_mutex_unlock(&st->mu);

        sqlite_store_commit(st, batches);

        for (last = batches; last->next; last = last->next)
            ;
        pthread_mutex_lock(&st->mu);
        *st->done_end = batches;
        st->done_end = &last->next;
        pthread_mutex_unlock(&st->mu);
        /* A full pipe already holds a wake-up: EAGAIN is fine. */
        n = write(st->pipe_wr, "w", 1);
        (void)n;
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Loop thread: hand the forming batch, if any, to the worker. */
static void sqlite_store_seal(struct sqlite_store *st)
{
    struct sqlite_batch *b = st->forming;

    if (!b)
        return;
    st->forming = NULL;
    pthread_mutex_lock(&st->mu);
    *st->todo_end = b;
    st->todo_end = &b->next;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* The seal event, made active by a turn's first write: runs after the
 * turn's requests were handled, so their writes leave together. */
static void sqlite_store_seal_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sqlite_store_seal(arg);
}

/* Loop thread: call the completions of every batch the worker handed back,
 * in order, and free them. */
static void sqlite_store_deliver(struct sqlite_store *st)
{
    struct sqlite_batch *b = NULL;
    struct sqlite_batch *bnext = NULL;
    struct sqlite_op *op = NULL;
    struct sqlite_op *onext = NULL;

    pthread_mutex_lock(&st->mu);
    b = st->done;
    st->done = NULL;
    st->done_end = &st->done;
    pthread_mutex_unlock(&st->mu);
    for (; b; b = bnext) {
        bnext = b->next;
        for (op = b->ops; op; op = onext) {
            onext = op->next;
            st->pending--;
            if (op->done)
                op->done(op->arg, b->rc, b->rc ? b->err : NULL);
            sqlite_op_free(op);
        }
        free(b);
    }
}

/* Empty the wake-up pipe (non-blocking). */
static void sqlite_store_drain_pipe(struct sqlite_store *st)
{
    char buf[64];

    while (read(st->pipe_rd, buf, sizeof(buf)) > 0)
        ;
}

/* The pipe's read event: the worker handed batches back. */
static void sqlite_store_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sqlite_store *st = arg;

    (void)fd;
    (void)what;
    sqlite_store_drain_pipe(st);
    sqlite_store_deliver(st);
}

/* Queue a write of id: doc is a copy to store, or NULL for a delete (both
 * borrowed, copied here), into this turn's batch. On failure nothing is
 * queued and done is not called. 0, or -1 with err. */
static int sqlite_store_enqueue(struct sqlite_store *st, const char *id, const char *doc,
                                size_t doc_len, store_done_fn done, void *arg, char *err,
                                size_t errlen)
{
    struct sqlite_op *op = NULL;
    int rc = -1;

    if (st->loading) {
        errbuf_set(err, errlen, "sqlite: %s: write called during load", st->path);
        goto cleanup;
    }
    if (st->pending >= STORE_PENDING_MAX) {
        errbuf_set(err, errlen, "sqlite: %s: %d writes already wait for their commit", st->path,
                   STORE_PENDING_MAX);
        goto cleanup;
    }
    op = calloc(1, sizeof(*op));
    if (!op)
        goto oom;
    op->id = strdup(id);
    if (!op->id)
        goto oom;
    if (doc) {
        op->doc = malloc(doc_len + 1);
        if (!op->doc)
            goto oom;
        memcpy(op->doc, doc, doc_len);
        op->doc[doc_len] = '\0';
    }
    op->doc_len = doc_len;
    op->updated_at = (sqlite3_int64)time(NULL);
    op->done = done;
    op->arg = arg;
    if (!st->forming) {
        st->forming = calloc(1, sizeof(*st->forming));
        if (!st->forming)
            goto oom;
        st->forming->ops_end = &st->forming->ops;
        event_active(st->seal, EV_TIMEOUT, 0);
    }
    *st->forming->ops_end = op;
    st->forming->ops_end = &op->next;
    op = NULL;
    st->pending++;
    rc = 0;
    goto cleanup;

oom:
    errbuf_set(err, errlen, "sqlite: %s: out of memory", st->path);
cleanup:
    sqlite_op_free(op);
    return rc;
}

/* Queue id -> doc (both borrowed, copied). See sqlite_store_enqueue. */
static int sqlite_store_put(struct store *base, const char *id, const char *doc, size_t doc_len,
                            store_done_fn done, void *arg, char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;

    if (!id || !doc) {
        errbuf_set(err, errlen, "sqlite: %s: put: NULL id or doc", st->path);
        return -1;
    }
    /* Beyond SQLite's string limit (1e9 by default, below INT_MAX, which
     * bind_text's int length needs) the commit could never succeed. */
    if (doc_len > st->doc_max) {
        errbuf_set(err, errlen, "sqlite: %s: put %s: document too large", st->path, id);
        return -1;
    }
    return sqlite_store_enqueue(st, id, doc, doc_len, done, arg, err, errlen);
}

/* Queue the deletion of id (borrowed). An unknown id is not an error: the
 * DELETE then simply matches nothing. */
static int sqlite_store_del(struct store *base, const char *id, store_done_fn done, void *arg,
                            char *err, size_t errlen)
{
    struct sqlite_store *st = (struct sqlite_store *)base;

    if (!id) {
        errbuf_set(err, errlen, "sqlite: %s: del: NULL id", st->path);
        return -1;
    }
    return sqlite_store_enqueue(st, id, NULL, 0, done, arg, err, errlen);
}

/* Call fn on every stored record; id and doc are lent to fn for the call
 * only. Refused while writes are queued (the worker may hold the
 * connection). -1 with err if the read fails or fn asks to stop. */
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
    if (st->pending > 0) {
        errbuf_set(err, errlen, "sqlite: %s: load called with writes queued", st->path);
        return -1;
    }

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

/* Writes queued whose completion has not run. */
static size_t sqlite_store_pending(const struct store *base)
{
    return ((const struct sqlite_store *)base)->pending;
}

/* Block until every queued write has completed and its completion has run
 * on this thread (seal the forming batch, then wait on the wake-up pipe),
 * then until a checkpoint those writes asked for is over. */
static void sqlite_store_drain(struct store *base)
{
    struct sqlite_store *st = (struct sqlite_store *)base;
    struct pollfd pfd;

    while (st->pending > 0) {
        sqlite_store_seal(st);
        pfd.fd = st->pipe_rd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            break;
        sqlite_store_drain_pipe(st);
        sqlite_store_deliver(st);
    }
    pthread_mutex_lock(&st->mu);
    while ((st->ckpt_wanted || st->ckpt_running) && !st->stop && st->ckpt_started)
        pthread_cond_wait(&st->ckpt_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

/* Stop the worker (it finishes what is queued first), then free the
 * statements, connection and memory of st, whatever state the open left it
 * in. Completions not yet delivered are not called: close drains first. */
static void sqlite_store_free(struct sqlite_store *st)
{
    if (!st)
        return;
    if (st->mu_ready) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_signal(&st->cv);
        pthread_cond_broadcast(&st->ckpt_cv);
        pthread_mutex_unlock(&st->mu);
    }
    if (st->worker_started)
        pthread_join(st->worker, NULL);
    if (st->ckpt_started)
        pthread_join(st->ckpt, NULL);
    if (st->mu_ready) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cv);
        pthread_cond_destroy(&st->ckpt_cv);
    }
    /* The main connection closes last: it checkpoints what is left and
     * removes the log. */
    sqlite3_close(st->ckpt_db);
    if (st->seal)
        event_free(st->seal);
    if (st->wake)
        event_free(st->wake);
    if (st->pipe_rd >= 0)
        close(st->pipe_rd);
    if (st->pipe_wr >= 0)
        close(st->pipe_wr);
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

/* Wait for every queued write and run its completion, then free. */
static void sqlite_store_close(struct store *base)
{
    sqlite_store_drain(base);
    sqlite_store_free((struct sqlite_store *)base);
}

static const struct store_ops sqlite_store_ops = {
    .name = "sqlite",
    .put = sqlite_store_put,
    .del = sqlite_store_del,
    .load = sqlite_store_load,
    .pending = sqlite_store_pending,
    .drain = sqlite_store_drain,
    .close = sqlite_store_close,
};

/* Open (creating if missing) the database at path (borrowed): WAL journal,
 * synchronous=NORMAL (a commit survives a crash of the process; a power cut
 * may lose the last commits but never corrupts the file), schema created or
 * checked. Returns the store, caller closes it with store_close; or NULL
 * with err filled. */
struct store *store_sqlite_open(const char *path, struct event_base *base, char *err, size_t errlen)
{
    struct sqlite_store *st = NULL;
    int fds[2] = {-1, -1};
    int rc = 0;

    if (!path || !base) {
        errbuf_set(err, errlen, "sqlite: open: NULL path or event base");
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        goto oom;
    st->base.ops = &sqlite_store_ops;
    st->pipe_rd = st->pipe_wr = -1;
    st->todo_end = &st->todo;
    st->done_end = &st->done;
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
     * writable; every commit would then fail. Refuse now. */
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
    st->doc_max = (size_t)sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1);

    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        errbuf_set(err, errlen, "sqlite: %s: pipe: %s", path, strerror(errno));
        goto fail;
    }
    st->pipe_rd = fds[0];
    st->pipe_wr = fds[1];
    st->seal = event_new(base, -1, 0, sqlite_store_seal_cb, st);
    st->wake = event_new(base, st->pipe_rd, EV_READ | EV_PERSIST, sqlite_store_wake_cb, st);
    if (!st->seal || !st->wake || event_add(st->wake, NULL) != 0)
        goto oom;
    if (pthread_mutex_init(&st->mu, NULL) != 0)
        goto oom;
    if (pthread_cond_init(&st->cv, NULL) != 0) {
        pthread_mutex_destroy(&st->mu);
        goto oom;
    }
    if (pthread_cond_init(&st->ckpt_cv, NULL) != 0) {
        pthread_cond_destroy(&st->cv);
        pthread_mutex_destroy(&st->mu);
        goto oom;
    }
    st->mu_ready = 1;
    rc = sqlite3_open_v2(path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: cannot open %s for checkpoints: %s", path,
                   st->ckpt_db ? sqlite3_errmsg(st->ckpt_db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(st->ckpt_db, SQLITE_STORE_BUSY_TIMEOUT_MS);
    /* A connection knows the file is in WAL mode only once it has read it:
     * until then a checkpoint on it does nothing. */
    if (sqlite3_exec(st->ckpt_db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) {
        errbuf_set(err, errlen, "sqlite: %s: checkpoint connection: %s", path,
                   sqlite3_errmsg(st->ckpt_db));
        goto fail;
    }
    /* Replaces SQLite's automatic checkpoint on the writing connection. */
    sqlite3_wal_hook(st->db, sqlite_store_wal_cb, st);
    if (pthread_create(&st->ckpt, NULL, sqlite_store_checkpointer, st) != 0) {
        errbuf_set(err, errlen, "sqlite: %s: cannot start the checkpoint thread", path);
        goto fail;
    }
    st->ckpt_started = 1;
    if (pthread_create(&st->worker, NULL, sqlite_store_worker, st) != 0) {
        errbuf_set(err, errlen, "sqlite: %s: cannot start the commit thread", path);
        goto fail;
    }
    st->worker_started = 1;
    return &st->base;

oom:
    errbuf_set(err, errlen, "sqlite: open %s: out of memory", path);
fail:
    sqlite_store_free(st);
    return NULL;
}
