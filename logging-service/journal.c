/* journal.c: the append-only JSON-lines journal (see journal.h).
 *
 * Appends are one write(2) of every new line on an O_APPEND descriptor, so
 * a batch reaches the OS whole or, after a crash in the middle, as a prefix
 * that replay recognises as a torn tail. A failed append is cut back off
 * with ftruncate, so the file only ever holds acknowledged lines (plus, at
 * worst, one torn tail that the next start moves to <journal>.rejected).
 * Replay never destroys a byte: what it cannot take is copied to
 * .rejected first, and only the bad tail after the last good line is cut.
 *
 * With --fsync everysec the fdatasync runs on a background thread woken
 * once a second, as Redis does: an fdatasync can take a long time on a busy
 * disk and must not stall the event loop, which only sets a "dirty" flag.
 * Everything else runs on the caller's thread. */
#include "journal.h"

#include "codec/jsonw.h"
#include "codec/uid.h"
#include "codec/utf8.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "lg_limits.h"
#include "proto/messages.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define JN_PATH_MAX 4096

struct jn_journal {
    int fd;         /* -1: memory only */
    char *path;     /* owned; "" when memory only */
    char *rej_path; /* owned: path + ".rejected", where replay copies bad lines */
    enum jn_fsync policy;
    int64_t sync_ms;        /* background fdatasync period (everysec) */
    off_t size;             /* end of the last good line: where appends go */
    bool torn;              /* a failed append left bytes we could not cut off */
    char fail[JN_FAIL_MAX]; /* why the last append failed; "" after one succeeded */
    atomic_bool dirty;      /* appended since the last fdatasync */
    atomic_int sync_errno;  /* last background fdatasync failure, 0 when fine */
    atomic_uint_least64_t writes, bytes, syncs, errors;
    /* background sync (JN_FSYNC_EVERYSEC only) */
    pthread_t syncer;
    bool syncer_started;
    bool sync_ready; /* mu and wake initialised */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* CLOCK_MONOTONIC; signalled by jn_close */
    bool stop;           /* guarded by mu */
};

/* A growable byte buffer for the lines of one append. */
struct jn_buf {
    char *data; /* owned */
    size_t len;
    size_t cap;
};

/* ---------------------------------------------------------------------- */

int jn_fsync_parse(const char *name, enum jn_fsync *out)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "always") == 0)
        *out = JN_FSYNC_ALWAYS;
    else if (strcasecmp(name, "everysec") == 0)
        *out = JN_FSYNC_EVERYSEC;
    else if (strcasecmp(name, "no") == 0)
        *out = JN_FSYNC_NO;
    else
        return -1;
    return 0;
}

const char *jn_fsync_name(enum jn_fsync policy)
{
    switch (policy) {
    case JN_FSYNC_ALWAYS:
        return "always";
    case JN_FSYNC_EVERYSEC:
        return "everysec";
    case JN_FSYNC_NO:
        return "no";
    }
    return "?";
}

int jn_prepare_dir(const char *dir, char *err, size_t errlen)
{
    char path[JN_PATH_MAX];
    struct stat st;
    size_t len = dir ? strlen(dir) : 0;
    size_t i;

    if (len == 0 || len >= sizeof(path)) {
        errbuf_set(err, errlen, "data directory '%s' is empty or too long", dir ? dir : "");
        return -1;
    }
    memcpy(path, dir, len + 1);
    /* mkdir -p: each parent in turn, then dir itself. */
    for (i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        if (path[i - 1] == '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            errbuf_set(err, errlen, "cannot create data directory %s: %s", path, strerror(errno));
            return -1;
        }
        path[i] = i == len ? '\0' : '/';
    }
    if (stat(dir, &st) != 0) {
        errbuf_set(err, errlen, "cannot use data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        errbuf_set(err, errlen, "data directory %s is not a directory", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        errbuf_set(err, errlen, "data directory %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */

/* The background syncer: every sync_ms (a second), fdatasync if anything was written
 * (or if the last attempt failed, to notice the recovery). */
static void *jn_syncer_main(void *arg)
{
    struct jn_journal *j = arg;
    struct timespec deadline;

    pthread_mutex_lock(&j->mu);
    while (!j->stop) {
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)(j->sync_ms / 1000);
        deadline.tv_nsec += (long)(j->sync_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!j->stop && pthread_cond_timedwait(&j->wake, &j->mu, &deadline) != ETIMEDOUT)
            ;
        if (j->stop)
            break;
        pthread_mutex_unlock(&j->mu);
        if (atomic_exchange(&j->dirty, false) || atomic_load(&j->sync_errno) != 0) {
            if (fdatasync(j->fd) != 0) {
                int e = errno;

                atomic_store(&j->dirty, true);
                atomic_fetch_add(&j->errors, 1);
                if (atomic_exchange(&j->sync_errno, e) == 0)
                    log_error("fdatasync %s failed: %s; refusing writes until it succeeds", j->path,
                              strerror(e));
            } else {
                atomic_fetch_add(&j->syncs, 1);
                if (atomic_exchange(&j->sync_errno, 0) != 0)
                    log_info("fdatasync %s works again; accepting writes", j->path);
            }
        }
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Start the syncer thread. 0, or -1 with err. */
static int jn_syncer_start(struct jn_journal *j, char *err, size_t errlen)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0) {
        errbuf_set(err, errlen, "cannot start the fsync thread");
        return -1;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&j->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        errbuf_set(err, errlen, "cannot start the fsync thread");
        return -1;
    }
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        pthread_cond_destroy(&j->wake);
        errbuf_set(err, errlen, "cannot start the fsync thread");
        return -1;
    }
    j->sync_ready = true;
    rc = pthread_create(&j->syncer, NULL, jn_syncer_main, j);
    if (rc != 0) {
        errbuf_set(err, errlen, "cannot start the fsync thread: %s", strerror(rc));
        return -1;
    }
    j->syncer_started = true;
    return 0;
}

struct jn_journal *jn_open(const char *dir, const char *file, enum jn_fsync policy, int64_t sync_ms,
                           char *err, size_t errlen)
{
    struct jn_journal *j = calloc(1, sizeof(*j));
    struct stat st;
    size_t dlen = dir ? strlen(dir) : 0;
    int n;

    if (!j) {
        errbuf_set(err, errlen, "out of memory");
        return NULL;
    }
    j->fd = -1;
    j->policy = policy;
    j->sync_ms = sync_ms > 0 ? sync_ms : JN_SYNC_INTERVAL_MS;
    atomic_init(&j->dirty, false);
    atomic_init(&j->sync_errno, 0);
    atomic_init(&j->writes, 0);
    atomic_init(&j->bytes, 0);
    atomic_init(&j->syncs, 0);
    atomic_init(&j->errors, 0);
    if (dlen == 0) {
        j->path = strdup("");
        if (!j->path)
            goto oom;
        return j;
    }
    j->path = malloc(JN_PATH_MAX);
    if (!j->path)
        goto oom;
    n = snprintf(j->path, JN_PATH_MAX, "%s%s%s", dir, dir[dlen - 1] == '/' ? "" : "/", file);
    if (n < 0 || n >= JN_PATH_MAX) {
        errbuf_set(err, errlen, "journal path in %s is too long", dir);
        goto fail;
    }
    j->rej_path = malloc(JN_PATH_MAX);
    if (!j->rej_path)
        goto oom;
    n = snprintf(j->rej_path, JN_PATH_MAX, "%s.rejected", j->path);
    if (n < 0 || n >= JN_PATH_MAX) {
        errbuf_set(err, errlen, "journal path in %s is too long", dir);
        goto fail;
    }
    j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        errbuf_set(err, errlen, "cannot open journal %s: %s", j->path, strerror(errno));
        goto fail;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            errbuf_set(err, errlen, "journal %s is in use by another process", j->path);
        else
            errbuf_set(err, errlen, "cannot lock journal %s: %s", j->path, strerror(errno));
        goto fail;
    }
    if (fstat(j->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errbuf_set(err, errlen, "journal %s is not a regular file", j->path);
        goto fail;
    }
    j->size = st.st_size;
    if (policy == JN_FSYNC_EVERYSEC && jn_syncer_start(j, err, errlen) != 0)
        goto fail;
    return j;
oom:
    errbuf_set(err, errlen, "out of memory");
fail:
    jn_close(j);
    return NULL;
}

void jn_close(struct jn_journal *j)
{
    char err[256];

    if (!j)
        return;
    if (j->syncer_started) {
        pthread_mutex_lock(&j->mu);
        j->stop = true;
        pthread_cond_signal(&j->wake);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->syncer, NULL);
    }
    if (j->sync_ready) {
        pthread_cond_destroy(&j->wake);
        pthread_mutex_destroy(&j->mu);
    }
    if (j->fd >= 0) {
        if (j->policy != JN_FSYNC_NO && jn_sync(j, err, sizeof(err)) != 0)
            log_error("%s", err);
        close(j->fd);
    }
    free(j->path);
    free(j->rej_path);
    free(j);
}

/* ---------------------------------------------------------------------- */

/* Parse one line (len bytes, no newline) into *rec, whose strings then
 * point into *root (a new reference the caller decrefs). Returns 0, or -1
 * with why filled (and *root NULL). */
static int jn_parse_line(const char *line, size_t len, struct jn_record *rec, json_t **root,
                         char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *uuid = NULL;
    json_t *msg = NULL;
    json_t *ts = NULL;
    json_t *trace = NULL;

    *root = NULL;
    if (len > JN_LINE_MAX) {
        errbuf_set(why, whylen, "%zu bytes, over the limit of %d", len, JN_LINE_MAX);
        return -1;
    }
    *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        errbuf_set(why, whylen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
        return -1;
    }
    uuid = json_object_get(*root, "uuid");
    msg = json_object_get(*root, "msg");
    ts = json_object_get(*root, "ts");
    trace = json_object_get(*root, PM_F_TRACE);
    if (!json_is_object(*root))
        errbuf_set(why, whylen, "not a JSON object");
    else if (!uid_is_valid(json_string_value(uuid)))
        errbuf_set(why, whylen, "no valid \"uuid\"");
    else if (!json_is_string(msg) || json_string_length(msg) == 0)
        errbuf_set(why, whylen, "no non-empty string \"msg\"");
    else if (!json_is_integer(ts))
        errbuf_set(why, whylen, "no integer \"ts\"");
    else {
        rec->uuid = json_string_value(uuid);
        rec->msg = json_string_value(msg);
        rec->len = json_string_length(msg);
        rec->ts = (int64_t)json_integer_value(ts);
        /* optional: older lines have none, and a bad one only loses it */
        rec->trace = json_is_string(trace) && json_string_length(trace) == PM_TRACE_LEN
                         ? json_string_value(trace)
                         : NULL;
        return 0;
    }
    json_decref(*root);
    *root = NULL;
    return -1;
}

/* The state of one jn_replay: where bad pieces go and what was seen. */
struct jn_scan {
    struct jn_journal *j;
    int rej_fd;       /* the .rejected file, -1 until the first bad piece */
    bool rej_failed;  /* a copy failed: the journal must not be cut */
    long bad;         /* bad pieces seen */
    size_t rej_bytes; /* bytes copied to .rejected */
};

/* Log why line line_no of the journal was skipped (the first
 * JN_WARN_LINES_MAX of them; jn_replay warns the count once at the end). */
static void jn_scan_warn(struct jn_scan *sc, long line_no, const char *why)
{
    if (sc->bad <= JN_WARN_LINES_MAX)
        log_warn("%s line %ld: skipped: %s", sc->j->path, line_no, why);
    else if (sc->bad == JN_WARN_LINES_MAX + 1)
        log_warn("%s: more bad lines; not naming each", sc->j->path);
}

/* Copy the bad piece data[0..len) (borrowed), as it was, plus a newline to
 * the .rejected file beside the journal (opened, or created, on first
 * use). A failure is logged once and remembered in sc->rej_failed. */
static void jn_scan_reject(struct jn_scan *sc, const char *data, size_t len, long line_no,
                           const char *why)
{
    struct iovec iov[2];
    size_t done = 0, total = len + 1;

    sc->bad++;
    jn_scan_warn(sc, line_no, why);
    if (sc->rej_failed)
        return;
    if (sc->rej_fd < 0) {
        sc->rej_fd = open(sc->j->rej_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (sc->rej_fd < 0)
            goto fail;
    }
    /* writev may write less than asked (a signal, a file size limit): go on
     * from where it stopped. */
    while (done < total) {
        ssize_t w;
        int k = 0;

        if (done < len) {
            iov[k].iov_base = (void *)(data + done);
            iov[k++].iov_len = len - done;
        }
        iov[k].iov_base = (void *)"\n";
        iov[k++].iov_len = 1;
        w = writev(sc->rej_fd, iov, k);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        done += (size_t)w;
    }
    sc->rej_bytes += total;
    return;
fail:
    log_error("cannot copy bad lines of %s to %s: %s; keeping them in the journal", sc->j->path,
              sc->j->rej_path, strerror(errno ? errno : ENOSPC));
    sc->rej_failed = true;
}

/* Position of the last NUL byte of data[0..len), or -1 when it has none. */
static long jn_last_nul(const char *data, size_t len)
{
    const char *p = memrchr(data, '\0', len);

    return p ? (long)(p - data) : -1;
}

/* Read the mapped journal map[0..size) line by line into fn (see
 * jn_replay). *good_end gets the end of the last good line. Returns the
 * number of good lines, or -1 with err filled when fn said stop. */
static long jn_scan_lines(struct jn_scan *sc, const char *map, size_t size, jn_record_fn fn,
                          void *arg, size_t *good_end, char *err, size_t errlen)
{
    size_t pos = 0;
    long count = 0, line_no = 0;
    bool same_line = false; /* the rest of a line after its NUL bytes */
    char why[256];

    *good_end = 0;
    while (pos < size) {
        const char *start = map + pos;
        const char *nl = memchr(start, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - start) : size - pos;
        long nul = jn_last_nul(start, len);
        struct jn_record rec;
        json_t *root = NULL;
        int verdict;

        if (!same_line)
            line_no++;
        same_line = false;
        if (nul >= 0) {
            /* Zeroed blocks (a crash on some file systems) or binary junk:
             * the bytes up to the last NUL are one bad piece, and what
             * follows them on this line is read on its own, so a run of
             * NULs does not swallow the good line written after it. */
            jn_scan_reject(sc, start, (size_t)nul + 1, line_no, "NUL bytes");
            pos += (size_t)nul + 1;
            if ((size_t)nul + 1 == len) {
                if (nl)
                    pos++;
            } else {
                same_line = true;
            }
            continue;
        }
        if (!nl) {
            errbuf_set(why, sizeof(why), "no newline at the end (a torn write), %zu bytes", len);
            jn_scan_reject(sc, start, len, line_no, why);
            break;
        }
        if (jn_parse_line(start, len, &rec, &root, why, sizeof(why)) != 0) {
            jn_scan_reject(sc, start, len, line_no, why);
            pos += len + 1;
            continue;
        }
        why[0] = '\0';
        verdict = fn(&rec, arg, why, sizeof(why));
        json_decref(root);
        if (verdict < 0) {
            errbuf_set(err, errlen, "replay of %s stopped at line %ld", sc->j->path, line_no);
            return -1;
        }
        if (verdict == JN_REPLAY_REJECT) {
            jn_scan_reject(sc, start, len, line_no, why[0] ? why : "refused by the rules");
        } else {
            count++;
            *good_end = pos + len + 1;
        }
        pos += len + 1;
    }
    return count;
}

long jn_replay(struct jn_journal *j, jn_record_fn fn, void *arg, char *err, size_t errlen)
{
    struct jn_scan sc = {j, -1, false, 0, 0};
    struct stat st;
    const char *map = NULL;
    size_t size = 0, good_end = 0;
    long count = 0;
    long rc = -1;

    if (j->fd < 0)
        return 0;
    if (fstat(j->fd, &st) != 0) {
        errbuf_set(err, errlen, "cannot stat %s: %s", j->path, strerror(errno));
        return -1;
    }
    size = (size_t)st.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, j->fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            errbuf_set(err, errlen, "cannot read %s: %s", j->path, strerror(errno));
            return -1;
        }
    }
    count = jn_scan_lines(&sc, map, size, fn, arg, &good_end, err, errlen);
    if (count < 0)
        goto cleanup;
    /* The copies must be on disk before anything is cut from the journal. */
    if (sc.rej_fd >= 0 && !sc.rej_failed && fdatasync(sc.rej_fd) != 0) {
        log_error("fdatasync %s: %s; keeping the bad lines in the journal", j->rej_path,
                  strerror(errno));
        sc.rej_failed = true;
    }
    if (sc.bad > 0)
        log_warn("%s: %ld bad lines kept out of memory (%ld good)%s%s", j->path, sc.bad, count,
                 sc.rej_failed ? "" : ", copied to ", sc.rej_failed ? "" : j->rej_path);
    j->size = (off_t)size;
    if (good_end < size && !sc.rej_failed) {
        /* Only bad pieces follow the last good line, and they are safe in
         * .rejected: cut them, so the next append starts on a clean line
         * and the next start does not copy them again. */
        log_warn("%s: cutting %zu bytes of torn or bad tail after the last good line "
                 "(file was %zu bytes, now %zu)",
                 j->path, size - good_end, size, good_end);
        if (ftruncate(j->fd, (off_t)good_end) != 0) {
            errbuf_set(err, errlen, "cannot truncate %s: %s", j->path, strerror(errno));
            goto cleanup;
        }
        if (fdatasync(j->fd) != 0) {
            errbuf_set(err, errlen, "fdatasync %s: %s", j->path, strerror(errno));
            goto cleanup;
        }
        j->size = (off_t)good_end;
    } else if (size > 0 && map[size - 1] != '\n') {
        /* A torn tail that could not be copied stays; the next append
         * starts with a newline so that it stays one bad line. */
        j->torn = true;
    }
    rc = count;
cleanup:
    if (sc.rej_fd >= 0)
        close(sc.rej_fd);
    if (map)
        munmap((void *)map, size);
    return rc;
}

/* ---------------------------------------------------------------------- */

/* Make room for n more bytes in b. 0, or -1 out of memory. */
static int jn_buf_reserve(struct jn_buf *b, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        char *grown = NULL;

        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    return 0;
}

/* Append n bytes to b. 0, or -1 out of memory. */
static int jn_buf_add(struct jn_buf *b, const char *data, size_t n)
{
    if (jn_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

/* Append rec as one line to b, written by hand (jsonw: the same bytes
 * jansson would write, at a fraction of the cost). 0, or -1 with err. */
static int jn_encode(struct jn_buf *b, const struct jn_record *rec, char *err, size_t errlen)
{
    size_t need = 0;

    if (!utf8_valid(rec->msg, rec->len) || !utf8_valid(rec->uuid, strlen(rec->uuid))) {
        errbuf_set(err, errlen, "cannot encode message %.40s: not UTF-8", rec->uuid);
        return -1;
    }
    need = jw_message_len(rec->uuid, rec->msg, rec->len) + 1 + PM_TRACE_PUT_MAX;
    if (jn_buf_reserve(b, need) != 0) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    b->len = (size_t)(jw_message_put(b->data + b->len, rec->uuid, rec->msg, rec->len, rec->ts) -
                      b->data);
    if (rec->trace)
        b->len = b->len - 1 + pm_trace_put(b->data + b->len - 1, rec->trace);
    b->data[b->len++] = '\n';
    return 0;
}

/* Cut the file back to j->size after a failed append; when that fails too,
 * remember it so the next append starts on a fresh line. */
static void jn_rollback(struct jn_journal *j)
{
    int saved = errno;

    if (ftruncate(j->fd, j->size) == 0) {
        j->torn = false;
    } else {
        j->torn = true;
        log_error("cannot cut %s back to %lld bytes after a failed write: %s", j->path,
                  (long long)j->size, strerror(errno));
    }
    errno = saved;
}

int jn_append(struct jn_journal *j, const struct jn_record *recs, size_t n, char *err,
              size_t errlen)
{
    struct jn_buf b = {NULL, 0, 0};
    struct stat st;
    ssize_t w = -1;
    size_t i;
    int e = 0;
    int rc = -1;

    if (n == 0 || j->fd < 0)
        return 0;
    e = atomic_load(&j->sync_errno);
    if (e != 0) {
        errbuf_set(err, errlen, "journal %s: background fdatasync failed: %s", j->path,
                   strerror(e));
        goto cleanup;
    }
    /* Bytes a failed append could not cut off end in a newline of ours, so
     * replay sees them as one corrupt line and the next lines stay good. */
    if (j->torn && jn_buf_add(&b, "\n", 1) != 0) {
        errbuf_set(err, errlen, "out of memory");
        goto cleanup;
    }
    for (i = 0; i < n; i++)
        if (jn_encode(&b, &recs[i], err, errlen) != 0)
            goto cleanup;
    /* One write(2) for the whole batch. A regular file only writes short
     * when the disk or a limit is full: that is a failure, rolled back. */
    do
        w = write(j->fd, b.data, b.len);
    while (w < 0 && errno == EINTR);
    if (w < 0 || (size_t)w != b.len) {
        /* A short write: writing the rest tells why (ENOSPC, EFBIG, EIO). */
        if (w > 0 && write(j->fd, b.data + w, b.len - (size_t)w) >= 0)
            errno = ENOSPC;
        else if (w == 0)
            errno = ENOSPC;
        errbuf_set(j->fail, sizeof(j->fail), "cannot write to journal %s: %s", j->path,
                   strerror(errno));
        errbuf_set(err, errlen, "%s", j->fail);
        if (w != 0)
            jn_rollback(j);
        goto cleanup;
    }
    if (j->torn) {
        j->torn = fstat(j->fd, &st) != 0;
        j->size = j->torn ? j->size + (off_t)b.len : st.st_size;
    } else {
        j->size += (off_t)b.len;
    }
    atomic_fetch_add(&j->writes, 1);
    atomic_fetch_add(&j->bytes, b.len);
    atomic_store(&j->dirty, true);
    if (j->policy == JN_FSYNC_ALWAYS) {
        if (fdatasync(j->fd) != 0) {
            errbuf_set(j->fail, sizeof(j->fail), "fdatasync %s: %s", j->path, strerror(errno));
            errbuf_set(err, errlen, "%s", j->fail);
            j->size -= (off_t)b.len;
            jn_rollback(j);
            goto cleanup;
        }
        atomic_store(&j->dirty, false);
        atomic_fetch_add(&j->syncs, 1);
    }
    if (j->fail[0])
        log_info("journal %s takes writes again", j->path);
    j->fail[0] = '\0';
    rc = 0;
cleanup:
    if (rc != 0)
        atomic_fetch_add(&j->errors, 1);
    free(b.data);
    return rc;
}

int jn_sync(struct jn_journal *j, char *err, size_t errlen)
{
    if (j->fd < 0 || !atomic_exchange(&j->dirty, false))
        return 0;
    if (fdatasync(j->fd) != 0) {
        errbuf_set(err, errlen, "fdatasync %s: %s", j->path, strerror(errno));
        atomic_store(&j->dirty, true);
        atomic_fetch_add(&j->errors, 1);
        return -1;
    }
    atomic_fetch_add(&j->syncs, 1);
    return 0;
}

bool jn_unlinked(const struct jn_journal *j)
{
    struct stat st;

    return j->fd >= 0 && fstat(j->fd, &st) == 0 && st.st_nlink == 0;
}

int jn_recreate(struct jn_journal *j, char *err, size_t errlen)
{
    int fd = -1;
    int rc = -1;

    if (j->fd < 0)
        return 0;
    if (!jn_unlinked(j)) {
        /* Ours already (a rewrite after a deletion failed part way): start
         * it over. */
        if (ftruncate(j->fd, 0) != 0) {
            errbuf_set(j->fail, sizeof(j->fail), "cannot cut %s to start it over: %s", j->path,
                       strerror(errno));
            goto cleanup;
        }
        j->size = 0;
        j->torn = false;
        rc = 0;
        goto cleanup;
    }
    /* O_EXCL: a file someone put at the path meanwhile (a restored copy,
     * another program's) is not ours to overwrite; that stays a failure. */
    fd = open(j->path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        errbuf_set(j->fail, sizeof(j->fail), "%s was deleted and cannot be created again: %s",
                   j->path, strerror(errno));
        goto cleanup;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        errbuf_set(j->fail, sizeof(j->fail), "%s was deleted and the new file is locked: %s",
                   j->path, strerror(errno));
        unlink(j->path); /* the empty file just made, so that a retry can make it */
        goto cleanup;
    }
    /* dup3 swaps the file under j->fd in one step, so the background
     * syncer's fdatasync(j->fd) always names an open file; the old one is
     * closed (and unlocked) by it. (dup2 would drop close-on-exec.) */
    if (dup3(fd, j->fd, O_CLOEXEC) < 0) {
        errbuf_set(j->fail, sizeof(j->fail), "%s: cannot switch to the new file: %s", j->path,
                   strerror(errno));
        unlink(j->path);
        goto cleanup;
    }
    j->size = 0;
    j->torn = false;
    atomic_store(&j->dirty, true);
    rc = 0;
cleanup:
    if (rc != 0) {
        errbuf_set(err, errlen, "%s", j->fail);
        atomic_fetch_add(&j->errors, 1);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int jn_health(const struct jn_journal *j, char *why, size_t whylen)
{
    /* atomic_load takes a non-const pointer in some C libraries. */
    struct jn_journal *m = (struct jn_journal *)j;
    int e = atomic_load(&m->sync_errno);

    if (j->fd < 0)
        return 0;
    if (j->fail[0]) {
        errbuf_set(why, whylen, "%s", j->fail);
        return -1;
    }
    if (e != 0) {
        errbuf_set(why, whylen, "background fdatasync of %s failed: %s", j->path, strerror(e));
        return -1;
    }
    if (jn_unlinked(j)) {
        errbuf_set(why, whylen, "%s was deleted (the next write creates it again)", j->path);
        return -1;
    }
    return 0;
}

const char *jn_path(const struct jn_journal *j) { return j->path; }

bool jn_is_memory(const struct jn_journal *j) { return j->fd < 0; }

enum jn_fsync jn_policy(const struct jn_journal *j) { return j->policy; }

void jn_get_stats(const struct jn_journal *j, struct jn_stats *out)
{
    /* atomic_load takes a non-const pointer in some C libraries. */
    struct jn_journal *m = (struct jn_journal *)j;

    out->writes = atomic_load(&m->writes);
    out->bytes = atomic_load(&m->bytes);
    out->syncs = atomic_load(&m->syncs);
    out->errors = atomic_load(&m->errors);
}
