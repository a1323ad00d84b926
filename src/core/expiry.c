/*
 * expiry.c — topgun._fill_expiry(): checks ttl_ms and keeps the expires_ms
 * column of topgun.lww and topgun.ormap.
 *
 * expires_ms = hlc_millis(ts) + ttl_ms for a live record with a TTL, else
 * NULL.  The TTL index is on this column so that no index mentions ts or
 * value: then overwriting a key (new ts, new value, no TTL) is a HOT update,
 * which saved the sync worker about a third of its write cost.
 *
 * Why a BEFORE trigger and not a GENERATED column: a stored generated column
 * costs an executor-start step per statement (PostgreSQL re-reads and plans
 * the generation expression every time), which made every single-row
 * lww_put() about 10 % slower; this trigger costs one C call per written
 * row.  The trigger is ENABLE ALWAYS, so rows arriving by logical
 * replication, COPY or plain DML get the same value.
 *
 * It also enforces ttl_ms > 0, which used to be a CHECK constraint: PostgreSQL
 * parses and prepares CHECK expressions at every statement start as well
 * (6 % of a single-row lww_put()).  The trigger fires on every INSERT and on
 * every UPDATE that sets ttl_ms, so no write path can store a bad TTL.
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/storage.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/rel.h"
#include "utils/relcache.h"

PG_FUNCTION_INFO_V1(tg_fill_expiry);

static int
column(TupleDesc desc, const char *name, Relation rel)
{
	int			att = SPI_fnumber(desc, name);

	if (att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("topgun._fill_expiry: table \"%s\" has no column \"%s\"",
						RelationGetRelationName(rel), name)));
	return att;
}

Datum
tg_fill_expiry(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	int			att_value,
				att_ts,
				att_ttl,
				att_exp;
	bool		value_null,
				ts_null,
				ttl_null,
				old_null;
	Datum		ts,
				ttl,
				old;
	int			cols[1];
	Datum		vals[1];
	bool		nulls[1];
	int64		expires = 0;
	bool		expires_null = true;

	tup = tg_before_row_tuple(fcinfo, "topgun._fill_expiry");
	desc = RelationGetDescr(td->tg_relation);
	att_value = column(desc, "value", td->tg_relation);
	att_ts = column(desc, "ts", td->tg_relation);
	att_ttl = column(desc, "ttl_ms", td->tg_relation);
	att_exp = column(desc, "expires_ms", td->tg_relation);

	(void) heap_getattr(tup, att_value, desc, &value_null);
	ts = heap_getattr(tup, att_ts, desc, &ts_null);
	ttl = heap_getattr(tup, att_ttl, desc, &ttl_null);
	if (!ttl_null && DatumGetInt64(ttl) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("ttl_ms must be positive, got " INT64_FORMAT, DatumGetInt64(ttl)),
				 errtable(td->tg_relation)));
	if (!value_null && !ts_null && !ttl_null)
	{
		/* saturate rather than fail: such a record simply never expires */
		if (pg_add_s64_overflow(DatumGetTgHlcP(ts)->millis, DatumGetInt64(ttl), &expires))
			expires = PG_INT64_MAX;
		expires_null = false;
	}

	/* unchanged: return the row as it is, without a copy */
	old = heap_getattr(tup, att_exp, desc, &old_null);
	if (old_null == expires_null && (expires_null || DatumGetInt64(old) == expires))
		return PointerGetDatum(tup);

	cols[0] = att_exp;
	vals[0] = Int64GetDatum(expires);
	nulls[0] = expires_null;
	return PointerGetDatum(heap_modify_tuple_by_cols(tup, desc, 1, cols, vals, nulls));
}
