/* main.c: the logging-service executable: its options, the data directory,
 * the journal of this instance's port replayed into the message store, and
 * the /logging routes over it (ingest.c holds the rules); the shared peer_main does the rest (options every
 * service has, listening, self-registration, the loop, shutdown). */
#include "core/config.h"
#include "core/errbuf.h"
#include "core/log.h"
#include "dedup/store.h"
#include "http/service.h"
#include "ingest.h"
#include "journal.h"
#include "lg_limits.h"
#include "regclient/peer.h"
#include "routes.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define LG_NAME "logging-service"

/* The options and what start makes, freed by lg_stop. */
struct lg_app {
    const char *data_dir;
    int in_memory;
    const char *fsync_name;
    enum jn_fsync policy;
    int memory_only;
    struct ds_store *store;     /* owned */
    struct jn_journal *journal; /* owned */
    struct ig_ingest *ig;       /* owned */
    struct lg_service *lg;      /* owned */
};

/* peer_app check: the fsync policy, and the data directory made before
 * anything listens. */
static int lg_check(void *arg, char *err, size_t errlen)
{
    struct lg_app *app = arg;

    if (jn_fsync_parse(app->fsync_name, &app->policy) != 0) {
        errbuf_set(err, errlen, "--fsync: unknown policy '%s' (always, everysec or no)",
                   app->fsync_name);
        return 2;
    }
    app->memory_only = app->in_memory || app->data_dir[0] == '\0';
    /* A file size limit must make the journal write fail (503), not kill us. */
    signal(SIGXFSZ, SIG_IGN);
    if (!app->memory_only && jn_prepare_dir(app->data_dir, err, errlen) != 0)
        return 1;
    return 0;
}

/* peer_app start: the journal of this port replayed into the store (by
 * ingest), then the routes. The loop has not run yet: requests wait in the backlog, and
 * the registration goes out, only once the replay is done. */
static int lg_start(struct svc *svc, struct peer *peer, void *arg, char *err, size_t errlen)
{
    struct lg_app *app = arg;
    char file[64];
    long replayed;

    (void)peer;
    app->store = ds_new();
    if (!app->store) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    /* One journal per instance port, so instances may share a data dir. */
    snprintf(file, sizeof(file), "logging-%d.jsonl", svc_port(svc));
    app->journal =
        jn_open(app->memory_only ? NULL : app->data_dir, file, app->policy, 0, err, errlen);
    if (!app->journal)
        return -1;
    app->ig = ig_new(app->store, app->journal);
    if (!app->ig) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    if (app->memory_only) {
        log_info("journal: memory only (nothing survives a restart)");
    } else {
        replayed = ig_replay(app->ig, err, errlen);
        if (replayed < 0)
            return -1;
        log_info("replayed %ld messages from %s", replayed, jn_path(app->journal));
        log_info("journal: %s, fsync %s", jn_path(app->journal), jn_fsync_name(app->policy));
    }
    app->lg = lg_new(svc, app->ig);
    if (!app->lg) {
        errbuf_set(err, errlen, "cannot set up the routes");
        return -1;
    }
    return 0;
}

/* peer_app stop: free in reverse order of lg_start. */
static void lg_stop(void *arg)
{
    struct lg_app *app = arg;

    lg_free(app->lg);
    ig_free(app->ig);
    jn_close(app->journal);
    ds_free(app->store);
}

int main(int argc, char **argv)
{
    static struct lg_app st = {.data_dir = "./data", .fsync_name = "everysec"};
    const struct cfg_option opts[] = {
        {"data-dir", "DATA_DIR", CFG_STRING, &st.data_dir, 0, 0, "DIR",
         "directory of the journal logging-PORT.jsonl ('': memory only)"},
        {"in-memory", "IN_MEMORY", CFG_FLAG, &st.in_memory, 0, 0, NULL,
         "keep messages in memory only (nothing survives a restart)"},
        {"fsync", "FSYNC", CFG_STRING, &st.fsync_name, 0, 0, "POLICY",
         "journal fdatasync: always, everysec or no"},
    };
    const struct peer_app app = {
        .name = LG_NAME,
        .summary = "Stores log messages by uuid, deduplicated, in a journal.",
        .port_default = LG_PORT_DEFAULT,
        .opts = opts,
        .nopts = sizeof(opts) / sizeof(opts[0]),
        .check = lg_check,
        .start = lg_start,
        .stop = lg_stop,
        .arg = &st,
    };

    return peer_main(&app, argc, argv);
}
