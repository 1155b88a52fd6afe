/* limits.h: every size, count and time bound the services enforce, named in
 * one place so the README, the code and the tests agree on them. */
#ifndef SVC_CORE_LIMITS_H
#define SVC_CORE_LIMITS_H

/* HTTP server */
#define LIM_BODY_MAX          (1024 * 1024)      /* request body accepted, bytes */
#define LIM_BODY_READ_CEILING (4 * LIM_BODY_MAX) /* evhttp stops reading here */
#define LIM_HEADERS_MAX       (16 * 1024)        /* all request headers, bytes */
#define LIM_REQUEST_TIMEOUT_S 30                 /* idle read/write timeout */
#define LIM_SHUTDOWN_GRACE_MS 5000               /* in-flight drain on SIGTERM */
#define LIM_ROUTES_MAX        64                 /* routes per server */
#define LIM_STREAM_OUT_MAX    (4 * 1024 * 1024)  /* bytes a stream holds for a slow client */
#define LIM_CONN_OUT_MAX      (8 * 1024 * 1024)  /* unread answer bytes a connection may hold */
#define LIM_PATH_SEGMENTS_MAX 16                 /* segments in a routed path */
#define LIM_CONNECTIONS_MAX   4096               /* open connections per server; more get 503 */
#define LIM_CONN_OPTION_MAX   1000000            /* largest --max-connections */
#define LIM_REQUEST_READ_S    20                 /* a request's line, headers and body, total */
#define LIM_LISTEN_BACKLOG    65535              /* listen(2) backlog; Linux caps it at somaxconn */
#define LIM_ACCEPT_PAUSE_MS   100                /* accepts paused when out of file descriptors */
#define LIM_ACCEPT_LOG_MS     1000               /* at most one line per interval about it */
#define LIM_LIBEVENT_LOG_MAX  10                 /* libevent's own log lines per second */
#define LIM_ERROR_ECHO_MAX    200                /* bytes of an error message; longer end "..." */

/* Outgoing calls: one name per timeout, used by every client of the suite */
#define LIM_CALL_TIMEOUT_MS       2000 /* one call to the registry or to a peer service */
#define LIM_CONNECT_TIMEOUT_MS    500 /* TCP connect to a peer replica: a gone host is left quickly */
#define LIM_DEREGISTER_TIMEOUT_MS 1000 /* the DELETE of a shutdown, well inside its drain */
/* Health checks and the drain of a service that registers */
#define LIM_CHECK_INTERVAL_MIN_MS 100             /* smallest --check-interval */
#define LIM_CHECK_INTERVAL_MAX_MS (3600 * 1000LL) /* largest --check-interval */
#define LIM_CHECK_TIMEOUT_MAX_MS  2000            /* an HTTP check's timeout: min(this, interval) */
#define LIM_DRAIN_DELAY_MAX_MS    (60 * 1000LL)   /* largest --drain-delay */
/* The client's connect bound when a call names none: loopback and LAN
 * connects take well under a millisecond, so this only matters for a host
 * that drops SYNs; 2 s still allows one SYN retransmission (initial RTO 1 s).
 * A call's own timeout wins when it is shorter. */
#define LIM_CONNECT_DEFAULT_MS 2000

/* Logging */
#define LIM_LOG_LINE_MAX 4096 /* one log line with its newline (PIPE_BUF) */

/* Registry data model */
#define LIM_NAME_MAX               128                     /* [A-Za-z0-9._-]{1,128} */
#define LIM_TYPE_MAX               128                     /* same alphabet as names */
#define LIM_HOST_MAX               253                     /* DNS name or IP literal */
#define LIM_TAGS_MAX               64                      /* tags per instance */
#define LIM_TAG_LEN_MAX            256                     /* bytes per tag */
#define LIM_META_MAX               64                      /* metadata keys per instance */
#define LIM_META_KEY_MAX           128                     /* bytes per metadata key */
#define LIM_META_VALUE_MAX         1024                    /* bytes per metadata value */
#define LIM_TTL_MIN                1                       /* seconds: an integer "ttl" */
#define LIM_TTL_MIN_MS             100                     /* ms: the shortest ttl of all */
#define LIM_TTL_MAX                86400                   /* seconds */
#define LIM_TTL_DEFAULT            30                      /* seconds */
#define LIM_ID_MAX                 (LIM_NAME_MAX + 1 + 36) /* "<name>-<uuid4>" */
#define LIM_INSTANCES_MAX          200000 /* instances in all, default of --max-instances */
#define LIM_PER_NAME_MAX           10000  /* instances of one name, default of --max-per-name */
#define LIM_REG_DOC_MAX            (64 * 1024) /* bytes of one registration's stored document */
#define LIM_REG_ALIVE_ORPHANS_MAX  4096 /* shared store: alive records kept for ids not here yet */
#define LIM_MEMBER_TTL_MS          5000 /* shared store: a replica's member lease (etcd may raise it) */
#define LIM_MEMBER_URL_MAX         256 /* bytes of a replica's advertised URL in its member record */
#define LIM_MEMBERS_MAX            64  /* replicas known at once (more member records: ignored) */
#define LIM_HEALTH_WRITES_PER_TICK 1024 /* health changes the registry stores per expiry tick */
#define LIM_REG_PAGE_DEFAULT       100  /* instances of a GET /v1/services page without limit= */
#define LIM_REG_PAGE_MAX           1000 /* largest limit= of GET /v1/services */
#define LIM_REG_STREAM_LOW_WATER   (2 * LIM_CHUNK_BYTES) /* the full list: next pieces below this */

/* Registry health checks (registry/core/check.h, registry/checks/runner.h) */
#define LIM_CHECKS_MAX                8 /* checks of one instance, its TTL check counted */
#define LIM_CHECK_ID_MAX              (LIM_ID_MAX + 16) /* [A-Za-z0-9._:-], default "<id>:<n>" */
#define LIM_CHECK_TARGET_MAX          1024  /* bytes of an http check's URL or a tcp HOST:PORT */
#define LIM_CHECK_OUTPUT_MAX          256   /* bytes of a check's output kept (longer is cut) */
#define LIM_CHECK_INTERVAL_MIN_MS     100   /* the shortest interval of an http or tcp check */
#define LIM_CHECK_INTERVAL_DEFAULT_MS 10000 /* an http or tcp check without interval */
#define LIM_CHECK_TIMEOUT_DEFAULT_MS  2000  /* ... without timeout: this or the interval */
#define LIM_CHECK_THRESHOLD_MAX       100   /* failures_before_critical, successes_before_passing */
#define LIM_MAINT_REASON_MAX          256   /* bytes of a maintenance reason */

/* Registry change events and watches (GET /v1/events) */
#define LIM_EVENTS_HISTORY_MAX      10000 /* events kept for watchers, oldest dropped */
#define LIM_EVENTS_HISTORY_BYTES    (16 * 1024 * 1024) /* bytes of their encodings, oldest dropped */
#define LIM_EVENTS_ANSWER_MAX       1000 /* events of one long-poll answer; more: ask again */
#define LIM_WATCH_WAIT_DEFAULT_MS   (5 * 60 * 1000)  /* a long-poll's wait without wait= */
#define LIM_WATCH_WAIT_MAX_MS       (10 * 60 * 1000) /* largest wait=; more is 400 */
#define LIM_WATCH_JITTER_DIV        16               /* a wait gets up to wait/16 more, at random */
#define LIM_EVENTS_SSE_HEARTBEAT_MS 15000 /* an SSE comment line after this much silence */

/* Registry KV config store (/v1/kv, registry/core/kv.h) */
#define LIM_KV_KEY_MAX       512          /* bytes of a key: 1..512, no NUL, no ".." segment */
#define LIM_KV_VALUE_MAX     (512 * 1024) /* bytes of one value; more is 413 */
#define LIM_KV_KEYS_MAX      100000       /* keys in all, writes waiting counted; more 507 */
#define LIM_KV_BYTES_MAX     (256 * 1024 * 1024) /* value bytes in all, counted the same; 507 */
#define LIM_KV_SEED_FILE_MAX (64 * 1024 * 1024)  /* bytes of a --kv-seed file */
#define LIM_KV_TXN_OPS_MAX   64 /* ops of one PUT /v1/txn (older Consul's cap; newer 128); more 400 */
#define LIM_KV_WATCH_WAIT_S  60 /* wait= of a service's blocking read of its config key */

/* Registry DNS interface (registry/api/dns.h) */
#define LIM_DNS_ANSWERS_MAX    256 /* answer records of one answer (instances chosen at random) */
#define LIM_DNS_UDP_MAX        512 /* bytes of a UDP answer; what does not fit: TC, ask over TCP */
#define LIM_DNS_TCP_MAX        65535 /* bytes of a TCP answer (its 16-bit length) */
#define LIM_DNS_TCP_QUERY_MAX  4096  /* bytes of one TCP query; longer: the connection is closed */
#define LIM_DNS_TCP_CONNS_MAX  256   /* open TCP connections; more are closed at once */
#define LIM_DNS_TCP_IDLE_MS    10000 /* a TCP connection idle this long is closed */
#define LIM_DNS_TCP_OUTPUT_MAX (256 * 1024) /* answers queued to a TCP client; more: reads pause */
#define LIM_DNS_NAME_MAX       255          /* bytes of a name (RFC 1035), dotted */
#define LIM_DNS_DOMAIN_MAX     128          /* bytes of --domain */
#define LIM_DNS_UDP_RCVBUF     (4 * 1024 * 1024) /* SO_RCVBUF asked for the UDP socket */

/* Access tokens (common/auth/acl.h) */
#define LIM_ACL_TOKENS_MAX 1024          /* tokens in one --acl-tokens file */
#define LIM_ACL_TOKEN_MAX  256           /* bytes of one token (printable ASCII) */
#define LIM_ACL_RULES_MAX  64            /* rules of one token */
#define LIM_ACL_FILE_MAX   (1024 * 1024) /* bytes of an --acl-tokens file */

/* Messages (facade and logging) */
#define LIM_MSG_MAX      (64 * 1024)       /* bytes of one message text */
#define LIM_BATCH_MAX    1024              /* messages in one POST /logging batch */
#define LIM_BATCH_BYTES  (512 * 1024)      /* body of one batch the facade sends */
#define LIM_PAGE_DEFAULT 10000             /* messages of a GET /logging page without limit= */
#define LIM_PAGE_MAX     10000             /* largest limit= of GET /logging and GET /facade */
#define LIM_PAGE_BYTES   (4 * 1024 * 1024) /* a page ends once its records pass this many bytes */
#define LIM_CHUNK_BYTES  (256 * 1024)      /* off-heap pieces a large answer is built from */

/* The command-line client (svcctl/) */
#define LIM_CLI_BODY_MAX           (256 * 1024 * 1024) /* bytes of an answer svcctl reads */
#define LIM_CLI_TIMEOUT_DEFAULT_MS 10000               /* one call without --timeout */
#define LIM_CLI_EVENT_MAX          (4 * 1024 * 1024)   /* bytes of one SSE event of svcctl watch */
#define LIM_CLI_WATCH_IDLE_S       45 /* a watch stream silent this long (3 heartbeats) is dead */

/* Registry dashboard (registry/api/ui.h): the relay of an instance's /stats or /metrics */
#define LIM_UI_RELAY_TIMEOUT_MS 2000 /* a relayed GET must complete within this; else 504 */
#define LIM_UI_RELAY_INFLIGHT   64   /* relayed GETs in flight at once; more: 503 */
#define LIM_UI_RELAY_BODY_MAX   (1024 * 1024) /* bytes of a relayed answer; more: 502 */
#define LIM_UI_RELAY_IDS        64 /* instances in one batched relay (?stats=&metrics=); more: 400 */

/* The etcd store backend (registry/store/etcd.c). etcd's own caps: 128 ops
 * per txn (--max-txn-ops; one is the writer key), 1.5 MiB per request. */
#define LIM_ETCD_TXN_OPS_MAX      127                /* writes in one txn */
#define LIM_ETCD_TXN_BYTES_MAX    (1024 * 1024)      /* bytes of documents in one txn */
#define LIM_ETCD_TXNS_MAX         4                  /* txns in flight (with disjoint ids) */
#define LIM_ETCD_PAGE_KEYS        500                /* keys per range page (load, reset) */
#define LIM_ETCD_LINE_MAX         (64 * 1024 * 1024) /* one watch message; more: reopen */
#define LIM_ETCD_WATCH_IDLE_MS    30000              /* a silent watch is reopened */
#define LIM_ETCD_PROBE_MS         200                /* the quorum probe's period */
#define LIM_ETCD_PROBE_TIMEOUT_MS 700                /* one probe */
#define LIM_ETCD_QUORUM_MS        800                /* no quorum answer this long: unwritable */
#define LIM_ETCD_ENDPOINTS_MAX    16                 /* --etcd-endpoints URLs */
#define LIM_ETCD_DRAIN_MS         10000              /* close waits this long for writes */
#define LIM_ETCD_GRANTS_MAX       64                 /* lease grants in flight; more wait */
#define LIM_ETCD_KA_BATCH         256                /* leases in one keepalive request */
#define LIM_ETCD_KA_REQUESTS      4                  /* keepalive requests in flight */
#define LIM_ETCD_LEADER_MS        1000               /* how often keepalives seek the leader */

#endif
