/* stats.h: svcctl stats: the facade-service instances from the registry,
 * then each one's GET /stats, as one table of their upstreams (breaker
 * state, total/success/failure, retries, mean latency). An sc_cmd_fn
 * (cli.h). */
#ifndef SVCCTL_STATS_H
#define SVCCTL_STATS_H

#include "cli.h"

#define CST_FACADE_NAME "facade-service" /* the name the facades register under */
#define CST_STATS_PATH  "/stats"         /* facade-service/routes.c fc_stats */

int cst_main(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

#endif
