/*
 * entry.c — OR-map per-key entry hash, recomputed from the stored rows.
 *
 * hashString("key:" + key + "|" + part1 + "|" + part2 ...), one part per
 * record in tag order (UTF-16 code units):
 *     tag ":" stringifyValue(value) ":" millis ":" counter ":" nodeId [":ttl=" ttlMs]
 */
#include "topgun.h"
#include "merkle/merkle.h"
#include "merkle/fnv.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tg_or_entry_hash_sql);

typedef struct OrRow
{
	char	   *tag;
	int			taglen;
	Datum		value;
	TgHlc	   *ts;
	bool		has_ttl;
	int64		ttl;
} OrRow;

static SPIPlanPtr rows_plan = NULL;

static int
or_row_cmp(const void *a, const void *b)
{
	const OrRow *x = a;
	const OrRow *y = b;

	return tg_utf16_cmp(x->tag, x->taglen, y->tag, y->taglen);
}

/*
 * Caller must be connected to SPI.  Returns false when the key has no
 * records (it then has no entry in the tree).
 */
bool
tg_or_entry_hash(const char *map, int maplen, const char *key, int keylen, uint32 *hash)
{
	Datum		args[3];
	OrRow	   *rows;
	uint64		n,
				i;
	StringInfoData buf;
	uint32		h;

	if (rows_plan == NULL)
	{
		Oid			types[3] = {TEXTOID, INT2OID, TEXTOID};
		SPIPlanPtr	p = SPI_prepare("SELECT tag, value, ts, ttl_ms FROM topgun.ormap "
									"WHERE map = $1 AND leaf = $2 AND key = $3", 3, types);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "topgun: could not prepare OR-map row lookup");
		rows_plan = p;
	}
	args[0] = PointerGetDatum(cstring_to_text_with_len(map, maplen));
	args[1] = Int16GetDatum((int16) tg_leaf_of_hash(tg_hash_string(key, keylen)));
	args[2] = PointerGetDatum(cstring_to_text_with_len(key, keylen));
	if (SPI_execute_plan(rows_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: OR-map row lookup failed");
	n = SPI_processed;
	if (n == 0)
		return false;
	rows = palloc(n * sizeof(OrRow));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *tag = DatumGetTextPP(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		ttl;

		rows[i].tag = VARDATA_ANY(tag);
		rows[i].taglen = VARSIZE_ANY_EXHDR(tag);
		rows[i].value = SPI_getbinval(tup, desc, 2, &isnull);
		rows[i].ts = DatumGetTgHlcP(SPI_getbinval(tup, desc, 3, &isnull));
		ttl = SPI_getbinval(tup, desc, 4, &isnull);
		rows[i].has_ttl = !isnull;
		rows[i].ttl = isnull ? 0 : DatumGetInt64(ttl);
	}
	qsort(rows, n, sizeof(OrRow), or_row_cmp);

	initStringInfo(&buf);
	appendStringInfoString(&buf, "key:");
	appendBinaryStringInfo(&buf, key, keylen);
	for (i = 0; i < n; i++)
	{
		appendStringInfoChar(&buf, '|');
		appendBinaryStringInfo(&buf, rows[i].tag, rows[i].taglen);
		appendStringInfoChar(&buf, ':');
		tg_or_stringify_value(&buf, rows[i].value);
		appendStringInfo(&buf, ":" INT64_FORMAT ":" INT64_FORMAT ":%.*s", rows[i].ts->millis, rows[i].ts->counter,
						 TG_HLC_NODE_LEN(rows[i].ts), rows[i].ts->node);
		if (rows[i].has_ttl)
			appendStringInfo(&buf, ":ttl=" INT64_FORMAT, rows[i].ttl);
	}
	h = tg_hash_string(buf.data, buf.len);
	pfree(buf.data);
	*hash = h;
	return true;
}

/* topgun._or_entry_hash(map, key) → bigint or NULL when the key has no records */
Datum
tg_or_entry_hash_sql(PG_FUNCTION_ARGS)
{
	text	   *map = PG_GETARG_TEXT_PP(0);
	text	   *key = PG_GETARG_TEXT_PP(1);
	uint32		h;
	bool		live;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	live = tg_or_entry_hash(VARDATA_ANY(map), VARSIZE_ANY_EXHDR(map),
							VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &h);
	SPI_finish();
	if (!live)
		PG_RETURN_NULL();
	PG_RETURN_INT64((int64) h);
}
