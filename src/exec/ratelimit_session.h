/*
 * ratelimit_session.h — the per-client rate limits in the session executor
 * (docs/access-control.md, "Rate limits"): the topgun.rate_limit_* settings,
 * the per-role overrides of topgun.rate_limits, one set of buckets per
 * connection and one per identity (ratelimit.h does the arithmetic).
 */
#ifndef TG_EXEC_RATELIMIT_SESSION_H
#define TG_EXEC_RATELIMIT_SESSION_H

#include "worker/worker.h"
#include "wire/message.h"

extern void tg_ratelimit_init(void);	/* _PG_init: the settings */

/* After a successful AUTH: the connection's identity and limits (own short transaction). */
extern void tg_rate_after_auth(TgConn *c);

/*
 * An authenticated client message (never PING) of `bytes` bytes: NULL if it
 * is within the limits (and was charged), else the text of its ERROR 429.
 * A refusal is counted; one that ends a sustained flood also closes the
 * connection (1008), after the answer the caller still sends.
 */
extern const char *tg_rate_check(TgConn *c, const TgMessage *m, size_t bytes);

extern void tg_rate_conn_gone(TgConn *c);

#endif							/* TG_EXEC_RATELIMIT_SESSION_H */
