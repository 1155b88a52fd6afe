/* main.c: the logging-service executable: options, the data directory,
 * the listening server, the journal of this instance's port replayed into
 * the message store, the /logging routes, self-registration with the
 * registry, then the shared service loop until SIGINT/SIGTERM. */
#include "core/config.h"
#include "core/log.h"
#include "core/service.h"
#include "dedup/store.h"
#include "journal.h"
#include "lg_limits.h"
#include "regclient/peer.h"
#include "routes.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#define LG_NAME "logging-service"

int main(int argc, char **argv)
{
    struct cfg_common common = {LG_PORT_DEFAULT, "127.0.0.1", PEER_REGISTRY_DEFAULT, "", "info"};
    int64_t ttl_ms = LG_TTL_MS_DEFAULT;
    const char *data_dir = "./data";
    int in_memory = 0;
    const char *fsync_name = "everysec";
    const struct cfg_option opts[] = {
        CFG_COMMON_OPTIONS(&common),
        {"ttl", "TTL", CFG_DURATION, &ttl_ms, 1000, 86400 * 1000LL, "DUR",
         "registration lease with the registry (renewed every ttl/3)"},
        {"data-dir", "DATA_DIR", CFG_STRING, &data_dir, 0, 0, "DIR",
         "directory of the journal logging-PORT.jsonl ('': memory only)"},
        {"in-memory", "IN_MEMORY", CFG_FLAG, &in_memory, 0, 0, NULL,
         "keep messages in memory only (nothing survives a restart)"},
        {"fsync", "FSYNC", CFG_STRING, &fsync_name, 0, 0, "POLICY",
         "journal fdatasync: always, everysec or no"},
    };
    struct svc svc;
    struct peer peer;
    struct ds_store *store = NULL;
    struct jn_journal *journal = NULL;
    struct lg_service *lg = NULL;
    enum jn_fsync policy = JN_FSYNC_EVERYSEC;
    char file[64];
    char err[512];
    long replayed = 0;
    int memory_only;
    int rc = 1, cfg_rc;

    memset(&svc, 0, sizeof(svc));
    memset(&peer, 0, sizeof(peer));
    cfg_rc = svc_configure(LG_NAME, "Stores log messages by uuid, deduplicated, in a journal.",
                           opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &common);
    if (cfg_rc >= 0)
        return cfg_rc;
    if (peer_check_options(&common, err, sizeof(err)) != 0) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        return 2;
    }
    if (jn_fsync_parse(fsync_name, &policy) != 0) {
        fprintf(stderr, LG_NAME ": --fsync: unknown policy '%s' (always, everysec or no)\n",
                fsync_name);
        return 2;
    }
    memory_only = in_memory || data_dir[0] == '\0';
    /* A file size limit must make the journal write fail (503), not kill us. */
    signal(SIGXFSZ, SIG_IGN);
    if (!memory_only && jn_prepare_dir(data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        return 1;
    }
    store = ds_new();
    if (!store) {
        fprintf(stderr, LG_NAME ": out of memory\n");
        goto cleanup;
    }
    if (svc_init(&svc, LG_NAME, err, sizeof(err)) != 0 ||
        svc_listen(&svc, common.bind, common.port, err, sizeof(err)) != 0) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        goto cleanup;
    }
    /* One journal per instance port, so instances may share a data dir.
     * The loop has not run yet: requests wait in the backlog until the
     * replay is done. */
    snprintf(file, sizeof(file), "logging-%d.jsonl", svc.port);
    journal = jn_open(memory_only ? NULL : data_dir, file, policy, err, sizeof(err));
    if (!journal) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        goto cleanup;
    }
    if (memory_only) {
        log_info("journal: memory only (nothing survives a restart)");
    } else {
        replayed = lg_replay(store, journal, err, sizeof(err));
        if (replayed < 0) {
            fprintf(stderr, LG_NAME ": %s\n", err);
            goto cleanup;
        }
        log_info("replayed %ld messages from %s", replayed, jn_path(journal));
        log_info("journal: %s, fsync %s", jn_path(journal), jn_fsync_name(policy));
    }
    lg = lg_new(&svc, store, journal);
    if (!lg) {
        fprintf(stderr, LG_NAME ": cannot set up the routes\n");
        goto cleanup;
    }
    /* A registry that is down is no error: registration goes on in the
     * background while the service serves. */
    if (peer_start(&peer, &svc, &common, LG_NAME, (int)((ttl_ms + 999) / 1000), err, sizeof(err)) !=
        0) {
        fprintf(stderr, LG_NAME ": %s\n", err);
        rc = 2;
        goto cleanup;
    }
    rc = svc_run(&svc);
cleanup:
    peer_free(&peer);
    svc_free(&svc);
    lg_free(lg);
    jn_close(journal);
    ds_free(store);
    return rc;
}
