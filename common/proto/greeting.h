/* greeting.h: messages-service's wire contract, as both sides compile it
 * (messages-service answers it, the facade's GET reads it): the name it
 * registers under, its one path, and the member of its answer
 * {"message": "<text>"}. */
#ifndef SVC_PROTO_GREETING_H
#define SVC_PROTO_GREETING_H

#define PG_SERVICE   "messages-service" /* the name messages-service registers under */
#define PG_PATH      "/messages"        /* GET: the fixed message */
#define PG_F_MESSAGE "message"          /* the answer's one member */

#endif
