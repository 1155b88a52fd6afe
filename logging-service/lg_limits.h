/* lg_limits.h: the bounds the logging-service enforces on top of the shared
 * ones in common/core/limits.h (request body 1 MiB, headers, timeouts), named
 * in one place so the code, the tests and the docs agree on them. */
#ifndef LG_LIMITS_H
#define LG_LIMITS_H

#include "core/limits.h" /* the message and batch bounds the facade shares */

#define LG_PORT_DEFAULT 5001              /* --port default */
#define LG_MSG_MAX      LIM_MSG_MAX       /* bytes (UTF-8) of one "msg"; longer: 400 */
#define LG_BATCH_MAX    LIM_BATCH_MAX     /* items of one POST /logging array; more: 413 */
#define LG_TS_MAX       253402300799999LL /* "ts" in ms, at most 9999-12-31T23:59:59.999Z */
/* A streamed GET /logging makes its next pieces once the client has no
 * more than this many bytes left to take (hs_stream low_water): it holds
 * about this plus one round of pieces, whatever the size of the list. */
#define LG_STREAM_LOW_WATER (2 * LIM_CHUNK_BYTES)
#define LG_ERROR_MAX        192 /* bytes of one item's error text; longer: cut */

/* Longest journal line replay accepts: one message of LG_MSG_MAX bytes all
 * escaped as \uXXXX (6 bytes each) plus the uuid, ts and punctuation. A longer
 * line cannot have been written by this service and counts as corrupt. */
#define JN_LINE_MAX (6 * LG_MSG_MAX + 256)
/* Bad journal lines replay names one WARN each; past this many it says
 * so once and only counts the rest (the summary WARN gives the total). */
#define JN_WARN_LINES_MAX 20
/* Bytes of the reason a journal write failed, as /health reports it. */
#define JN_FAIL_MAX 512
/* Messages per append when a deleted journal is written again. */
#define IG_REWRITE_CHUNK 256
/* --fsync everysec: the background fdatasync period (jn_open's default;
 * tests pass a shorter one). */
#define JN_SYNC_INTERVAL_MS 1000

#endif
