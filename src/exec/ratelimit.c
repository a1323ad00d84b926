/*
 * ratelimit.c — token buckets, flood streaks and the identity table of the
 * per-client rate limits (PostgreSQL-free, see ratelimit.h; unit-tested by
 * test/unit/test_ratelimit.c).
 */
#include "exec/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const tg_rate_kind_names[TG_RATE_NKINDS] = {"ops/s", "messages/s", "bytes/s"};

/* ------------------------------------------------------------ buckets */

void
tg_bucket_refill(TgBucket *b, double rate, double cap, int64_t now_us)
{
	if (!b->started)
	{
		b->started = true;
		b->tokens = cap;
		b->at_us = now_us;
		return;
	}
	if (now_us > b->at_us)
	{
		b->tokens += rate * (double) (now_us - b->at_us) / 1e6;
		b->at_us = now_us;
	}
	/* a lowered limit (reload, role change) caps what is banked */
	if (b->tokens > cap)
		b->tokens = cap;
}

bool
tg_bucket_admits(const TgBucket *b, double cap, double cost)
{
	double		need = cost < cap ? cost : cap;

	/* tolerance for the refill arithmetic: a bucket refilled to exactly "cost" passes */
	return b->tokens + 1e-9 >= need;
}

void
tg_bucket_take(TgBucket *b, double cost)
{
	b->tokens -= cost;
}

int64_t
tg_bucket_full_in_us(const TgBucket *b, double rate, double cap)
{
	if (!b->started || b->tokens >= cap || rate <= 0)
		return 0;
	return (int64_t) ceil((cap - b->tokens) / rate * 1e6);
}

static double
capacity(double rate, double burst_s)
{
	double		cap = rate * burst_s;

	/* at least one message / op / byte fits, whatever the burst */
	return cap < 1 ? 1 : cap;
}

bool
tg_rate_try(TgRateBuckets *const *sets, const TgRateLimits *const *limits, int n,
			double burst_s, const double cost[TG_RATE_NKINDS], int64_t now_us,
			TgRateRefusal *why)
{
	for (int h = 0; h < n; h++)
	{
		if (sets[h] == NULL || limits[h] == NULL)
			continue;
		for (int k = 0; k < TG_RATE_NKINDS; k++)
		{
			double		rate = limits[h]->per_s[k];
			double		cap;

			if (rate <= 0 || cost[k] <= 0)
				continue;
			cap = capacity(rate, burst_s);
			tg_bucket_refill(&sets[h]->b[k], rate, cap, now_us);
			if (!tg_bucket_admits(&sets[h]->b[k], cap, cost[k]))
			{
				if (why)
				{
					why->holder = h;
					why->kind = (TgRateKind) k;
					why->limit = rate;
				}
				return false;
			}
		}
	}
	for (int h = 0; h < n; h++)
	{
		if (sets[h] == NULL || limits[h] == NULL)
			continue;
		for (int k = 0; k < TG_RATE_NKINDS; k++)
			if (limits[h]->per_s[k] > 0 && cost[k] > 0)
				tg_bucket_take(&sets[h]->b[k], cost[k]);
	}
	return true;
}

int64_t
tg_rate_full_in_us(const TgRateBuckets *set, const TgRateLimits *lim, double burst_s)
{
	int64_t		t = 0;

	for (int k = 0; k < TG_RATE_NKINDS; k++)
	{
		int64_t		tk;

		if (lim->per_s[k] <= 0)
			continue;
		tk = tg_bucket_full_in_us(&set->b[k], lim->per_s[k], capacity(lim->per_s[k], burst_s));
		if (tk > t)
			t = tk;
	}
	return t;
}

/* ------------------------------------------------------------ floods */

bool
tg_flood_refused(TgFlood *f, int64_t now_us, int64_t close_after_us)
{
	if (!f->active || now_us - f->last_us > TG_FLOOD_GAP_US)
	{
		f->active = true;
		f->streak_start_us = now_us;
	}
	f->last_us = now_us;
	return close_after_us > 0 && now_us - f->streak_start_us >= close_after_us;
}

int64_t
tg_flood_streak_us(const TgFlood *f)
{
	return f->active ? f->last_us - f->streak_start_us : 0;
}

/* ------------------------------------------------------------ identities */

static uint32_t
name_hash(const char *s)
{
	uint32_t	h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= 16777619u;
	}
	return h;
}

bool
tg_rate_table_init(TgRateTable *t, int cap)
{
	uint32_t	n = 16;

	memset(t, 0, sizeof(*t));
	while ((int64_t) n < (int64_t) cap && n < (1u << 24))
		n <<= 1;
	t->slots = calloc(n, sizeof(TgRateIdent *));
	if (t->slots == NULL)
		return false;
	t->nslots = n;
	t->cap = cap > 0 ? cap : 1;
	return true;
}

void
tg_rate_table_free(TgRateTable *t)
{
	for (uint32_t i = 0; t->slots && i < t->nslots; i++)
	{
		TgRateIdent *e = t->slots[i];

		while (e)
		{
			TgRateIdent *n = e->next;

			free(e);
			e = n;
		}
	}
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static void
unlink_entry(TgRateTable *t, TgRateIdent *e)
{
	TgRateIdent **p = &t->slots[e->hash & (t->nslots - 1)];

	while (*p && *p != e)
		p = &(*p)->next;
	if (*p)
	{
		*p = e->next;
		free(e);
		t->n--;
	}
}

void
tg_rate_table_sweep(TgRateTable *t, int64_t now_us, bool force)
{
	if (!force && now_us - t->last_sweep_us < 1000000)
		return;
	t->last_sweep_us = now_us;
	for (uint32_t i = 0; i < t->nslots; i++)
	{
		TgRateIdent **p = &t->slots[i];

		while (*p)
		{
			TgRateIdent *e = *p;

			if (e->refs == 0 && now_us >= e->full_at_us)
			{
				*p = e->next;
				free(e);
				t->n--;
			}
			else
				p = &e->next;
		}
	}
}

/* The released entry that fills soonest (the table is full), or NULL. */
static TgRateIdent *
evictable(TgRateTable *t)
{
	TgRateIdent *best = NULL;

	for (uint32_t i = 0; i < t->nslots; i++)
		for (TgRateIdent *e = t->slots[i]; e; e = e->next)
			if (e->refs == 0 && (best == NULL || e->full_at_us < best->full_at_us))
				best = e;
	return best;
}

TgRateIdent *
tg_rate_ident_acquire(TgRateTable *t, const char *name, int64_t now_us)
{
	uint32_t	h = name_hash(name);
	TgRateIdent *e;
	size_t		len = strlen(name);

	if (t->slots == NULL)
		return NULL;
	for (e = t->slots[h & (t->nslots - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->name, name) == 0)
		{
			e->refs++;
			return e;
		}
	tg_rate_table_sweep(t, now_us, false);
	if (t->n >= t->cap)
	{
		TgRateIdent *victim = evictable(t);

		if (victim == NULL)
			return NULL;
		unlink_entry(t, victim);
	}
	e = calloc(1, offsetof(TgRateIdent, name) + len + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->name, name, len + 1);
	e->hash = h;
	e->refs = 1;
	e->next = t->slots[h & (t->nslots - 1)];
	t->slots[h & (t->nslots - 1)] = e;
	t->n++;
	return e;
}

void
tg_rate_ident_release(TgRateTable *t, TgRateIdent *id, const TgRateLimits *lim,
					  double burst_s, int64_t now_us)
{
	if (id == NULL || id->refs <= 0)
		return;
	if (--id->refs == 0)
	{
		/* bring the buckets up to now, then: when would they be full? */
		for (int k = 0; k < TG_RATE_NKINDS; k++)
			if (lim && lim->per_s[k] > 0 && id->buckets.b[k].started)
				tg_bucket_refill(&id->buckets.b[k], lim->per_s[k],
								 capacity(lim->per_s[k], burst_s), now_us);
		id->full_at_us = now_us + (lim ? tg_rate_full_in_us(&id->buckets, lim, burst_s) : 0);
	}
	tg_rate_table_sweep(t, now_us, false);
}
