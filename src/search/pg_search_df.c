/*
 * pg_search_df.c — the document-frequency statistics of full-text search as
 * compact term sets (docs/search.md, "Statistics").
 *
 * A term set is a bytea: int32 n, uint32 off[n], then n entries sorted by
 * term (tsvector order), each  uint16 len, term bytes, int64 df, int32 max_tf,
 * int32 min_dl  (unaligned; read with memcpy).  One kind of row holds one:
 *   search_delta  what one statement changed (df may be negative; max_tf /
 *                 min_dl only when they may move the bound: 0 / INT32_MAX
 *                 otherwise);
 *   search_df     the folded totals of the terms of one hash bucket.
 *
 *   _search_delta_agg(tsv, len, sign)   aggregate: the delta of some old
 *                                       (sign -1) and new (+1) document rows
 *   _search_merge(a, b)                 a + b (the aggregate _search_merge_agg);
 *                                       with drop_zero, terms of df 0 leave
 *   _search_split(set)                  one term set per bucket (DF_BUCKETS)
 *   _search_buckets(terms)              each term's bucket
 *   _search_lookup(set, terms)          (o, df, max_tf, min_dl) of the terms found
 *   _search_entries(set)                every entry (for views and tests)
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "tsearch/ts_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#define DF_BUCKETS 256			/* search_df rows per (map, field) */

typedef struct DfEntry
{
	const char *s;
	int			len;
	int64		df;
	int32		max_tf;
	int32		min_dl;
} DfEntry;

/* ------------------------------------------------------------ term sets */

static int
cmp_term(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int
cmp_entry(const void *a, const void *b)
{
	const DfEntry *x = a,
			   *y = b;

	return cmp_term(x->s, x->len, y->s, y->len);
}

static int32
set_count(bytea *set)
{
	int32		n;

	if (VARSIZE_ANY_EXHDR(set) < sizeof(int32))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid search term set")));
	memcpy(&n, VARDATA_ANY(set), sizeof(int32));
	if (n < 0 || (size_t) n > (VARSIZE_ANY_EXHDR(set) - sizeof(int32)) / sizeof(uint32))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid search term set")));
	return n;
}

/* entry i of a term set (pointing into it) */
static void
set_entry(bytea *set, int32 i, DfEntry *e)
{
	const char *base = VARDATA_ANY(set);
	size_t		size = VARSIZE_ANY_EXHDR(set);
	uint32		off;
	uint16		len;

	memcpy(&off, base + sizeof(int32) + sizeof(uint32) * i, sizeof(uint32));
	if ((size_t) off + sizeof(uint16) > size)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid search term set")));
	memcpy(&len, base + off, sizeof(uint16));
	if ((size_t) off + sizeof(uint16) + len + 16 > size)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid search term set")));
	e->s = base + off + sizeof(uint16);
	e->len = len;
	memcpy(&e->df, e->s + len, sizeof(int64));
	memcpy(&e->max_tf, e->s + len + 8, sizeof(int32));
	memcpy(&e->min_dl, e->s + len + 12, sizeof(int32));
}

/* a term set of n sorted entries */
static bytea *
set_build(const DfEntry *e, int n)
{
	size_t		size = VARHDRSZ + sizeof(int32) + sizeof(uint32) * n;
	bytea	   *set;
	char	   *base;
	uint32		off;

	for (int i = 0; i < n; i++)
		size += sizeof(uint16) + e[i].len + 16;
	if (size > MaxAllocSize)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("search term set too large")));
	set = palloc(size);
	SET_VARSIZE(set, size);
	base = VARDATA(set);
	memcpy(base, &n, sizeof(int32));
	off = sizeof(int32) + sizeof(uint32) * n;
	for (int i = 0; i < n; i++)
	{
		uint16		len = (uint16) e[i].len;

		memcpy(base + sizeof(int32) + sizeof(uint32) * i, &off, sizeof(uint32));
		memcpy(base + off, &len, sizeof(uint16));
		memcpy(base + off + 2, e[i].s, len);
		memcpy(base + off + 2 + len, &e[i].df, sizeof(int64));
		memcpy(base + off + 2 + len + 8, &e[i].max_tf, sizeof(int32));
		memcpy(base + off + 2 + len + 12, &e[i].min_dl, sizeof(int32));
		off += sizeof(uint16) + len + 16;
	}
	return set;
}

/* index of term in set, or -1 */
static int32
set_find(bytea *set, int32 n, const char *s, int len, DfEntry *e)
{
	int32		lo = 0,
				hi = n;

	while (lo < hi)
	{
		int32		mid = lo + (hi - lo) / 2;
		int			c;

		set_entry(set, mid, e);
		c = cmp_term(e->s, e->len, s, len);
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int
term_bucket(const char *s, int len, int nbuckets)
{
	return (int) (hash_bytes((const unsigned char *) s, len) % (uint32) nbuckets);
}

/* ------------------------------------------------ the delta aggregate */

typedef struct DeltaKey
{
	const char *s;
	int			len;
} DeltaKey;

typedef struct DeltaEnt
{
	DeltaKey	key;
	int64		df;
	int32		new_tf;			/* largest tf among new rows, 0 none */
	int32		old_tf;			/* largest tf among old rows, 0 none */
	int32		new_dl;			/* shortest new row, INT32_MAX none */
	int32		old_dl;
} DeltaEnt;

typedef struct DeltaState
{
	HTAB	   *h;
	MemoryContext cxt;
} DeltaState;

static uint32
delta_hash(const void *key, Size keysize)
{
	const DeltaKey *k = key;

	return hash_bytes((const unsigned char *) k->s, k->len);
}

static int
delta_match(const void *a, const void *b, Size keysize)
{
	const DeltaKey *x = a,
			   *y = b;

	return x->len == y->len && memcmp(x->s, y->s, x->len) == 0 ? 0 : 1;
}

/* tf of WordEntry e of a tf-tsvector (one position whose value is tf) */
static int
entry_tf(TSVector tsv, WordEntry *e)
{
	return e->haspos && POSDATALEN(tsv, e) > 0 ? WEP_GETPOS(POSDATAPTR(tsv, e)[0]) : 1;
}

/* _search_delta_agg_step(internal, tsv tsvector, len int4, sign int4) */
PG_FUNCTION_INFO_V1(tg_search_delta_step);
Datum
tg_search_delta_step(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	DeltaState *st;
	TSVector	tsv;
	int32		dl,
				sign;
	WordEntry  *arr;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "_search_delta_agg called outside an aggregate");
	st = PG_ARGISNULL(0) ? NULL : (DeltaState *) PG_GETARG_POINTER(0);
	if (st == NULL)
	{
		HASHCTL		ctl;

		st = MemoryContextAllocZero(aggcxt, sizeof(DeltaState));
		st->cxt = aggcxt;
		ctl.keysize = sizeof(DeltaKey);
		ctl.entrysize = sizeof(DeltaEnt);
		ctl.hash = delta_hash;
		ctl.match = delta_match;
		ctl.hcxt = aggcxt;
		st->h = hash_create("search delta", 1024, &ctl,
							HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_POINTER(st);
	tsv = PG_GETARG_TSVECTOR(1);
	dl = PG_GETARG_INT32(2);
	sign = PG_GETARG_INT32(3) < 0 ? -1 : 1;
	arr = ARRPTR(tsv);
	for (int i = 0; i < tsv->size; i++)
	{
		DeltaKey	k = {STRPTR(tsv) + arr[i].pos, arr[i].len};
		bool		found;
		DeltaEnt   *e = hash_search(st->h, &k, HASH_ENTER, &found);
		int			tf = entry_tf(tsv, &arr[i]);

		if (!found)
		{
			char	   *copy = MemoryContextAlloc(st->cxt, Max(k.len, 1));

			memcpy(copy, k.s, k.len);
			e->key.s = copy;
			e->key.len = k.len;
			e->df = 0;
			e->new_tf = e->old_tf = 0;
			e->new_dl = e->old_dl = PG_INT32_MAX;
		}
		e->df += sign;
		if (sign > 0)
		{
			e->new_tf = Max(e->new_tf, tf);
			e->new_dl = Min(e->new_dl, dl);
		}
		else
		{
			e->old_tf = Max(e->old_tf, tf);
			e->old_dl = Min(e->old_dl, dl);
		}
	}
	PG_RETURN_POINTER(st);
}

/*
 * The final function: the entries that change a statistic — df, or a bound
 * a new row may raise (a larger tf / shorter row than the removed rows had
 * for that term, which were already counted); NULL when none does, so that
 * rewriting a key with the same text writes no term.
 */
PG_FUNCTION_INFO_V1(tg_search_delta_final);
Datum
tg_search_delta_final(PG_FUNCTION_ARGS)
{
	DeltaState *st = PG_ARGISNULL(0) ? NULL : (DeltaState *) PG_GETARG_POINTER(0);
	HASH_SEQ_STATUS seq;
	DeltaEnt   *d;
	DfEntry    *out;
	int			n = 0;

	if (st == NULL)
		PG_RETURN_NULL();
	out = palloc(sizeof(DfEntry) * Max(hash_get_num_entries(st->h), 1));
	hash_seq_init(&seq, st->h);
	while ((d = hash_seq_search(&seq)) != NULL)
	{
		bool		tf_up = d->new_tf > d->old_tf,
					dl_down = d->new_dl < d->old_dl;

		if (d->df == 0 && !tf_up && !dl_down)
			continue;
		out[n].s = d->key.s;
		out[n].len = d->key.len;
		out[n].df = d->df;
		out[n].max_tf = d->new_tf;
		out[n].min_dl = d->new_dl;
		n++;
	}
	if (n == 0)
		PG_RETURN_NULL();
	qsort(out, n, sizeof(DfEntry), cmp_entry);
	PG_RETURN_BYTEA_P(set_build(out, n));
}

/* ------------------------------------------------------------ merging */

static bytea *
merge_sets(bytea *a, bytea *b, bool drop_zero)
{
	int32		na = a ? set_count(a) : 0,
				nb = b ? set_count(b) : 0;
	DfEntry    *out = palloc(sizeof(DfEntry) * Max(na + nb, 1));
	int32		i = 0,
				j = 0;
	int			n = 0;

	while (i < na || j < nb)
	{
		DfEntry		x,
					y;
		int			c;

		if (i < na)
			set_entry(a, i, &x);
		if (j < nb)
			set_entry(b, j, &y);
		c = i >= na ? 1 : j >= nb ? -1 : cmp_term(x.s, x.len, y.s, y.len);
		if (c < 0)
			out[n] = x, i++;
		else if (c > 0)
			out[n] = y, j++;
		else
		{
			out[n] = x;
			out[n].df = x.df + y.df;
			out[n].max_tf = Max(x.max_tf, y.max_tf);
			out[n].min_dl = Min(x.min_dl, y.min_dl);
			i++, j++;
		}
		if (!(drop_zero && out[n].df == 0))
			n++;
	}
	return set_build(out, n);
}

/* _search_merge(a bytea, b bytea, drop_zero boolean = false): NULL is empty */
PG_FUNCTION_INFO_V1(tg_search_merge);
Datum
tg_search_merge(PG_FUNCTION_ARGS)
{
	bytea	   *a = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	bytea	   *b = PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1);
	bool		drop_zero = PG_NARGS() > 2 && !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
	bytea	   *r;

	if (a == NULL && b == NULL)
		PG_RETURN_NULL();
	r = merge_sets(a, b, drop_zero);
	if (drop_zero && set_count(r) == 0)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(r);
}

/* _search_split(set bytea) RETURNS TABLE (bucket int2, set bytea) */
PG_FUNCTION_INFO_V1(tg_search_split);
Datum
tg_search_split(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *set = PG_GETARG_BYTEA_PP(0);
	int32		nb = DF_BUCKETS;
	int32		n = set_count(set);
	int		   *bucket_of = palloc(sizeof(int) * Max(n, 1));
	int		   *count;
	int		   *start;
	DfEntry    *part;

	InitMaterializedSRF(fcinfo, 0);
	count = palloc0(sizeof(int) * nb);
	for (int32 i = 0; i < n; i++)
	{
		DfEntry		e;

		set_entry(set, i, &e);
		bucket_of[i] = term_bucket(e.s, e.len, nb);
		count[bucket_of[i]]++;
	}
	/* counting sort by bucket: entries stay sorted within each bucket */
	start = palloc0(sizeof(int) * (nb + 1));
	for (int b = 0; b < nb; b++)
		start[b + 1] = start[b] + count[b];
	part = palloc(sizeof(DfEntry) * Max(n, 1));
	for (int32 i = 0; i < n; i++)
		set_entry(set, i, &part[start[bucket_of[i]]++]);
	for (int b = 0, k = 0; b < nb; k += count[b], b++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (count[b] == 0)
			continue;
		values[0] = Int16GetDatum((int16) b);
		values[1] = PointerGetDatum(set_build(part + k, count[b]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* _search_buckets(terms text[]) RETURNS int2[] */
PG_FUNCTION_INFO_V1(tg_search_buckets);
Datum
tg_search_buckets(PG_FUNCTION_ARGS)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		text	   *t = nulls[i] ? NULL : DatumGetTextPP(d[i]);

		d[i] = Int16GetDatum(t ? term_bucket(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), DF_BUCKETS) : 0);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(d, n, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
}

static void
put_entry(ReturnSetInfo *rsinfo, int32 o, const DfEntry *e, bool with_term)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = with_term ? PointerGetDatum(cstring_to_text_with_len(e->s, e->len)) : Int32GetDatum(o);
	values[1] = Int64GetDatum(e->df);
	values[2] = Int32GetDatum(e->max_tf);
	values[3] = Int32GetDatum(e->min_dl);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * _search_lookup(set bytea, terms text[])
 *   RETURNS TABLE (o int4, df int8, max_tf int4, min_dl int4)
 * One row per element of terms (1-based o) that the set holds.
 */
PG_FUNCTION_INFO_V1(tg_search_lookup);
Datum
tg_search_lookup(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *set = PG_GETARG_BYTEA_PP(0);
	int32		n = set_count(set);
	Datum	   *d;
	bool	   *nulls;
	int			nt;

	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &nt);
	for (int i = 0; i < nt; i++)
	{
		text	   *t;
		DfEntry		e;

		if (nulls[i])
			continue;
		t = DatumGetTextPP(d[i]);
		if (set_find(set, n, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &e) >= 0)
			put_entry(rsinfo, i + 1, &e, false);
	}
	return (Datum) 0;
}

/* _search_entries(set bytea) RETURNS TABLE (term text, df int8, max_tf int4, min_dl int4) */
PG_FUNCTION_INFO_V1(tg_search_entries);
Datum
tg_search_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *set = PG_GETARG_BYTEA_PP(0);
	int32		n = set_count(set);

	InitMaterializedSRF(fcinfo, 0);
	for (int32 i = 0; i < n; i++)
	{
		DfEntry		e;

		set_entry(set, i, &e);
		put_entry(rsinfo, 0, &e, true);
	}
	return (Datum) 0;
}
