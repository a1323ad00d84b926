/*
 * dispatch.c — the session executor's message loop: parse, authenticate,
 * look the type up in the dispatch table, run its handler.  Writes are
 * group-committed (apply.c); reads go to reader executors and keep the
 * connection busy until answered, so its later messages wait and replies
 * stay in order; everything else is answered at once.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/events.h"
#include "exec/readers.h"
#include "exec/search_live.h"
#include "exec/gc.h"
#include "exec/journal_live.h"
#include "exec/ratelimit_session.h"
#include "metrics/metrics.h"

/* Run one database-backed handler in its own transaction. */
static void
run_db_message(TgConn *c, TgMessage *m)
{
	volatile bool changed = false;
	char	   *volatile hlc = NULL;
	TgEventList evs;

	tg_group_flush();
	tg_events_init(&evs);		/* outlives the transaction: sent after the commit */
	PG_TRY();
	{
		tg_txn_begin();
		switch (m->type)
		{
			case TG_MSG_ORMAP_PUSH_DIFF:
				changed = tg_push_diff(c, m, &evs);
				if (changed)
					hlc = tg_hlc_now_text();
				break;
			case TG_MSG_COUNTER_REQUEST:
			case TG_MSG_COUNTER_SYNC:
				tg_counter_handle(c, m);
				break;
			default:
				break;
		}
		tg_txn_end();
		tg_counters_after_commit(true);
		if (m->type == TG_MSG_ORMAP_PUSH_DIFF)
		{
			tg_stat_add(TG_STAT_COMMITS, 1);
			pgstat_report_stat(false);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata = tg_txn_recover();
		bool		client_fault;

		tg_counters_after_commit(false);

		/* bad data from the client (values, limits, map kind) is a 400 */
		client_fault = ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
			edata->sqlerrcode == ERRCODE_WRONG_OBJECT_TYPE ||
			edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		if (!client_fault)
			ereport(LOG,
					(errmsg("topgun: %s from connection %llu failed: %s",
							tg_msg_type_name(m->type), (unsigned long long) c->id,
							edata->message)));
		tg_send_error(c, client_fault ? 400 : 500, edata->message);
		if (edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
			edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
			edata->sqlerrcode == ERRCODE_INVALID_SCHEMA_NAME)
		{
			tg_plans_reset();
			tg_acl_invalidate();
			tg_request_ready_check();
		}
		changed = false;
	}
	PG_END_TRY();
	/* exactly what the push changed, to the other watchers */
	if (changed && hlc)
		tg_events_fan_out(&evs, hlc, c, false);
	tg_events_free(&evs);
}

/* --------------------------------------------------------- dispatcher */

static MpLimits
frame_limits(size_t len)
{
	MpLimits	l;

	l.max_depth = 32;
	l.max_nodes = (uint32) Min((size_t) UINT32_MAX - 1, len + 1);
	l.max_str = (uint32) Min((size_t) UINT32_MAX - 1, Max(len, 1));
	return l;
}

/*
 * A read goes to a reader executor; the connection is busy until the answer
 * is back (its later messages wait).  Returns false when the message was
 * answered here already (refused, or nothing to read).
 */
static bool
delegate_read(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgRecKind	kind;
	TgStr		map;

	switch (m->type)
	{
		case TG_MSG_SYNC_INIT:
			if (!tg_sync_init_session(c, m->u.sync_init.map_name, m->u.sync_init.has_last_sync,
								   m->u.sync_init.last_sync))
				return false;
			kind = TG_REQ_SYNC_ROOT;
			break;
		case TG_MSG_ORMAP_SYNC_INIT:
			if (!tg_sync_init_session(c, m->u.ormap_sync_init.map_name,
								   m->u.ormap_sync_init.has_last_sync,
								   m->u.ormap_sync_init.last_sync))
				return false;
			kind = TG_REQ_SYNC_ROOT;
			break;
		case TG_MSG_MERKLE_REQ_BUCKET:
		case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			map = m->u.bucket_req.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			kind = TG_REQ_BUCKET;
			break;
		case TG_MSG_ORMAP_DIFF_REQUEST:
			map = m->u.ormap_diff_request.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			kind = TG_REQ_DIFF;
			break;
		case TG_MSG_QUERY_SUB:
			map = m->u.query_sub.map_name;
			if (!tg_acl_check(c, map.p, map.len, TG_ACT_READ))
				return false;
			/* the reader must see this connection's acknowledged writes */
			if (c->pending_writes > 0)
				tg_group_flush();
			return tg_query_handle_sub(c, m);
		default:
			return false;
	}
	if (c->pending_writes > 0)
		tg_group_flush();
	tg_readers_submit(c, true, kind, in->data, in->len, tg_readers_forward_frames, NULL);
	return true;
}

/* The types of PROTOCOL-ADDENDUM (§A0): typed replies, ignored before auth. */
static bool
feature_type(TgMsgType t)
{
	return t >= TG_MSG_SEARCH && t < TG_MSG_COUNT_;
}

/*
 * Handle one message.  Returns true if the message is not done with: the
 * group took ownership of the frame, or it waits behind a read of the same
 * connection (then it must not be freed by the caller).
 */
/* ----------------------------------------------------------- handlers */

/* What became of a message: answered, a read is out, or the group owns it. */
typedef enum TgHandled
{
	TG_ANSWERED = 0,
	TG_READ_OUT,				/* answered when the reader replies */
	TG_FRAME_KEPT				/* group commit: answered at commit, owns the frame */
} TgHandled;

typedef TgHandled (*TgHandler) (TgConn *c, TgInMsg *in, TgMessage *m);

static TgHandled
h_ignore(TgConn *c, TgInMsg *in, TgMessage *m)
{
	return TG_ANSWERED;			/* AUTH again after AUTH_ACK: the client does that */
}

/*
 * An invalid op without a usable id cannot be named in the OP_ACK: answer
 * it with ERROR 400 naming the op and its field, so that no op is dropped
 * silently.  The valid ops of the batch are still applied and acked (a
 * client resending the batch gets the same answer again).
 */
static void
answer_unnamed_invalid(TgConn *c, const TgMessage *m)
{
	int			nbad = 0;
	int			first = -1;
	const char *why;

	for (uint32 i = 0; i < m->u.op_batch.n_ops; i++)
	{
		const TgOp *op = &m->u.op_batch.ops[i];

		if (!op->valid && !op->has_id && nbad++ == 0)
			first = (int) i;
	}
	if (nbad == 0)
		return;
	why = m->u.op_batch.ops[first].error ? m->u.op_batch.ops[first].error : "invalid op";
	if (nbad == 1)
		tg_send_error(c, 400, psprintf("Invalid op ops[%d] not applied: %s", first, why));
	else
		tg_send_error(c, 400, psprintf("%d invalid ops without a usable id not applied; ops[%d]: %s",
									   nbad, first, why));
}

static TgHandled
h_write(TgConn *c, TgInMsg *in, TgMessage *m)
{
	if (m->type == TG_MSG_OP_BATCH && m->u.op_batch.n_invalid > 0)
		answer_unnamed_invalid(c, m);
	tg_group_add(c, in, m);
	return TG_FRAME_KEPT;
}

static TgHandled
h_read(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgHandled	r = delegate_read(c, in, m) ? TG_READ_OUT : TG_ANSWERED;

	tg_conn_update_slot(c);
	return r;
}

static TgHandled
h_db(TgConn *c, TgInMsg *in, TgMessage *m)
{
	run_db_message(c, m);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_query_unsub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_query_handle_unsub(c, m->u.query_unsub.query_id);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_feature(TgConn *c, TgInMsg *in, TgMessage *m)
{
	/* the reader must see this connection's acknowledged writes */
	if (c->pending_writes > 0)
		tg_group_flush();
	return tg_feature_request(c, in, m) ? TG_READ_OUT : TG_ANSWERED;
}

static TgHandled
h_journal_sub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_journal_subscribe(c, m);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_journal_unsub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_journal_unsubscribe(c, m);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_search_sub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgHandled	r;

	if (c->pending_writes > 0)
		tg_group_flush();
	r = tg_search_sub(c, in, m) ? TG_READ_OUT : TG_ANSWERED;

	tg_conn_update_slot(c);
	return r;
}

static TgHandled
h_search_unsub(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_search_unsub(c, m);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_lock(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_lock_handle(c, m);
	return TG_ANSWERED;
}

/*
 * Over the rate limits (ratelimit_session.c): not applied, answered.  Writes
 * go through the group so their OP_ACK (results success:false "rate
 * limited") keeps its place after the connection's earlier acks.
 */
static TgHandled
refuse_rate_limited(TgConn *c, TgInMsg *in, TgMessage *m, const char *why)
{
	if (m->type == TG_MSG_OP_BATCH || m->type == TG_MSG_CLIENT_OP)
	{
		tg_group_refuse(c, in, m, why);
		return TG_FRAME_KEPT;
	}
	if (m->has_request_id)
		(void) tg_try_typed_failure(c, m->type, m->request_id.p, m->request_id.len, "rate limited");
	tg_send_error(c, 429, why);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

static TgHandled
h_topic(TgConn *c, TgInMsg *in, TgMessage *m)
{
	tg_topic_handle(c, m);
	tg_conn_update_slot(c);
	return TG_ANSWERED;
}

/*
 * The dispatch table of authenticated messages: adding a message type means
 * a handler and a row here.  A type without a row is answered 501.
 */
static const TgHandler handlers[TG_MSG_COUNT_] = {
	[TG_MSG_AUTH] = h_ignore,
	[TG_MSG_OP_BATCH] = h_write,
	[TG_MSG_CLIENT_OP] = h_write,
	[TG_MSG_SYNC_INIT] = h_read,
	[TG_MSG_MERKLE_REQ_BUCKET] = h_read,
	[TG_MSG_ORMAP_SYNC_INIT] = h_read,
	[TG_MSG_ORMAP_MERKLE_REQ_BUCKET] = h_read,
	[TG_MSG_ORMAP_DIFF_REQUEST] = h_read,
	[TG_MSG_QUERY_SUB] = h_read,
	[TG_MSG_ORMAP_PUSH_DIFF] = h_db,
	[TG_MSG_QUERY_UNSUB] = h_query_unsub,
	[TG_MSG_TOPIC_SUB] = h_topic,
	[TG_MSG_TOPIC_UNSUB] = h_topic,
	[TG_MSG_TOPIC_PUB] = h_topic,
	[TG_MSG_COUNTER_REQUEST] = h_db,
	[TG_MSG_COUNTER_SYNC] = h_db,
	[TG_MSG_LOCK_REQUEST] = h_lock,
	[TG_MSG_LOCK_RELEASE] = h_lock,
	[TG_MSG_SEARCH] = h_feature,
	[TG_MSG_SEARCH_SUB] = h_search_sub,
	[TG_MSG_SEARCH_UNSUB] = h_search_unsub,
	[TG_MSG_ENTRY_PROCESS] = h_feature,
	[TG_MSG_ENTRY_PROCESS_BATCH] = h_feature,
	[TG_MSG_REGISTER_RESOLVER] = h_feature,
	[TG_MSG_UNREGISTER_RESOLVER] = h_feature,
	[TG_MSG_LIST_RESOLVERS] = h_feature,
	[TG_MSG_JOURNAL_READ] = h_feature,
	[TG_MSG_JOURNAL_SUBSCRIBE] = h_journal_sub,
	[TG_MSG_JOURNAL_UNSUBSCRIBE] = h_journal_unsub,
	[TG_MSG_PARTITION_MAP_REQUEST] = h_feature,
	/* hybrid queries (§A2): the client expects nothing back */
	[TG_MSG_HYBRID_QUERY_SUBSCRIBE] = h_ignore,
	[TG_MSG_HYBRID_QUERY_UNSUBSCRIBE] = h_ignore,
};

/*
 * Handle one message.  Returns true if the message is not done with: the
 * group took ownership of the frame, or it waits behind a read of the same
 * connection (then it must not be freed by the caller).
 */
static bool
handle_one(TgInMsg *in)
{
	TgConn	   *c = in->conn;
	TgMessage	msg;
	MpLimits	lim = frame_limits(in->len);
	char		err[256];
	TgParseResult pr;
	TgHandled	r = TG_ANSWERED;
	const char *over;

	if (c->closed || c->closing)
		return false;
	if (c->busy)
	{
		/* a read of this connection is out: keep the order */
		in->next = NULL;
		if (c->deferred_tail)
			c->deferred_tail->next = in;
		else
			c->deferred_head = in;
		c->deferred_tail = in;
		return true;
	}

	pr = tg_message_parse(in->data, in->len, &lim, &msg, err, sizeof(err));
	if (pr != TG_PARSE_OK)
	{
		if (pr == TG_PARSE_NOMEM)
			tg_send_error(c, 500, "Server out of memory");
		else if (msg.known_type && msg.has_request_id && c->authenticated && feature_type(msg.type))
		{
			/* a request the client waits for: its own failure reply, not ERROR */
			char	   *e = psprintf("Invalid message format: %s", err);

			tg_send_typed_failure(c, msg.type, msg.request_id.p, msg.request_id.len, e);
			tg_stat_add(TG_STAT_MSG_INVALID, 1);
		}
		else
			tg_note_invalid(c, err);
		tg_message_free(&msg);
		tg_conn_handled(c, 1);
		return false;
	}
	tg_stat_add(TG_STAT_MSG_ACCEPTED, 1);
	tg_metrics_inc(TG_M_MSG_RECEIVED, (int) msg.type, 1);

	if (msg.type != TG_MSG_PING)
		tg_gc_note_activity(c);
	if (msg.type == TG_MSG_PING)
		tg_handle_ping(c);
	else if (!c->authenticated)
	{
		if (msg.type == TG_MSG_AUTH)
		{
			tg_handle_auth(c, &msg);
			if (c->authenticated)
				tg_rate_after_auth(c);
		}
		else if (feature_type(msg.type))
		{
			/* sent before AUTH_ACK by some client helpers (§A0.1): ignored, not a close */
		}
		else
			tg_conn_close(c, 4001, "Auth required");
	}
	else if (c->token_expires_ms > 0 && tg_now_ms() >= c->token_expires_ms)
		tg_conn_close(c, 4001, "Token expired");	/* not applied: resent after re-AUTH */
	else if ((over = tg_rate_check(c, &msg, in->len)) != NULL)
		r = refuse_rate_limited(c, in, &msg, over);
	else if (msg.type < TG_MSG_COUNT_ && handlers[msg.type] != NULL)
		r = handlers[msg.type] (c, in, &msg);
	else
		tg_send_error(c, 501, psprintf("%s is not implemented yet", tg_msg_type_name(msg.type)));
	if (r == TG_FRAME_KEPT)
		return true;			/* the group frees the frame and the tree */
	tg_message_free(&msg);
	if (r == TG_ANSWERED)
		tg_conn_handled(c, 1);
	return false;				/* the frame is not needed any more */
}

void
tg_proto_process(TgInMsg *list)
{
	tg_proto_cxt = CurrentMemoryContext;

	while (list)
	{
		TgInMsg    *next = list->next;
		TgConn	   *c = list->conn;

		if (!tg_ready)
		{
			tg_conn_close(c, 1013, "Server not ready");
			free(list->data);
			free(list);
		}
		else if (!handle_one(list))
		{
			free(list->data);
			free(list);
		}
		list = next;
		QueryCancelPending = false;	/* nothing to cancel between messages */
		CHECK_FOR_INTERRUPTS();
	}
	tg_group_flush();
	tg_topics_flush();
	/* the others are refreshed by the 250 ms housekeeping tick */
	for (TgConn *c = tg_conns; c; c = c->next)
		if (!c->closed && c->slot_dirty)
			tg_conn_update_slot(c);
}
