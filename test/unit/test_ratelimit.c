/*
 * test_ratelimit.c — the token-bucket arithmetic of the rate limits
 * (src/exec/ratelimit.c): burst, refill, debt, both holders, flood streaks
 * and the bounded identity table.
 */
#include "exec/ratelimit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int	passed,
			failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) passed++; \
		else { failed++; printf("not ok %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

#define SEC INT64_C(1000000)

static TgRateLimits
lim(double ops, double msgs, double bytes)
{
	TgRateLimits l;

	l.per_s[TG_RATE_OPS] = ops;
	l.per_s[TG_RATE_MESSAGES] = msgs;
	l.per_s[TG_RATE_BYTES] = bytes;
	return l;
}

/* one message of `ops` ops and `bytes` bytes through one holder */
static bool
send1(TgRateBuckets *b, const TgRateLimits *l, double burst, double ops, double bytes, int64_t now)
{
	double		cost[TG_RATE_NKINDS] = {ops, 1, bytes};
	TgRateBuckets *sets[1] = {b};
	const TgRateLimits *lims[1] = {l};

	return tg_rate_try(sets, lims, 1, burst, cost, now, NULL);
}

static void
test_bucket(void)
{
	TgBucket	b = {0};

	tg_bucket_refill(&b, 10, 10, 0);
	CHECK(b.tokens == 10, "a new bucket starts full (%g)", b.tokens);
	tg_bucket_take(&b, 10);
	tg_bucket_refill(&b, 10, 10, SEC / 2);
	CHECK(fabs(b.tokens - 5) < 1e-9, "half a second refills half (%g)", b.tokens);
	tg_bucket_refill(&b, 10, 10, 10 * SEC);
	CHECK(b.tokens == 10, "refill stops at the capacity (%g)", b.tokens);
	tg_bucket_refill(&b, 10, 4, 10 * SEC);
	CHECK(b.tokens == 4, "a lowered capacity caps the bank (%g)", b.tokens);
	tg_bucket_refill(&b, 10, 4, 9 * SEC);
	CHECK(b.tokens == 4 && b.at_us == 10 * SEC, "time going back refills nothing");
	CHECK(tg_bucket_admits(&b, 4, 4) && tg_bucket_admits(&b, 4, 4.5) && !tg_bucket_admits(&b, 5, 4.5),
		  "a cost above the capacity needs a full bucket only");
	tg_bucket_take(&b, 24);
	CHECK(b.tokens == -20, "a big cost leaves a debt (%g)", b.tokens);
	CHECK(!tg_bucket_admits(&b, 4, 1), "no admission while in debt");
	CHECK(tg_bucket_full_in_us(&b, 10, 4) == 24 * SEC / 10, "full again after the debt is paid (%lld)",
		  (long long) tg_bucket_full_in_us(&b, 10, 4));
}

/* over 10 s, a client sending 20x its limit gets about the limit through */
static void
test_long_run_rate(void)
{
	TgRateBuckets b;
	TgRateLimits l = lim(0, 50, 0);
	int			ok = 0;

	memset(&b, 0, sizeof(b));
	for (int64_t t = 0; t < 10 * SEC; t += SEC / 1000)	/* 1000 messages/s */
		if (send1(&b, &l, 1.0, 0, 100, t))
			ok++;
	/* 50 burst + 50/s x 10 s */
	CHECK(ok >= 540 && ok <= 551, "20x flood: %d of 10000 admitted, expected ~550", ok);

	/* a client at half its limit is never refused */
	memset(&b, 0, sizeof(b));
	ok = 0;
	for (int64_t t = 0; t < 10 * SEC; t += SEC / 25)
		ok += send1(&b, &l, 1.0, 0, 100, t);
	CHECK(ok == 250, "half the limit: all 250 admitted (%d)", ok);
}

static void
test_kinds(void)
{
	TgRateBuckets b;
	TgRateLimits l = lim(100, 0, 1000);
	TgRateRefusal why;
	double		cost[TG_RATE_NKINDS] = {60, 1, 10};
	TgRateBuckets *sets[1] = {&b};
	const TgRateLimits *lims[1] = {&l};

	memset(&b, 0, sizeof(b));
	CHECK(tg_rate_try(sets, lims, 1, 1.0, cost, 0, &why), "60 ops of 100");
	CHECK(!tg_rate_try(sets, lims, 1, 1.0, cost, 0, &why) && why.kind == TG_RATE_OPS && why.limit == 100,
		  "the next 60 ops are refused by the ops bucket");
	CHECK(fabs(b.b[TG_RATE_BYTES].tokens - 990) < 1e-9, "a refused message takes no bytes (%g)",
		  b.b[TG_RATE_BYTES].tokens);
	CHECK(!b.b[TG_RATE_MESSAGES].started, "a kind without a limit is not even tracked");
	/* a batch bigger than the bucket passes when the bucket is full */
	memset(&b, 0, sizeof(b));
	cost[TG_RATE_OPS] = 250;
	CHECK(tg_rate_try(sets, lims, 1, 1.0, cost, 0, &why), "250 ops into a full 100-op bucket");
	cost[TG_RATE_OPS] = 1;
	CHECK(!tg_rate_try(sets, lims, 1, 1.0, cost, SEC, &why), "still in debt (-150 + 100) after 1 s");
	CHECK(tg_rate_try(sets, lims, 1, 1.0, cost, 2 * SEC, &why), "debt paid after 1.5 s");
	/* burst seconds scale the capacity */
	memset(&b, 0, sizeof(b));
	l = lim(0, 10, 0);
	{
		int			ok = 0;

		for (int i = 0; i < 100; i++)
			ok += send1(&b, &l, 3.0, 0, 1, 0);
		CHECK(ok == 30, "burst 3 s of 10/s: 30 at once (%d)", ok);
	}
	/* a tiny rate still lets one message through */
	memset(&b, 0, sizeof(b));
	l = lim(0, 0.5, 0);
	CHECK(send1(&b, &l, 1.0, 0, 1, 0), "capacity is at least one");
}

static void
test_two_holders(void)
{
	TgRateBuckets c1,
				c2,
				ident;
	TgRateLimits lc = lim(0, 10, 0),
				li = lim(0, 15, 0);
	double		cost[TG_RATE_NKINDS] = {0, 1, 0};
	int			ok1 = 0,
				ok2 = 0;
	TgRateRefusal why;

	memset(&c1, 0, sizeof(c1));
	memset(&c2, 0, sizeof(c2));
	memset(&ident, 0, sizeof(ident));
	for (int i = 0; i < 20; i++)
	{
		TgRateBuckets *s1[2] = {&c1, &ident};
		TgRateBuckets *s2[2] = {&c2, &ident};
		const TgRateLimits *ls[2] = {&lc, &li};

		ok1 += tg_rate_try(s1, ls, 2, 1.0, cost, 0, &why);
		ok2 += tg_rate_try(s2, ls, 2, 1.0, cost, 0, &why);
	}
	CHECK(ok1 + ok2 == 15, "two connections share the identity's 15 (%d + %d)", ok1, ok2);
	CHECK(ok1 <= 10 && ok2 <= 10, "each within its own 10");
	CHECK(why.holder == 1 && why.kind == TG_RATE_MESSAGES, "the identity refused the last one");
	CHECK(fabs(c1.b[TG_RATE_MESSAGES].tokens - (10 - ok1)) < 1e-9,
		  "a connection bucket is not charged when the identity refuses");
	{
		TgRateBuckets *s[2] = {&c1, NULL};
		const TgRateLimits *ls[2] = {&lc, &li};

		CHECK(ok1 < 10 && tg_rate_try(s, ls, 2, 1.0, cost, 0, &why),
			  "a missing identity set is skipped (%d left on the connection)", 10 - ok1);
	}
}

static void
test_flood(void)
{
	TgFlood		f;
	bool		closed = false;
	int64_t		t;

	memset(&f, 0, sizeof(f));
	CHECK(!tg_flood_refused(&f, 0, 3 * SEC), "one refusal is no flood");
	for (t = SEC / 2; t < 10 * SEC && !closed; t += SEC / 2)
		closed = tg_flood_refused(&f, t, 3 * SEC);
	CHECK(closed && t == 3 * SEC + SEC / 2, "refusals every 0.5 s close at 3 s (t=%lld)", (long long) t);
	memset(&f, 0, sizeof(f));
	closed = false;
	for (t = 0; t < 20 * SEC; t += SEC + SEC / 10)	/* gaps over 1 s: never a streak */
		closed |= tg_flood_refused(&f, t, 3 * SEC);
	CHECK(!closed && tg_flood_streak_us(&f) == 0, "refusals 1.1 s apart never close");
	memset(&f, 0, sizeof(f));
	for (t = 0; t < 20 * SEC; t += SEC / 10)
		closed |= tg_flood_refused(&f, t, 0);
	CHECK(!closed && tg_flood_streak_us(&f) > 19 * SEC, "close_after 0 never closes");
}

static void
test_table(void)
{
	TgRateTable t;
	TgRateLimits l = lim(0, 10, 0);
	TgRateIdent *a,
			   *a2,
			   *b,
			   *c;

	CHECK(tg_rate_table_init(&t, 2), "init");
	a = tg_rate_ident_acquire(&t, "alice", 0);
	a2 = tg_rate_ident_acquire(&t, "alice", 0);
	b = tg_rate_ident_acquire(&t, "bob", 0);
	CHECK(a && a == a2 && a->refs == 2 && b && b != a && t.n == 2, "one entry per identity");
	CHECK(tg_rate_ident_acquire(&t, "carol", 0) == NULL, "full of held entries: no new one");
	/* alice drains her bucket, both her connections go */
	for (int i = 0; i < 10; i++)
		send1(&a->buckets, &l, 1.0, 0, 0, 0);
	tg_rate_ident_release(&t, a, &l, 1.0, 0);
	tg_rate_ident_release(&t, a, &l, 1.0, 0);
	CHECK(t.n == 2 && a->refs == 0 && a->full_at_us == SEC, "released, kept until full (%lld)",
		  (long long) a->full_at_us);
	a = tg_rate_ident_acquire(&t, "alice", SEC / 2);
	CHECK(a && send1(&a->buckets, &l, 1.0, 0, 0, SEC / 2), "reconnecting finds the same bucket");
	CHECK(fabs(a->buckets.b[TG_RATE_MESSAGES].tokens - 4) < 1e-3, "half refilled, not fresh (%g)",
		  a->buckets.b[TG_RATE_MESSAGES].tokens);
	tg_rate_ident_release(&t, a, &l, 1.0, SEC / 2);
	/* full table: the released entry makes room */
	c = tg_rate_ident_acquire(&t, "carol", SEC / 2);
	CHECK(c && t.n == 2 && c->refs == 1, "a released entry is evicted when the table is full");
	tg_rate_ident_release(&t, c, &l, 1.0, SEC / 2);
	tg_rate_ident_release(&t, b, &l, 1.0, SEC / 2);
	tg_rate_table_sweep(&t, 2 * SEC, true);
	CHECK(t.n == 0, "full, released entries are swept (%d left)", t.n);
	tg_rate_table_free(&t);
	CHECK(t.slots == NULL, "freed");
}

int
main(void)
{
	test_bucket();
	test_long_run_rate();
	test_kinds();
	test_two_holders();
	test_flood();
	test_table();
	printf("test_ratelimit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
