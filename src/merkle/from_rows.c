/*
 * from_rows.c — the leaf hashes of a map computed from its rows, for maps
 * that keep no stored tree (modes.c): the LWW records' item hashes and the
 * OR keys' entry hashes (topgun.or_keys), summed per leaf.  The readers in
 * api.c call it directly; topgun._leaf_hashes_now() is the same for SQL
 * (merkle_verify, the tree build).
 */
#include "topgun.h"
#include "merkle/merkle.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tg_merkle_leaf_hashes_now);

static SPIPlanPtr rows_plan = NULL;

/*
 * Inside the caller's SPI connection, in its snapshot: sums[l - lo] and
 * exists[l - lo] for leaves lo..hi (0..4095); a leaf exists when it has an
 * entry.
 */
void
tg_merkle_leaves_from_rows(text *map, int lo, int hi, uint32 *sums, bool *exists)
{
	Datum		args[3];
	Portal		portal;

	memset(sums, 0, (hi - lo + 1) * sizeof(uint32));
	memset(exists, 0, (hi - lo + 1) * sizeof(bool));
	if (rows_plan == NULL)
		rows_plan = tg_merkle_keep_plan("SELECT leaf, key, ts, NULL::int8 FROM topgun.lww "
										"WHERE map = $1 AND leaf BETWEEN $2 AND $3 "
										"UNION ALL SELECT leaf, NULL, NULL, entry_hash FROM topgun.or_keys "
										"WHERE map = $1 AND leaf BETWEEN $2 AND $3",
										3, (Oid[]) {TEXTOID, INT2OID, INT2OID});
	args[0] = PointerGetDatum(map);
	args[1] = Int16GetDatum((int16) lo);
	args[2] = Int16GetDatum((int16) hi);
	/* a cursor: a map being given its tree may hold millions of rows */
	portal = SPI_cursor_open(NULL, rows_plan, args, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 4096);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	t = SPI_tuptable->vals[r];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			int			leaf = DatumGetInt16(SPI_getbinval(t, d, 1, &isnull));
			Datum		h = SPI_getbinval(t, d, 4, &isnull);
			uint32		item;

			if (leaf < lo || leaf > hi)
				continue;
			if (isnull)
			{
				text	   *key = DatumGetTextPP(SPI_getbinval(t, d, 2, &isnull));

				item = tg_lww_item_hash(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
										DatumGetTgHlcP(SPI_getbinval(t, d, 3, &isnull)));
			}
			else
				item = (uint32) DatumGetInt64(h);
			sums[leaf - lo] += item;
			exists[leaf - lo] = true;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

/* topgun._leaf_hashes_now(map text, lo int, hi int) RETURNS TABLE (leaf int, hash bigint) */
Datum
tg_merkle_leaf_hashes_now(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			lo = Max(PG_GETARG_INT32(1), 0);
	int			hi = Min(PG_GETARG_INT32(2), 4095);
	uint32	   *sums;
	bool	   *exists;

	InitMaterializedSRF(fcinfo, 0);
	if (lo > hi)
		return (Datum) 0;
	sums = palloc((hi - lo + 1) * sizeof(uint32));
	exists = palloc((hi - lo + 1) * sizeof(bool));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tg_merkle_leaves_from_rows(PG_GETARG_TEXT_PP(0), lo, hi, sums, exists);
	SPI_finish();
	for (int l = lo; l <= hi; l++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (!exists[l - lo])
			continue;
		values[0] = Int32GetDatum(l);
		values[1] = Int64GetDatum((int64) sums[l - lo]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
