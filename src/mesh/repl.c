/*
 * repl.c — the C pieces of multi-node replication (src/sql/30_replication.sql).
 *
 *  - topgun._fill_leaf(): BEFORE trigger that computes the Merkle leaf of a
 *    storage row.  `leaf` is a plain column (not GENERATED) because
 *    PostgreSQL 15 does not publish generated columns, and the apply worker
 *    needs every replica-identity (primary key) column to find a row.
 *  - topgun._repl_observe(hlc): the node clock observes a timestamp that
 *    arrived by replication.  Unlike a client write, a replicated record was
 *    already accepted by its origin node, so it is never rejected here (that
 *    would stop replication for good): with topgun.strict_clock on, a
 *    timestamp beyond the drift limit is stored but does not move the clock.
 *  - topgun._peer_exec(conninfo, sql): run one single-column query on a peer
 *    over a replication connection (libpqwalreceiver, as CREATE
 *    SUBSCRIPTION does), so add_peer() can check the peer's node id and
 *    create or drop replication slots from inside a transaction.
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/storage.h"
#include "merkle/fnv.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/walreceiver.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tg_fill_leaf);
PG_FUNCTION_INFO_V1(tg_repl_observe);
PG_FUNCTION_INFO_V1(tg_peer_exec);

/* Column numbers fixed by src/sql/10_storage.sql (topgun.lww and topgun.ormap). */
#define ATT_KEY		2
#define ATT_LEAF	3

Datum
tg_fill_leaf(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		k;
	text	   *key;
	int			cols[1] = {ATT_LEAF};
	Datum		vals[1];
	bool		nulls[1] = {false};

	tup = tg_before_row_tuple(fcinfo, "topgun._fill_leaf");
	desc = RelationGetDescr(td->tg_relation);
	if (desc->natts < ATT_LEAF ||
		TupleDescAttr(desc, ATT_LEAF - 1)->atttypid != INT2OID ||
		TupleDescAttr(desc, ATT_KEY - 1)->atttypid != TEXTOID)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("topgun._fill_leaf: table \"%s\" has no (key text, leaf smallint) in columns 2 and 3",
						RelationGetRelationName(td->tg_relation))));
	k = heap_getattr(tup, ATT_KEY, desc, &isnull);
	if (isnull)
		return PointerGetDatum(tup);	/* NOT NULL on key reports it */
	key = DatumGetTextPP(k);
	vals[0] = Int16GetDatum((int16) tg_leaf_of_hash(tg_hash_string(VARDATA_ANY(key),
																 VARSIZE_ANY_EXHDR(key))));
	return PointerGetDatum(heap_modify_tuple_by_cols(tup, desc, 1, cols, vals, nulls));
}

static int64
wall_millis(void)
{
	TimestampTz now = GetCurrentTimestamp();

	return now / 1000 + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
}

Datum
tg_repl_observe(PG_FUNCTION_ARGS)
{
	TgHlc	   *ts = PG_GETARG_HLC_P(0);
	const char *drift = GetConfigOption("topgun.max_drift_ms", true, false);

	if (tg_clock_strict() && drift != NULL &&
		ts->millis - wall_millis() > pg_strtoint64(drift))
	{
		/* accepted by its origin already: keep the row, not the clock jump */
		ereport(DEBUG1,
				(errmsg("topgun: replicated timestamp of node \"%.*s\" is beyond topgun.max_drift_ms; clock not advanced",
						TG_HLC_NODE_LEN(ts), ts->node)));
		PG_RETURN_VOID();
	}
	tg_clock_observe(ts);
	PG_RETURN_VOID();
}

Datum
tg_peer_exec(PG_FUNCTION_ARGS)
{
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Oid			types[1] = {TEXTOID};
	char	   *err = NULL;
	WalReceiverConn *conn;
	WalRcvExecResult *res;
	TupleTableSlot *slot;
	text	   *result = NULL;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to contact a replication peer")));

	/* the same library CREATE SUBSCRIPTION uses to reach a publisher */
	load_file("libpqwalreceiver", false);
	conn = walrcv_connect(conninfo, true, "topgun_add_peer", &err);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not connect to the peer: %s", err ? err : "unknown error")));
	PG_TRY();
	{
		res = walrcv_exec(conn, sql, 1, types);
		if (res->status != WALRCV_OK_TUPLES && res->status != WALRCV_OK_COMMAND)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_EXCEPTION),
					 errmsg("query on the peer failed: %s", res->err ? res->err : "no error text"),
					 errcontext("remote query: %s", sql)));
		if (res->status == WALRCV_OK_TUPLES)
		{
			slot = MakeSingleTupleTableSlot(res->tupledesc, &TTSOpsMinimalTuple);
			if (tuplestore_gettupleslot(res->tuplestore, true, false, slot))
			{
				bool		isnull;
				Datum		d = slot_getattr(slot, 1, &isnull);

				if (!isnull)
					result = cstring_to_text(TextDatumGetCString(d));
			}
			ExecDropSingleTupleTableSlot(slot);
		}
		walrcv_clear_result(res);
	}
	PG_FINALLY();
	{
		walrcv_disconnect(conn);
	}
	PG_END_TRY();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}
