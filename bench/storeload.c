/* storeload.c: benchmark of the registry's store alone (registry/store/), no
 * HTTP: N registration-sized documents (~300 bytes) written through the
 * asynchronous store interface in loop turns of T writes each (T = how many
 * requests one turn of the registry handles; 32 mirrors regload's 32 in
 * flight), each turn waiting for its completions, then one load. Prints one
 * line of figures; the registry's target for 100,000 registrations over HTTP
 * is < 10 s, so this is the store's share of it.
 *
 * Build (bench/run.sh does): gcc -O2 -I common -o storeload bench/storeload.c
 *   registry/store/sqlite.c registry/store/memory.c common/core/errbuf.c
 *   $(pkg-config --cflags --libs sqlite3 libevent) -lpthread
 * Run:   storeload sqlite|memory DIR [N] [T]     (DIR: where the file goes) */
#include "../registry/store/store.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Completions seen and failed. */
struct counts {
    long done, failed;
};

/* Store completion: count it. */
static void count_cb(void *arg, int rc, const char *err)
{
    struct counts *c = arg;

    c->done++;
    if (rc != 0) {
        c->failed++;
        if (c->failed == 1)
            fprintf(stderr, "storeload: commit failed: %s\n", err ? err : "?");
    }
}

/* Load callback: count the records. */
static int load_cb(const char *id, const char *doc, size_t doc_len, void *arg)
{
    (void)id;
    (void)doc;
    (void)doc_len;
    (*(long *)arg)++;
    return 0;
}

/* Monotonic seconds. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct event_base *base = NULL;
    struct store *st = NULL;
    struct counts c = {0, 0};
    char path[4096], id[96], doc[512], err[512] = "";
    long n = argc > 3 ? atol(argv[3]) : 100000;
    long turn = argc > 4 ? atol(argv[4]) : 32;
    long i = 0, queued = 0, loaded = 0;
    double t0 = 0, t1 = 0, t2 = 0;
    int rc = 1;

    if (argc < 3 || n <= 0 || turn <= 0 || turn > STORE_PENDING_MAX) {
        fprintf(stderr, "usage: storeload sqlite|memory DIR [N] [T<=%d]\n", STORE_PENDING_MAX);
        return 2;
    }
    base = event_base_new();
    if (!base)
        goto cleanup;
    snprintf(path, sizeof(path), "%s/storeload.db", argv[2]);
    unlink(path);
    if (strcmp(argv[1], "sqlite") == 0)
        st = store_sqlite_open(path, base, err, sizeof(err));
    else
        st = store_memory_open(base);
    if (!st) {
        fprintf(stderr, "storeload: %s\n", err);
        goto cleanup;
    }

    t0 = now_s();
    for (i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "orders-%08lx-1111-4222-8333-%012ld", i, i);
        snprintf(doc, sizeof(doc),
                 "{\"v\":1,\"id\":\"%s\",\"name\":\"orders\",\"host\":\"10.0.%ld.%ld\","
                 "\"port\":%ld,\"type\":\"http\",\"tags\":[\"v1\",\"blue\",\"eu-west-1a\"],"
                 "\"metadata\":{\"version\":\"1.4.2\",\"owner\":\"team-orders\","
                 "\"weight\":\"100\"},\"ttl\":30}",
                 id, (i >> 8) & 255, i & 255, 1024 + i % 50000);
        if (store_put(st, id, doc, strlen(doc), count_cb, &c, err, sizeof(err)) != 0) {
            fprintf(stderr, "storeload: put: %s\n", err);
            goto cleanup;
        }
        queued++;
        if (queued % turn == 0 || i == n - 1) {
            /* End of the turn: wait for its completions, as the requests of
             * one registry turn wait for their replies. */
            while (c.done < queued)
                if (event_base_loop(base, EVLOOP_ONCE) < 0)
                    goto cleanup;
        }
    }
    t1 = now_s();
    if (store_load(st, load_cb, &loaded, err, sizeof(err)) != 0) {
        fprintf(stderr, "storeload: load: %s\n", err);
        goto cleanup;
    }
    t2 = now_s();
    printf("backend=%s n=%ld turn=%ld write_s=%.3f writes_per_s=%.0f load_s=%.3f loaded=%ld "
           "failed=%ld\n",
           argv[1], n, turn, t1 - t0, (double)n / (t1 - t0), t2 - t1, loaded, c.failed);
    rc = loaded == n && c.failed == 0 ? 0 : 1;

cleanup:
    store_close(st);
    if (base)
        event_base_free(base);
    unlink(path);
    return rc;
}
