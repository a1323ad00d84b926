/*
 * api.c — merkle_root() and merkle_buckets().
 *
 * Both read at most 256 rows of topgun.merkle_nodes (the depth-2 nodes) or
 * 16 rows (a depth-2 node's leaves), so their cost does not grow with the
 * number of records in the map.  The calling transaction's own unflushed
 * deltas are added so a transaction sees its own writes in the tree.
 */
#include "topgun.h"
#include "merkle/merkle.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tg_merkle_root);
PG_FUNCTION_INFO_V1(tg_merkle_buckets);

static SPIPlanPtr root_plan = NULL;
static SPIPlanPtr buckets_plan = NULL;

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
		SPIPlanPtr	p = SPI_prepare("SELECT coalesce(sum(hash), 0)::int8 FROM topgun.merkle_nodes "
									"WHERE map = $1 AND level = 2", 1, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare merkle_root");
		root_plan = p;
	}
	args[0] = PointerGetDatum(map);
	if (SPI_execute_plan(root_plan, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: merkle_root query failed");
	{
		bool		isnull;

		root = (uint32) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	root += tg_merkle_pending_sum(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map), 0, 0, 0, NULL);
	PG_RETURN_INT64((int64) root);
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
		Oid			types[5] = {TEXTOID, INT2OID, INT4OID, INT4OID, INT4OID};
		SPIPlanPtr	p = SPI_prepare("SELECT ((prefix >> $5) & 15)::int4, sum(hash)::int8 FROM topgun.merkle_nodes "
									"WHERE map = $1 AND level = $2 AND prefix BETWEEN $3 AND $4 "
									"GROUP BY 1", 5, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare merkle_buckets");
		buckets_plan = p;
	}
	{
		Datum		args[5];
		uint64		r;

		args[0] = PointerGetDatum(map);
		/* root: depth-2 rows grouped by first digit; depth 1: depth-2 rows; depth 2: leaves */
		args[1] = Int16GetDatum(plen == 2 ? 3 : 2);
		args[2] = Int32GetDatum(plen == 0 ? 0 : pval * 16);
		args[3] = Int32GetDatum(plen == 0 ? 255 : pval * 16 + 15);
		args[4] = Int32GetDatum(plen == 0 ? 4 : 0);
		if (SPI_execute_plan(buckets_plan, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "topgun: merkle_buckets query failed");
		for (r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			int			c = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
			int64		h = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));

			sums[c & 15] = (uint32) h;
			exists[c & 15] = true;
		}
	}
	SPI_finish();
	tg_merkle_pending_sum(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map), plen, pval, pval, pend);
	for (i = 0; i < 16; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		char		c[2];

		if (!exists[i] && pend[i] == 0)
			continue;
		c[0] = "0123456789abcdef"[i];
		c[1] = '\0';
		values[0] = CStringGetTextDatum(c);
		values[1] = Int64GetDatum((int64) (uint32) (sums[i] + pend[i]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
