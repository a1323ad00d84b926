/*
 * index_build.c — the index builder: a dynamic background worker that
 * builds and drops the field indexes of topgun.field_indexes
 * (src/sql/57_indexes.sql) with CREATE / DROP INDEX CONCURRENTLY, so that
 * writes to the record tables go on during a build.
 *
 * topgun.create_index / drop_index only change the registry row and ask for
 * a builder at commit (tg_index_launch_at_commit: the row must be visible
 * to it).  A builder connects to the database it was started for, waits for
 * its turn on a session advisory lock (one builder per database at a time:
 * two concurrent builds on one table wait for each other's snapshots), then
 * works through every pending row, oldest first, until a round makes no
 * progress.  The statements come from topgun._index_steps and run as
 * top-level utility statements outside any transaction block, as
 * exec_simple_query runs them (CREATE INDEX CONCURRENTLY commits and starts
 * transactions itself); the result goes back through topgun._index_finish.
 * A failed build drops the invalid index it left and records the error.
 *
 * The builder runs as the bootstrap superuser (it must own the record
 * tables' indexes); it only ever runs the fixed statement shapes of
 * _index_steps, whose names and literals are quoted there.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "exec/index_build.h"

/* the builder's advisory lock: pg_locks classid, objid (objsubid 2) */
#define TG_INDEX_LOCK_KEY1 1952999777u
#define TG_INDEX_LOCK_KEY2 1u

/* a pending registry row */
typedef struct Job
{
	char	   *map;
	char	   *fields;			/* the text[] key in its text form: {cat,n} */
	char	   *state;
	char	   *label;			/* field: 'cat, n' (messages) */
} Job;

extern PGDLLEXPORT void tg_index_build_main(Datum arg);

PG_FUNCTION_INFO_V1(tg_index_launch);
PG_FUNCTION_INFO_V1(tg_index_launch_at_commit);

static bool launch_pending = false;
static bool xact_cb_registered = false;

/* ------------------------------------------------------------ launching */

static bool
launch_builder(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "topgun");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "tg_index_build_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "topgun index builder");
	snprintf(w.bgw_type, BGW_MAXLEN, "topgun index builder");
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	w.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&w, NULL);
}

static void
index_xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (launch_pending)
			{
				launch_pending = false;
				if (!launch_builder())
					ereport(WARNING,
							(errmsg("topgun: could not start the index builder (max_worker_processes too low?)"),
							 errhint("CALL topgun.index_wait(map, field) starts it again.")));
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared row is committed elsewhere: index_wait takes it up */
			launch_pending = false;
			break;
		default:
			break;
	}
}

Datum
tg_index_launch_at_commit(PG_FUNCTION_ARGS)
{
	if (!xact_cb_registered)
	{
		RegisterXactCallback(index_xact_cb, NULL);
		xact_cb_registered = true;
	}
	launch_pending = true;
	PG_RETURN_VOID();
}

Datum
tg_index_launch(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(launch_builder());
}

/*
 * Start a builder when rows of this database are pending and none runs (a
 * crash or restart interrupted it).  The session executor calls it once at
 * its start, in its own transaction; a database without the registry (no
 * extension yet, an older version) has nothing to resume.  Never throws.
 */
void
tg_index_resume(void)
{
	MemoryContext old = CurrentMemoryContext;

	PG_TRY();
	{
		bool		pending = false;
		bool		isnull;

		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_execute("SELECT to_regclass('topgun.field_indexes') IS NOT NULL"
						" AND to_regprocedure('topgun._index_builder_running()') IS NOT NULL",
						true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		if (pending)
		{
			pending = false;
			if (SPI_execute("SELECT EXISTS (SELECT 1 FROM topgun.field_indexes WHERE state IN ('building', 'dropping'))"
							" AND NOT topgun._index_builder_running()", true, 1) == SPI_OK_SELECT && SPI_processed == 1)
				pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		if (pending)
		{
			if (launch_builder())
				ereport(LOG, (errmsg("topgun: resuming interrupted field index builds")));
			else
				ereport(WARNING,
						(errmsg("topgun: could not start the index builder (max_worker_processes too low?)"),
						 errhint("CALL topgun.index_wait(map, field) starts it again.")));
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
}

/* -------------------------------------------------------------- builder */

/* Run one SQL statement through SPI in a transaction of its own. */
static void
run_spi(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0) < 0)
		elog(ERROR, "topgun index builder: SPI failed: %s", sql);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Rows of a one-column text query, copied into cxt (one transaction).
 */
static List *
query_texts(MemoryContext cxt, const char *sql, int nargs, Oid *types, Datum *values, int ncols)
{
	List	   *out = NIL;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun index builder: SPI failed: %s", sql);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		char	  **row = palloc0(sizeof(char *) * ncols);

		for (int c = 0; c < ncols; c++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);

			row[c] = v ? pstrdup(v) : NULL;
		}
		out = lappend(out, row);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return out;
}

/*
 * Run a utility statement at top level, outside a transaction block, the
 * way exec_simple_query does: CREATE / DROP INDEX CONCURRENTLY commit and
 * start transactions themselves, so the parse tree lives in cxt (not in a
 * transaction's memory).
 */
static void
run_toplevel(MemoryContext cxt, const char *sql)
{
	MemoryContext old;
	List	   *parsed;
	RawStmt    *raw;
	PlannedStmt *ps;

	StartTransactionCommand();
	old = MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_RUNNING, sql);
	parsed = pg_parse_query(sql);
	if (list_length(parsed) != 1)
		elog(ERROR, "topgun index builder: expected one statement: %s", sql);
	raw = linitial_node(RawStmt, parsed);
	ps = makeNode(PlannedStmt);
	ps->commandType = CMD_UTILITY;
	ps->canSetTag = false;
	ps->utilityStmt = raw->stmt;
	ps->stmt_location = raw->stmt_location;
	ps->stmt_len = raw->stmt_len;
	PushActiveSnapshot(GetTransactionSnapshot());
	ProcessUtility(ps, sql, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL, None_Receiver, NULL);
	/* the concurrent forms popped it (and committed); IF NOT EXISTS did not */
	if (ActiveSnapshotSet())
		PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
finish_job(const Job *j, const char *err)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', err ? ' ' : 'n'};

	values[0] = CStringGetTextDatum(j->map);
	values[1] = CStringGetTextDatum(j->fields);
	values[2] = CStringGetTextDatum(j->state);
	values[3] = err ? CStringGetTextDatum(err) : (Datum) 0;
	run_spi("SELECT topgun._index_finish($1, $2::text[], $3, $4)", 4, types, values, nulls);
}

static List *
job_steps(MemoryContext cxt, const Job *j, bool cleanup)
{
	Oid			types[3] = {TEXTOID, TEXTOID, BOOLOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(j->map);
	values[1] = CStringGetTextDatum(j->fields);
	values[2] = BoolGetDatum(cleanup);
	return query_texts(cxt, "SELECT s FROM topgun._index_steps($1, $2::text[], $3) s", 3, types, values, 1);
}

/*
 * One job: its statements, then its result.  True when it made progress
 * (succeeded, or a build ended 'failed'); false when a drop failed and the
 * row stays 'dropping'.
 */
static bool
run_job(MemoryContext cxt, const Job *j)
{
	MemoryContext jobcxt = AllocSetContextCreate(cxt, "topgun index job", ALLOCSET_DEFAULT_SIZES);
	char	   *err = NULL;
	bool		progress = true;

	PG_TRY();
	{
		ListCell   *lc;
		List	   *steps = job_steps(jobcxt, j, false);

		foreach(lc, steps)
			run_toplevel(jobcxt, ((char **) lfirst(lc))[0]);
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(jobcxt);
		ed = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		err = ed->message ? pstrdup(ed->message) : pstrdup("unknown error");
		ereport(LOG,
				(errmsg("topgun index builder: %s of map \"%s\" field \"%s\" failed: %s",
						strcmp(j->state, "dropping") == 0 ? "drop" : "build", j->map, j->label, err)));
	}
	PG_END_TRY();

	if (err && strcmp(j->state, "building") == 0)
	{
		/* drop what the failed build left invalid; the row says why */
		ListCell   *lc;
		List	   *steps = job_steps(jobcxt, j, true);

		foreach(lc, steps)
			run_toplevel(jobcxt, ((char **) lfirst(lc))[0]);
	}
	else if (err)
		progress = false;
	finish_job(j, err);
	MemoryContextDelete(jobcxt);
	return progress;
}

void
tg_index_build_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	LOCKTAG		tag;
	MemoryContext cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("topgun index builder");
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
	cxt = AllocSetContextCreate(TopMemoryContext, "topgun index builder", ALLOCSET_DEFAULT_SIZES);

	/*
	 * One builder at a time per database.  Waiting here holds no snapshot,
	 * so the running builder's CREATE INDEX CONCURRENTLY does not wait for
	 * this one.
	 */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, TG_INDEX_LOCK_KEY1, TG_INDEX_LOCK_KEY2, 2);
	StartTransactionCommand();
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
	CommitTransactionCommand();

	for (;;)
	{
		List	   *rows;
		ListCell   *lc;
		bool		progress = false;

		MemoryContextReset(cxt);
		rows = query_texts(cxt,
						   "SELECT map, fields::text, state, field FROM topgun.field_indexes"
						   " WHERE state IN ('building', 'dropping') ORDER BY created_at, map, fields",
						   0, NULL, NULL, 4);
		if (rows == NIL)
			break;
		foreach(lc, rows)
		{
			char	  **r = lfirst(lc);
			Job			j = {r[0], r[1], r[2], r[3]};

			CHECK_FOR_INTERRUPTS();
			if (run_job(cxt, &j))
				progress = true;
		}
		if (!progress)
			break;				/* only drops that keep failing are left */
	}
	proc_exit(0);
}
