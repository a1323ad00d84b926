/*
 * lockmgr.c — see lockmgr.h.  Entries live in a chained hash table by name;
 * an entry stays after its lock is freed (it keeps the unused rest of its
 * token block) until the name limit evicts it, oldest idle first.  Per-owner
 * counts (held locks, queued requests) are kept in a second table so the
 * limits cost O(1).
 */
#include "logic/lockmgr.h"

#include <stdlib.h>
#include <string.h>

typedef struct Waiter
{
	struct Waiter *next;
	uint64_t	owner;
	int64_t		ttl_ms;
	int64_t		since_ms;
	size_t		reqlen;
	char		reqid[TG_LOCK_REQID_MAX];
} Waiter;

typedef struct Entry
{
	struct Entry *hnext;		/* hash chain */
	struct Entry *iprev,
			   *inext;			/* idle list (not held, no waiters) */
	uint32_t	hash;
	bool		held;
	uint64_t	owner;
	uint64_t	token;			/* holder's token (last granted when free) */
	int64_t		expiry_ms;
	uint64_t	next_token,
				block_end;		/* [next_token, block_end) reserved, unused */
	Waiter	   *head,
			   *tail;
	int			nwaiters;
	size_t		name_len;
	char		name[];
} Entry;

typedef struct OwnerCount
{
	struct OwnerCount *next;
	uint64_t	owner;
	int			held;
	int			waits;
} OwnerCount;

#define OWNER_BUCKETS 1024

struct TgLockMgr
{
	TgLockLimits lim;
	TgLockReserveFn reserve;
	void	   *reserve_arg;
	TgLockGrantFn on_grant;
	void	   *grant_arg;
	Entry	  **buckets;
	uint32_t	nbuckets;
	int			nentries;
	Entry	   *idle_head,
			   *idle_tail;		/* oldest idle first */
	OwnerCount *owners[OWNER_BUCKETS];
};

void
tg_lock_default_limits(TgLockLimits *l)
{
	l->max_held_per_owner = 64;
	l->max_waiters_per_lock = 1024;
	l->max_waits_per_owner = 256;
	l->max_names = 65536;
	l->max_wait_ms = 30000;
	l->token_block = 1000;
}

static uint32_t
name_hash(const char *s, size_t n)
{
	uint32_t	h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char) s[i]) * 16777619u;
	return h;
}

TgLockMgr *
tg_lockmgr_create(const TgLockLimits *lim, TgLockReserveFn reserve, void *reserve_arg,
				  TgLockGrantFn on_grant, void *grant_arg)
{
	TgLockMgr  *m = calloc(1, sizeof(TgLockMgr));

	if (m == NULL)
		return NULL;
	m->lim = *lim;
	if (m->lim.token_block == 0)
		m->lim.token_block = 1;
	m->reserve = reserve;
	m->reserve_arg = reserve_arg;
	m->on_grant = on_grant;
	m->grant_arg = grant_arg;
	m->nbuckets = 1024;
	m->buckets = calloc(m->nbuckets, sizeof(Entry *));
	if (m->buckets == NULL)
	{
		free(m);
		return NULL;
	}
	return m;
}

static void
free_waiters(Entry *e)
{
	while (e->head)
	{
		Waiter	   *w = e->head;

		e->head = w->next;
		free(w);
	}
}

void
tg_lockmgr_destroy(TgLockMgr *m)
{
	if (m == NULL)
		return;
	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b], *n; e; e = n)
		{
			n = e->hnext;
			free_waiters(e);
			free(e);
		}
	for (int b = 0; b < OWNER_BUCKETS; b++)
		for (OwnerCount *o = m->owners[b], *n; o; o = n)
		{
			n = o->next;
			free(o);
		}
	free(m->buckets);
	free(m);
}

int64_t
tg_lock_clamp_ttl(int64_t ttl)
{
	if (ttl == 0)
		return TG_LOCK_TTL_DEFAULT;
	return ttl < TG_LOCK_TTL_MIN ? TG_LOCK_TTL_MIN : ttl > TG_LOCK_TTL_MAX ? TG_LOCK_TTL_MAX : ttl;
}

/* ------------------------------------------------------------ owners */

static OwnerCount *
owner_get(TgLockMgr *m, uint64_t owner, bool create)
{
	OwnerCount **b = &m->owners[(owner * 0x9E3779B97F4A7C15u) >> 54];

	for (OwnerCount *o = *b; o; o = o->next)
		if (o->owner == owner)
			return o;
	if (!create)
		return NULL;
	{
		OwnerCount *o = calloc(1, sizeof(OwnerCount));

		if (o == NULL)
			return NULL;
		o->owner = owner;
		o->next = *b;
		*b = o;
		return o;
	}
}

static void
owner_adjust(TgLockMgr *m, uint64_t owner, int dheld, int dwaits)
{
	OwnerCount **b = &m->owners[(owner * 0x9E3779B97F4A7C15u) >> 54];
	OwnerCount *o = owner_get(m, owner, true);

	if (o == NULL)
		return;					/* counts are advisory under memory exhaustion */
	o->held += dheld;
	o->waits += dwaits;
	if (o->held <= 0 && o->waits <= 0)
	{
		for (; *b != o; b = &(*b)->next)
			;
		*b = o->next;
		free(o);
	}
}

int
tg_lockmgr_held_by(const TgLockMgr *m, uint64_t owner)
{
	OwnerCount *o = owner_get((TgLockMgr *) m, owner, false);

	return o ? o->held : 0;
}

/* ------------------------------------------------------------ entries */

static void
idle_unlink(TgLockMgr *m, Entry *e)
{
	if (e->iprev == NULL && m->idle_head != e)
		return;					/* not on the list */
	if (e->iprev)
		e->iprev->inext = e->inext;
	else
		m->idle_head = e->inext;
	if (e->inext)
		e->inext->iprev = e->iprev;
	else
		m->idle_tail = e->iprev;
	e->iprev = e->inext = NULL;
}

static void
idle_update(TgLockMgr *m, Entry *e)
{
	bool		idle = !e->held && e->head == NULL;

	idle_unlink(m, e);
	if (!idle)
		return;
	e->iprev = m->idle_tail;
	if (m->idle_tail)
		m->idle_tail->inext = e;
	else
		m->idle_head = e;
	m->idle_tail = e;
}

static Entry *
entry_find(const TgLockMgr *m, const char *name, size_t len, uint32_t h)
{
	for (Entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->name_len == len && memcmp(e->name, name, len) == 0)
			return e;
	return NULL;
}

static void
entry_remove(TgLockMgr *m, Entry *e)
{
	Entry	  **p = &m->buckets[e->hash & (m->nbuckets - 1)];

	for (; *p != e; p = &(*p)->hnext)
		;
	*p = e->hnext;
	idle_unlink(m, e);
	free_waiters(e);
	free(e);
	m->nentries--;
}

static void
grow_table(TgLockMgr *m)
{
	uint32_t	nb = m->nbuckets * 2;
	Entry	  **b = calloc(nb, sizeof(Entry *));

	if (b == NULL)
		return;					/* longer chains, still correct */
	for (uint32_t i = 0; i < m->nbuckets; i++)
		for (Entry *e = m->buckets[i], *n; e; e = n)
		{
			n = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

static Entry *
entry_create(TgLockMgr *m, const char *name, size_t len, uint32_t h, TgLockResult *err)
{
	Entry	   *e;

	if (m->nentries >= m->lim.max_names)
	{
		if (m->idle_head == NULL)
		{
			*err = TG_LOCK_ERR_NAMES_LIMIT;
			return NULL;
		}
		entry_remove(m, m->idle_head);
	}
	e = calloc(1, sizeof(Entry) + len);
	if (e == NULL)
	{
		*err = TG_LOCK_ERR_MEMORY;
		return NULL;
	}
	memcpy(e->name, name, len);
	e->name_len = len;
	e->hash = h;
	e->hnext = m->buckets[h & (m->nbuckets - 1)];
	m->buckets[h & (m->nbuckets - 1)] = e;
	if (++m->nentries > (int) m->nbuckets)
		grow_table(m);
	return e;
}

/* The next fencing token of e, reserving a new block when the current one is used up. */
static bool
take_token(TgLockMgr *m, Entry *e, uint64_t *token)
{
	if (e->next_token >= e->block_end)
	{
		uint64_t	first;

		if (m->reserve == NULL ||
			!m->reserve(m->reserve_arg, e->name, e->name_len, m->lim.token_block, &first) ||
			first <= e->token || first > TG_LOCK_TOKEN_MAX - m->lim.token_block)
			return false;
		e->next_token = first;
		e->block_end = first + m->lim.token_block;
	}
	*token = e->next_token++;
	return true;
}

static void
grant(TgLockMgr *m, Entry *e, uint64_t owner, uint64_t token, int64_t ttl, int64_t now)
{
	e->held = true;
	e->owner = owner;
	e->token = token;
	e->expiry_ms = now + ttl;
	owner_adjust(m, owner, 1, 0);
}

static void
unhold(TgLockMgr *m, Entry *e)
{
	e->held = false;
	owner_adjust(m, e->owner, -1, 0);
}

/*
 * e is free: grant it to the first live waiter.  Waiters that waited longer
 * than max_wait_ms are dropped (their client stopped waiting).
 */
static void
hand_over(TgLockMgr *m, Entry *e, int64_t now)
{
	while (!e->held && e->head)
	{
		Waiter	   *w = e->head;
		uint64_t	token;

		if (m->lim.max_wait_ms > 0 && now - w->since_ms > m->lim.max_wait_ms)
		{
			e->head = w->next;
			e->nwaiters--;
			owner_adjust(m, w->owner, 0, -1);
			free(w);
			continue;
		}
		if (!take_token(m, e, &token))
			break;				/* retried at the next sweep */
		e->head = w->next;
		e->nwaiters--;
		owner_adjust(m, w->owner, 0, -1);
		grant(m, e, w->owner, token, w->ttl_ms, now);
		if (m->on_grant)
		{
			TgLockGrant g = {e->name, e->name_len, w->owner, w->reqid, w->reqlen, token, e->expiry_ms};

			m->on_grant(m->grant_arg, &g);
		}
		free(w);
	}
	if (e->head == NULL)
		e->tail = NULL;
	idle_update(m, e);
}

/* An expired lease is over whether or not a sweep has run. */
static void
expire_if_due(TgLockMgr *m, Entry *e, int64_t now)
{
	if (e->held && e->expiry_ms < now)
	{
		unhold(m, e);
		hand_over(m, e, now);
	}
}

TgLockResult
tg_lockmgr_acquire(TgLockMgr *m, const char *name, size_t name_len, uint64_t owner,
				   const char *request_id, size_t request_id_len, int64_t ttl_ms,
				   int64_t now, uint64_t *token)
{
	uint32_t	h;
	Entry	   *e;
	TgLockResult err = TG_LOCK_ERR_MEMORY;
	OwnerCount *oc;
	int64_t		ttl = tg_lock_clamp_ttl(ttl_ms);

	if (name_len == 0 || name_len > TG_LOCK_NAME_MAX || request_id_len > TG_LOCK_REQID_MAX)
		return TG_LOCK_ERR_NAME;
	h = name_hash(name, name_len);
	e = entry_find(m, name, name_len, h);
	if (e == NULL && (e = entry_create(m, name, name_len, h, &err)) == NULL)
		return err;
	expire_if_due(m, e, now);
	if (e->held && e->owner == owner)
	{
		/* re-request by the holder: longer lease, same token */
		if (now + ttl > e->expiry_ms)
			e->expiry_ms = now + ttl;
		*token = e->token;
		return TG_LOCK_GRANTED;
	}
	oc = owner_get(m, owner, false);
	if (!e->held && e->head == NULL)
	{
		if (oc && oc->held >= m->lim.max_held_per_owner)
			err = TG_LOCK_ERR_HELD_LIMIT;
		else if (!take_token(m, e, token))
			err = TG_LOCK_ERR_RESERVE;
		else
		{
			grant(m, e, owner, *token, ttl, now);
			idle_update(m, e);
			return TG_LOCK_GRANTED;
		}
		idle_update(m, e);
		return err;
	}
	if (e->nwaiters >= m->lim.max_waiters_per_lock)
		return TG_LOCK_ERR_WAITER_LIMIT;
	if (oc && (oc->waits >= m->lim.max_waits_per_owner || oc->held >= m->lim.max_held_per_owner))
		return oc->held >= m->lim.max_held_per_owner ? TG_LOCK_ERR_HELD_LIMIT : TG_LOCK_ERR_WAITER_LIMIT;
	{
		Waiter	   *w = calloc(1, sizeof(Waiter));

		if (w == NULL)
			return TG_LOCK_ERR_MEMORY;
		w->owner = owner;
		w->ttl_ms = ttl;
		w->since_ms = now;
		w->reqlen = request_id_len;
		memcpy(w->reqid, request_id, request_id_len);
		if (e->tail)
			e->tail->next = w;
		else
			e->head = w;
		e->tail = w;
		e->nwaiters++;
		owner_adjust(m, owner, 0, 1);
		idle_update(m, e);
	}
	return TG_LOCK_QUEUED;
}

bool
tg_lockmgr_release(TgLockMgr *m, const char *name, size_t name_len, uint64_t owner,
				   uint64_t token, int64_t now)
{
	Entry	   *e = entry_find(m, name, name_len, name_hash(name, name_len));

	if (e == NULL)
		return false;
	expire_if_due(m, e, now);
	if (!e->held || e->owner != owner || e->token != token)
		return false;
	unhold(m, e);
	hand_over(m, e, now);
	return true;
}

bool
tg_lockmgr_force_release(TgLockMgr *m, const char *name, size_t name_len, int64_t now)
{
	Entry	   *e = entry_find(m, name, name_len, name_hash(name, name_len));

	if (e == NULL)
		return false;
	expire_if_due(m, e, now);
	if (!e->held)
		return false;
	unhold(m, e);
	hand_over(m, e, now);
	return true;
}

/* Unlink the waiters of e matching (owner[, request id]); returns how many. */
static int
drop_waiters(TgLockMgr *m, Entry *e, uint64_t owner, const char *reqid, size_t reqlen)
{
	int			n = 0;
	Waiter	  **p = &e->head;

	e->tail = NULL;
	while (*p)
	{
		Waiter	   *w = *p;

		if (w->owner == owner && (reqid == NULL || (w->reqlen == reqlen && memcmp(w->reqid, reqid, reqlen) == 0)))
		{
			*p = w->next;
			e->nwaiters--;
			owner_adjust(m, owner, 0, -1);
			free(w);
			n++;
			continue;
		}
		e->tail = w;
		p = &w->next;
	}
	return n;
}

bool
tg_lockmgr_cancel(TgLockMgr *m, uint64_t owner, const char *request_id, size_t request_id_len)
{
	OwnerCount *oc = owner_get(m, owner, false);

	if (oc == NULL || oc->waits == 0)
		return false;
	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b]; e; e = e->hnext)
			if (e->head && drop_waiters(m, e, owner, request_id, request_id_len) > 0)
			{
				idle_update(m, e);
				return true;
			}
	return false;
}

void
tg_lockmgr_release_owner(TgLockMgr *m, uint64_t owner, int64_t now)
{
	OwnerCount *oc = owner_get(m, owner, false);
	int			waits;

	if (oc == NULL)
		return;
	waits = oc->waits;			/* oc may be freed below */
	/* first its waiters, so that none of its own requests inherits its locks */
	for (uint32_t b = 0; b < m->nbuckets && waits > 0; b++)
		for (Entry *e = m->buckets[b]; e; e = e->hnext)
			if (e->head)
			{
				waits -= drop_waiters(m, e, owner, NULL, 0);
				idle_update(m, e);
			}
	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b], *n; e; e = n)
		{
			n = e->hnext;		/* hand_over never frees entries */
			if (e->held && e->owner == owner)
			{
				unhold(m, e);
				hand_over(m, e, now);
			}
		}
}

void
tg_lockmgr_sweep(TgLockMgr *m, int64_t now)
{
	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b]; e; e = e->hnext)
		{
			if (e->held)
				expire_if_due(m, e, now);
			else if (e->head)
				hand_over(m, e, now);	/* stale waiters, or a token reserve to retry */
		}
}

int64_t
tg_lockmgr_next_expiry(const TgLockMgr *m)
{
	int64_t		best = INT64_MAX;

	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b]; e; e = e->hnext)
			if (e->held && e->expiry_ms < best)
				best = e->expiry_ms;
	return best;
}

void
tg_lockmgr_visit(const TgLockMgr *m, TgLockVisitFn fn, void *arg)
{
	for (uint32_t b = 0; b < m->nbuckets; b++)
		for (Entry *e = m->buckets[b]; e; e = e->hnext)
			if (e->held || e->head)
			{
				TgLockInfo i = {e->name, e->name_len, e->held, e->owner, e->token, e->expiry_ms, e->nwaiters};

				fn(arg, &i);
			}
}
