/*
 * query_writes.c — what a committed write does to the live queries of its
 * map (docs/live.md "Cost of a write"): query_subs.c finds the
 * subscriptions it can affect; each decides from the new record alone
 * (queries.c's header comment has the cases), or queues a re-read of its
 * page that tg_query_run_pending hands to a reader.  An OR-map key is
 * decided on all its current values (tg_query_or_pick).
 */
#include "postgres.h"

#include "exec/exec.h"
#include "exec/queries.h"

/* Queue a re-read of the subscription's page after the commit. */
static void
pend(TgQuerySub *sub, const char *key, size_t keylen)
{
	Pending    *p = tg_qpending_find(sub);

	if (p == NULL)
	{
		p = calloc(1, sizeof(Pending));
		if (p == NULL)
			return;
		p->sub = sub;
		p->next = tg_qpending;
		tg_qpending = p;
	}
	p->refill = false;			/* another change: the whole page */
	if (p->nchanged >= 0 && p->nchanged < MAX_CHANGED)
	{
		p->changed[p->nchanged] = malloc(keylen + 1);
		if (p->changed[p->nchanged])
		{
			memcpy(p->changed[p->nchanged], key, keylen);
			p->changed_len[p->nchanged] = keylen;
			p->nchanged++;
		}
	}
	else if (p->nchanged >= 0)
	{
		for (int i = 0; i < p->nchanged; i++)
			free(p->changed[i]);
		p->nchanged = -1;
	}
}

/*
 * A limited page without a cursor, settled (no read out or queued), whose
 * last row is known: decide from the new record alone when that is exact.
 * Returns false when the page has to be read again.
 */
static bool
page_change(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *value,
			const MpNode *sortv, bool in, bool match)
{
	int64		limit = tg_query_limit(sub->q);
	bool		full;
	int			c;

	if (limit < 0 || sub->cursor || sub->bkey == NULL || sub->inflight || tg_qpending_find(sub))
		return false;
	full = (int64) sub->keys.n >= limit;
	c = match ? tg_qsubs_vs_boundary(sub, key, keylen, sortv) : 0;
	if (!in && full)
		return c > 0;			/* after a full page: outside it, nothing to send */
	if (full && match && c < 0 && !tg_qsubs_is_boundary(sub, key, keylen))
	{
		/* a member changed and still sorts before the last row: it stays */
		tg_qsend_update(sub, key, keylen, value, NULL, false);
		return true;
	}
	if (full && !match && tg_query_sort_count(sub->q) <= 1)
	{
		/*
		 * A member left a full page: the row after the page's last one
		 * (a keyset read of one row, by the cursor order: first sort
		 * field, then key) takes its place.
		 */
		Pending    *p = calloc(1, sizeof(Pending));

		if (p == NULL)
			return false;
		tg_qkey_leave(sub, key, keylen);
		tg_qsend_update(sub, key, keylen, NULL, NULL, true);
		p->sub = sub;
		p->refill = true;
		p->next = tg_qpending;
		tg_qpending = p;
		return true;
	}
	if (full)
		return false;			/* a member of a full page moved past its end: read it again */
	/* the page holds every match: it grows and shrinks in place */
	if (match)
	{
		if (!in && sub->keys.n >= (uint32) tg_max_query_results)
			return false;
		if (!in)
			tg_qkey_enter(sub, key, keylen);
		tg_qsend_update(sub, key, keylen, value, NULL, false);
		if (c > 0)
			tg_qsubs_set_boundary(sub, key, keylen, sortv);
		else if (tg_qsubs_is_boundary(sub, key, keylen))
			tg_qsubs_set_boundary(sub, NULL, 0, NULL);
	}
	else
	{
		tg_qkey_leave(sub, key, keylen);
		tg_qsend_update(sub, key, keylen, NULL, NULL, true);
		if (tg_qsubs_is_boundary(sub, key, keylen))
			tg_qsubs_set_boundary(sub, NULL, 0, NULL);
	}
	return true;
}

typedef struct Change
{
	const char *key;
	size_t		keylen;
	const MpNode *value;		/* what is sent */
	bool		or_map;			/* value is an OR key's array of values */
} Change;

static void
consider(TgQuerySub *sub, void *arg)
{
	Change	   *ch = arg;
	const MpNode *sortv;
	bool		in,
				match;

	tg_stat_add(TG_STAT_QUERY_CANDIDATES, 1);
	if (sub->conn->closed || sub->conn->closing)
		return;
	if (sub->loading)
	{
		/* its first page is being read: refresh it once it is there */
		sub->dirty = true;
		return;
	}
	in = tg_ks_has(&sub->keys, ch->key, ch->keylen);
	if (ch->or_map)
	{
		sortv = tg_query_or_pick(sub->q, ch->value);
		match = sortv != NULL;
	}
	else
	{
		sortv = ch->value;
		match = tg_query_match(sub->q, ch->value);
	}
	if (!in && !match)
		return;
	if (sub->rerun)
	{
		if (!page_change(sub, ch->key, ch->keylen, ch->value, sortv, in, match))
			pend(sub, ch->key, ch->keylen);
		return;
	}
	if (match)
	{
		if (!in && sub->keys.n >= (uint32) tg_max_query_results)
		{
			tg_qdrop_for_limit(sub);
			return;
		}
		if (!in)
			tg_qkey_enter(sub, ch->key, ch->keylen);
		tg_qsend_update(sub, ch->key, ch->keylen, ch->value, NULL, false);
	}
	else
	{
		tg_qkey_leave(sub, ch->key, ch->keylen);
		tg_qsend_update(sub, ch->key, ch->keylen, NULL, NULL, true);
	}
}

static void
on_change(const char *map, size_t maplen, const char *key, size_t keylen, const MpNode *value,
		  bool or_map)
{
	TgMapSubs  *ms = tg_qsubs_map(map, maplen, false);
	Change		ch;

	if (ms == NULL)
		return;
	ch.key = key;
	ch.keylen = keylen;
	ch.value = value;
	ch.or_map = or_map;
	tg_qsubs_candidates(ms, key, keylen, value, or_map, consider, &ch);
}

void
tg_query_on_change(const char *map, size_t maplen, const char *key, size_t keylen,
				   const MpNode *value)
{
	on_change(map, maplen, key, keylen, value, false);
}

void
tg_query_on_or_change(const char *map, size_t maplen, const char *key, size_t keylen,
					  const MpNode *values)
{
	on_change(map, maplen, key, keylen, values, true);
}
