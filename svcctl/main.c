/* main.c: svcctl, the suite's command-line client: parses the command line
 * (getopt_long; options may come before or after the command), reads
 * REGISTRY_URL and TOKEN, runs one command against the registry's native
 * API and turns its result into the exit code (cli.h), printing an error
 * as one line on stderr: "svcctl: <what>: <why>". */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "catalog.h"
#include "cli.h"
#include "core/config.h"
#include "core/limits.h"
#include "kv.h"
#include "regclient/peer.h"
#include "replicas.h"
#include "stats.h"
#include "watch.h"

static const char sc_help[] =
    "usage: svcctl [options] COMMAND [ARGS]\n"
    "\n"
    "The suite's command-line client: reads and changes the registry.\n"
    "\n"
    "commands:\n"
    "  services                     every service: instances by health, tags\n"
    "  instances NAME               that service's instances: address, health, checks, "
    "maintenance\n"
    "  show ID                      one instance in full: fields, metadata, each check\n"
    "  watch [--type T] [--name N]  follow the registry's events, one line each, until Ctrl-C\n"
    "  kv get KEY                   print a key's value (its bytes, as they are)\n"
    "  kv put KEY VALUE             set a key (VALUE \"-\": read it from stdin)\n"
    "  kv del KEY                   delete a key\n"
    "  kv ls [PREFIX]               list the keys under PREFIX\n"
    "  maint ID on|off [--reason R] take an instance out of discovery, or put it back\n"
    "  deregister ID                remove an instance\n"
    "  replicas                     the registry replicas on its store and which one leads\n"
    "  health                       exit 0 only when every instance is passing; list the others\n"
    "  stats                        each facade-service's upstreams: breaker, counts, retries, "
    "latency\n"
    "\n"
    "options:\n"
    "  -r, --registry URL  the registry (env REGISTRY_URL; default " PEER_REGISTRY_DEFAULT ")\n"
    "  -j, --json          machine output: the registry's JSON as it is (watch: one event a "
    "line)\n"
    "  -t, --token T       access token, sent as X-Registry-Token (env TOKEN)\n"
    "      --timeout D     bound of each call, e.g. 5s, 500ms (default 10s)\n"
    "      --type T        watch: only events of type T (register, deregister, expire,\n"
    "                      health, maintenance, kv)\n"
    "      --name N        watch: only events of service N\n"
    "      --reason R      maint on: why\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n"
    "exit codes:\n"
    "  0  done (health: every instance passing)\n"
    "  1  not found, unhealthy, or refused by the registry (4xx)\n"
    "  2  usage error\n"
    "  3  registry unreachable (connect failure, timeout) or a 5xx\n";

/* A command: its name and what runs it. */
struct sc_command {
    const char *name;
    sc_cmd_fn run;
};

static const struct sc_command sc_commands[] = {
    {"services", ccat_services},
    {"instances", ccat_instances},
    {"show", ccat_show},
    {"watch", cwat_main},
    {"kv", ckv_main},
    {"maint", ccat_maint},
    {"deregister", ccat_deregister},
    {"health", ccat_health},
    {"replicas", crep_main},
    {"stats", cst_main},
};

enum { SC_OPT_TIMEOUT = 256, SC_OPT_TYPE, SC_OPT_NAME, SC_OPT_REASON };

/* A usage error in one line on stderr; returns SC_USAGE. */
static int sc_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sc_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("svcctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (svcctl --help)\n", stderr);
    return SC_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"token", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, SC_OPT_TIMEOUT},
        {"type", required_argument, NULL, SC_OPT_TYPE},
        {"name", required_argument, NULL, SC_OPT_NAME},
        {"reason", required_argument, NULL, SC_OPT_REASON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct sc_ctx c = {0};
    const struct sc_command *cmd = NULL;
    char *registry = NULL, err[2048] = "";
    const char *url = getenv("REGISTRY_URL"), *token = getenv("TOKEN");
    int64_t timeout_ms = LIM_CLI_TIMEOUT_DEFAULT_MS;
    size_t i, n;
    int opt, rc;

    opterr = 0; /* our own one-line message */
    for (;;) {
        opt = getopt_long(argc, argv, ":r:jt:hV", opts, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 'r':
            url = optarg;
            break;
        case 'j':
            c.json = true;
            break;
        case 't':
            token = optarg;
            break;
        case SC_OPT_TIMEOUT:
            if (cfg_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms <= 0)
                return sc_usage("--timeout must be a duration such as 5s or 500ms, not '%.100s'",
                                optarg);
            break;
        case SC_OPT_TYPE:
            c.type = optarg;
            break;
        case SC_OPT_NAME:
            c.name = optarg;
            break;
        case SC_OPT_REASON:
            c.reason = optarg;
            break;
        case 'h':
            fputs(sc_help, stdout);
            return SC_OK;
        case 'V':
            printf("svcctl " SVC_VERSION "\n");
            return SC_OK;
        case ':':
            return sc_usage("%s needs a value", argv[optind - 1]);
        default:
            return sc_usage("unknown option '%.100s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return sc_usage("%s", "no command given");
    for (i = 0; i < sizeof(sc_commands) / sizeof(sc_commands[0]) && !cmd; i++)
        if (strcmp(argv[optind], sc_commands[i].name) == 0)
            cmd = &sc_commands[i];
    if (!cmd)
        return sc_usage("unknown command '%.100s'", argv[optind]);
    if ((c.type || c.name) && cmd->run != cwat_main)
        return sc_usage("%s", "--type and --name go with watch only");
    if (c.reason && cmd->run != ccat_maint)
        return sc_usage("%s", "--reason goes with maint only");
    if (!url || !*url)
        url = PEER_REGISTRY_DEFAULT;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return sc_usage("--registry must be an http:// or https:// URL, not '%.200s'", url);
    registry = strdup(url);
    if (!registry) {
        fputs("svcctl: out of memory\n", stderr);
        return SC_FAIL;
    }
    n = strlen(registry);
    while (n > 0 && registry[n - 1] == '/')
        registry[--n] = '\0';
    c.registry = registry;
    c.reg.token = token;
    c.reg.timeout_ms = (long)timeout_ms;
    c.peer.timeout_ms = (long)timeout_ms;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("svcctl: libcurl: cannot initialise\n", stderr);
        free(registry);
        return SC_FAIL;
    }
    rc = cmd->run(&c, argc - optind - 1, argv + optind + 1, err, sizeof(err));
    fflush(stdout);
    if (rc != SC_OK && *err)
        fprintf(stderr, "svcctl: %s%s\n", err, rc == SC_USAGE ? " (svcctl --help)" : "");
    curl_global_cleanup();
    free(registry);
    return rc;
}
