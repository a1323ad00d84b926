/*
 * api.c — merkle_root(), merkle_buckets() and the leaf-array helper.
 *
 * Both read at most the 256 rows of a map in topgun.merkle_nodes (one per
 * depth-2 node, holding its 16 leaves) and its not yet folded rows in
 * topgun.merkle_pending, in one statement (one snapshot: a delta is seen
 * either pending or folded), so their cost does not grow with the number of
 * records in the map.  The calling transaction's own unflushed deltas are
 * added so a transaction sees its own writes in the tree.
 *
 * A map without a stored tree (topgun.merkle_maps, src/merkle/modes.c) is
 * read from its rows instead, in the same snapshot: at most
 * topgun.merkle_small_map_entries of them, own writes included.
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/delta_codec.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tg_merkle_root);
PG_FUNCTION_INFO_V1(tg_merkle_buckets);
PG_FUNCTION_INFO_V1(tg_merkle_leaves_add);

static SPIPlanPtr root_plan = NULL;
static SPIPlanPtr buckets_plan = NULL;
static SPIPlanPtr leaves_plan = NULL;

/*
 * A map without a stored tree: the sums of the children of the node at the
 * path (plen digits, value pval) from the rows; child c sums the leaves whose
 * digit plen is c.  plen 3 (a leaf itself) is not asked.
 */
static void
computed_children(text *map, int plen, int pval, uint32 *sums, bool *exists)
{
	int			width = 4 * (3 - plen);
	int			lo = pval << width;
	int			n = 1 << width;
	uint32	   *leaf = palloc(n * sizeof(uint32));
	bool	   *has = palloc(n * sizeof(bool));

	tg_merkle_leaves_from_rows(map, lo, lo + n - 1, leaf, has);
	for (int l = 0; l < n; l++)
		if (has[l])
		{
			sums[(l >> (width - 4)) & 15] += leaf[l];
			exists[(l >> (width - 4)) & 15] = true;
		}
	pfree(leaf);
	pfree(has);
}

/*
 * topgun._merkle_leaves_add(old bigint[], delta bigint[]) RETURNS bigint[]
 *
 * Element-wise sum modulo 2^32 of a node's stored leaves and a commit's leaf
 * deltas: a NULL delta leaves the leaf as it is, a delta on an absent leaf
 * creates it (leaves.c).
 */
Datum
tg_merkle_leaves_add(PG_FUNCTION_ARGS)
{
	uint32		delta[TG_NODE_LEAVES];
	bool		delta_ex[TG_NODE_LEAVES];
	uint16		touched = 0;

	tg_merkle_get_leaves(PG_GETARG_ARRAYTYPE_P(1), delta, delta_ex);
	for (int i = 0; i < TG_NODE_LEAVES; i++)
		if (delta_ex[i])
			touched |= (uint16) (1 << i);
	PG_RETURN_ARRAYTYPE_P(tg_merkle_leaves_sum(PG_GETARG_ARRAYTYPE_P(0), delta, touched));
}

/*
 * Add one topgun.merkle_pending row's records of nodes lo..hi: per leaf of
 * the node (per_leaf), or per child digit (prefix >> shift) & 15 of the
 * node's total.  Malformed bytes are an error, never summed.
 */
static void
add_pending(bytea *b, int lo, int hi, int shift, uint32 *sums, bool *exists, bool per_leaf)
{
	const uint8 *p = (const uint8 *) VARDATA_ANY(b);
	size_t		len = VARSIZE_ANY_EXHDR(b);
	size_t		pos = 0;
	TgDeltaRecord rec;
	int			r;

	while ((r = tg_delta_next_range(p, len, &pos, &rec, lo, hi)) == 1)
	{
		uint32		node = 0;

		for (int i = 0; i < 16; i++)
		{
			if ((rec.touched & (1u << i)) == 0)
				continue;
			node += rec.leaf[i];
			if (per_leaf)
			{
				sums[i] += rec.leaf[i];
				exists[i] = true;
			}
		}
		if (!per_leaf)
		{
			sums[(rec.prefix >> shift) & 15] += node;
			exists[(rec.prefix >> shift) & 15] = true;
		}
	}
	if (r < 0)
		tg_merkle_delta_corrupt(len, pos);
}

/* Parse a path of 0..3 lowercase hex digits; returns its value. */
static int
parse_path(text *path, int *len)
{
	const char *s = VARDATA_ANY(path);
	int			n = VARSIZE_ANY_EXHDR(path);
	int			v = 0;
	int			i;

	if (n > 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Merkle path \"%.*s\" is longer than 3 characters", Min(n, 32), s)));
	for (i = 0; i < n; i++)
	{
		char		c = s[i];

		if (c >= '0' && c <= '9')
			v = v * 16 + (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (c - 'a' + 10);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Merkle path \"%.*s\"", n, s),
					 errdetail("A path is 0 to 3 lowercase hexadecimal digits.")));
	}
	*len = n;
	return v;
}

Datum
tg_merkle_root(PG_FUNCTION_ARGS)
{
	text	   *map = PG_GETARG_TEXT_PP(0);
	Datum		args[1];
	uint32		root = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (root_plan == NULL)
	{
		Oid			types[1] = {TEXTOID};
		SPIPlanPtr	p = SPI_prepare("SELECT (SELECT coalesce(sum(hash), 0) % 4294967296 FROM topgun.merkle_nodes "
									"WHERE map = $1)::int8, NULL::bytea "
									"UNION ALL SELECT 0, deltas FROM topgun.merkle_pending WHERE map = $1", 1, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare merkle_root");
		root_plan = p;
	}
	if (!tg_merkle_map_stored(map))
	{
		uint32		sums[16] = {0};
		bool		ex[16] = {false};

		/* the rows hold the transaction's own writes: no unflushed deltas to add */
		computed_children(map, 0, 0, sums, ex);
		SPI_finish();
		for (int i = 0; i < 16; i++)
			root += sums[i];
		PG_RETURN_INT64((int64) root);
	}
	args[0] = PointerGetDatum(map);
	if (SPI_execute_plan(root_plan, args, NULL, true, 0) != SPI_OK_SELECT || SPI_processed < 1)
		elog(ERROR, "topgun: merkle_root query failed");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);

		if (isnull)
			root += (uint32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
		else
		{
			uint32		one[16] = {0};
			bool		ex[16];

			add_pending(DatumGetByteaPP(d), 0, 255, 8, one, ex, false);
			root += one[0];
		}
	}
	SPI_finish();
	root += tg_merkle_pending_sum(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map), 0, 0, 0, NULL);
	PG_RETURN_INT64((int64) root);
}

/* The existing children as rows {hex digit, hash}. */
static void
emit_buckets(ReturnSetInfo *rsinfo, const uint32 *sums, const bool *exists)
{
	for (int i = 0; i < 16; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		char		c[2];

		if (!exists[i])
			continue;
		c[0] = "0123456789abcdef"[i];
		c[1] = '\0';
		values[0] = CStringGetTextDatum(c);
		values[1] = Int64GetDatum((int64) sums[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

Datum
tg_merkle_buckets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *map = PG_GETARG_TEXT_PP(0);
	int			plen;
	int			pval = parse_path(PG_GETARG_TEXT_PP(1), &plen);
	uint32		sums[16];
	bool		exists[16];
	uint32		pend[16];
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (plen == 3)
		return (Datum) 0;		/* a leaf has entries, not buckets */

	memset(sums, 0, sizeof(sums));
	memset(exists, 0, sizeof(exists));
	memset(pend, 0, sizeof(pend));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (buckets_plan == NULL)
	{
		Oid			types[4] = {TEXTOID, INT4OID, INT4OID, INT4OID};
		SPIPlanPtr	p = SPI_prepare("SELECT ((prefix >> $4) & 15)::int4, hash, NULL::bytea FROM topgun.merkle_nodes "
									"WHERE map = $1 AND prefix BETWEEN $2 AND $3 "
									"UNION ALL SELECT 0, 0, deltas FROM topgun.merkle_pending WHERE map = $1",
									4, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare merkle_buckets");
		buckets_plan = p;
	}
	if (leaves_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT2OID};
		SPIPlanPtr	p = SPI_prepare("SELECT leaves, NULL::bytea FROM topgun.merkle_nodes WHERE map = $1 AND prefix = $2 "
									"UNION ALL SELECT NULL::int8[], deltas FROM topgun.merkle_pending WHERE map = $1",
									2, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare merkle_buckets");
		leaves_plan = p;
	}
	if (!tg_merkle_map_stored(map))
	{
		computed_children(map, plen, pval, sums, exists);
		SPI_finish();
		emit_buckets(rsinfo, sums, exists);
		return (Datum) 0;
	}
	if (plen == 2)
	{
		/* depth 2: the node's leaves, stored and pending */
		Datum		args[2];
		uint64		r;

		args[0] = PointerGetDatum(map);
		args[1] = Int16GetDatum(pval);
		if (SPI_execute_plan(leaves_plan, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "topgun: merkle_buckets query failed");
		for (r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		leaves = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
			Datum		d;

			if (!isnull)
			{
				uint32		h[16];
				bool		ex[16];

				tg_merkle_get_leaves(DatumGetArrayTypeP(leaves), h, ex);
				for (i = 0; i < 16; i++)
					if (ex[i])
					{
						sums[i] += h[i];
						exists[i] = true;
					}
				continue;
			}
			d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
			if (!isnull)
				add_pending(DatumGetByteaPP(d), pval, pval, 0, sums, exists, true);
		}
	}
	else
	{
		/* root: depth-2 rows grouped by first digit; depth 1: depth-2 rows */
		Datum		args[4];
		uint64		r;

		args[0] = PointerGetDatum(map);
		args[1] = Int32GetDatum(plen == 0 ? 0 : pval * 16);
		args[2] = Int32GetDatum(plen == 0 ? 255 : pval * 16 + 15);
		args[3] = Int32GetDatum(plen == 0 ? 4 : 0);
		if (SPI_execute_plan(buckets_plan, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "topgun: merkle_buckets query failed");
		for (r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull);
			int			c;

			if (!isnull)
			{
				add_pending(DatumGetByteaPP(d), DatumGetInt32(args[1]), DatumGetInt32(args[2]),
							DatumGetInt32(args[3]), sums, exists, false);
				continue;
			}
			c = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
			sums[c & 15] += (uint32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
			exists[c & 15] = true;
		}
	}
	SPI_finish();
	tg_merkle_pending_sum(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map), plen, pval, pval, pend);
	for (i = 0; i < 16; i++)
	{
		if (pend[i] != 0)
			exists[i] = true;
		sums[i] += pend[i];
	}
	emit_buckets(rsinfo, sums, exists);
	return (Datum) 0;
}
