/*
 * locks.c — distributed locks (LOCK_REQUEST / LOCK_RELEASE, PROTOCOL-ADDENDUM
 * §A3; docs/locks.md) in the session executor, which owns the sessions:
 * the PostgreSQL-free lock manager (src/logic/lockmgr.c) holds names,
 * holders and FIFO waiters; fencing tokens come from blocks reserved
 * durably in topgun.lock_tokens (so they strictly increase per name across
 * releases and restarts); topgun.locks / topgun.lock_release see and act on
 * it through shared memory (src/logic/lock_shm.h).
 *
 * A holder's locks are released when it disconnects (and when the session
 * executor restarts: every connection is closed then).  A waiter that
 * disconnected, or waited longer than the client's 30 s, is never granted.
 * PUT on the resource "lock:<name>" is checked.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "exec/exec.h"
#include "logic/lock_shm.h"
#include "logic/lockmgr.h"

#define CLIENT_WAIT_MS	30000	/* the client stops waiting for a grant after this */

static TgLockMgr *mgr = NULL;
static int	plan_reserve = -1;
static bool dirty = false;		/* publish the table again */

/* Durably raise name's high-water mark by n (own transaction; rare: a block at a time). */
static bool
reserve(void *arg, const char *name, size_t len, uint32_t n, uint64_t *first)
{
	volatile bool ok = false;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		Oid			types[2] = {TEXTOID, INT4OID};
		Datum		args[2];
		bool		isnull;

		tg_txn_begin();
		args[0] = PointerGetDatum(cstring_to_text_with_len(name, (int) len));
		args[1] = Int32GetDatum((int32) n);
		if (SPI_execute_plan(tg_live_plan(&plan_reserve, "SELECT topgun.lock_reserve_tokens($1, $2)", 2, types),
							 args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "topgun: could not reserve lock tokens");
		*first = (uint64_t) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		tg_txn_end();
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		ereport(LOG, (errmsg("topgun: could not reserve fencing tokens for lock \"%.*s\": %s",
							 (int) len, name, e->message)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

static void
send_granted(TgConn *c, const char *rid, size_t rlen, const char *name, size_t nlen, uint64 token)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "LOCK_GRANTED");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3);
	mp_put_str(b, "requestId");
	mp_put_strn(b, rid, rlen);
	mp_put_str(b, "name");
	mp_put_strn(b, name, nlen);
	mp_put_str(b, "fencingToken");
	mp_put_number(b, (double) token);	/* JS-safe, never int64 (PROTOCOL.md 1.4) */
	tg_buf_send(c, b);
}

/* A waiter got the lock (release, expiry, disconnect or operator release of the holder). */
static void
on_grant(void *arg, const TgLockGrant *g)
{
	TgConn	   *c = tg_conn_find(g->owner);

	dirty = true;
	if (c && !c->closed && !c->closing)
		send_granted(c, g->request_id, g->request_id_len, g->name, g->name_len, g->token);
}

static void
ensure(void)
{
	TgLockLimits lim;

	if (mgr)
		return;
	tg_lock_default_limits(&lim);
	lim.max_wait_ms = CLIENT_WAIT_MS;
	mgr = tg_lockmgr_create(&lim, reserve, NULL, on_grant, NULL);
	if (mgr == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	tg_lock_shm_attach();
}

static void
send_released(TgConn *c, TgStr rid, TgStr name, bool ok)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "LOCK_RELEASED");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 3);
	mp_put_str(b, "requestId");
	tg_put_tgstr(b, rid);
	mp_put_str(b, "name");
	tg_put_tgstr(b, name);
	mp_put_str(b, "success");
	mp_put_bool(b, ok);
	tg_buf_send(c, b);
}

void
tg_lock_handle(TgConn *c, TgMessage *m)
{
	int64		now = tg_now_ms();

	ensure();
	if (m->type == TG_MSG_LOCK_REQUEST)
	{
		TgStr		name = m->u.lock_request.name;
		TgStr		rid = m->u.lock_request.request_id;
		char	   *res = psprintf("lock:%.*s", (int) name.len, name.p);
		uint64_t	token = 0;
		TgLockResult r;

		if (!tg_acl_check(c, res, strlen(res), TG_ACT_PUT))
			return;
		r = tg_lockmgr_acquire(mgr, name.p, name.len, c->id, rid.p, rid.len,
							   m->u.lock_request.has_ttl ? (int64) m->u.lock_request.ttl : 0,
							   now, &token);
		dirty = true;
		switch (r)
		{
			case TG_LOCK_GRANTED:
				send_granted(c, rid.p, rid.len, name.p, name.len, token);
				break;
			case TG_LOCK_QUEUED:
				break;			/* LOCK_GRANTED when it is handed over */
			case TG_LOCK_ERR_HELD_LIMIT:
			case TG_LOCK_ERR_WAITER_LIMIT:
			case TG_LOCK_ERR_NAMES_LIMIT:
				c->limit_hits++;
				c->slot_dirty = true;
				tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
				tg_send_error(c, 429, "Lock limit reached");
				break;
			case TG_LOCK_ERR_NAME:
				tg_send_error(c, 400, "Invalid lock name or request id");
				break;
			default:
				tg_send_error(c, 503, "Lock service unavailable; retry");
				break;
		}
	}
	else
	{
		TgStr		name = m->u.lock_release.name;
		TgStr		rid = m->u.lock_release.request_id;
		double		t = m->u.lock_release.fencing_token;
		bool		ok = t >= 1 && t <= (double) TG_LOCK_TOKEN_MAX &&
			tg_lockmgr_release(mgr, name.p, name.len, c->id, (uint64_t) t, now);

		dirty = true;
		if (m->u.lock_release.has_request_id)
			send_released(c, rid, name, ok);
	}
}

void
tg_locks_conn_gone(TgConn *c)
{
	if (mgr == NULL)
		return;
	tg_lockmgr_release_owner(mgr, c->id, tg_now_ms());
	dirty = true;
}

/*
 * Once per loop iteration: lease expiry and the published table (after a
 * change, and every 100 ms for the operator's release requests).
 */
void
tg_locks_tick(void)
{
	static int64 last_sync = 0;
	int64		now = tg_now_ms();

	if (mgr == NULL)
		return;
	if (tg_lockmgr_next_expiry(mgr) <= now)
	{
		tg_lockmgr_sweep(mgr, now);
		dirty = true;
	}
	if (dirty || now - last_sync >= 100)
	{
		tg_lock_shm_sync(mgr, now);
		last_sync = now;
		dirty = false;
	}
}
