/*
 * gc.c — the tombstone GC schedule and GC_PRUNE (PROTOCOL-ADDENDUM §A7,
 * docs/gc.md), in the session executor: every topgun.gc_interval it asks a
 * reader executor to run topgun.gc_run() batch after batch (each its own
 * transaction, so the session loop and the writers carry on), with the
 * oldest activity of any connected client as the floor; when the pass is
 * done, every open socket gets GC_PRUNE {olderThan} so clients drop the
 * same tombstones.  topgun.gc_horizon also decides SYNC_RESET_REQUIRED
 * (sync.c), so a client offline longer than the horizon resets.  Every
 * minute a reader also trims the event journal to its retention.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "exec/exec.h"
#include "exec/gc.h"
#include "exec/readers.h"
#include "journal/journal.h"

static int64 next_run_ms = -1;
static bool running = false;
static int	plan_run = -1;

/* Oldest last activity (ms) of the connected clients; now if none. */
static int64
client_floor(void)
{
	int64		floor = tg_now_ms();

	for (TgConn *c = tg_conns; c; c = c->next)
		if (!c->closed && c->last_active_ms > 0 && c->last_active_ms < floor)
			floor = c->last_active_ms;
	return floor;
}

static void
broadcast(const char *msg, Size len)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;

	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
		if (rec.kind == TG_REP_FRAME && rec.len > 0)
			for (TgConn *c = tg_conns; c; c = c->next)
				if (!c->closed && !c->closing)
					tg_conn_send(c, (const unsigned char *) p, rec.len);
}

static void submit(void);

/* One batch done: another, or the pass is over (its GC_PRUNE frame). */
static void
batch_done(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	TgRecIter	it;
	TgRec		rec;
	const char *p;
	bool		more = false;

	if (msg == NULL)
	{
		ereport(LOG, (errmsg("topgun: tombstone GC failed: %s", err->message)));
		running = false;
		return;
	}
	tg_rec_iter_init(&it, msg, len);
	while (tg_rec_next(&it, &rec, &p))
		if (rec.kind == TG_REP_ROWS)
			more = true;		/* "not done yet" */
	if (more)
	{
		submit();
		return;
	}
	broadcast(msg, len);
	running = false;
}

static void
submit(void)
{
	int64		floor = client_floor();

	running = true;
	tg_readers_submit(NULL, false, TG_REQ_GC, &floor, sizeof(floor), batch_done, NULL);
}

static void
trimmed(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	if (msg == NULL)
		ereport(LOG, (errmsg("topgun: journal retention trim failed: %s", err->message)));
}

/* Once per loop iteration: start a GC pass when one is due; trim the journal every minute. */
void
tg_gc_tick(void)
{
	static int64 next_trim_ms = 0;

	static int	interval_s = -1;
	int64		now = tg_mono_ms();

	if (tg_ready && now >= next_trim_ms)
	{
		int64		none = -1;

		next_trim_ms = now + 60 * 1000;
		tg_readers_submit(NULL, false, TG_REQ_GC, &none, sizeof(none), trimmed, NULL);
	}
	if (tg_gc_interval_s <= 0 || !tg_ready)
	{
		next_run_ms = -1;
		return;
	}
	if (next_run_ms < 0 || interval_s != tg_gc_interval_s)
	{
		/* the first pass one interval after the start (or a new setting) */
		interval_s = tg_gc_interval_s;
		next_run_ms = now + (int64) interval_s * 1000;
	}
	if (running || now < next_run_ms)
		return;
	next_run_ms = now + (int64) tg_gc_interval_s * 1000;
	submit();
}

/* A client's last activity (not PINGs: an idle client holds the horizon back). */
void
tg_gc_note_activity(TgConn *c)
{
	c->last_active_ms = tg_now_ms();
}

/*
 * Reader side of TG_REQ_GC {client floor ms}: one batch of topgun.gc_run();
 * replies TG_REP_ROWS (empty) while the pass goes on, and the GC_PRUNE
 * message once it is done (nothing when no horizon is safe yet).
 */
void
tg_read_gc(TgConn *c, const char *payload, size_t len)
{
	Oid			types[1] = {INT8OID};
	Datum		arg;
	bool		isnull;
	bool		done;
	Datum		older;

	if (len != sizeof(int64))
		elog(ERROR, "topgun: malformed GC request");
	{
		int64		floor;

		memcpy(&floor, payload, sizeof(floor));
		if (floor < 0)
		{
			/* the journal's retention (topgun.journal_retention_*) instead */
			if (SPI_execute("SELECT topgun.journal_trim()", false, 1) != SPI_OK_SELECT)
				elog(ERROR, "topgun: journal_trim failed");
			tg_ipc_put(tg_exec_out, TG_REP_FRAME, c->id, NULL, 0);
			return;
		}
		arg = Int64GetDatum(floor);
	}
	if (SPI_execute_plan(tg_live_plan(&plan_run,
									  "SELECT r.pass_done, CASE WHEN r.pass_done THEN (SELECT i.older_than FROM topgun.gc_prune_info() i) END "
									  "FROM topgun.gc_run($1) r", 1, types),
						 &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "topgun: gc_run failed");
	done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	older = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!done)
	{
		tg_ipc_put(tg_exec_out, TG_REP_ROWS, c->id, NULL, 0);
		return;
	}
	if (!isnull)
	{
		MpBuf	   *b = tg_buf_begin();

		mp_put_map_header(b, 2);
		mp_put_str(b, "type");
		mp_put_str(b, "GC_PRUNE");
		mp_put_str(b, "payload");
		mp_put_map_header(b, 1);
		mp_put_str(b, "olderThan");
		tg_put_jsonb(b, DatumGetJsonbP(older));
		tg_buf_send(c, b);
	}
	else
		tg_ipc_put(tg_exec_out, TG_REP_FRAME, c->id, NULL, 0);	/* done, nothing to tell */
}
