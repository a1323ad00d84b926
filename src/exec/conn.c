/*
 * conn.c — a connection as the executors see it: what a handler sends,
 * closes or changes becomes a record for the socket process (session
 * executor, TG_REC_*) or part of the reply to the session executor (reader,
 * TG_REP_FRAME).  The executors never touch a socket.
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "ipc/ipc.h"

/* where tg_conn_send() puts a message, and as which record */
TgIpcBuf   *tg_exec_out = NULL;
TgRecKind	tg_exec_send_kind = TG_REC_SEND;

bool
tg_conn_send(TgConn *c, const unsigned char *data, size_t len)
{
	if (c->closed || tg_exec_out == NULL)
		return false;
	tg_ipc_put(tg_exec_out, tg_exec_send_kind, c->id, data, len);
	c->msgs_out++;
	return true;
}

bool
tg_conn_send_more(TgConn *c, const unsigned char *data, size_t len)
{
	if (tg_exec_send_kind != TG_REC_SEND)
		return tg_conn_send(c, data, len);	/* a reader: every frame is a part already */
	if (c->closed || tg_exec_out == NULL)
		return false;
	tg_ipc_put(tg_exec_out, TG_REC_SEND_MORE, c->id, data, len);
	c->msgs_out++;
	return true;
}

static void
close_record(TgConn *c, TgRecKind kind, int code, const char *reason)
{
	TgRecClose	rc;

	if (c->closed || c->closing || tg_role != TG_ROLE_SESSION)
		return;
	c->closing = true;
	memset(&rc, 0, sizeof(rc));
	rc.code = code;
	strlcpy(rc.reason, reason, sizeof(rc.reason));
	tg_ipc_put(tg_exec_out, kind, c->id, &rc, sizeof(rc));
}

void
tg_conn_close(TgConn *c, int code, const char *reason)
{
	close_record(c, TG_REC_CLOSE, code, reason);
}

void
tg_conn_kill(TgConn *c, int code, const char *reason)
{
	close_record(c, TG_REC_KILL, code, reason);
}

const char *
tg_conn_identity(const TgConn *c)
{
	return c->user_id[0] ? c->user_id : c->sub;
}

void
tg_conn_update_slot(TgConn *c)
{
	TgRecSession s;

	c->slot_dirty = false;
	if (c->closed || tg_role != TG_ROLE_SESSION)
		return;
	memset(&s, 0, sizeof(s));
	s.authenticated = c->authenticated;
	s.expires_ms = c->token_expires_ms;
	strlcpy(s.user, tg_conn_identity(c), sizeof(s.user));
	s.watched_maps = c->nwatches + c->ntopics + c->ncounters;
	s.queries = c->nqueries;
	s.topics = c->ntopics;
	s.counters = c->ncounters;
	s.limit_hits = c->limit_hits;
	s.denied = c->denied;
	s.rate_limited = c->rate_limited;
	tg_ipc_put(tg_exec_out, TG_REC_SESSION, c->id, &s, sizeof(s));
}

void
tg_conn_handled(TgConn *c, int n)
{
	pg_atomic_fetch_add_u64(&tg_exec_slot(0)->requests, (uint64) n);
	c->frames_handled += n;
	c->done_dirty = true;
}


/* ------------------------------------------------------ by id */

typedef struct ConnEntry
{
	uint64		id;
	TgConn	   *conn;
} ConnEntry;

static HTAB *conn_by_id = NULL;

void
tg_conn_register(TgConn *c)
{
	ConnEntry  *e;
	bool		found;

	if (conn_by_id == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(ConnEntry);
		ctl.hcxt = TopMemoryContext;
		conn_by_id = hash_create("topgun session connections", 256, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(conn_by_id, &c->id, HASH_ENTER, &found);
	e->conn = c;
}

void
tg_conn_unregister(TgConn *c)
{
	if (conn_by_id)
		hash_search(conn_by_id, &c->id, HASH_REMOVE, NULL);
}

TgConn *
tg_conn_find(uint64 id)
{
	ConnEntry  *e = conn_by_id ? hash_search(conn_by_id, &id, HASH_FIND, NULL) : NULL;

	return e ? e->conn : NULL;
}
