/* journal.h: the logging-service's durability: an append-only file of JSON
 * lines, one {"uuid": ..., "msg": ..., "ts": ..., "trace"?: ...} object per
 * line ("trace", the W3C trace id the message came with, is optional:
 * journals written before it are read as they are), written to
 * the OS before a message is acknowledged, replayed on start. A torn tail (a
 * crash in the middle of a write) is skipped and cut off; other bad lines are
 * kept out of memory and copied to <journal>.rejected, never destroyed. A
 * deleted journal is noticed and created again (jn_unlinked, jn_recreate),
 * and jn_health says whether writes are being kept. The fsync policy follows Redis' appendfsync.
 * Errors are returned (with a message in the caller's buffer); the only
 * output is through log.h (warnings about skipped lines, sync failures). */
#ifndef LG_JOURNAL_H
#define LG_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jn_journal;

/* When appended lines are forced to stable storage. */
enum jn_fsync {
    JN_FSYNC_ALWAYS = 0, /* fdatasync in jn_append, before it returns */
    JN_FSYNC_EVERYSEC,   /* fdatasync by a background thread once a second
                            (jn_open's sync_ms),
                            when something was written (a power loss loses
                            at most about a second; a killed process nothing) */
    JN_FSYNC_NO,         /* never: the OS writes back when it likes */
};

/* One message as the journal stores it. Pointers are borrowed. */
struct jn_record {
    const char *uuid; /* NUL-terminated */
    const char *msg;  /* len bytes of valid UTF-8 */
    size_t len;
    int64_t ts;        /* milliseconds since the epoch */
    const char *trace; /* PM_TRACE_LEN hex digits (proto/messages.h; not
                          NUL-terminated when appended), or NULL: none. A
                          replayed line's is NUL-terminated, NULL when the
                          line had no string "trace" of that length */
};

/* Counters since jn_open. */
struct jn_stats {
    uint64_t writes; /* write(2) calls that succeeded: one per jn_append */
    uint64_t bytes;  /* bytes appended */
    uint64_t syncs;  /* successful fdatasync calls */
    uint64_t errors; /* failed appends and failed syncs */
};

/* What a jn_record_fn returns for a line that is well formed but breaks
 * the service's rules: replay keeps it out (as a bad line, see jn_replay). */
#define JN_REPLAY_REJECT 1

/* Called by jn_replay for each well-formed line, in file order; rec and
 * what it points to are borrowed for the call only. Return 0 to take the
 * line, JN_REPLAY_REJECT (with why[0..whylen) saying why) to treat it as a
 * bad line, -1 to stop the replay (which then fails). */
typedef int (*jn_record_fn)(const struct jn_record *rec, void *arg, char *why, size_t whylen);

/* "always", "everysec" or "no" (any case) into *out. Returns 0 or -1. */
int jn_fsync_parse(const char *name, enum jn_fsync *out) __attribute__((warn_unused_result));
/* The name of policy ("always", "everysec", "no"); a static string. */
const char *jn_fsync_name(enum jn_fsync policy);

/* Create dir and its missing parents (mode 0755 less the umask) and check
 * that files can be created in it, so that a bad --data-dir is reported
 * before anything starts. Returns 0, or -1 with err filled. */
int jn_prepare_dir(const char *dir, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Open (creating it) the journal dir/file (both borrowed) with policy, and
 * lock it so a second process cannot append to it. sync_ms is the period of
 * the background fdatasync of JN_FSYNC_EVERYSEC (0: JN_SYNC_INTERVAL_MS,
 * what the service uses; tests pass a short one). dir NULL or "" gives a
 * memory-only journal: appends succeed and write nothing, replay finds
 * nothing. The directory must exist (jn_prepare_dir). Returns a journal the
 * caller closes with jn_close, or NULL with err filled. */
struct jn_journal *jn_open(const char *dir, const char *file, enum jn_fsync policy, int64_t sync_ms,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

/* Read the whole journal and call fn(rec, arg, ...) for each well-formed
 * line. A bad piece (invalid JSON, a line fn rejects, a torn last line
 * without its newline, or the bytes up to the last NUL of a line: the rest
 * of that line is read on its own) is kept out of memory, named in a WARN
 * (the first JN_WARN_LINES_MAX), counted in one summary WARN, and never
 * destroyed: it is appended as it was, plus a newline, to the file
 * <journal>.rejected beside the journal (created when needed), which is then
 * fdatasync'ed. Bad pieces between good lines stay in the journal too (a
 * later start copies them again); the ones after the last good line are
 * cut off once their copy is on disk, so the next append starts on a clean
 * line. When the copy fails nothing is cut (a torn tail then gets a newline
 * before the next append). Call once, before the first jn_append. Returns
 * the number of good lines, or -1 with err filled (read or truncate failed,
 * fn said stop). */
long jn_replay(struct jn_journal *j, jn_record_fn fn, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Append recs[0..n) (borrowed) as n lines with one write(2), then, with
 * JN_FSYNC_ALWAYS, fdatasync. Returns 0 once the lines are in the OS (and
 * on disk with "always"). On failure (disk full, I/O error, a background
 * sync that failed and has not recovered yet, a record that cannot be
 * encoded) returns -1 with err filled, and the file is cut back to its
 * length before the call: none of the records is in the journal. n == 0
 * and memory-only journals return 0 without writing. */
int jn_append(struct jn_journal *j, const struct jn_record *recs, size_t n, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* Whether j's file lost its last name (someone deleted it: what is
 * appended would vanish with the process). One fstat; false for memory-only
 * journals and when fstat fails. */
bool jn_unlinked(const struct jn_journal *j);

/* Create the journal again at its path (a new, empty, locked file that
 * takes the place of the deleted one under the same descriptor; a file
 * that appeared at the path meanwhile is left alone and is a failure). The
 * caller then appends everything it holds. Returns 0, or -1 with err filled (and the
 * reason kept for jn_health). Memory-only journals return 0. */
int jn_recreate(struct jn_journal *j, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Whether j can keep what it is given: 0, or -1 with why filled when the
 * last append failed (disk full, file too large, I/O error, the file could
 * not be created again; until an append succeeds), the background
 * fdatasync is failing, or the file was deleted (until the next append
 * creates it again). */
int jn_health(const struct jn_journal *j, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/* fdatasync now if anything was appended since the last sync (whatever the
 * policy). Returns 0, or -1 with err filled. */
int jn_sync(struct jn_journal *j, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The journal's path ("" for a memory-only journal), borrowed from j. */
const char *jn_path(const struct jn_journal *j);
/* Whether j keeps nothing on disk. */
bool jn_is_memory(const struct jn_journal *j);
/* The policy j was opened with. */
enum jn_fsync jn_policy(const struct jn_journal *j);
/* Copy the counters into *out. */
void jn_get_stats(const struct jn_journal *j, struct jn_stats *out);

/* Stop the background sync, sync what is pending (unless the policy is
 * "no"; failures are logged), unlock and close. Accepts NULL. */
void jn_close(struct jn_journal *j);

#endif
