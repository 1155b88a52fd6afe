/* check.c: one health check's state machine (see check.h). */
#include "check.h"

void chk_init(struct chk_state *st, enum reg_health status, int64_t now_ms)
{
    st->status = (unsigned char)status;
    st->fails = st->oks = 0;
    st->last_change_ms = now_ms;
}

/* Move st to status at now; whether it moved. */
static bool chk_move(struct chk_state *st, enum reg_health status, int64_t now_ms)
{
    if (st->status == (unsigned char)status)
        return false;
    st->status = (unsigned char)status;
    st->last_change_ms = now_ms;
    return true;
}

/* One more result in a run, saturating. */
static uint8_t chk_count(uint8_t n) { return n < UINT8_MAX ? (uint8_t)(n + 1) : n; }

bool chk_apply(struct chk_state *st, const struct chk_policy *p, enum reg_health result,
               int64_t now_ms)
{
    uint8_t need_ok = p->successes_before_passing ? p->successes_before_passing : 1;
    uint8_t need_fail = p->failures_before_critical ? p->failures_before_critical : 1;

    switch (result) {
    case REG_PASSING:
        st->fails = 0;
        st->oks = chk_count(st->oks);
        return st->oks >= need_ok && chk_move(st, REG_PASSING, now_ms);
    case REG_WARNING:
        st->oks = 0;
        st->fails = chk_count(st->fails);
        if (st->status == REG_CRITICAL)
            return chk_move(st, REG_WARNING, now_ms);
        return st->status == REG_PASSING && st->fails >= need_fail &&
               chk_move(st, REG_WARNING, now_ms);
    case REG_CRITICAL:
    default:
        st->oks = 0;
        st->fails = chk_count(st->fails);
        return st->fails >= need_fail && chk_move(st, REG_CRITICAL, now_ms);
    }
}
