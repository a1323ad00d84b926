/*
 * events.c — capture of journal events and their write-out.
 *
 * AFTER ROW triggers on topgun.lww and topgun.ormap (ENABLE ALWAYS, so SQL,
 * the write functions, TTL expiry and the replication apply worker are all
 * seen) fire only for journaled maps: their WHEN condition is
 * topgun.journal_enabled(map), so for any other map no trigger event is even
 * queued.  The trigger turns the row change into an event and keeps it in a
 * per-transaction buffer; at pre-commit (or when the buffer holds
 * topgun.journal_buffer_events events) the buffer is written to
 * topgun.journal_events (see write_rows), numbered from topgun.journal_seq
 * through horizon.c.  Rows written by a transaction that rolls back vanish
 * with it; events of a rolled-back savepoint are dropped from the buffer.
 *
 * Event types (PROTOCOL-ADDENDUM §A6.2):
 *   lww INSERT   PUT, or DELETE for a tombstone
 *   lww UPDATE   UPDATE (a put after a tombstone too), DELETE to a tombstone;
 *                previousValue = old value
 *   lww DELETE   of a live row (direct DML): DELETE.  Deleting a tombstone
 *                (GC) is no event (the trigger's WHEN excludes it).
 *   or INSERT    PUT when the key holds no older record, else UPDATE with the
 *                first older record's value (decided when written out)
 *   or UPDATE    UPDATE;  or DELETE (tag removed, TTL expiry): DELETE
 * The mesh's lww_reinsert rewrites an UPDATE of a tombstone as DELETE +
 * INSERT of the same record right after it; that pair repeats the UPDATE's
 * event, so a DELETE followed by an INSERT of the same key and timestamp,
 * or an INSERT right after an event with the same key and timestamp, is
 * dropped.
 */
#include "topgun.h"
#include "journal/journal.h"
#include "core/hlc.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define BUFFER_MAX_BYTES	(8 * 1024 * 1024)

typedef enum JType
{
	J_PUT = 'P',
	J_UPDATE = 'U',
	J_DELETE = 'D',
	J_OR_ADD = 'A',				/* PUT or UPDATE, decided when written out */
	J_ROW_DELETE = 'X'			/* DELETE of a live LWW row */
} JType;

typedef struct JEvent
{
	char		type;
	int			nest;
	Datum		map;			/* text */
	Datum		key;			/* text */
	Datum		value;			/* jsonb, 0 = absent */
	Datum		prev;			/* jsonb, 0 = absent */
	Datum		ts;				/* hlc: the event's timestamp */
	Datum		rec_ts;			/* hlc: the row's timestamp (pair detection) */
	Datum		tag;			/* text, 0 = none (LWW) */
} JEvent;

static MemoryContext buf_cxt = NULL;
static JEvent *events = NULL;
static int	nevents = 0;
static int	cap = 0;
static Size buffered_bytes = 0;
static bool written_out = false;	/* pre-commit flush done: no more events */
static bool wrote_any = false;	/* some events were written out before commit */
static Oid	hlc_type = InvalidOid;
static Oid	hlc_array_type = InvalidOid;
static SPIPlanPtr insert_plan = NULL;
static Oid	plan_hlc_array_type = InvalidOid;

PG_FUNCTION_INFO_V1(tg_journal_capture);

static void
reset_buffer(void)
{
	/* the memory belongs to TopTransactionContext */
	buf_cxt = NULL;
	events = NULL;
	nevents = cap = 0;
	buffered_bytes = 0;
	written_out = false;
	wrote_any = false;
}

static int
attnum(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0)
			return i + 1;
	elog(ERROR, "topgun: storage table has no column \"%s\"", name);
	return 0;
}

/* A column's value copied (detoasted) into the buffer; 0 for NULL. */
static Datum
col(HeapTuple tup, TupleDesc desc, int att)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, att, desc, &isnull);
	struct varlena *v;

	if (isnull)
		return (Datum) 0;
	v = PG_DETOAST_DATUM_COPY(d);
	buffered_bytes += VARSIZE(v);
	return PointerGetDatum(v);
}

static bool
same_text(Datum a, Datum b)
{
	text	   *x = (text *) DatumGetPointer(a);
	text	   *y = (text *) DatumGetPointer(b);

	return VARSIZE(x) == VARSIZE(y) && memcmp(VARDATA(x), VARDATA(y), VARSIZE(x) - VARHDRSZ) == 0;
}

static bool
same_record(const JEvent *e, Datum map, Datum key, Datum rec_ts)
{
	return e->tag == (Datum) 0 && same_text(e->map, map) && same_text(e->key, key) &&
		tg_hlc_cmp((TgHlc *) DatumGetPointer(e->rec_ts), (TgHlc *) DatumGetPointer(rec_ts)) == 0;
}

static void flush_events(void);

/* Column numbers of topgun.lww [0] and topgun.ormap [1], by relation. */
typedef struct StorageCols
{
	Oid			relid;
	int			map,
				key,
				value,
				ts,
				tag;
} StorageCols;

static StorageCols storage_cols[2];

static JEvent *
new_event(void)
{
	if (nevents == cap)
	{
		cap = cap == 0 ? 64 : cap * 2;
		events = events == NULL ? MemoryContextAlloc(buf_cxt, cap * sizeof(JEvent))
			: repalloc(events, cap * sizeof(JEvent));
	}
	memset(&events[nevents], 0, sizeof(JEvent));
	events[nevents].nest = GetCurrentTransactionNestLevel();
	return &events[nevents++];
}

static void
capture(TriggerData *td, bool is_or)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	StorageCols *sc = &storage_cols[is_or ? 1 : 0];
	int			a_map,
				a_key,
				a_value,
				a_ts,
				a_tag;
	HeapTuple	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	HeapTuple	old = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? NULL : td->tg_trigtuple;
	JEvent	   *e;
	Datum		map,
				key,
				rec_ts;

	if (sc->relid != RelationGetRelid(td->tg_relation))
	{
		sc->map = attnum(desc, "map");
		sc->key = attnum(desc, "key");
		sc->value = attnum(desc, "value");
		sc->ts = attnum(desc, "ts");
		sc->tag = is_or ? attnum(desc, "tag") : 0;
		sc->relid = RelationGetRelid(td->tg_relation);
	}
	a_map = sc->map;
	a_key = sc->key;
	a_value = sc->value;
	a_ts = sc->ts;
	a_tag = sc->tag;
	map = col(row, desc, a_map);
	key = col(row, desc, a_key);
	rec_ts = col(row, desc, a_ts);
	if (!is_or && TRIGGER_FIRED_BY_INSERT(td->tg_event) && nevents > 0 &&
		same_record(&events[nevents - 1], map, key, rec_ts))
	{
		/* the second half of a DELETE + INSERT of one record, or its repeat */
		if (events[nevents - 1].type == J_ROW_DELETE)
			nevents--;
		return;
	}
	e = new_event();
	e->map = map;
	e->key = key;
	e->rec_ts = rec_ts;
	e->ts = rec_ts;
	if (is_or)
		e->tag = col(row, desc, a_tag);
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		e->type = is_or ? J_DELETE : J_ROW_DELETE;
		e->prev = col(old, desc, a_value);
		e->ts = PointerGetDatum(tg_clock_now());
		return;
	}
	e->value = col(row, desc, a_value);
	if (old != NULL)
		e->prev = col(old, desc, a_value);
	if (is_or)
		e->type = old == NULL ? J_OR_ADD : J_UPDATE;
	else if (e->value == (Datum) 0)
		e->type = J_DELETE;
	else
		e->type = old == NULL ? J_PUT : J_UPDATE;
}

/*
 * topgun._journal_capture(kind): AFTER INSERT OR UPDATE OR DELETE FOR EACH
 * ROW on topgun.lww ('lww') and topgun.ormap ('or').
 */
Datum
tg_journal_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	MemoryContext old;
	bool		is_or;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("topgun._journal_capture must be an AFTER ... FOR EACH ROW trigger with one argument")));
	is_or = strcmp(td->tg_trigger->tgargs[0], "or") == 0;
	if (written_out)
		elog(ERROR, "topgun: journaled map changed after the journal was written out");
	if (buf_cxt == NULL)
		buf_cxt = AllocSetContextCreate(TopTransactionContext, "topgun journal events",
										ALLOCSET_DEFAULT_SIZES);
	{
		/* the hlc type's oid changes when the extension is re-created */
		Oid			ts_type = TupleDescAttr(RelationGetDescr(td->tg_relation),
											attnum(RelationGetDescr(td->tg_relation), "ts") - 1)->atttypid;

		if (ts_type != hlc_type)
		{
			hlc_type = ts_type;
			hlc_array_type = get_array_type(ts_type);
		}
	}
	old = MemoryContextSwitchTo(buf_cxt);
	capture(td, is_or);
	MemoryContextSwitchTo(old);
	/* a DELETE may still pair with the INSERT that follows it */
	if ((nevents >= tg_journal_buffer_events || buffered_bytes >= BUFFER_MAX_BYTES) &&
		events[nevents - 1].type != J_ROW_DELETE)
		flush_events();
	return PointerGetDatum(NULL);
}

/* --------------------------------------------------------------------------
 * Write-out
 * --------------------------------------------------------------------------
 */
#define INSERT_HEAD \
	"INSERT INTO topgun.journal_events " \
	"(seq, type, map, key, value, previous_value, ts, node_id, metadata) "
#define EVENTS_FROM \
	"FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS e(seq, t, map, key, val, prev, ts, tag) "

/*
 * A flush with OR adds inserts through SQL, which decides them from the
 * key's other records; a generic plan (planning at every commit cost more
 * than the insert).
 */
static SPIPlanPtr
prepare_plan(void)
{
	Oid			types[9] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	JSONBARRAYOID, JSONBARRAYOID, hlc_array_type, TEXTARRAYOID, TEXTOID};
	SPIPlanPtr	p;

	if (insert_plan != NULL && plan_hlc_array_type == hlc_array_type)
		return insert_plan;
	if (insert_plan != NULL)
		SPI_freeplan(insert_plan);
	insert_plan = NULL;
	p = SPI_prepare_cursor("INSERT INTO topgun.journal_events "
						   "(seq, type, map, key, value, previous_value, ts, node_id, metadata) "
						   "SELECT e.seq, CASE e.t WHEN 'A' THEN CASE WHEN p.v IS NULL THEN 'PUT' ELSE 'UPDATE' END "
						   "ELSE e.t END, e.map, e.key, e.val, CASE e.t WHEN 'A' THEN p.v ELSE e.prev END, e.ts, $9, "
						   "CASE WHEN e.tag IS NOT NULL THEN pg_catalog.jsonb_build_object('tag', e.tag) END "
						   "FROM unnest($1, $2, $3, $4, $5, $6, $7, $8) AS e(seq, t, map, key, val, prev, ts, tag) "
						   "LEFT JOIN LATERAL (SELECT o.value FROM topgun.ormap o "
						   "WHERE e.t = 'A' AND o.map = e.map AND o.leaf = topgun.key_leaf(e.key) AND o.key = e.key "
						   "AND o.tag <> e.tag AND o.ts OPERATOR(topgun.<) e.ts "
						   "ORDER BY o.tag COLLATE \"C\" LIMIT 1) p(v) ON true",
						   9, types, CURSOR_OPT_GENERIC_PLAN);
	if (p == NULL || SPI_keepplan(p) != 0)
		elog(ERROR, "topgun: could not prepare the journal insert: %s", SPI_result_code_string(SPI_result));
	insert_plan = p;
	plan_hlc_array_type = hlc_array_type;
	return p;
}

static const char *
type_name(char t)
{
	switch (t)
	{
		case J_PUT:
			return "PUT";
		case J_UPDATE:
			return "UPDATE";
		case J_OR_ADD:
			return "A";
		default:
			return "DELETE";
	}
}

static Datum
array_of(Datum *vals, bool *nulls, int n, Oid elemtype)
{
	int16		len;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &len, &byval, &align);
	return PointerGetDatum(construct_md_array(vals, nulls, 1, dims, lbs, elemtype, len, byval, align));
}

static void
insert_sql(const int64 *seqs)
{
	int			n = nevents;
	Datum	   *cols[8];
	bool	   *nulls[8];
	Datum		args[9];
	Oid			elem[8] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID,
	hlc_type, TEXTOID};
	int			i,
				c;

	for (c = 0; c < 8; c++)
	{
		cols[c] = palloc(n * sizeof(Datum));
		nulls[c] = palloc0(n * sizeof(bool));
	}
	for (i = 0; i < n; i++)
	{
		JEvent	   *e = &events[i];

		cols[0][i] = Int64GetDatum(seqs[i]);
		cols[1][i] = CStringGetTextDatum(type_name(e->type));
		cols[2][i] = e->map;
		cols[3][i] = e->key;
		cols[4][i] = e->value;
		cols[5][i] = e->prev;
		cols[6][i] = e->ts;
		cols[7][i] = e->tag;
		for (c = 4; c < 8; c++)
			nulls[c][i] = c != 6 && cols[c][i] == (Datum) 0;
	}
	for (c = 0; c < 8; c++)
		args[c] = array_of(cols[c], nulls[c], n, elem[c]);
	args[8] = CStringGetTextDatum(tg_node_id());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(prepare_plan(), args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "topgun: writing journal events failed");
	SPI_finish();
}

/* {"tag": tag} */
static Datum
tag_metadata(Datum tag)
{
	JsonbParseState *st = NULL;
	JsonbValue	k,
				v;
	text	   *t = (text *) DatumGetPointer(tag);

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "tag";
	k.val.string.len = 3;
	pushJsonbValue(&st, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = VARDATA(t);
	v.val.string.len = VARSIZE(t) - VARHDRSZ;
	pushJsonbValue(&st, WJB_VALUE, &v);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)));
}

/*
 * Every event already decided: insert the rows directly, the way the
 * logical-replication apply worker does (the executor start-up of an
 * INSERT ... SELECT was most of a small transaction's journal cost).
 */
static void
insert_direct(Oid relid, const int64 *seqs)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	EState	   *estate = CreateExecutorState();
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot;
	Datum		node = CStringGetTextDatum(tg_node_id());
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	int			a_seq = attnum(desc, "seq") - 1,
				a_type = attnum(desc, "type") - 1,
				a_map = attnum(desc, "map") - 1,
				a_key = attnum(desc, "key") - 1,
				a_value = attnum(desc, "value") - 1,
				a_prev = attnum(desc, "previous_value") - 1,
				a_ts = attnum(desc, "ts") - 1,
				a_node = attnum(desc, "node_id") - 1,
				a_meta = attnum(desc, "metadata") - 1,
				a_at = attnum(desc, "recorded_at") - 1;
	int			i;

	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(rri, false);
	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	for (i = 0; i < nevents; i++)
	{
		JEvent	   *e = &events[i];
		Datum	   *v;
		bool	   *isnull;

		ExecClearTuple(slot);
		v = slot->tts_values;
		isnull = slot->tts_isnull;
		memset(isnull, true, desc->natts * sizeof(bool));
		v[a_seq] = Int64GetDatum(seqs[i]);
		v[a_type] = CStringGetTextDatum(type_name(e->type));
		v[a_map] = e->map;
		v[a_key] = e->key;
		v[a_value] = e->value;
		v[a_prev] = e->prev;
		v[a_ts] = e->ts;
		v[a_node] = node;
		v[a_at] = now;
		isnull[a_seq] = isnull[a_type] = isnull[a_map] = isnull[a_key] = false;
		isnull[a_ts] = isnull[a_node] = isnull[a_at] = false;
		isnull[a_value] = e->value == (Datum) 0;
		isnull[a_prev] = e->prev == (Datum) 0;
		if (e->tag != (Datum) 0)
		{
			v[a_meta] = tag_metadata(e->tag);
			isnull[a_meta] = false;
		}
		ExecStoreVirtualTuple(slot);
		ExecSimpleRelationInsert(rri, estate, slot);
	}
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);	/* unpins the descriptor */
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

typedef struct WriteArgs
{
	Oid			seq;
	Oid			events;
} WriteArgs;

static void
write_rows(void *arg)
{
	WriteArgs  *w = arg;
	int64	   *seqs = palloc(nevents * sizeof(int64));
	bool		or_adds = false;
	int			i;

	tg_journal_take_numbers(w->seq, seqs, nevents);
	for (i = 0; i < nevents; i++)
		or_adds |= events[i].type == J_OR_ADD;
	if (or_adds)
		insert_sql(seqs);
	else
		insert_direct(w->events, seqs);
}

static void
flush_events(void)
{
	WriteArgs	w;

	if (nevents == 0)
		return;
	w.seq = tg_journal_relid("journal_seq", false);
	w.events = tg_journal_relid("journal_events", false);
	tg_journal_as_owner(w.events, write_rows, &w);
	wrote_any = true;
	nevents = 0;
	buffered_bytes = 0;
	MemoryContextReset(buf_cxt);
	events = NULL;
	cap = 0;
}

static void
xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (nevents > 0)
			{
				/* after the last statement: take a snapshot for the insert */
				CommandCounterIncrement();
				PushActiveSnapshot(GetTransactionSnapshot());
				flush_events();
				PopActiveSnapshot();
			}
			written_out = true;
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (nevents > 0 || wrote_any)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that changed a journaled map"),
						 errdetail("Its journal events would hold the journal horizon until COMMIT PREPARED.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			tg_journal_release();
			reset_buffer();
			break;
		default:
			break;
	}
}

static void
subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	int			nest;

	if (nevents == 0)
		return;
	nest = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (nevents > 0 && events[nevents - 1].nest >= nest)
			nevents--;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		int			i = nevents;

		while (i > 0 && events[i - 1].nest >= nest)
			events[--i].nest = nest - 1;
	}
}

void
tg_journal_events_init(void)
{
	RegisterXactCallback(xact_cb, NULL);
	RegisterSubXactCallback(subxact_cb, NULL);
}
