/*
 * query_subs.c — where live query subscriptions are found (issue 13).
 *
 * Per map: every subscription (for re-checks and counts), and an index so
 * that a write reaches only the subscriptions it can affect:
 *
 *   eq buckets  a subscription whose query requires attribute === constant
 *               (tg_query_eq_constraint) is filed under hash(attribute,
 *               constant); a write looks up the bucket of each such
 *               attribute's value in the new record.
 *   holders     key -> the equality-filed subscriptions holding that key,
 *               so a record that moved away from their constant (a leave)
 *               still reaches them without the old value.
 *   rest        subscriptions without an equality constraint: every write
 *               of the map looks at them.
 *
 * 10,000 subscriptions `where {owner: X}` with distinct X: a write to one
 * owner's record visits one subscription (plus the rest list).  Hash
 * collisions only add candidates; queries.c evaluates the exact predicate.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "exec/exec.h"

#define MAX_EQ_ATTRS	8

typedef struct MapKey
{
	uint16		len;
	char		name[TG_WIRE_MAX_MAP_BYTES + 1];	/* NUL-padded */
} MapKey;

typedef struct EqBucket
{
	uint64		h;				/* hash key */
	TgQuerySub *head;
} EqBucket;

typedef struct Holder
{
	uint64		h;				/* hash of the record key */
	int			n;
	int			cap;
	TgQuerySub **subs;
} Holder;

typedef struct EqAttr
{
	char	   *attr;
	size_t		len;
	int			refs;
} EqAttr;

struct TgMapSubs
{
	MapKey		key;			/* hash key: must be first */
	TgQuerySub *head;			/* every subscription of the map */
	int			n;
	TgQuerySub *rest;			/* those without an equality constraint */
	HTAB	   *eq;
	HTAB	   *holders;
	EqAttr		attrs[MAX_EQ_ATTRS];
	int			nattrs;
	bool		walking;		/* in tg_qsubs_candidates: keep the entry */
};

static HTAB *map_subs = NULL;
static uint64 visit_epoch = 0;

static HTAB *
hash_u64(const char *name, Size entry)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = entry;
	ctl.hcxt = TopMemoryContext;
	return hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

TgMapSubs *
tg_qsubs_map(const char *map, size_t len, bool create)
{
	MapKey		k;
	bool		found;
	TgMapSubs  *ms;

	if (map_subs == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(MapKey);
		ctl.entrysize = sizeof(TgMapSubs);
		ctl.hcxt = TopMemoryContext;
		map_subs = hash_create("topgun query subscriptions", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (len > TG_WIRE_MAX_MAP_BYTES)
		return NULL;
	memset(&k, 0, sizeof(k));
	k.len = (uint16) len;
	memcpy(k.name, map, len);
	ms = hash_search(map_subs, &k, create ? HASH_ENTER : HASH_FIND, &found);
	if (ms && create && !found)
	{
		memset((char *) ms + sizeof(MapKey), 0, sizeof(TgMapSubs) - sizeof(MapKey));
		ms->eq = hash_u64("topgun query eq buckets", sizeof(EqBucket));
		ms->holders = hash_u64("topgun query key holders", sizeof(Holder));
	}
	return ms;
}

const char *
tg_qsubs_map_name(const TgMapSubs *ms, size_t *len)
{
	*len = ms->key.len;
	return ms->key.name;
}

bool
tg_query_map_has_subs(const char *map, size_t len)
{
	TgMapSubs  *ms = tg_qsubs_map(map, len, false);

	return ms != NULL && ms->n > 0;
}

/* ------------------------------------------------------------ hashes */

static uint64
mix(uint64 h, const void *p, size_t len)
{
	return hash_bytes_extended((const unsigned char *) p, (int) len, h);
}

static uint64
eq_hash(const char *attr, size_t len, const MpNode *v, bool *ok)
{
	uint64		h = mix(0, attr, len);
	double		d;

	*ok = true;
	switch (v->type)
	{
		case MP_NIL:
			return mix(h, "n", 1);
		case MP_BOOL:
			return mix(h, v->v.b ? "t" : "f", 1);
		case MP_STR:
			return mix(mix(h, "s", 1), v->v.s, v->len);
		case MP_INT:
		case MP_UINT:
		case MP_FLOAT:
			d = mp_number_as_double(v);
			if (d == 0)
				d = 0;			/* -0 === 0 */
			return mix(mix(h, "d", 1), &d, sizeof(d));
		default:
			*ok = false;		/* === never holds for objects and arrays */
			return 0;
	}
}

static uint64
key_hash(const char *key, size_t len)
{
	return mix(0, key, len);
}

/* ------------------------------------------------------------ membership */

static int
attr_slot(TgMapSubs *ms, const char *attr, size_t len, bool create)
{
	for (int i = 0; i < ms->nattrs; i++)
		if (ms->attrs[i].len == len && memcmp(ms->attrs[i].attr, attr, len) == 0)
			return i;
	if (!create || ms->nattrs >= MAX_EQ_ATTRS)
		return -1;
	ms->attrs[ms->nattrs].attr = MemoryContextAlloc(TopMemoryContext, len + 1);
	memcpy(ms->attrs[ms->nattrs].attr, attr, len);
	ms->attrs[ms->nattrs].len = len;
	ms->attrs[ms->nattrs].refs = 0;
	return ms->nattrs++;
}

void
tg_qsubs_add(TgMapSubs *ms, TgQuerySub *sub)
{
	const char *attr;
	size_t		len;
	const MpNode *v;
	bool		ok = false;
	int			slot = -1;

	sub->ms = ms;
	sub->map_next = ms->head;
	if (ms->head)
		ms->head->map_prev = sub;
	ms->head = sub;
	ms->n++;
	if (tg_query_eq_constraint(sub->q, &attr, &len, &v) &&
		(slot = attr_slot(ms, attr, len, true)) >= 0)
		sub->eq_hash = eq_hash(attr, len, v, &ok);
	if (ok)
	{
		bool		found;
		EqBucket   *b = hash_search(ms->eq, &sub->eq_hash, HASH_ENTER, &found);

		if (!found)
			b->head = NULL;
		sub->eq_slot = slot;
		sub->eq_next = b->head;
		if (b->head)
			b->head->eq_prev = sub;
		b->head = sub;
		ms->attrs[slot].refs++;
	}
	else
	{
		sub->eq_slot = -1;
		sub->eq_next = ms->rest;
		if (ms->rest)
			ms->rest->eq_prev = sub;
		ms->rest = sub;
	}
}

void
tg_qsubs_release(TgQuerySub *sub, const char *key, size_t keylen)
{
	uint64		h;
	Holder	   *hd;

	if (sub->eq_slot < 0)
		return;
	h = key_hash(key, keylen);
	hd = hash_search(sub->ms->holders, &h, HASH_FIND, NULL);
	if (hd == NULL)
		return;
	for (int i = 0; i < hd->n; i++)
		if (hd->subs[i] == sub)
		{
			hd->subs[i] = hd->subs[--hd->n];
			break;
		}
	if (hd->n == 0)
	{
		pfree(hd->subs);
		hash_search(sub->ms->holders, &h, HASH_REMOVE, NULL);
	}
}

void
tg_qsubs_hold(TgQuerySub *sub, const char *key, size_t keylen)
{
	uint64		h;
	bool		found;
	Holder	   *hd;

	if (sub->eq_slot < 0)
		return;
	h = key_hash(key, keylen);
	hd = hash_search(sub->ms->holders, &h, HASH_ENTER, &found);
	if (!found)
	{
		hd->n = 0;
		hd->cap = 1;
		hd->subs = MemoryContextAlloc(TopMemoryContext, sizeof(TgQuerySub *));
	}
	for (int i = 0; i < hd->n; i++)
		if (hd->subs[i] == sub)
			return;
	if (hd->n == hd->cap)
	{
		hd->cap *= 2;
		hd->subs = repalloc(hd->subs, sizeof(TgQuerySub *) * hd->cap);
	}
	hd->subs[hd->n++] = sub;
}

/* Every key of the subscription's key set, released. */
void
tg_qsubs_release_all(TgQuerySub *sub)
{
	if (sub->eq_slot < 0)
		return;
	for (uint32 i = 0; i < sub->keys.cap; i++)
	{
		char	   *e = sub->keys.slots[i];

		if (e != NULL && e != TG_KEYSET_DEAD)
			tg_qsubs_release(sub, e + 4, tg_ks_len(e));
	}
}

static void map_drop(TgMapSubs *ms);

void
tg_qsubs_remove(TgQuerySub *sub)
{
	TgMapSubs  *ms = sub->ms;

	if (ms == NULL)
		return;
	tg_qsubs_release_all(sub);
	if (sub->map_prev)
		sub->map_prev->map_next = sub->map_next;
	else
		ms->head = sub->map_next;
	if (sub->map_next)
		sub->map_next->map_prev = sub->map_prev;
	if (sub->eq_slot < 0)
	{
		if (sub->eq_prev)
			sub->eq_prev->eq_next = sub->eq_next;
		else
			ms->rest = sub->eq_next;
	}
	else
	{
		EqBucket   *b = hash_search(ms->eq, &sub->eq_hash, HASH_FIND, NULL);

		if (sub->eq_prev)
			sub->eq_prev->eq_next = sub->eq_next;
		else if (b)
			b->head = sub->eq_next;
		if (b && b->head == NULL)
			hash_search(ms->eq, &sub->eq_hash, HASH_REMOVE, NULL);
		ms->attrs[sub->eq_slot].refs--;
	}
	if (sub->eq_next)
		sub->eq_next->eq_prev = sub->eq_prev;
	sub->ms = NULL;
	ms->n--;
	if (ms->n == 0 && !ms->walking)
		map_drop(ms);
}

static void
map_drop(TgMapSubs *ms)
{
	{
		for (int i = 0; i < ms->nattrs; i++)
			pfree(ms->attrs[i].attr);
		hash_destroy(ms->eq);
		hash_destroy(ms->holders);
		hash_search(map_subs, &ms->key, HASH_REMOVE, NULL);
	}
}

/* ------------------------------------------------------------ a write's candidates */

static void
visit(TgQuerySub *s, TgQsubsVisit fn, void *arg)
{
	if (s->visit == visit_epoch)
		return;
	s->visit = visit_epoch;
	fn(s, arg);
}

/* The subscriptions filed under attrs[i] === that attribute of value. */
static void
visit_eq(TgMapSubs *ms, const EqAttr *attrs, int nattrs, const MpNode *value, TgQsubsVisit fn, void *arg)
{
	for (int i = 0; i < nattrs; i++)
	{
		const MpNode *v;
		bool		ok;
		uint64		h;
		EqBucket   *b;
		TgQuerySub *s,
				   *next;

		if (attrs[i].refs == 0 || (v = tg_query_attr(value, attrs[i].attr, attrs[i].len)) == NULL)
			continue;
		h = eq_hash(attrs[i].attr, attrs[i].len, v, &ok);
		if (!ok || (b = hash_search(ms->eq, &h, HASH_FIND, NULL)) == NULL)
			continue;
		for (s = b->head; s; s = next)
		{
			next = s->eq_next;
			visit(s, fn, arg);
		}
	}
}

/*
 * Call fn once for every subscription of the map that a change of key (to
 * value, NULL = deleted) can affect; or_map: value is the array of an OR
 * key's values, each of which may match.  fn may drop the subscription it
 * is given (the walk never touches a visited one again) but no other.
 */
void
tg_qsubs_candidates(TgMapSubs *ms, const char *key, size_t keylen, const MpNode *value, bool or_map,
					TgQsubsVisit fn, void *arg)
{
	TgQuerySub *s,
			   *next;
	uint64		h;
	Holder	   *hd;
	int			nattrs = ms->nattrs;
	EqAttr		attrs[MAX_EQ_ATTRS];

	visit_epoch++;
	ms->walking = true;
	memcpy(attrs, ms->attrs, sizeof(EqAttr) * nattrs);
	/* the holders first: fn may drop subscriptions, which edits this list */
	h = key_hash(key, keylen);
	hd = hash_search(ms->holders, &h, HASH_FIND, NULL);
	if (hd && hd->n > 0)
	{
		int			n = hd->n;
		TgQuerySub **copy = palloc(sizeof(TgQuerySub *) * n);

		memcpy(copy, hd->subs, sizeof(TgQuerySub *) * n);
		for (int i = 0; i < n; i++)
			visit(copy[i], fn, arg);
		pfree(copy);
	}
	if (value != NULL && or_map && value->type == MP_ARRAY)
	{
		for (uint32 j = 0; j < value->len; j++)
			visit_eq(ms, attrs, nattrs, &value->v.items[j], fn, arg);
	}
	else if (value != NULL && !or_map)
		visit_eq(ms, attrs, nattrs, value, fn, arg);
	for (s = ms->rest; s; s = next)
	{
		next = s->eq_next;
		visit(s, fn, arg);
	}
	ms->walking = false;
	if (ms->n == 0)
		map_drop(ms);
}

/* ------------------------------------------------------------ bookkeeping */

/*
 * Keep topgun.worker_stats' query_subscription_bytes up to date with what a
 * subscription holds: itself, its compiled query, the query as sent, the
 * keys the client holds (slots, and about 32 bytes per key), its page's
 * last row.  bytes = 0: it is going away.
 */
void
tg_qsubs_account(TgQuerySub *sub, bool gone)
{
	size_t		now = 0;

	if (!gone)
		now = sizeof(TgQuerySub) + tg_query_bytes(sub->q) + sub->qraw_len + strlen(sub->query_id) + 1 +
			(size_t) sub->keys.cap * sizeof(char *) + (size_t) sub->keys.n * 32 +
			sub->bkeylen + sub->bvallen + (sub->cursor ? strlen(sub->cursor) + 1 : 0);
	if (now > sub->mem)
		tg_stat_add(TG_STAT_QUERY_SUB_BYTES, now - sub->mem);
	else
		tg_stat_sub(TG_STAT_QUERY_SUB_BYTES, sub->mem - now);
	sub->mem = now;
}

/* The page's last row (key NULL: unknown). */
void
tg_qsubs_set_boundary(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *value)
{
	MpBuf		b;

	free(sub->bkey);
	free(sub->bval);
	sub->bkey = sub->bval = NULL;
	sub->bkeylen = sub->bvallen = 0;
	if (key == NULL || tg_query_limit(sub->q) < 0 || sub->cursor)
	{
		tg_qsubs_account(sub, false);
		return;
	}
	mp_buf_init(&b, (size_t) 1 << 30);
	if (mp_put_node(&b, value) && mp_buf_ok(&b) && (sub->bkey = malloc(keylen + 1)) != NULL)
	{
		memcpy(sub->bkey, key, keylen);
		sub->bkeylen = keylen;
		sub->bval = (char *) mp_buf_steal(&b, &sub->bvallen);
	}
	mp_buf_free(&b);
	tg_qsubs_account(sub, false);
}

bool
tg_qsubs_is_boundary(const TgQuerySub *sub, const char *key, size_t keylen)
{
	return sub->bkey && sub->bkeylen == keylen && memcmp(sub->bkey, key, keylen) == 0;
}

/* The page's last row, decoded into a (NULL if there is none or it is unreadable). */
static const MpNode *
boundary_node(const TgQuerySub *sub, MpArena *a)
{
	MpLimits	lim;
	char		err[64];

	mp_arena_init(a);
	a->chunk_min = 1024;
	if (sub->bkey == NULL)
		return NULL;
	lim.max_depth = 64;
	lim.max_nodes = (uint32) sub->bvallen + 1;
	lim.max_str = (uint32) sub->bvallen + 1;
	return mp_decode(a, (const uint8_t *) sub->bval, sub->bvallen, &lim, err, sizeof(err));
}

/* > 0: the record sorts after the page's last row. */
int
tg_qsubs_vs_boundary(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *value)
{
	MpArena		a;
	const MpNode *b = boundary_node(sub, &a);
	int			c = -1;

	if (b)
		c = tg_query_compare(sub->q, key, keylen, value, sub->bkey, sub->bkeylen, b);
	mp_arena_free(&a);
	return c;
}

/* A cursor naming the page's last row (false: none can be made). */
bool
tg_qsubs_boundary_cursor(TgQuerySub *sub, char *out, size_t outlen)
{
	MpArena		a;
	const MpNode *b = boundary_node(sub, &a);
	bool		ok = false;

	if (b)
		ok = tg_query_cursor_make(sub->q, sub->bkey, sub->bkeylen, b, tg_now_ms(), out, outlen);
	mp_arena_free(&a);
	return ok;
}
