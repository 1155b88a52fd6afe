/* failstore.h: a store for the registry unit tests whose writes fail on
 * demand (prefix fstore_), to test the error paths of what writes through
 * a store. It wraps another store: while failing is on, every write is
 * accepted and then completes with -1 ("injected commit failure") on the
 * loop, the inner store untouched; a refusal armed by fstore_refuse_in
 * makes one write fail at queue time instead ("injected queue refusal").
 * Otherwise it passes everything through to the inner store. */
#ifndef TEST_FAILSTORE_H
#define TEST_FAILSTORE_H

#include <stdbool.h>

struct event_base;
struct store;

/* Wrap inner (stolen on success: closed with the wrapper; on failure,
 * NULL is returned and inner stays the caller's), its failed completions
 * run on base (borrowed, must outlive the store). Not failing at first.
 * Caller closes with store_close. */
struct store *fstore_new(struct event_base *base, struct store *inner)
    __attribute__((warn_unused_result));

/* While on, writes to st (a store of fstore_new) fail at their commit. */
void fstore_set_failing(struct store *st, bool on);

/* n > 0: the n-th write from now is refused when it is queued (err
 * filled, -1 returned); 0: none. */
void fstore_refuse_in(struct store *st, int n);

#endif
