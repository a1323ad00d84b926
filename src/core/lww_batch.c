/*
 * lww_batch.c — topgun.lww_put_many(): many LWW writes in one statement.
 *
 * The sync worker applies a whole group of client ops per transaction; doing
 * that one lww_put() at a time costs an executor start per op.  Here every op
 * is validated in C first — problems are reported per op in the result, not
 * raised, so one bad op never aborts the others — then duplicates of a key
 * are collapsed to the newest timestamp and the survivors go through one
 * statement of the LWW merge (lww_merge.c), in index order (so concurrent
 * batches lock rows in the same order and cannot deadlock with each other).
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/lww_batch.h"
#include "core/lww_merge.h"
#include "core/storage.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "merkle/fnv.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(lww_put_many);


typedef struct KeyEnt
{
	uint32		hash;			/* dynahash key: hash of map\0key */
	int			first;			/* chain of ops with this hash, via next[] */
} KeyEnt;

static bool
same_key(const TgLwwOp *a, const TgLwwOp *b)
{
	return VARSIZE_ANY_EXHDR(a->map) == VARSIZE_ANY_EXHDR(b->map) &&
		VARSIZE_ANY_EXHDR(a->key) == VARSIZE_ANY_EXHDR(b->key) &&
		memcmp(VARDATA_ANY(a->map), VARDATA_ANY(b->map), VARSIZE_ANY_EXHDR(a->map)) == 0 &&
		memcmp(VARDATA_ANY(a->key), VARDATA_ANY(b->key), VARSIZE_ANY_EXHDR(a->key)) == 0;
}

static uint32
key_hash(text *map, text *key)
{
	return hash_combine(hash_bytes((const unsigned char *) VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map)),
						hash_bytes((const unsigned char *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}

static int
text_cmp(text *a, text *b)
{
	int			la = VARSIZE_ANY_EXHDR(a),
				lb = VARSIZE_ANY_EXHDR(b);
	int			r = memcmp(VARDATA_ANY(a), VARDATA_ANY(b), Min(la, lb));

	return r != 0 ? r : (la > lb) - (la < lb);
}

static TgLwwOp *sort_ops;

typedef struct WonCtx
{
	TgLwwOp		   *ops;
	int		   *next;
	HTAB	   *keymap;
} WonCtx;

/* A row the merge wrote: mark the batch's winning op of that key. */
static void
mark_won(text *map, text *key, void *arg)
{
	WonCtx	   *w = arg;
	uint32		h = key_hash(map, key);
	KeyEnt	   *ke = hash_search(w->keymap, &h, HASH_FIND, NULL);
	TgLwwOp			probe;

	probe.map = map;
	probe.key = key;
	for (int j = ke ? ke->first : -1; j >= 0; j = w->next[j])
		if (w->ops[j].winner && same_key(&w->ops[j], &probe))
		{
			w->ops[j].won = true;
			return;
		}
}

/* Index order of topgun.lww's primary key: (map, leaf, key), C collation. */
static int
index_order_cmp(const void *x, const void *y)
{
	const TgLwwOp   *a = &sort_ops[*(const int *) x];
	const TgLwwOp   *b = &sort_ops[*(const int *) y];
	int			r = text_cmp(a->map, b->map);

	if (r != 0)
		return r;
	if (a->leaf != b->leaf)
		return a->leaf - b->leaf;
	return text_cmp(a->key, b->key);
}

/* Validate one op; NULL if fine, else the reason. */
static char *
check_op(TgLwwOp *op)
{
	int			len;

	if (op->map == NULL)
		return "map name must not be NULL";
	if (op->key == NULL)
		return "key must not be NULL";
	if (op->ts == NULL)
		return "timestamp must not be NULL";
	len = VARSIZE_ANY_EXHDR(op->map);
	if (len < 1 || len > TG_MAX_MAP_BYTES)
		return psprintf("map name must be 1 to %d bytes", TG_MAX_MAP_BYTES);
	if (VARSIZE_ANY_EXHDR(op->key) > TG_MAX_KEY_BYTES)
		return psprintf("key is too long (%d bytes; the maximum is %d)",
						(int) VARSIZE_ANY_EXHDR(op->key), TG_MAX_KEY_BYTES);
	if (op->value != NULL && VARSIZE(op->value) > (Size) tg_max_value_bytes)
		return psprintf("value is too large (%zu bytes; topgun.max_value_bytes is %d)",
						(size_t) VARSIZE(op->value), tg_max_value_bytes);
	if (op->has_ttl && op->value != NULL && op->ttl <= 0)
		return psprintf("ttl_ms must be positive, got " INT64_FORMAT, op->ttl);
	return tg_clock_drift_error(op->ts);
}

void
tg_lww_put_batch(TgLwwOp *ops, int n)
{
	int		   *next;
	int		   *order;
	int			nwin = 0;
	HTAB	   *keymap;
	HASHCTL		ctl;
	int			i;

	if (n <= 0)
		return;
	next = palloc(sizeof(int) * n);
	order = palloc(sizeof(int) * n);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint32);
	ctl.entrysize = sizeof(KeyEnt);
	ctl.hcxt = CurrentMemoryContext;
	keymap = hash_create("lww_put_many keys", n, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	for (i = 0; i < n; i++)
	{
		TgLwwOp    *op = &ops[i];
		KeyEnt	   *ke;
		bool		found;
		int			j;

		next[i] = -1;
		op->won = op->winner = false;
		if (op->value != NULL && tg_jsonb_is_null(op->value))
			op->value = NULL;	/* JSON null: a tombstone, as on the wire */
		if (op->error == NULL)
			op->error = check_op(op);
		if (op->error != NULL)
			continue;
		{
			TgMapKind	k = tg_map_kind_register(op->map, TG_KIND_LWW);

			if (k != TG_KIND_LWW)
			{
				op->error = tg_kind_mismatch_message(op->map, k, TG_KIND_LWW);
				continue;
			}
		}
		op->leaf = tg_leaf_of_hash(tg_hash_string(VARDATA_ANY(op->key), VARSIZE_ANY_EXHDR(op->key)));
		tg_clock_observe(op->ts);

		/* keep only the newest op per key (first one on a timestamp tie) */
		op->winner = true;
		{
			uint32		h = key_hash(op->map, op->key);

			ke = hash_search(keymap, &h, HASH_ENTER, &found);
			if (!found)
				ke->first = -1;
			for (j = ke->first; j >= 0; j = next[j])
				if (ops[j].winner && same_key(&ops[j], op))
					break;
			if (j >= 0)
			{
				if (tg_hlc_cmp(op->ts, ops[j].ts) > 0)
					ops[j].winner = false;
				else
					op->winner = false;
			}
			next[i] = ke->first;
			ke->first = i;
		}
	}

	for (i = 0; i < n; i++)
		if (ops[i].error == NULL && ops[i].winner)
			order[nwin++] = i;

	if (nwin > 0)
	{
		TgLwwRow   *rows = palloc(sizeof(TgLwwRow) * nwin);
		WonCtx		w = {ops, next, keymap};

		sort_ops = ops;
		qsort(order, nwin, sizeof(int), index_order_cmp);
		for (i = 0; i < nwin; i++)
		{
			TgLwwOp		   *op = &ops[order[i]];

			rows[i].map = op->map;
			rows[i].key = op->key;
			rows[i].value = op->value;
			rows[i].ts = op->ts;
			rows[i].has_ttl = op->has_ttl;
			rows[i].ttl = op->ttl;
		}
		tg_lww_merge_many(nwin, rows, mark_won, &w);
	}
	hash_destroy(keymap);
}

/*
 * topgun.lww_put_many(maps text[], keys text[], vals jsonb[], ts hlc[],
 *                     ttl_ms bigint[] DEFAULT NULL)
 *   RETURNS TABLE (ord int, won boolean, error text)
 */
Datum
lww_put_many(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *maps,
			   *keys,
			   *vals,
			   *tss,
			   *ttls = NULL;
	bool	   *mapn,
			   *keyn,
			   *valn,
			   *tsn,
			   *ttln = NULL;
	int			n,
				nk,
				nv,
				nt,
				nttl = 0;
	int16		hlen;
	bool		hbyval;
	char		halign;
	Oid			hlc = tg_lww_hlc_type();
	TgLwwOp    *ops;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("lww_put_many: argument %d must not be NULL", i + 1)));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &maps, &mapn, &n);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &keys, &keyn, &nk);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), JSONBOID, -1, false, TYPALIGN_INT, &vals, &valn, &nv);
	get_typlenbyvalalign(hlc, &hlen, &hbyval, &halign);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), hlc, hlen, hbyval, halign, &tss, &tsn, &nt);
	if (!PG_ARGISNULL(4))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &ttls, &ttln, &nttl);
	if (nk != n || nv != n || nt != n || (ttls != NULL && nttl != n))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("lww_put_many: all arrays must have the same length")));
	if (n == 0)
		return (Datum) 0;

	ops = palloc0(sizeof(TgLwwOp) * n);
	for (i = 0; i < n; i++)
	{
		TgLwwOp    *op = &ops[i];

		op->map = mapn[i] ? NULL : DatumGetTextPP(maps[i]);
		op->key = keyn[i] ? NULL : DatumGetTextPP(keys[i]);
		op->ts = tsn[i] ? NULL : DatumGetTgHlcP(tss[i]);
		op->value = valn[i] ? NULL : DatumGetJsonbP(vals[i]);
		op->has_ttl = ttls != NULL && !ttln[i];
		op->ttl = op->has_ttl ? DatumGetInt64(ttls[i]) : 0;
	}
	tg_lww_put_batch(ops, n);

	for (i = 0; i < n; i++)
	{
		Datum		v[3];
		bool		nulls[3] = {false, false, ops[i].error == NULL};

		v[0] = Int32GetDatum(i + 1);
		v[1] = BoolGetDatum(ops[i].won);
		v[2] = ops[i].error ? CStringGetTextDatum(ops[i].error) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}
