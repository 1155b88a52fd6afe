/* catalog.h: the svcctl commands about instances: services, instances,
 * show, health (reads of GET /v1/services[/{id}]) and maint, deregister
 * (its writes). Each is an sc_cmd_fn (cli.h). */
#ifndef SVCCTL_CATALOG_H
#define SVCCTL_CATALOG_H

#include "cli.h"

/* svcctl services: each name, its instances by health, its tags. */
int ccat_services(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);
/* svcctl instances NAME: that name's instances, one a row. */
int ccat_instances(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);
/* svcctl show ID: one instance in full. */
int ccat_show(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);
/* svcctl health: SC_OK only when every instance is passing. */
int ccat_health(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);
/* svcctl maint ID on|off [--reason R] */
int ccat_maint(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);
/* svcctl deregister ID */
int ccat_deregister(const struct sc_ctx *c, int argc, char **args, char *err, size_t errlen);

#endif
