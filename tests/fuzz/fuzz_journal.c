/* fuzz_journal.c: libFuzzer harness for the logging-service's journal
 * reader (logging-service/journal.c jn_replay, with ingest.c's rules as its
 * callback, the way the service replays). The input is written as a whole
 * journal file; then, for any bytes:
 *   - replay succeeds, loads exactly as many messages as it says it did,
 *     and never crashes or leaks (ASan, UBSan);
 *   - the journal afterwards is a prefix of the input (replay only cuts)
 *     and every byte cut is in the .rejected file (nothing is destroyed);
 *   - a second replay of the result loads the same messages and cuts
 *     nothing more.
 * Any breach abort()s so libFuzzer records the input. Files live in one
 * mkdtemp directory (under /dev/shm when it exists), emptied per input. */
#include "core/log.h"
#include "dedup/store.h"
#include "logging-service/ingest.h"
#include "logging-service/journal.h"

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_FILE     "logging-1.jsonl"
#define FZ_PATH_MAX 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_dir[FZ_PATH_MAX];
static char fz_path[FZ_PATH_MAX];
static char fz_rej[FZ_PATH_MAX + 16];

/* atexit: remove the scratch directory and its files. */
static void fz_cleanup(void)
{
    unlink(fz_rej);
    unlink(fz_path);
    rmdir(fz_dir);
}

/* Make the scratch directory once (abort on failure: the harness cannot
 * run without it). */
static void fz_init(void)
{
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";

    if (fz_dir[0])
        return;
    snprintf(fz_dir, sizeof(fz_dir), "%s/fuzz_journal.XXXXXX", base);
    if (!mkdtemp(fz_dir))
        abort();
    snprintf(fz_path, sizeof(fz_path), "%s/%s", fz_dir, FZ_FILE);
    snprintf(fz_rej, sizeof(fz_rej), "%s.rejected", fz_path);
    atexit(fz_cleanup);
    log_set_level(LOGL_ERROR); /* one WARN per bad line would drown the output */
}

/* Size of path, or -1 when it does not exist. */
static long fz_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Replay the journal into a fresh store; *count gets ig_replay's result,
 * which must match the store. Aborts on any failure. */
static void fz_replay(long *count)
{
    char err[256];
    struct ds_store *store = ds_new();
    struct jn_journal *j = NULL;
    struct ig_ingest *ig = NULL;

    if (!store)
        abort();
    j = jn_open(fz_dir, FZ_FILE, JN_FSYNC_NO, 0, err, sizeof(err));
    if (!j)
        abort();
    ig = ig_new(store, j);
    if (!ig)
        abort();
    *count = ig_replay(ig, err, sizeof(err));
    if (*count < 0 || (size_t)*count != ds_count(store))
        abort();
    ig_free(ig);
    jn_close(j);
    ds_free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long first = 0, second = 0, kept, rejected, kept2;
    unsigned char *back = NULL;
    int fd;

    fz_init();
    unlink(fz_rej);
    fd = open(fz_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
        abort();
    close(fd);

    fz_replay(&first);
    kept = fz_size(fz_path);
    rejected = fz_size(fz_rej);
    if (kept < 0 || (size_t)kept > size)
        abort();
    /* what was cut is in .rejected (each piece plus a newline) */
    if ((size_t)kept < size && rejected < (long)(size - (size_t)kept))
        abort();
    /* the kept journal is the input's prefix */
    back = malloc((size_t)kept + 1);
    fd = open(fz_path, O_RDONLY);
    if (!back || fd < 0 || read(fd, back, (size_t)kept) != (ssize_t)kept ||
        memcmp(back, data, (size_t)kept) != 0)
        abort();
    close(fd);
    free(back);

    fz_replay(&second);
    kept2 = fz_size(fz_path);
    if (second != first || kept2 != kept)
        abort();
    return 0;
}
