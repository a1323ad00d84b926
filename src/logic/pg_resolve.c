/*
 * pg_resolve.c — topgun.resolve_ops: the conflict-resolver chains for a
 * batch of client LWW ops, before they are applied (docs/resolvers.md).
 *
 * tg_resolve_batch is the chain on decoded ops (the session executor calls
 * it directly, with the values it already parsed); resolve_ops is it on
 * arrays.  The resolver list is read once; ops no resolver covers are
 * accepted as they are (LWW decides when they are applied); the stored
 * records of the others are read by primary-key probes (read_stored); built-ins
 * run natively, registered SQL functions through topgun._run_resolver (which
 * turns their errors into a skip).  Chain: priority order, failing
 * resolvers skipped, the first accept / merge / reject / local ends it, else
 * the implicit builtin:lww.
 */
#include "postgres.h"

#include "core/hlc.h"
#include "core/lww_merge.h"
#include "logic/logic_pg.h"
#include "logic/resolvers.h"
#include "merkle/fnv.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(tg_resolve_ops);

#define MAX_OPS 100000

typedef struct Resolver
{
	text	   *map_pattern;
	text	   *key_pattern;	/* NULL: every key */
	int			builtin;		/* >= 0, or a function: */
	Oid			fn;
} Resolver;

static const char *const outcome_names[] = {"accept", "reject", "merge", "local"};

static bool
glob_text(text *pat, text *s)
{
	return tg_res_glob(VARDATA_ANY(pat), VARSIZE_ANY_EXHDR(pat), VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s));
}

/*
 * The resolver list, kept per backend until topgun.resolvers changes: its
 * statement trigger (topgun._invalidate_cache) sends a relcache
 * invalidation, which every backend sees before its next transaction
 * reads it (and this one at its next command, or at its abort).  Reading it
 * per call was a statement per group commit writer.  lists[0] has every
 * resolver (client writes, and which maps have any), lists[1] the
 * apply_to_sql ones (SQL writes).
 */
typedef struct ResolverList
{
	bool		valid;
	int			n;
	Resolver   *rs;
	MemoryContext cxt;			/* rs and its texts */
} ResolverList;

static ResolverList lists[2];	/* [sql_writes] */
static Oid	resolvers_rel = InvalidOid;

void
tg_resolvers_forget(void)
{
	lists[0].valid = lists[1].valid = false;
}

static void
resolvers_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == resolvers_rel)
		tg_resolvers_forget();
}

/* The list, read again if it changed.  In a transaction. */
static const ResolverList *
resolver_list(bool sql_writes)
{
	/* kept: parsing and planning it per load was a statement per group commit */
	static SPIPlanPtr plans[2];
	ResolverList *l = &lists[sql_writes];
	MemoryContext old;

	if (l->cxt == NULL)
	{
		if (lists[!sql_writes].cxt == NULL)
			CacheRegisterRelcacheCallback(resolvers_changed, (Datum) 0);
		l->cxt = AllocSetContextCreate(TopMemoryContext, "topgun resolver list", ALLOCSET_SMALL_SIZES);
	}
	if (l->valid)
		return l;
	resolvers_rel = get_relname_relid("resolvers", get_namespace_oid("topgun", false));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plans[sql_writes] == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql_writes
									? "SELECT name, map_pattern, key_pattern, fn::oid FROM topgun.resolvers "
									"WHERE apply_to_sql ORDER BY priority DESC, seq"
									: "SELECT name, map_pattern, key_pattern, fn::oid FROM topgun.resolvers "
									"ORDER BY priority DESC, seq", 0, NULL);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "could not prepare the resolver list: %s", SPI_result_code_string(SPI_result));
		plans[sql_writes] = p;
	}
	if (SPI_execute_plan(plans[sql_writes], NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading topgun.resolvers failed");
	MemoryContextReset(l->cxt);
	old = MemoryContextSwitchTo(l->cxt);
	l->n = (int) SPI_processed;
	l->rs = palloc(sizeof(Resolver) * Max(l->n, 1));
	for (int i = 0; i < l->n; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *name = DatumGetTextPP(SPI_getbinval(t, d, 1, &isnull));
		Datum		v;

		l->rs[i].map_pattern = DatumGetTextPCopy(SPI_getbinval(t, d, 2, &isnull));
		v = SPI_getbinval(t, d, 3, &isnull);
		l->rs[i].key_pattern = isnull ? NULL : DatumGetTextPCopy(v);
		v = SPI_getbinval(t, d, 4, &isnull);
		l->rs[i].fn = isnull ? InvalidOid : DatumGetObjectId(v);
		l->rs[i].builtin = isnull ? tg_res_find(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)) : -1;
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	l->valid = true;
	return l;
}

bool
tg_resolvers_cover_map(const char *map, size_t len)
{
	const ResolverList *l = resolver_list(false);

	for (int i = 0; i < l->n; i++)
		if (tg_res_glob(VARDATA_ANY(l->rs[i].map_pattern), VARSIZE_ANY_EXHDR(l->rs[i].map_pattern), map, len))
			return true;
	return false;
}

/*
 * The caller's own copy of the list: a user resolver may change
 * topgun.resolvers and write to a map with resolvers, which reloads the
 * list while its caller still walks the old one.
 */
static Resolver *
load_resolvers(bool sql_writes, int *n)
{
	const ResolverList *l = resolver_list(sql_writes);
	Resolver   *rs = palloc(sizeof(Resolver) * Max(l->n, 1));

	for (int i = 0; i < l->n; i++)
	{
		rs[i] = l->rs[i];
		rs[i].map_pattern = DatumGetTextPCopy(PointerGetDatum(l->rs[i].map_pattern));
		if (l->rs[i].key_pattern)
			rs[i].key_pattern = DatumGetTextPCopy(PointerGetDatum(l->rs[i].key_pattern));
	}
	*n = l->n;
	return rs;
}

/* A registered function resolver; TG_RES_THROW when it failed or answered nonsense. */
static TgResAction
run_user(Oid fn, Jsonb *local, Jsonb *remote, text *key, text *map, text *identity,
		 Jsonb **value, const char **reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {OIDOID, JSONBOID, JSONBOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		a[6];
	char		n[6] = {' ', local ? ' ' : 'n', remote ? ' ' : 'n', ' ', ' ', identity ? ' ' : 'n'};
	bool		isnull;
	Datum		d;
	char	   *act;

	if (plan == NULL)
	{
		plan = SPI_prepare("SELECT action, value, reason FROM topgun._run_resolver($1::regprocedure, $2, $3, $4, $5, $6)",
						   6, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the resolver call: %s", SPI_result_code_string(SPI_result));
	}
	a[0] = ObjectIdGetDatum(fn);
	a[1] = PointerGetDatum(local);
	a[2] = PointerGetDatum(remote);
	a[3] = PointerGetDatum(key);
	a[4] = PointerGetDatum(map);
	a[5] = PointerGetDatum(identity);
	if (SPI_execute_plan(plan, a, n, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return TG_RES_THROW;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return TG_RES_THROW;
	act = TextDatumGetCString(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*value = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	*reason = isnull ? NULL : TextDatumGetCString(d);
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < 4; i++)
		if (strcmp(act, outcome_names[i]) == 0)
			return (TgResAction) i;
	return TG_RES_THROW;
}

static void
deconstruct(ArrayType *arr, Oid type, Datum **d, bool **nulls, int *n)
{
	int16		len;
	bool		byval;
	char		align;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("resolve_ops takes one-dimensional arrays")));
	get_typlenbyvalalign(type, &len, &byval, &align);
	deconstruct_array(arr, type, len, byval, align, d, nulls, n);
}

/* topgun.now_ms(): ms since the epoch at statement start, rounded as its numeric → bigint cast */
static int64
statement_ms(void)
{
	int64		us = GetCurrentStatementStartTimestamp() +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return us >= 0 ? (us + 500) / 1000 : -((-us + 500) / 1000);
}

/* Attribute number of topgun.lww's column `name`, which must have type `type`. */
static AttrNumber
lww_column(Relation rel, const char *name, Oid type)
{
	TupleDesc	d = RelationGetDescr(rel);

	for (int i = 0; i < d->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(d, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0 && a->atttypid == type)
			return a->attnum;
	}
	elog(ERROR, "topgun.lww has no column %s of the expected type", name);
	return InvalidAttrNumber;
}

/*
 * The stored records of the ops the chains cover (matched[i]): has_ts[i] (a
 * record exists, tombstones too), cmp[i] (sign of compare(op ts, stored
 * ts); 1 without a record), local[i] (the live value, NULL for absent,
 * tombstoned or expired at statement start).  One probe of topgun.lww's
 * primary key (map, leaf, key) per op, straight through the index with the
 * active snapshot -- what the SQL read (a join over unnest) did, without the
 * executor, the arrays and the copied result rows: it was half of a
 * resolved write's extra cost.  The caller's privileges are checked as that
 * SELECT would.
 */
static void
read_stored(TgResolveItem *ops, int n, const bool *matched, bool *has_ts, int *cmp, Jsonb **local)
{
	static const char *const cols[] = {"map", "key", "leaf", "ts", "value", "ttl_ms"};
	Oid			relid = get_relname_relid("lww", get_namespace_oid("topgun", false));
	Oid			hlc = tg_lww_hlc_type();
	Relation	rel,
				idx;
	AttrNumber	att_map,
				att_leaf,
				att_key,
				att_ts,
				att_value,
				att_ttl;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		now = statement_ms();

	if (!OidIsValid(relid))
		elog(ERROR, "topgun.lww does not exist");
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		for (int c = 0; c < lengthof(cols); c++)
			if (pg_attribute_aclcheck(relid, get_attnum(relid, cols[c]), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "lww");
	rel = table_open(relid, AccessShareLock);
	att_map = lww_column(rel, "map", TEXTOID);
	att_key = lww_column(rel, "key", TEXTOID);
	att_leaf = lww_column(rel, "leaf", INT2OID);
	att_ts = lww_column(rel, "ts", hlc);
	att_value = lww_column(rel, "value", JSONBOID);
	att_ttl = lww_column(rel, "ttl_ms", INT8OID);
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		elog(ERROR, "topgun.lww has no primary key");
	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	if (idx->rd_index->indnkeyatts != 3 || idx->rd_index->indkey.values[0] != att_map ||
		idx->rd_index->indkey.values[1] != att_leaf || idx->rd_index->indkey.values[2] != att_key)
		elog(ERROR, "the primary key of topgun.lww is not (map, leaf, key)");
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, GetActiveSnapshot(), 3, 0);
	for (int i = 0; i < n; i++)
	{
		ScanKeyData key[3];
		int			leaf;
		bool		isnull;

		if (!matched[i])
			continue;
		leaf = tg_leaf_of_hash(tg_hash_string(VARDATA_ANY(ops[i].key), VARSIZE_ANY_EXHDR(ops[i].key)));
		ScanKeyEntryInitialize(&key[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(ops[i].map));
		ScanKeyEntryInitialize(&key[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   InvalidOid, F_INT2EQ, Int16GetDatum((int16) leaf));
		ScanKeyEntryInitialize(&key[2], 0, 3, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[2], F_TEXTEQ, PointerGetDatum(ops[i].key));
		index_rescan(scan, key, 3, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			TgHlc	   *ts = DatumGetTgHlcP(slot_getattr(slot, att_ts, &isnull));
			Datum		v = slot_getattr(slot, att_value, &isnull);
			Datum		ttl;
			bool		ttlnull;

			has_ts[i] = true;
			cmp[i] = tg_hlc_cmp(DatumGetTgHlcP(ops[i].ts), ts);
			ttl = slot_getattr(slot, att_ttl, &ttlnull);
			if (!isnull && (ttlnull || ts->millis + DatumGetInt64(ttl) >= now))
				local[i] = DatumGetJsonbPCopy(v);	/* the buffer is released */
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	/* locks are kept until the end of the transaction, as the executor does */
	index_close(idx, NoLock);
	table_close(rel, NoLock);
}

void
tg_resolve_batch(TgResolveItem *ops, int n, text *identity, bool is_server, bool sql_writes)
{
	MemoryContext outcxt = CurrentMemoryContext;
	MemoryContext opcxt;
	Resolver   *rs;
	int			nres;
	bool	   *matched;
	bool	   *has_ts;
	int		   *cmp;
	Jsonb	  **local;
	int			nmatched = 0;

	if (n > MAX_OPS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("at most %d ops per call", MAX_OPS)));
	for (int i = 0; i < n; i++)
	{
		ops[i].action = TG_RES_ACCEPT;
		ops[i].merged = NULL;
		ops[i].reason = NULL;
	}
	if (n == 0)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rs = load_resolvers(sql_writes, &nres);

	/*
	 * Ops that no resolver covers are accepted as they are (LWW decides when
	 * they are applied); only the others need their stored record.
	 */
	matched = palloc0(sizeof(bool) * n);
	has_ts = palloc0(sizeof(bool) * n);
	cmp = palloc(sizeof(int) * n);
	local = palloc0(sizeof(Jsonb *) * n);
	for (int i = 0; i < n; i++)
	{
		cmp[i] = 1;
		for (int r = 0; r < nres && !matched[i]; r++)
			matched[i] = glob_text(rs[r].map_pattern, ops[i].map) &&
				(rs[r].key_pattern == NULL || glob_text(rs[r].key_pattern, ops[i].key));
		nmatched += matched[i];
		/* a timestamp is needed only for an op the chains cover */
		if (matched[i] && ops[i].ts == (Datum) 0)
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("ts must not contain NULL")));
	}
	if (nmatched > 0)
		read_stored(ops, n, matched, has_ts, cmp, local);

	/* what one op allocates is dropped after its answer is copied out */
	opcxt = AllocSetContextCreate(CurrentMemoryContext, "topgun resolve_ops op", ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < n; i++)
	{
		TgResolveItem *op = &ops[i];
		TgResAction act = TG_RES_THROW;
		Jsonb	   *value = NULL;
		const char *reason = NULL;
		MemoryContext old;

		if (!matched[i])
			continue;			/* accept */
		old = MemoryContextSwitchTo(opcxt);
		for (int r = 0; r < nres && act == TG_RES_THROW; r++)
		{
			if (!glob_text(rs[r].map_pattern, op->map) || (rs[r].key_pattern && !glob_text(rs[r].key_pattern, op->key)))
				continue;
			if (rs[r].builtin >= 0)
				act = tg_logic_resolve_builtin(rs[r].builtin, local[i], has_ts[i], op->value, cmp[i], op->key,
											   identity, is_server, &value, &reason);
			else if (OidIsValid(rs[r].fn))
				act = run_user(rs[r].fn, local[i], op->value, op->key, op->map, identity, &value, &reason);
		}
		if (act == TG_RES_THROW)
		{
			/* the implicit builtin:lww at the end of every chain */
			act = (!has_ts[i] || cmp[i] > 0) ? TG_RES_ACCEPT : TG_RES_LOCAL;
			reason = NULL;
		}
		MemoryContextSwitchTo(outcxt);
		op->action = act;
		if (act == TG_RES_MERGE && op->value && value)
		{
			/* a delete stays a delete */
			op->merged = palloc(VARSIZE(value));
			memcpy(op->merged, value, VARSIZE(value));
		}
		if (act == TG_RES_REJECT && reason)
			op->reason = pstrdup(reason);
		MemoryContextSwitchTo(old);
		MemoryContextReset(opcxt);
	}
	SPI_finish();
}

/*
 * topgun.resolve_ops(maps text[], keys text[], vals jsonb[], ts hlc[],
 *   identity text, roles text[], sql_writes bool)
 *   RETURNS TABLE (idx int, outcome text, value jsonb, reason text)
 */
Datum
tg_resolve_ops(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *maps,
			   *keys,
			   *vals,
			   *ts;
	bool	   *mn,
			   *kn,
			   *vn,
			   *tn;
	int			nm,
				nkeys,
				nv,
				nts;
	text	   *identity = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	bool		is_server = false;
	bool		sql_writes = !PG_ARGISNULL(6) && PG_GETARG_BOOL(6);
	TgResolveItem *ops;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("maps, keys, vals and ts must not be NULL")));
	InitMaterializedSRF(fcinfo, 0);
	deconstruct(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, &maps, &mn, &nm);
	deconstruct(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, &keys, &kn, &nkeys);
	deconstruct(PG_GETARG_ARRAYTYPE_P(2), JSONBOID, &vals, &vn, &nv);
	if (nm != nkeys || nm != nv || nm != ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(3)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(3))))
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("maps, keys, vals and ts must have the same length")));
	if (nm > MAX_OPS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("at most %d ops per call", MAX_OPS)));
	for (int i = 0; i < nm; i++)
		if (mn[i] || kn[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("maps and keys must not contain NULL")));
	if (!PG_ARGISNULL(5))
	{
		Datum	   *roles;
		bool	   *rn;
		int			nr;

		deconstruct(PG_GETARG_ARRAYTYPE_P(5), TEXTOID, &roles, &rn, &nr);
		for (int i = 0; i < nr; i++)
			is_server |= !rn[i] && strcmp(TextDatumGetCString(roles[i]), "server") == 0;
	}
	deconstruct(PG_GETARG_ARRAYTYPE_P(3), ARR_ELEMTYPE(PG_GETARG_ARRAYTYPE_P(3)), &ts, &tn, &nts);
	ops = palloc0(sizeof(TgResolveItem) * Max(nm, 1));
	for (int i = 0; i < nm; i++)
	{
		ops[i].map = DatumGetTextPP(maps[i]);
		ops[i].key = DatumGetTextPP(keys[i]);
		ops[i].value = vn[i] ? NULL : DatumGetJsonbP(vals[i]);
		ops[i].ts = tn[i] ? (Datum) 0 : ts[i];
	}
	tg_resolve_batch(ops, nm, identity, is_server, sql_writes);
	for (int i = 0; i < nm; i++)
	{
		Datum		out[4];
		bool		on[4] = {false, false, true, true};
		TgResAction act = ops[i].action;

		out[0] = Int32GetDatum((int32) (i + 1));
		out[1] = CStringGetTextDatum(outcome_names[act]);
		if (act == TG_RES_ACCEPT && ops[i].value)
			out[2] = PointerGetDatum(ops[i].value), on[2] = false;
		else if (ops[i].merged)
			out[2] = PointerGetDatum(ops[i].merged), on[2] = false;
		if (act == TG_RES_REJECT && ops[i].reason)
			out[3] = CStringGetTextDatum(ops[i].reason), on[3] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, on);
	}
	return (Datum) 0;
}
