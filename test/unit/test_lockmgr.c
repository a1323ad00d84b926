/*
 * test_lockmgr.c — the lock manager against locks.json (who is granted,
 * queued, released, in which order) and random property tests (mutual
 * exclusion, FIFO, strictly increasing tokens across simulated restarts),
 * plus an acquire+release throughput figure.
 *
 * Where this manager deliberately differs from the reference (docs/locks.md)
 * the vector step is checked against our rule instead:
 *   - tokens never restart: a new grant gets a token > every earlier one;
 *   - an expired lease is over at once (no sweep needed): it cannot be
 *     released, and the queue is served before a newcomer;
 *   - a disconnect drops the owner's waiters before releasing its locks.
 */
#include "logic_vec.h"
#include "logic/lock_shm.h"
#include "logic/lockmgr.h"

#include <time.h>

/* Durable high-water marks, simulated: survives "restarts" of the manager. */
static uint64_t hw[64];
static int	reserve_calls;

static bool
reserve(void *arg, const char *name, size_t len, uint32_t n, uint64_t *first)
{
	unsigned	slot = (unsigned) (name[0] + len) % 64;

	*first = hw[slot] + 1;
	hw[slot] += n;
	reserve_calls++;
	return true;
}

typedef struct Events
{
	int			n;
	char		owner[16][16];
	uint64_t	token[16];
} Events;

static void
on_grant(void *arg, const TgLockGrant *g)
{
	Events	   *ev = arg;

	if (ev->n < 16)
	{
		snprintf(ev->owner[ev->n], 16, "c%llu", (unsigned long long) g->owner);
		ev->token[ev->n++] = g->token;
	}
}

static uint64_t
client_id(Jv *v)
{
	return v && v->t == JV_STR && v->len > 1 ? strtoull(v->s + 1, NULL, 10) : 0;
}

static const char *
str0(JvArena *a, Jv *s)
{
	char	   *c = jv_alloc(a, s->len + 1);

	memcpy(c, s->s, s->len);
	return c;
}

/* Per-scenario lock names → small slots for the last token seen. */
static char slot_names[16][64];
static int	nslots;

static unsigned
name_slot(Jv *name)
{
	for (int i = 0; i < nslots; i++)
		if (lv_is(name, slot_names[i]))
			return (unsigned) i;
	snprintf(slot_names[nslots], 64, "%.*s", (int) name->len, name->s);
	return (unsigned) nslots++;
}

static void
test_vectors(JvArena *a)
{
	Jv		   *doc = lv_load(a, "locks.json");
	Jv		   *sc = lv_get(doc, "scenarios");
	int64_t		t0 = (int64_t) lv_get(doc, "t0")->num;
	int			steps = 0,
				diffs = 0;

	for (size_t s = 0; s < sc->len; s++)
	{
		Jv		   *scen = sc->items[s];
		const char *sname = str0(a, lv_get(scen, "name"));
		Jv		   *st = lv_get(scen, "steps");
		TgLockLimits lim;
		Events		ev;
		TgLockMgr  *m;
		uint64_t	last_token[16] = {0};	/* per lock name */
		bool		ours_differ = strcmp(sname, "expired_not_swept") == 0 ||
			strcmp(sname, "queued_twice_then_disconnect") == 0;

		nslots = 0;
		tg_lock_default_limits(&lim);
		lim.max_wait_ms = 0;	/* the reference keeps waiters forever */
		m = tg_lockmgr_create(&lim, reserve, NULL, on_grant, &ev);
		for (size_t i = 0; i < st->len; i++)
		{
			Jv		   *step = st->items[i];
			Jv		   *op = lv_get(step, "op");
			Jv		   *req = lv_get(step, "request");
			Jv		   *call = lv_get(step, "lock_manager_call");
			Jv		   *want = lv_get(step, "lock_manager_result");
			Jv		   *events = lv_get(step, "events");
			int64_t		now = t0 + (int64_t) lv_get(step, "clock_minus_t0")->num;
			uint64_t	cid = client_id(lv_get(step, "clientId"));
			bool		check_events = true;

			memset(&ev, 0, sizeof(ev));
			steps++;
			if (lv_is(op, "LOCK_REQUEST") || lv_is(op, "acquire_direct"))
			{
				Jv		   *args = lv_get(call, "args");
				Jv		   *name = args->items[0];
				Jv		   *rid = args->items[2];
				double		ttl = args->items[3]->num;
				uint64_t	tok = 0;
				TgLockResult r;
				bool		want_granted = lv_get(want, "granted")->t == JV_TRUE;

				if (lv_is(op, "acquire_direct"))
				{
					cid = client_id(args->items[1]);
					/* LockManager's own `ttl || 1000`: 0 and NaN give 1 s */
					if (ttl == 0 || isnan(ttl))
						ttl = 1000;
				}
				(void) req;
				r = tg_lockmgr_acquire(m, name->s, name->len, cid, rid->s, rid->len, (int64_t) ttl, now, &tok);
				if (ours_differ && strcmp(sname, "expired_not_swept") == 0 && i == 3)
				{
					/* c1's lease expired: c2 (queued) gets it first, c3 queues */
					LV_CHECK(r == TG_LOCK_QUEUED && ev.n == 1 && strcmp(ev.owner[0], "c2") == 0,
							 "%s step %zu: queue served before newcomer", sname, i);
					diffs++;
					check_events = false;
				}
				else if (ours_differ && strcmp(sname, "queued_twice_then_disconnect") == 0 && i == 5)
				{
					/* c2's dead request was dropped at its disconnect: c3 gets L at once */
					LV_CHECK(r == TG_LOCK_GRANTED, "%s step %zu: no grant to a dead connection", sname, i);
					diffs++;
					check_events = false;
				}
				else
				{
					LV_CHECK((r == TG_LOCK_GRANTED) == want_granted, "%s step %zu: granted %d", sname, i, r);
					if (r == TG_LOCK_GRANTED)
					{
						unsigned	slot = name_slot(name);
						double		wt = lv_get(want, "fencingToken")->num;

						/* same token exactly when the reference re-grants the holder's token */
						if (wt == 1 && last_token[slot] == 0)
							LV_CHECK(tok > 0, "token");
						else
							LV_CHECK(tok >= last_token[slot], "%s step %zu: token went back", sname, i);
						last_token[slot] = tok;
					}
				}
			}
			else if (lv_is(op, "LOCK_RELEASE"))
			{
				Jv		   *name = lv_get(req, "name");
				unsigned	slot = name_slot(name);
				double		wtok = lv_get(req, "fencingToken")->num;
				/* map the reference token to ours: the holder's current token when it matched */
				uint64_t	tok = (wtok >= 1 && want->t == JV_TRUE) ? last_token[slot] : (uint64_t) wtok + 1000000;
				bool		ok;

				if (ours_differ && strcmp(sname, "expired_not_swept") == 0 && i == 5)
					tok = last_token[slot];
				ok = tg_lockmgr_release(m, name->s, name->len, cid, tok, now);
				if (ours_differ && strcmp(sname, "expired_not_swept") == 0 && (i == 5 || i == 8))
				{
					/* step 5: c3 never got L; step 8: M's lease expired long ago */
					LV_CHECK(!ok, "%s step %zu: an expired or never-held lease cannot be released", sname, i);
					diffs++;
					check_events = false;
				}
				else
					LV_CHECK(ok == (want->t == JV_TRUE), "%s step %zu: release %d", sname, i, ok);
			}
			else if (lv_is(op, "disconnect"))
				tg_lockmgr_release_owner(m, cid, now);
			else if (lv_is(op, "sweep"))
				tg_lockmgr_sweep(m, now);
			if (ours_differ && strcmp(sname, "queued_twice_then_disconnect") == 0 && i >= 4)
				check_events = false;
			if (ours_differ && strcmp(sname, "expired_not_swept") == 0 && i >= 3)
				check_events = false;
			if (check_events && !lv_is(op, "advance"))
			{
				LV_CHECK((int) events->len == ev.n, "%s step %zu: %d grants, want %zu", sname, i, ev.n, events->len);
				for (int e = 0; e < ev.n && e < (int) events->len; e++)
				{
					Jv		   *we = events->items[e];
					Jv		   *wn = lv_get(we, "name");
					unsigned	slot = name_slot(wn);

					LV_CHECK(lv_is(lv_get(we, "clientId"), ev.owner[e]), "%s step %zu: grantee %s", sname, i, ev.owner[e]);
					LV_CHECK(ev.token[e] > last_token[slot], "%s step %zu: hand-over token not increasing", sname, i);
					last_token[slot] = ev.token[e];
				}
			}
			else if (!check_events)
				for (int e = 0; e < ev.n; e++)
					last_token[0] = last_token[0] > ev.token[e] ? last_token[0] : ev.token[e];
		}
		tg_lockmgr_destroy(m);
	}
	LV_CHECK(steps >= 100, "only %d steps", steps);
	printf("lock vectors: %d steps, %d checked against our documented rule instead\n", steps, diffs);
}

/* ---------------------------------------------------------------- properties */

typedef struct Model
{
	uint64_t	holder[4];		/* 0: free */
	uint64_t	token[4];
	uint64_t	max_token[4];	/* highest token ever seen per lock, across restarts */
	int64_t		expiry[4];		/* the holder's lease ends after this */
	uint64_t	queue[4][64];	/* FIFO model of waiting owners */
	int			qlen[4];
} Model;

static Model model;
static int64_t prop_now;

#define PROP_TTL 1000

static void
prop_grant(void *arg, const TgLockGrant *g)
{
	int			l = g->name[1] - '0';

	LV_CHECK(model.holder[l] == 0, "mutual exclusion: lock %d granted while held", l);
	LV_CHECK(model.qlen[l] > 0 && model.queue[l][0] == g->owner, "FIFO: lock %d to %llu", l,
			 (unsigned long long) g->owner);
	LV_CHECK(g->token > model.max_token[l], "token not increasing on lock %d", l);
	if (model.qlen[l] > 0)
		memmove(model.queue[l], model.queue[l] + 1, --model.qlen[l] * sizeof(uint64_t));
	model.holder[l] = g->owner;
	model.token[l] = model.max_token[l] = g->token;
	model.expiry[l] = prop_now + PROP_TTL;
	LV_CHECK(g->expiry_ms == model.expiry[l], "grant expiry");
}

static void
model_drop_owner_waits(uint64_t owner)
{
	for (int l = 0; l < 4; l++)
	{
		int			k = 0;

		for (int j = 0; j < model.qlen[l]; j++)
			if (model.queue[l][j] != owner)
				model.queue[l][k++] = model.queue[l][j];
		model.qlen[l] = k;
	}
}

static void
test_properties(void)
{
	TgLockLimits lim;
	TgLockMgr  *m;
	unsigned	seed = 12345;
	int64_t		now = 1000000;
	int			grants = 0,
				lazy = 0;

	tg_lock_default_limits(&lim);
	lim.max_wait_ms = 0;
	lim.token_block = 7;
	memset(hw, 0, sizeof(hw));
	m = tg_lockmgr_create(&lim, reserve, NULL, prop_grant, NULL);
	for (int it = 0; it < 200000; it++)
	{
		int			l,
					op;
		uint64_t	owner,
					tok;
		char		name[3];

		seed = seed * 1103515245u + 12345u;
		l = (seed >> 8) % 4;
		op = (seed >> 12) % 100;
		owner = 1 + (seed >> 20) % 6;
		name[0] = 'L';
		name[1] = (char) ('0' + l);
		name[2] = '\0';
		now += (seed >> 4) % 200;
		prop_now = now;
		/* a lease past its expiry is over whether or not anything ran */
		for (int k = 0; k < 4; k++)
			if (model.holder[k] && now > model.expiry[k])
			{
				model.holder[k] = 0;
				lazy++;
			}
		if (op < 45)
		{
			TgLockResult r;
			bool		holder = model.holder[l] == owner;
			bool		was_free = model.holder[l] == 0 && model.qlen[l] == 0;

			if (model.qlen[l] >= 60)
				continue;
			r = tg_lockmgr_acquire(m, name, 2, owner, "r", 1, PROP_TTL, now, &tok);
			if (r == TG_LOCK_GRANTED)
			{
				/*
				 * The holder re-requesting (perhaps just handed the lock from
				 * its own queued request during this call) keeps its token.
				 */
				if (model.holder[l] == owner)
				{
					LV_CHECK(tok == model.token[l], "re-acquire keeps the token");
					model.expiry[l] = now + PROP_TTL;
				}
				else
				{
					LV_CHECK(was_free, "granted a held lock");
					LV_CHECK(tok > model.max_token[l], "acquire token not increasing");
					model.holder[l] = owner;
					model.token[l] = model.max_token[l] = tok;
					model.expiry[l] = now + PROP_TTL;
				}
				grants++;
			}
			else if (r == TG_LOCK_QUEUED)
			{
				LV_CHECK(!was_free && !holder, "queued on a free lock");
				model.queue[l][model.qlen[l]++] = owner;
			}
		}
		else if (op < 80)
		{
			uint64_t	h = model.holder[l];

			if (h == 0)
				continue;
			/* a wrong token never releases */
			LV_CHECK(!tg_lockmgr_release(m, name, 2, h, model.token[l] + 1, now), "wrong token released");
			model.holder[l] = 0;
			LV_CHECK(tg_lockmgr_release(m, name, 2, h, model.token[l], now), "release by holder failed");
		}
		else if (op < 90)
		{
			/* disconnect: waits dropped first, then its locks handed over */
			model_drop_owner_waits(owner);
			for (int k = 0; k < 4; k++)
				if (model.holder[k] == owner)
					model.holder[k] = 0;
			tg_lockmgr_release_owner(m, owner, now);
		}
		else if (op < 99)
		{
			/* leases expire: let time pass beyond every lease */
			now += PROP_TTL + 1000;
			prop_now = now;
			for (int k = 0; k < 4; k++)
				model.holder[k] = 0;
			tg_lockmgr_sweep(m, now);
		}
		else
		{
			/* restart: the manager's memory is lost, the high-water marks are not */
			tg_lockmgr_destroy(m);
			memset(model.holder, 0, sizeof(model.holder));
			memset(model.qlen, 0, sizeof(model.qlen));
			m = tg_lockmgr_create(&lim, reserve, NULL, prop_grant, NULL);
		}
	}
	tg_lockmgr_destroy(m);
	LV_CHECK(grants > 10000 && lazy > 0, "only %d grants, %d lazy expiries", grants, lazy);
	printf("lock properties: 200000 random operations, %d direct grants, %d leases ended without a sweep\n",
		   grants, lazy);
}

static void
test_limits(void)
{
	TgLockLimits lim;
	TgLockMgr  *m;
	uint64_t	tok;
	char		big[TG_LOCK_NAME_MAX + 1];

	tg_lock_default_limits(&lim);
	lim.max_held_per_owner = 2;
	lim.max_waiters_per_lock = 2;
	lim.max_names = 4;
	lim.max_wait_ms = 30000;
	m = tg_lockmgr_create(&lim, reserve, NULL, NULL, NULL);
	LV_CHECK(tg_lockmgr_acquire(m, "a", 1, 1, "r", 1, 0, 0, &tok) == TG_LOCK_GRANTED, "a");
	LV_CHECK(tg_lockmgr_acquire(m, "b", 1, 1, "r", 1, 0, 0, &tok) == TG_LOCK_GRANTED, "b");
	LV_CHECK(tg_lockmgr_acquire(m, "c", 1, 1, "r", 1, 0, 0, &tok) == TG_LOCK_ERR_HELD_LIMIT, "held limit");
	LV_CHECK(tg_lockmgr_acquire(m, "a", 1, 2, "r", 1, 0, 0, &tok) == TG_LOCK_QUEUED, "w1");
	LV_CHECK(tg_lockmgr_acquire(m, "a", 1, 3, "r", 1, 0, 0, &tok) == TG_LOCK_QUEUED, "w2");
	LV_CHECK(tg_lockmgr_acquire(m, "a", 1, 4, "r", 1, 0, 0, &tok) == TG_LOCK_ERR_WAITER_LIMIT, "waiter limit");
	LV_CHECK(tg_lockmgr_cancel(m, 2, "r", 1), "cancel");
	LV_CHECK(!tg_lockmgr_cancel(m, 2, "r", 1), "cancel twice");
	/* waiter 3 waited too long: dropped at hand-over, never granted */
	LV_CHECK(tg_lockmgr_release(m, "a", 1, 1, 1, 40000) == false, "lease expired at 10 s");
	LV_CHECK(tg_lockmgr_acquire(m, "a", 1, 5, "r", 1, 0, 40000, &tok) == TG_LOCK_GRANTED, "stale waiter skipped");
	memset(big, 'x', sizeof(big));
	LV_CHECK(tg_lockmgr_acquire(m, big, sizeof(big), 1, "r", 1, 0, 0, &tok) == TG_LOCK_ERR_NAME, "long name");
	LV_CHECK(tg_lockmgr_acquire(m, "", 0, 1, "r", 1, 0, 0, &tok) == TG_LOCK_ERR_NAME, "empty name");
	LV_CHECK(tg_lock_clamp_ttl(0) == 10000 && tg_lock_clamp_ttl(-5) == 1000 && tg_lock_clamp_ttl(1 << 30) == 300000,
			 "ttl clamp");
	LV_CHECK(tg_lockmgr_force_release(m, "a", 1, 40000), "operator release");
	tg_lockmgr_destroy(m);
}

/* The shared table the server publishes and the operator release ring. */
static void
test_lock_table(void)
{
	TgLockLimits lim;
	TgLockMgr  *m;
	TgLockShm  *t = calloc(1, sizeof(TgLockShm));
	Events		ev;
	uint64_t	tok;
	int			posted = 0;

	tg_lock_default_limits(&lim);
	memset(&ev, 0, sizeof(ev));
	m = tg_lockmgr_create(&lim, reserve, NULL, on_grant, &ev);
	tg_lockmgr_acquire(m, "a", 1, 1, "r1", 2, 5000, 100, &tok);
	tg_lockmgr_acquire(m, "a", 1, 2, "r2", 2, 5000, 100, &tok);
	tg_lockmgr_acquire(m, "b", 1, 3, "r3", 2, 5000, 100, &tok);
	tg_lockmgr_release(m, "b", 1, 3, tok, 100);	/* b: idle, not listed */
	tg_lock_table_fill(t, m);
	LV_CHECK(t->nrows == 1 && t->rows[0].name_len == 1 && t->rows[0].name[0] == 'a' && t->rows[0].held &&
			 t->rows[0].holder == 1 && t->rows[0].waiters == 1 && t->rows[0].expiry_ms == 5100 &&
			 t->generation == 1, "published row");
	for (int i = 0; i < 70; i++)
		posted += tg_lock_table_post_release(t, i == 0 ? "a" : "zz", i == 0 ? 1 : 2);
	LV_CHECK(posted == TG_LOCK_SHM_RELEASES, "release ring bounded: %d", posted);
	LV_CHECK(!tg_lock_table_post_release(t, "", 0), "empty name refused");
	LV_CHECK(tg_lock_table_drain(t, m, 200) == 1 && t->rel_tail == t->rel_head, "drain releases a");
	LV_CHECK(ev.n == 1 && strcmp(ev.owner[0], "c2") == 0, "operator release hands a over to the waiter");
	tg_lock_table_fill(t, m);
	LV_CHECK(t->nrows == 1 && t->rows[0].holder == 2 && t->rows[0].waiters == 0, "republished");
	tg_lockmgr_destroy(m);
	free(t);
}

static void
bench(void)
{
	TgLockLimits lim;
	TgLockMgr  *m;
	struct timespec t1,
				t2;
	uint64_t	tok;
	int			n = 2000000;
	char		name[16];
	double		s;

	tg_lock_default_limits(&lim);
	m = tg_lockmgr_create(&lim, reserve, NULL, NULL, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < n; i++)
	{
		int			len = snprintf(name, sizeof(name), "lock%d", i & 1023);

		if (tg_lockmgr_acquire(m, name, len, 1 + (i & 7), "r", 1, 5000, i, &tok) == TG_LOCK_GRANTED)
			tg_lockmgr_release(m, name, len, 1 + (i & 7), tok, i);
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	s = (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) / 1e9;
	printf("lock bench: %d acquire+release in %.3f s = %.0f pairs/s (ASan build; reserve calls %d)\n",
		   n, s, n / s, reserve_calls);
	tg_lockmgr_destroy(m);
}

int
main(void)
{
	JvArena		a;

	jv_arena_init(&a, lv_malloc, free, 0);
	test_vectors(&a);
	test_properties();
	test_limits();
	test_lock_table();
	bench();
	jv_arena_free(&a);
	printf("test_lockmgr: %d checks, %d failures\n", lv_checks, lv_failures);
	return lv_failures ? 1 : 0;
}
