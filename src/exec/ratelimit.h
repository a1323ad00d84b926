/*
 * ratelimit.h — token buckets of the per-client rate limits (PostgreSQL-free;
 * the session executor owns the instances, ratelimit_session.c; rules in
 * docs/access-control.md, "Rate limits").
 *
 * A bucket holds up to `cap` tokens (rate x burst seconds) and refills at
 * `rate` tokens per second.  A message costing `cost` is admitted while the
 * bucket holds min(cost, cap) tokens, and then takes all of `cost`: the
 * bucket may go into debt, so one message larger than the bucket (a big
 * OP_BATCH after a reconnect) still passes once the bucket is full, and the
 * debt is paid back before the next one passes.  The long-run rate is
 * `rate` either way.  A refused message takes nothing.
 *
 * Three kinds per holder (ops, messages, bytes), and two holders per message
 * (the connection and the identity it authenticated as); a message passes
 * only when every bucket with a limit admits it, and then charges them all.
 * Time is whatever monotonic `now_us` the caller passes.
 */
#ifndef TG_EXEC_RATELIMIT_H
#define TG_EXEC_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct TgBucket
{
	double		tokens;
	int64_t		at_us;			/* last refill */
	bool		started;		/* false: full at the first refill */
} TgBucket;

extern void tg_bucket_refill(TgBucket *b, double rate, double cap, int64_t now_us);
extern bool tg_bucket_admits(const TgBucket *b, double cap, double cost);
extern void tg_bucket_take(TgBucket *b, double cost);
/* microseconds until the bucket is full again (0: full) */
extern int64_t tg_bucket_full_in_us(const TgBucket *b, double rate, double cap);

typedef enum TgRateKind
{
	TG_RATE_OPS = 0,
	TG_RATE_MESSAGES,
	TG_RATE_BYTES,
	TG_RATE_NKINDS
} TgRateKind;

extern const char *const tg_rate_kind_names[TG_RATE_NKINDS];	/* "ops/s" ... */

/* Limits per second of one holder; 0 = no limit of that kind. */
typedef struct TgRateLimits
{
	double		per_s[TG_RATE_NKINDS];
} TgRateLimits;

typedef struct TgRateBuckets
{
	TgBucket	b[TG_RATE_NKINDS];
} TgRateBuckets;

/* What refused a message: holder index (0 connection, 1 identity) and kind. */
typedef struct TgRateRefusal
{
	int			holder;
	TgRateKind	kind;
	double		limit;
} TgRateRefusal;

/*
 * Check one message against the buckets of `n` holders (a NULL bucket set
 * is skipped).  True: admitted, and every limited bucket was charged.
 * False: *why says which bucket refused; nothing was charged.
 */
extern bool tg_rate_try(TgRateBuckets *const *sets, const TgRateLimits *const *limits, int n,
						double burst_s, const double cost[TG_RATE_NKINDS], int64_t now_us,
						TgRateRefusal *why);

/* microseconds until every limited bucket of the set is full again */
extern int64_t tg_rate_full_in_us(const TgRateBuckets *set, const TgRateLimits *lim, double burst_s);

/*
 * Sustained flood: refusals without a gap of TG_FLOOD_GAP_US between two
 * of them, for close_after_us.  tg_flood_refused() records one refusal and
 * says whether the streak has lasted long enough to close the connection
 * (never with close_after_us <= 0); tg_flood_streak_us() is its length.
 */
#define TG_FLOOD_GAP_US		INT64_C(1000000)

typedef struct TgFlood
{
	int64_t		streak_start_us;
	int64_t		last_us;
	bool		active;
} TgFlood;

extern bool tg_flood_refused(TgFlood *f, int64_t now_us, int64_t close_after_us);
extern int64_t tg_flood_streak_us(const TgFlood *f);

/*
 * The identities' buckets, shared by all connections of an identity.  An
 * entry lives while a connection holds it and, after the last one let go,
 * until its buckets are full again (a fresh entry would be the same), so
 * reconnecting does not refill a drained bucket.  At most `cap` entries:
 * when full, the released entry that fills soonest is dropped early; the
 * held ones are never dropped (acquire fails only if all `cap` are held).
 */
typedef struct TgRateIdent
{
	struct TgRateIdent *next;	/* hash chain */
	uint32_t	hash;
	int			refs;			/* connections holding it */
	int64_t		full_at_us;		/* refs == 0: when it can go */
	TgRateBuckets buckets;
	char		name[];
} TgRateIdent;

typedef struct TgRateTable
{
	TgRateIdent **slots;
	uint32_t	nslots;			/* power of two */
	int			n;
	int			cap;
	int64_t		last_sweep_us;
} TgRateTable;

extern bool tg_rate_table_init(TgRateTable *t, int cap);
extern void tg_rate_table_free(TgRateTable *t);
extern TgRateIdent *tg_rate_ident_acquire(TgRateTable *t, const char *name, int64_t now_us);
extern void tg_rate_ident_release(TgRateTable *t, TgRateIdent *id, const TgRateLimits *lim,
								  double burst_s, int64_t now_us);
/* drop released entries whose buckets are full again (at most once a second) */
extern void tg_rate_table_sweep(TgRateTable *t, int64_t now_us, bool force);

#endif							/* TG_EXEC_RATELIMIT_H */
