/* main.c: the logging-service executable: its options, the data directory,
 * the journal of this instance's port replayed into the message store, and
 * the /logging routes over it (ingest.c holds the rules); the shared peer_main does the rest (options every
 * service has, listening, self-registration, the loop, shutdown). */
#include "auth/acl.h"
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
    const char *acl_file;        /* --acl-tokens */
    const char *peer_token;      /* --peer-token */
    const char *peer_token_file; /* --peer-token-file */
    struct acl *acl;             /* owned; NULL: anyone may write */
    struct ds_store *store;      /* owned */
    struct jn_journal *journal;  /* owned */
    struct ig_ingest *ig;        /* owned */
    struct lg_service *lg;       /* owned */
};

/* The writers' token table from --acl-tokens (a write needs the "write"
 * rule) and --peer-token / --peer-token-file (one more token with it), or
 * none when neither is given. 0, or 2 with err (and no table). */
static int lg_load_acl(struct lg_app *app, char *err, size_t errlen)
{
    char token[LIM_ACL_TOKEN_MAX + 1] = "", why[512];
    int rc = 2;

    if (app->peer_token[0] && app->peer_token_file[0]) {
        errbuf_set(err, errlen, "--peer-token and --peer-token-file: give one of them");
        return 2;
    }
    if (!app->acl_file[0] && !app->peer_token[0] && !app->peer_token_file[0])
        return 0;
    app->acl = acl_new();
    if (!app->acl) {
        errbuf_set(err, errlen, "out of memory");
        return 1;
    }
    if (app->acl_file[0] && acl_load_file(app->acl, app->acl_file, why, sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--acl-tokens: %s", why);
        goto fail;
    }
    if (app->peer_token_file[0] &&
        acl_token_read_file(app->peer_token_file, token, sizeof(token), why, sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--peer-token-file: %s", why);
        goto fail;
    }
    if (app->peer_token[0])
        snprintf(token, sizeof(token), "%s", app->peer_token);
    if (token[0] && acl_add(app->acl, token, "write", why, sizeof(why)) != 0) {
        errbuf_set(err, errlen, "--peer-token: %s", why);
        goto fail;
    }
    memset(token, 0, sizeof(token));
    return 0;
fail:
    memset(token, 0, sizeof(token));
    acl_free(app->acl);
    app->acl = NULL;
    return rc;
}

/* peer_app check: the fsync policy, the writers' tokens, and the data
 * directory made before anything listens. */
static int lg_check(void *arg, char *err, size_t errlen)
{
    struct lg_app *app = arg;
    int rc;

    if (jn_fsync_parse(app->fsync_name, &app->policy) != 0) {
        errbuf_set(err, errlen, "--fsync: unknown policy '%s' (always, everysec or no)",
                   app->fsync_name);
        return 2;
    }
    rc = lg_load_acl(app, err, errlen);
    if (rc != 0)
        return rc;
    app->memory_only = app->in_memory || app->data_dir[0] == '\0';
    /* A file size limit must make the journal write fail (503), not kill us. */
    signal(SIGXFSZ, SIG_IGN);
    if (!app->memory_only && jn_prepare_dir(app->data_dir, err, errlen) != 0) {
        acl_free(app->acl); /* no stop follows a failed check */
        app->acl = NULL;
        return 1;
    }
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
    if (app->acl)
        log_info("POST /logging needs a token with the write right (%zu tokens)",
                 acl_count(app->acl));
    app->lg = lg_new(svc, app->ig, app->acl);
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
    acl_free(app->acl);
    app->acl = NULL;
}

int main(int argc, char **argv)
{
    static struct lg_app st = {.data_dir = "./data",
                               .fsync_name = "everysec",
                               .acl_file = "",
                               .peer_token = "",
                               .peer_token_file = ""};
    const struct cfg_option opts[] = {
        {"data-dir", "DATA_DIR", CFG_STRING, &st.data_dir, 0, 0, "DIR",
         "directory of the journal logging-PORT.jsonl ('': memory only)"},
        {"in-memory", "IN_MEMORY", CFG_FLAG, &st.in_memory, 0, 0, NULL,
         "keep messages in memory only (nothing survives a restart)"},
        {"fsync", "FSYNC", CFG_STRING, &st.fsync_name, 0, 0, "POLICY",
         "journal fdatasync: always, everysec or no"},
        {"acl-tokens", "ACL_TOKENS", CFG_STRING, &st.acl_file, 0, 0, "FILE",
         "token file (as the registry's); POST needs a token with the write rule"},
        {"peer-token", "PEER_TOKEN", CFG_STRING, &st.peer_token, 0, 0, "TOKEN",
         "one more token allowed to POST (the facade's --peer-token)"},
        {"peer-token-file", "PEER_TOKEN_FILE", CFG_STRING, &st.peer_token_file, 0, 0, "PATH",
         "file whose first line is that token"},
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
