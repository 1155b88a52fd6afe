/* test_journal.c: unit tests of the logging-service's journal
 * (logging-service/journal.h): append and replay round trips, a batch as
 * one write(2), a torn tail skipped and cut off, corrupt middle lines
 * skipped, memory-only journals, the fsync policies, a failed write rolled
 * back, the data directory checks and the lock against a second writer.
 * Files live in a mkdtemp directory per test, removed by the teardown.
 *
 * journal.c is included (not linked) with write() renamed to a counting
 * wrapper, so the tests see how many write(2) calls an append makes. */
#include <unistd.h>

static ssize_t counted_write(int fd, const void *buf, size_t n);
#define write counted_write
#include "logging-service/journal.c"
#undef write

#include "support.h"

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
#include <time.h>

#include <cmocka.h>

#define ERRLEN    512
#define DIR_LEN   256
#define PATH_LEN  512
#define FILE_NAME "logging-5001.jsonl"
#define SEEN_MAX  1024
/* The everysec period the tests open journals with (jn_open's sync_ms), so
 * that waiting for the background sync takes milliseconds, not a second. */
#define SYNC_MS 10

#define U1 "11111111-1111-4111-8111-111111111111"
#define U2 "22222222-2222-4222-8222-222222222222"
#define U3 "33333333-3333-4333-8333-333333333333"
#define U4 "44444444-4444-4444-8444-444444444444"

static unsigned write_calls; /* write(2) calls made by journal.c */

static ssize_t counted_write(int fd, const void *buf, size_t n)
{
    write_calls++;
    return write(fd, buf, n);
}

struct fixture {
    char dir[DIR_LEN];   /* mkdtemp directory, removed by teardown */
    char path[PATH_LEN]; /* dir/FILE_NAME */
    char log[PATH_LEN];  /* dir/stderr.txt while stderr is captured */
    int saved_stderr;    /* -1 unless capturing */
};

/* Records a replay passed to the callback (copies). */
struct seen {
    size_t n;
    char uuid[SEEN_MAX][UID_STR_LEN + 1];
    char *msg[SEEN_MAX];
    size_t len[SEEN_MAX];
    int64_t ts[SEEN_MAX];
    int stop_at; /* > 0: return -1 for this record number (1-based) */
};

static int seen_cb(const struct jn_record *rec, void *arg, char *why, size_t whylen)
{
    struct seen *s = arg;

    (void)why;
    (void)whylen;
    if (s->stop_at > 0 && (size_t)s->stop_at == s->n + 1)
        return -1;
    assert_true(s->n < SEEN_MAX);
    assert_int_equal(strlen(rec->uuid), UID_STR_LEN);
    memcpy(s->uuid[s->n], rec->uuid, UID_STR_LEN + 1);
    s->msg[s->n] = malloc(rec->len + 1);
    assert_non_null(s->msg[s->n]);
    memcpy(s->msg[s->n], rec->msg, rec->len);
    s->msg[s->n][rec->len] = '\0';
    s->len[s->n] = rec->len;
    s->ts[s->n] = rec->ts;
    s->n++;
    return 0;
}

static void seen_free(struct seen *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        free(s->msg[i]);
    free(s);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");

    if (!fx)
        return -1;
    fx->saved_stderr = -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/test_journal.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, FILE_NAME);
    snprintf(fx->log, sizeof(fx->log), "%s/stderr.txt", fx->dir);
    write_calls = 0;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    if (fx->saved_stderr >= 0) {
        dup2(fx->saved_stderr, STDERR_FILENO);
        close(fx->saved_stderr);
    }
    ts_remove_tree(fx->dir);
    free(fx);
    return 0;
}

/* --- helpers ---------------------------------------------------------- */

static struct jn_journal *open_ok(struct fixture *fx, enum jn_fsync policy)
{
    char err[ERRLEN] = "";
    struct jn_journal *j = jn_open(fx->dir, FILE_NAME, policy, SYNC_MS, err, sizeof(err));

    if (!j)
        print_error("jn_open: %s\n", err);
    assert_non_null(j);
    return j;
}

static struct jn_record rec(const char *uuid, const char *msg, int64_t ts)
{
    struct jn_record r = {uuid, msg, strlen(msg), ts, NULL};

    return r;
}

static void append_ok(struct jn_journal *j, const struct jn_record *recs, size_t n)
{
    char err[ERRLEN] = "";
    int rc = jn_append(j, recs, n, err, sizeof(err));

    if (rc != 0)
        print_error("jn_append: %s\n", err);
    assert_int_equal(rc, 0);
}

/* Open, replay into a new struct seen (caller frees), return it; *count
 * gets jn_replay's result. The journal stays open in *out when out. */
static struct seen *replay(struct fixture *fx, enum jn_fsync policy, long *count,
                           struct jn_journal **out)
{
    struct jn_journal *j = open_ok(fx, policy);
    struct seen *s = calloc(1, sizeof(*s));
    char err[ERRLEN] = "";

    assert_non_null(s);
    *count = jn_replay(j, seen_cb, s, err, sizeof(err));
    if (*count < 0)
        print_error("jn_replay: %s\n", err);
    if (out)
        *out = j;
    else
        jn_close(j);
    return s;
}

static off_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* The whole file as a NUL-terminated string (caller frees). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    off_t size = file_size(path);
    char *buf = malloc((size_t)size + 1);

    assert_non_null(f);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *path)
{
    char *text = slurp(path);
    size_t n = 0;
    const char *p;

    for (p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Append raw bytes to path, as a crash or another program would leave them. */
static void append_raw(const char *path, const char *bytes)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
    close(fd);
}

/* Send stderr (the log) to fx->log until capture_end, which returns the
 * text written meanwhile (caller frees). */
static void capture_begin(struct fixture *fx)
{
    int fd = open(fx->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    fx->saved_stderr = dup(STDERR_FILENO);
    assert_true(fx->saved_stderr >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

static char *capture_end(struct fixture *fx)
{
    dup2(fx->saved_stderr, STDERR_FILENO);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
    return slurp(fx->log);
}

/* --- tests -------------------------------------------------------------- */

/* What is appended comes back from a replay after a reopen, byte for byte:
 * quotes, backslashes, newlines, tabs and non-ASCII text included. */
static void test_append_replay_roundtrip(void **state)
{
    struct fixture *fx = *state;
    const char *tricky = "line1\nline2\t\"quoted\" back\\slash h\xc3\xa9llo \xe2\x9c\x93 {}[]";
    struct jn_record batch[2];
    struct jn_record one = rec(U1, "first", 1700000000001LL);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct seen *s = NULL;
    long n = 0;

    batch[0] = rec(U2, tricky, 1700000000002LL);
    batch[1] = rec(U3, "third", 0);
    assert_false(jn_is_memory(j));
    assert_string_equal(jn_path(j), fx->path);
    assert_int_equal(jn_policy(j), JN_FSYNC_NO);
    append_ok(j, &one, 1);
    append_ok(j, batch, 2);
    jn_close(j);
    assert_int_equal(count_lines(fx->path), 3);

    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(s->n, 3);
    assert_string_equal(s->uuid[0], U1);
    assert_string_equal(s->msg[0], "first");
    assert_int_equal(s->ts[0], 1700000000001LL);
    assert_string_equal(s->uuid[1], U2);
    assert_string_equal(s->msg[1], tricky);
    assert_int_equal(s->len[1], strlen(tricky));
    assert_int_equal(s->ts[1], 1700000000002LL);
    assert_string_equal(s->uuid[2], U3);
    assert_int_equal(s->ts[2], 0);
    seen_free(s);
}

/* Each line is one compact JSON object, so other tools can read the file. */
static void test_line_format(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r = rec(U1, "a \"b\"\n", 42);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char *text = NULL;

    append_ok(j, &r, 1);
    jn_close(j);
    text = slurp(fx->path);
    assert_string_equal(text, "{\"uuid\":\"" U1 "\",\"msg\":\"a \\\"b\\\"\\n\",\"ts\":42}\n");
    free(text);
}

/* A batch of many records is a single write(2) of all its lines. */
static void test_batch_is_one_write(void **state)
{
    struct fixture *fx = *state;
    enum { N = 500 };
    struct jn_record recs[N];
    char uuids[N][UID_STR_LEN + 1];
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct jn_stats st;
    struct seen *s = NULL;
    long n = 0;
    size_t i;

    for (i = 0; i < N; i++) {
        snprintf(uuids[i], sizeof(uuids[i]), "%08zx-0000-4000-8000-%012zu", i, i);
        recs[i] = rec(uuids[i], "batched message", (int64_t)i);
    }
    write_calls = 0;
    append_ok(j, recs, N);
    assert_int_equal(write_calls, 1);
    jn_get_stats(j, &st);
    assert_int_equal(st.writes, 1);
    assert_int_equal(st.bytes, (uint64_t)file_size(fx->path));
    /* n == 0 writes nothing. */
    append_ok(j, recs, 0);
    assert_int_equal(write_calls, 1);
    jn_close(j);
    assert_int_equal(count_lines(fx->path), N);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    assert_int_equal(n, N);
    assert_string_equal(s->uuid[N - 1], uuids[N - 1]);
    seen_free(s);
}

/* A crash in the middle of a write leaves a last line without its newline:
 * replay skips it with a WARN and cuts the file back to the last good
 * line, so the next append starts on a clean line. */
static void test_torn_tail_skipped_and_truncated(void **state)
{
    struct fixture *fx = *state;
    struct jn_record recs[2] = {rec(U1, "one", 1), rec(U2, "two", 2)};
    struct jn_record more = rec(U3, "three", 3);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct seen *s = NULL;
    char *log = NULL;
    off_t good = 0;
    long n = 0;

    append_ok(j, recs, 2);
    jn_close(j);
    good = file_size(fx->path);
    append_raw(fx->path, "{\"uuid\":\"" U4 "\",\"msg\":\"half a li");

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, &j);
    log = capture_end(fx);
    assert_int_equal(n, 2);
    assert_string_equal(s->uuid[1], U2);
    assert_int_equal(file_size(fx->path), good);
    assert_non_null(strstr(log, "WARN"));
    assert_non_null(strstr(log, "line 3"));
    assert_non_null(strstr(log, "torn"));
    free(log);
    seen_free(s);

    /* Appending after the cut gives a clean journal. */
    append_ok(j, &more, 1);
    jn_close(j);
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 3);
    assert_string_equal(s->msg[2], "three");
    assert_null(strstr(log, "WARN"));
    free(log);
    seen_free(s);
}

/* A complete last line that is not valid JSON is a torn tail too. */
static void test_invalid_last_line_truncated(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r = rec(U1, "one", 1);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct seen *s = NULL;
    off_t good = 0;
    long n = 0;

    append_ok(j, &r, 1);
    jn_close(j);
    good = file_size(fx->path);
    append_raw(fx->path, "{\"uuid\":\"" U2 "\",\"msg\":\"x\",\"ts\":\n");
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 1);
    assert_int_equal(file_size(fx->path), good);
    seen_free(s);
}

/* A batch torn by a crash: its complete lines are kept, the partial last
 * line is cut. Nothing of it had been acknowledged, and the kept lines are
 * whole messages, so keeping them is harmless (a retry is a duplicate). */
static void test_torn_batch_keeps_complete_lines(void **state)
{
    struct fixture *fx = *state;
    const char *complete = "{\"uuid\":\"" U1 "\",\"msg\":\"a\",\"ts\":1}\n"
                           "{\"uuid\":\"" U2 "\",\"msg\":\"b\",\"ts\":2}\n";
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO); /* creates the file */
    struct seen *s = NULL;
    long n = 0;

    jn_close(j);
    append_raw(fx->path, complete);
    append_raw(fx->path, "{\"uuid\":\"" U3 "\",\"ms");
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 2);
    assert_int_equal(file_size(fx->path), (off_t)strlen(complete));
    seen_free(s);
}

/* Corrupt lines between good ones are skipped with a WARN each, and the
 * file is left as it is (the good lines after them must stay). */
static void test_corrupt_middle_lines_skipped(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "before", 1);
    struct jn_record r2 = rec(U2, "after", 2);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct seen *s = NULL;
    char *log = NULL;
    off_t size = 0;
    long n = 0;

    append_ok(j, &r1, 1);
    jn_close(j);
    append_raw(fx->path, "this is not json\n"                                 /* line 2 */
                         "{\"uuid\":\"not-a-uuid\",\"msg\":\"x\",\"ts\":1}\n" /* line 3 */
                         "{\"uuid\":\"" U3 "\",\"msg\":\"no ts\"}\n"          /* line 4 */
                         "{\"uuid\":\"" U3 "\",\"msg\":\"\",\"ts\":1}\n"      /* line 5 */
                         "[1,2,3]\n"                                          /* line 6 */
                         "\n");                                               /* line 7 */
    j = open_ok(fx, JN_FSYNC_NO);
    append_ok(j, &r2, 1);
    jn_close(j);
    size = file_size(fx->path);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 2);
    assert_string_equal(s->msg[0], "before");
    assert_string_equal(s->msg[1], "after");
    assert_int_equal(file_size(fx->path), size);
    assert_non_null(strstr(log, "line 2: skipped"));
    assert_non_null(strstr(log, "line 3: skipped"));
    assert_non_null(strstr(log, "line 4: skipped"));
    assert_non_null(strstr(log, "line 5: skipped"));
    assert_non_null(strstr(log, "line 6: skipped"));
    assert_non_null(strstr(log, "line 7: skipped"));
    assert_null(strstr(log, "line 8"));
    free(log);
    seen_free(s);
}

/* An empty or missing journal replays nothing; opening creates the file. */
static void test_empty_journal(void **state)
{
    struct fixture *fx = *state;
    struct seen *s = NULL;
    long n = -1;

    s = replay(fx, JN_FSYNC_EVERYSEC, &n, NULL);
    assert_int_equal(n, 0);
    assert_int_equal(file_size(fx->path), 0);
    seen_free(s);
}

/* The callback can stop the replay, which then fails. */
static void test_replay_stopped_by_callback(void **state)
{
    struct fixture *fx = *state;
    struct jn_record recs[3] = {rec(U1, "a", 1), rec(U2, "b", 2), rec(U3, "c", 3)};
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct seen *s = calloc(1, sizeof(*s));
    char err[ERRLEN] = "";

    assert_non_null(s);
    append_ok(j, recs, 3);
    jn_close(j);
    j = open_ok(fx, JN_FSYNC_NO);
    s->stop_at = 2;
    assert_int_equal(jn_replay(j, seen_cb, s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(s->n, 1);
    jn_close(j);
    seen_free(s);
}

/* dir NULL or "": nothing on disk, appends succeed without a write, replay
 * finds nothing. */
static void test_memory_only(void **state)
{
    struct fixture *fx = *state;
    const char *dirs[2] = {NULL, ""};
    struct jn_record r = rec(U1, "kept in memory only", 1);
    char err[ERRLEN] = "";
    struct seen s;
    struct jn_stats st;
    size_t i;

    memset(&s, 0, sizeof(s));
    for (i = 0; i < 2; i++) {
        struct jn_journal *j =
            jn_open(dirs[i], FILE_NAME, JN_FSYNC_ALWAYS, SYNC_MS, err, sizeof(err));

        assert_non_null(j);
        assert_true(jn_is_memory(j));
        assert_string_equal(jn_path(j), "");
        write_calls = 0;
        assert_int_equal(jn_append(j, &r, 1, err, sizeof(err)), 0);
        assert_int_equal(write_calls, 0);
        assert_int_equal(jn_replay(j, seen_cb, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n, 0);
        assert_int_equal(jn_sync(j, err, sizeof(err)), 0);
        jn_get_stats(j, &st);
        assert_int_equal(st.writes, 0);
        jn_close(j);
    }
    assert_int_equal(access(fx->path, F_OK), -1);
}

/* The three policies parse (any case) and each journal works; "always"
 * syncs inside the append, "everysec" from its thread within a period
 * (here SYNC_MS, injected through jn_open), "no" never on its own. */
static void test_fsync_modes(void **state)
{
    struct fixture *fx = *state;
    const char *names[3] = {"always", "everysec", "no"};
    enum jn_fsync policy;
    struct jn_stats st;
    struct jn_journal *j = NULL;
    struct seen *s = NULL;
    char uuid[UID_STR_LEN + 1];
    struct jn_record r;
    long n = 0;
    int i, tries;

    assert_int_equal(jn_fsync_parse("EverySec", &policy), 0);
    assert_int_equal(policy, JN_FSYNC_EVERYSEC);
    assert_int_equal(jn_fsync_parse("sometimes", &policy), -1);
    assert_int_equal(jn_fsync_parse("", &policy), -1);
    assert_int_equal(jn_fsync_parse(NULL, &policy), -1);
    /* sync_ms 0 is the service's period */
    j = jn_open(fx->dir, FILE_NAME, JN_FSYNC_EVERYSEC, 0, NULL, 0);
    assert_non_null(j);
    assert_int_equal(j->sync_ms, JN_SYNC_INTERVAL_MS);
    jn_close(j);
    for (i = 0; i < 3; i++) {
        assert_int_equal(jn_fsync_parse(names[i], &policy), 0);
        assert_int_equal(policy, (enum jn_fsync)i);
        assert_string_equal(jn_fsync_name(policy), names[i]);

        snprintf(uuid, sizeof(uuid), "%08u-0000-4000-8000-000000000000", (unsigned)i & 7u);
        r = rec(uuid, names[i], i);
        j = open_ok(fx, policy);
        append_ok(j, &r, 1);
        jn_get_stats(j, &st);
        if (policy == JN_FSYNC_ALWAYS) {
            assert_int_equal(st.syncs, 1);
        } else if (policy == JN_FSYNC_EVERYSEC) {
            /* the thread syncs within one period (SYNC_MS) of the append */
            assert_int_equal(j->sync_ms, SYNC_MS);
            for (tries = 0; tries < 500 && st.syncs == 0; tries++) {
                usleep(SYNC_MS * 1000 / 2);
                jn_get_stats(j, &st);
            }
            assert_int_equal(st.syncs, 1);
        } else {
            /* no thread at all; and over many periods nothing syncs */
            assert_false(j->syncer_started);
            usleep(SYNC_MS * 1000 * 12);
            jn_get_stats(j, &st);
            assert_int_equal(st.syncs, 0);
        }
        jn_close(j);
    }
    s = replay(fx, JN_FSYNC_ALWAYS, &n, NULL);
    assert_int_equal(n, 3);
    assert_string_equal(s->msg[1], "everysec");
    seen_free(s);
}

/* A write that fails (here: a file size limit, as a full disk would) is an
 * error, and the file is cut back so the journal holds nothing of it; the
 * next append works once there is room again. */
static void test_failed_write_rolled_back(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "fits", 1);
    struct jn_record r3 = rec(U3, "after the disk has room again", 3);
    char big[2048];
    struct jn_record r2;
    struct jn_journal *j = open_ok(fx, JN_FSYNC_ALWAYS);
    struct rlimit old, lim;
    struct jn_stats st;
    struct seen *s = NULL;
    char err[ERRLEN] = "";
    off_t size = 0;
    long n = 0;
    int rc;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    r2 = rec(U2, big, 2);
    append_ok(j, &r1, 1);
    size = file_size(fx->path);

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    capture_begin(fx); /* stderr may be a file: write it after the limit is gone */
    rc = jn_append(j, &r2, 1, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    free(capture_end(fx));
    signal(SIGXFSZ, SIG_DFL);

    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, fx->path));
    assert_int_equal(file_size(fx->path), size);
    jn_get_stats(j, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.writes, 1);

    append_ok(j, &r3, 1);
    jn_close(j);
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 2);
    assert_string_equal(s->uuid[0], U1);
    assert_string_equal(s->uuid[1], U3);
    assert_int_equal(count_lines(fx->path), 2);
    seen_free(s);
}

/* A record that cannot be encoded (msg not UTF-8) fails the whole append
 * before anything is written. */
static void test_unencodable_record_writes_nothing(void **state)
{
    struct fixture *fx = *state;
    struct jn_record recs[2] = {rec(U1, "fine", 1), rec(U2, "bad \xff\xfe bytes", 2)};
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char err[ERRLEN] = "";

    write_calls = 0;
    assert_int_equal(jn_append(j, recs, 2, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
    assert_int_equal(write_calls, 0);
    assert_int_equal(file_size(fx->path), 0);
    jn_close(j);
}

/* jn_prepare_dir makes missing parents, accepts an existing directory, and
 * refuses what cannot be a directory with a message naming it. */
static void test_prepare_dir(void **state)
{
    struct fixture *fx = *state;
    char nested[PATH_LEN];
    char under_file[PATH_LEN];
    char file[PATH_LEN];
    char err[ERRLEN] = "";
    struct stat st;
    int fd;

    snprintf(nested, sizeof(nested), "%s/a/b/c/", fx->dir);
    assert_int_equal(jn_prepare_dir(nested, err, sizeof(err)), 0);
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(jn_prepare_dir(nested, err, sizeof(err)), 0);

    snprintf(file, sizeof(file), "%s/plain", fx->dir);
    fd = open(file, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(jn_prepare_dir(file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a directory"));
    snprintf(under_file, sizeof(under_file), "%s/plain/sub", fx->dir);
    err[0] = '\0';
    assert_int_equal(jn_prepare_dir(under_file, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "plain"));
    assert_int_equal(jn_prepare_dir("", err, sizeof(err)), -1);
    snprintf(nested, sizeof(nested), "%s/a/b/c", fx->dir);
    rmdir(nested);
    snprintf(nested, sizeof(nested), "%s/a/b", fx->dir);
    rmdir(nested);
}

/* A second journal on the same file is refused while the first is open
 * (two instances on one port and data dir would interleave their lines). */
static void test_second_writer_refused(void **state)
{
    struct fixture *fx = *state;
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char err[ERRLEN] = "";

    assert_null(jn_open(fx->dir, FILE_NAME, JN_FSYNC_NO, SYNC_MS, err, sizeof(err)));
    assert_non_null(strstr(err, "in use"));
    jn_close(j);
    j = open_ok(fx, JN_FSYNC_NO);
    jn_close(j);
}

/* A journal that cannot be opened is an error naming the file. */
static void test_open_missing_dir(void **state)
{
    struct fixture *fx = *state;
    char dir[PATH_LEN];
    char err[ERRLEN] = "";

    snprintf(dir, sizeof(dir), "%s/missing", fx->dir);
    assert_null(jn_open(dir, FILE_NAME, JN_FSYNC_EVERYSEC, SYNC_MS, err, sizeof(err)));
    assert_non_null(strstr(err, "missing/" FILE_NAME));
}

/* --- finding 1 of "Harden what exists": bad lines are never destroyed --- */

/* The bytes of the file at path (caller frees), with *len its size; a
 * missing file gives NULL. */
static char *slurp_bin(const char *path, size_t *len)
{
    struct stat st;
    FILE *f = NULL;
    char *buf = NULL;

    if (stat(path, &st) != 0)
        return NULL;
    f = fopen(path, "rb");
    assert_non_null(f);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    buf[st.st_size] = '\0';
    fclose(f);
    *len = (size_t)st.st_size;
    return buf;
}

/* Append len raw bytes (NULs allowed) to path. */
static void append_bytes(const char *path, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

#define REJ_LEN (PATH_LEN + 16)

/* fx->path + ".rejected" into out. */
static void rejected_path(const struct fixture *fx, char out[REJ_LEN])
{
    snprintf(out, REJ_LEN, "%s.rejected", fx->path);
}

/* Finding 1: five complete lines without "ts" and nothing else used to be
 * cut to nothing. Now they are moved, byte for byte, to .rejected (synced
 * before the cut), with one summary WARN giving the count, and a second
 * start finds a clean journal and copies nothing again. */
static void test_complete_bad_lines_go_to_rejected(void **state)
{
    struct fixture *fx = *state;
    const char *bad = "{\"uuid\":\"" U1 "\",\"msg\":\"no ts 1\"}\n"
                      "{\"uuid\":\"" U2 "\",\"msg\":\"no ts 2\"}\n"
                      "{\"uuid\":\"" U3 "\",\"msg\":\"no ts 3\"}\n"
                      "{\"uuid\":\"" U4 "\",\"msg\":\"no ts 4\"}\n"
                      "{\"uuid\":\"" U1 "\",\"msg\":\"no ts 5\"}\n";
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char rej[REJ_LEN];
    struct seen *s = NULL;
    char *log = NULL, *copy = NULL;
    size_t len = 0;
    long n = -1;

    jn_close(j);
    rejected_path(fx, rej);
    append_raw(fx->path, bad);
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 0);
    copy = slurp_bin(rej, &len);
    assert_non_null(copy);
    assert_int_equal(len, strlen(bad));
    assert_memory_equal(copy, bad, len);
    assert_non_null(strstr(log, "5 bad lines kept out of memory"));
    assert_non_null(strstr(log, ".rejected"));
    free(copy);
    free(log);
    seen_free(s);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 0);
    assert_null(strstr(log, "WARN"));
    copy = slurp_bin(rej, &len);
    assert_int_equal(len, strlen(bad)); /* not copied twice */
    free(copy);
    free(log);
    seen_free(s);
}

/* Finding 1: three complete bad lines at the tail after good ones: the good
 * lines are served and stay, the bad ones are in .rejected as they were
 * (appended after what it held), the torn last line too (with a newline
 * added), and a later append starts on a clean line. */
static void test_bad_tail_is_moved_not_destroyed(void **state)
{
    struct fixture *fx = *state;
    struct jn_record recs[2] = {rec(U1, "one", 1), rec(U2, "two", 2)};
    struct jn_record more = rec(U3, "three", 3);
    const char *bad = "not json at all\n"
                      "{\"uuid\":\"" U3 "\",\"msg\":\"\",\"ts\":1}\n"
                      "[1,2,3]\n";
    const char *torn = "{\"uuid\":\"" U4 "\",\"msg\":\"half";
    const char *before = "an older rejected line\n";
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char rej[REJ_LEN], want[1024];
    struct seen *s = NULL;
    char *copy = NULL;
    size_t len = 0;
    off_t good = 0;
    long n = -1;
    int fd;

    append_ok(j, recs, 2);
    jn_close(j);
    good = file_size(fx->path);
    rejected_path(fx, rej);
    fd = open(rej, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    close(fd);
    append_raw(rej, before);
    append_raw(fx->path, bad);
    append_raw(fx->path, torn);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, &j);
    free(capture_end(fx));
    assert_int_equal(n, 2);
    assert_string_equal(s->msg[1], "two");
    assert_int_equal(file_size(fx->path), good);
    snprintf(want, sizeof(want), "%s%s%s\n", before, bad, torn);
    copy = slurp_bin(rej, &len);
    assert_non_null(copy);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(copy, want, len);
    free(copy);
    seen_free(s);

    append_ok(j, &more, 1);
    jn_close(j);
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 3);
    seen_free(s);
}

/* Finding 1: a 5,000-byte file of junk (no NULs, some newlines, no final
 * newline) used to be emptied. Every byte of it is now in .rejected. */
static void test_unreadable_file_is_copied_whole(void **state)
{
    struct fixture *fx = *state;
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    unsigned char junk[5000];
    uint32_t x = 12345;
    char rej[REJ_LEN];
    struct seen *s = NULL;
    char *copy = NULL;
    size_t len = 0, i;
    long n = -1;

    jn_close(j);
    for (i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(1 + (x >> 16) % 255); /* 1..255: no NUL */
    }
    junk[sizeof(junk) - 1] = 'z'; /* unterminated */
    append_bytes(fx->path, junk, sizeof(junk));
    rejected_path(fx, rej);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 0);
    copy = slurp_bin(rej, &len);
    assert_non_null(copy);
    assert_int_equal(len, sizeof(junk) + 1);
    assert_memory_equal(copy, junk, sizeof(junk));
    assert_int_equal(copy[sizeof(junk)], '\n');
    assert_int_equal(file_size(fx->path), 0);
    free(copy);
    seen_free(s);
}

/* Finding 1: a 4 KiB run of NUL bytes (zeroed blocks after a crash) right
 * before a good line used to swallow it. The NULs are one bad piece (in
 * .rejected), the line after them is served, and the file keeps both (they
 * are not at the tail). */
static void test_nul_run_does_not_swallow_the_next_line(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "before", 1);
    const char *next = "{\"uuid\":\"" U2 "\",\"msg\":\"after the zeros\",\"ts\":2}\n";
    struct jn_record r3 = rec(U3, "last", 3);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    static char zeros[4096];
    char rej[REJ_LEN];
    struct seen *s = NULL;
    char *copy = NULL, *log = NULL;
    size_t len = 0;
    off_t size = 0;
    long n = -1;

    append_ok(j, &r1, 1);
    jn_close(j);
    append_bytes(fx->path, zeros, sizeof(zeros));
    append_raw(fx->path, next);
    j = open_ok(fx, JN_FSYNC_NO);
    append_ok(j, &r3, 1);
    jn_close(j);
    size = file_size(fx->path);
    rejected_path(fx, rej);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 3);
    assert_string_equal(s->msg[0], "before");
    assert_string_equal(s->msg[1], "after the zeros");
    assert_string_equal(s->msg[2], "last");
    assert_int_equal(file_size(fx->path), size);
    assert_non_null(strstr(log, "line 2: skipped: NUL bytes"));
    copy = slurp_bin(rej, &len);
    assert_non_null(copy);
    assert_int_equal(len, sizeof(zeros) + 1);
    assert_memory_equal(copy, zeros, sizeof(zeros));
    free(copy);
    free(log);
    seen_free(s);
}

/* Finding 1: when the copy cannot be made (here .rejected is a directory)
 * nothing is cut: the bad tail stays in the journal, the good lines are
 * served, and the next append still starts on a line of its own. */
static void test_bad_tail_kept_when_copy_fails(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "one", 1);
    struct jn_record r2 = rec(U2, "two", 2);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char rej[REJ_LEN];
    struct seen *s = NULL;
    off_t size = 0;
    long n = -1;

    append_ok(j, &r1, 1);
    jn_close(j);
    append_raw(fx->path, "complete but bad\n{\"torn");
    size = file_size(fx->path);
    rejected_path(fx, rej);
    assert_int_equal(mkdir(rej, 0755), 0);

    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, &j);
    free(capture_end(fx));
    assert_int_equal(n, 1);
    assert_int_equal(file_size(fx->path), size);
    seen_free(s);
    append_ok(j, &r2, 1);
    jn_close(j);
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    free(capture_end(fx));
    assert_int_equal(n, 2);
    assert_string_equal(s->msg[1], "two");
    seen_free(s);
    rmdir(rej);
}

/* Many bad lines: the first JN_WARN_LINES_MAX are named, the rest counted
 * in the one summary (the log does not grow with the damage). */
static void test_bad_line_warnings_are_bounded(void **state)
{
    struct fixture *fx = *state;
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    char line[64], summary[96];
    struct seen *s = NULL;
    char *log = NULL;
    long n = -1;
    int i;

    jn_close(j);
    for (i = 0; i < 3 * JN_WARN_LINES_MAX; i++) {
        snprintf(line, sizeof(line), "bad %d\n", i);
        append_raw(fx->path, line);
    }
    capture_begin(fx);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    log = capture_end(fx);
    assert_int_equal(n, 0);
    snprintf(line, sizeof(line), "line %d: skipped", JN_WARN_LINES_MAX);
    assert_non_null(strstr(log, line));
    snprintf(line, sizeof(line), "line %d: skipped", JN_WARN_LINES_MAX + 1);
    assert_null(strstr(log, line));
    snprintf(summary, sizeof(summary), "%d bad lines kept out of memory", 3 * JN_WARN_LINES_MAX);
    assert_non_null(strstr(log, summary));
    free(log);
    seen_free(s);
}

/* --- finding 2 and 3: a deleted journal, and jn_health ------------------ */

/* Finding 2/3: jn_unlinked notices a deleted journal and jn_health reports
 * it; jn_recreate puts an empty, locked file back at the path under the
 * same descriptor, whose appends survive a reopen. */
static void test_deleted_journal_is_noticed_and_recreated(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "before", 1);
    struct jn_record r2 = rec(U2, "after", 2);
    struct jn_journal *j = open_ok(fx, JN_FSYNC_EVERYSEC);
    char err[ERRLEN] = "", why[ERRLEN] = "";
    struct seen *s = NULL;
    long n = -1;

    append_ok(j, &r1, 1);
    assert_false(jn_unlinked(j));
    assert_int_equal(jn_health(j, why, sizeof(why)), 0);
    assert_int_equal(unlink(fx->path), 0);
    assert_true(jn_unlinked(j));
    assert_int_equal(jn_health(j, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "deleted"));

    assert_int_equal(jn_recreate(j, err, sizeof(err)), 0);
    assert_false(jn_unlinked(j));
    assert_int_equal(jn_health(j, why, sizeof(why)), 0);
    assert_int_equal(file_size(fx->path), 0);
    append_ok(j, &r1, 1);
    append_ok(j, &r2, 1);
    /* the new file is locked like the first */
    assert_null(jn_open(fx->dir, FILE_NAME, JN_FSYNC_NO, SYNC_MS, err, sizeof(err)));
    jn_close(j);
    s = replay(fx, JN_FSYNC_NO, &n, NULL);
    assert_int_equal(n, 2);
    assert_string_equal(s->msg[1], "after");
    seen_free(s);
}

/* Finding 3: a failed write (EFBIG under a file size limit) makes
 * jn_health report it, with the reason, until an append succeeds. */
static void test_health_follows_write_failures(void **state)
{
    struct fixture *fx = *state;
    struct jn_record r1 = rec(U1, "fits", 1);
    struct jn_record r3 = rec(U3, "fits again", 3);
    static char big[2048];
    struct jn_record r2;
    struct jn_journal *j = open_ok(fx, JN_FSYNC_NO);
    struct rlimit old, lim;
    char err[ERRLEN] = "", why[ERRLEN] = "";
    int rc;

    memset(big, 'x', sizeof(big) - 1);
    r2 = rec(U2, big, 2);
    append_ok(j, &r1, 1);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)file_size(fx->path) + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = jn_append(j, &r2, 1, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, -1);
    assert_int_equal(jn_health(j, why, sizeof(why)), -1);
    assert_non_null(strstr(why, strerror(EFBIG)));
    append_ok(j, &r3, 1);
    assert_int_equal(jn_health(j, why, sizeof(why)), 0);
    jn_close(j);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_append_replay_roundtrip),
        T(test_line_format),
        T(test_batch_is_one_write),
        T(test_torn_tail_skipped_and_truncated),
        T(test_invalid_last_line_truncated),
        T(test_torn_batch_keeps_complete_lines),
        T(test_corrupt_middle_lines_skipped),
        T(test_empty_journal),
        T(test_replay_stopped_by_callback),
        T(test_memory_only),
        T(test_fsync_modes),
        T(test_failed_write_rolled_back),
        T(test_unencodable_record_writes_nothing),
        T(test_prepare_dir),
        T(test_second_writer_refused),
        T(test_open_missing_dir),
        T(test_complete_bad_lines_go_to_rejected),
        T(test_bad_tail_is_moved_not_destroyed),
        T(test_unreadable_file_is_copied_whole),
        T(test_nul_run_does_not_swallow_the_next_line),
        T(test_bad_tail_kept_when_copy_fails),
        T(test_bad_line_warnings_are_bounded),
        T(test_deleted_journal_is_noticed_and_recreated),
        T(test_health_follows_write_failures),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
