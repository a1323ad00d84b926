/*
 * requests.c — the session executor's side of the feature messages
 * (PROTOCOL-ADDENDUM §A0-§A8): access checks and the typed failure replies
 * (the client ignores ERROR, so a request it waits for always gets its own
 * reply type), then the database part in a reader executor
 * (read_msgs.c), PARTITION_MAP for cluster-mode clients included.  Also the
 * messages that want no answer.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/guc.h"

#include "core/hlc.h"
#include "exec/exec.h"
#include "exec/readers.h"
#include "logic/logic_pg.h"

/* ENTRY_PROCESS requests one connection may have out at once, pipelined */
#define TG_PROCESSOR_PIPELINE 16

typedef struct Pending
{
	TgMsgType	type;
	char	   *request_id;
	bool		pipelined;		/* counted in the connection's processors_out */
} Pending;

/* The failure reply of a request type; false (nothing sent) for a type without one. */
bool
tg_try_typed_failure(TgConn *c, TgMsgType type, const char *rid, size_t rlen, const char *error)
{
	MpBuf	   *b = tg_buf_begin();

	switch (type)
	{
		case TG_MSG_SEARCH:
		case TG_MSG_SEARCH_SUB:
			mp_put_map_header(b, 2);
			mp_put_str(b, "type");
			mp_put_str(b, "SEARCH_RESP");
			mp_put_str(b, "payload");
			mp_put_map_header(b, 4);
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "results");
			mp_put_array_header(b, 0);
			mp_put_str(b, "totalCount");
			mp_put_int(b, 0);
			mp_put_str(b, "error");
			mp_put_str(b, error);
			break;
		case TG_MSG_ENTRY_PROCESS:
			mp_put_map_header(b, 4);
			mp_put_str(b, "type");
			mp_put_str(b, "ENTRY_PROCESS_RESPONSE");
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "success");
			mp_put_bool(b, false);
			mp_put_str(b, "error");
			mp_put_str(b, error);
			break;
		case TG_MSG_ENTRY_PROCESS_BATCH:
			/* the client reads Object.entries(results): an empty map, and the error */
			mp_put_map_header(b, 4);
			mp_put_str(b, "type");
			mp_put_str(b, "ENTRY_PROCESS_BATCH_RESPONSE");
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "results");
			mp_put_map_header(b, 0);
			mp_put_str(b, "error");
			mp_put_str(b, error);
			break;
		case TG_MSG_REGISTER_RESOLVER:
		case TG_MSG_UNREGISTER_RESOLVER:
			mp_put_map_header(b, 4);
			mp_put_str(b, "type");
			mp_put_str(b, type == TG_MSG_REGISTER_RESOLVER ? "REGISTER_RESOLVER_RESPONSE"
					   : "UNREGISTER_RESOLVER_RESPONSE");
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "success");
			mp_put_bool(b, false);
			mp_put_str(b, "error");
			mp_put_str(b, error);
			break;
		case TG_MSG_LIST_RESOLVERS:
			mp_put_map_header(b, 3);
			mp_put_str(b, "type");
			mp_put_str(b, "LIST_RESOLVERS_RESPONSE");
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "resolvers");
			mp_put_array_header(b, 0);
			break;
		case TG_MSG_JOURNAL_READ:
			mp_put_map_header(b, 5);
			mp_put_str(b, "type");
			mp_put_str(b, "JOURNAL_READ_RESPONSE");
			mp_put_str(b, "requestId");
			mp_put_strn(b, rid, rlen);
			mp_put_str(b, "events");
			mp_put_array_header(b, 0);
			mp_put_str(b, "hasMore");
			mp_put_bool(b, false);
			mp_put_str(b, "error");
			mp_put_str(b, error);
			break;
		default:
			return false;
	}
	tg_buf_send(c, b);
	return true;
}

/* The failure reply of a request type (error text for the client), else ERROR 400. */
void
tg_send_typed_failure(TgConn *c, TgMsgType type, const char *rid, size_t rlen, const char *error)
{
	if (!tg_try_typed_failure(c, type, rid, rlen, error))
		tg_send_error(c, 400, error);
}

/* The reader's answer to a feature request, or its typed failure. */
static void
done(TgConn *c, void *arg, const char *msg, Size len, const TgRecError *err)
{
	Pending    *p = arg;

	if (c && p->pipelined)
		c->processors_out--;
	if (c)
	{
		if (msg)
			tg_readers_forward_frames(c, NULL, msg, len, NULL);
		else if (p->type == TG_MSG_PARTITION_MAP_REQUEST)
			ereport(LOG, (errmsg("topgun: PARTITION_MAP for connection %llu failed: %s",
								 (unsigned long long) c->id, err->message)));	/* no reply type */
		else
			tg_send_typed_failure(c, p->type, p->request_id, strlen(p->request_id), err->message);
	}
	if (p->type == TG_MSG_REGISTER_RESOLVER || p->type == TG_MSG_UNREGISTER_RESOLVER)
		tg_resolvers_forget();	/* client writes see the change at once */
	free(p->request_id);
	free(p);
}

static bool
allowed(TgConn *c, TgStr map, TgAction act)
{
	return tg_acl_allowed(c, map.p, map.len, act);
}

/*
 * A feature request: access, then the reader.  Returns true when a read is
 * out (the connection waits for it), false when answered here.
 */
bool
tg_feature_request(TgConn *c, TgInMsg *in, TgMessage *m)
{
	TgStr		rid = m->request_id;
	char	   *denied = NULL;
	Pending    *p;

	switch (m->type)
	{
		case TG_MSG_ENTRY_PROCESS:
		case TG_MSG_ENTRY_PROCESS_BATCH:
			if (!allowed(c, m->u.entry_process.map_name, TG_ACT_PUT) ||
				!allowed(c, m->u.entry_process.map_name, TG_ACT_READ))
				denied = psprintf("Access Denied for map %.*s", (int) m->u.entry_process.map_name.len,
								  m->u.entry_process.map_name.p);
			break;
		case TG_MSG_SEARCH:
		case TG_MSG_SEARCH_SUB:
			if (!allowed(c, m->u.search.map_name, TG_ACT_READ))
				denied = psprintf("Access denied for map: %.*s", (int) m->u.search.map_name.len,
								  m->u.search.map_name.p);
			break;
		case TG_MSG_JOURNAL_READ:
			/* a map's events need READ on it; the whole journal is for ADMIN */
			if (m->u.journal.has_map_name ? !allowed(c, m->u.journal.map_name, TG_ACT_READ) : !c->is_admin)
				denied = pstrdup("Access denied for the event journal");
			break;
		case TG_MSG_REGISTER_RESOLVER:
		case TG_MSG_UNREGISTER_RESOLVER:
			{
				TgStr		map = m->type == TG_MSG_REGISTER_RESOLVER ? m->u.register_resolver.map_name
					: m->u.unregister_resolver.map_name;
				char	   *res = psprintf("resolver:%.*s", (int) map.len, map.p);

				/* resolvers change every writer's outcome: ADMIN, or a policy for resolver:<map> */
				if (!c->is_admin && !tg_acl_allowed(c, res, strlen(res), TG_ACT_PUT))
					denied = psprintf("Access Denied for map %.*s", (int) map.len, map.p);
				break;
			}
		case TG_MSG_PARTITION_MAP_REQUEST:
			break;				/* the cluster's members: any authenticated client */
		case TG_MSG_LIST_RESOLVERS:
			if (m->u.list_resolvers.has_map_name && !allowed(c, m->u.list_resolvers.map_name, TG_ACT_READ))
			{
				tg_send_typed_failure(c, m->type, rid.p, rid.len, "");
				return false;
			}
			break;
		default:
			return false;
	}
	if (denied)
	{
		c->denied++;
		c->slot_dirty = true;
		tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
		tg_send_typed_failure(c, m->type, rid.p, rid.len, denied);
		return false;
	}
	p = malloc(sizeof(Pending));
	if (p == NULL || (p->request_id = rid.p ? strndup(rid.p, rid.len) : strdup("")) == NULL)
	{
		free(p);
		tg_send_typed_failure(c, m->type, rid.p, rid.len, "Server out of memory");
		return false;
	}
	p->type = m->type;
	p->pipelined = false;
	if (m->type == TG_MSG_ENTRY_PROCESS)
	{
		/*
		 * Single-key processors are pipelined (up to TG_PROCESSOR_PIPELINE
		 * per connection, in order on the reader of their map: a
		 * connection's processors on one map run in the order sent) and
		 * share reader transactions (reader_batch.c); the connection's other
		 * messages go on meanwhile, as with the reference server.  Beyond
		 * the pipeline the connection waits for this one.
		 */
		p->pipelined = c->processors_out < TG_PROCESSOR_PIPELINE;
		if (p->pipelined)
			c->processors_out++;
		tg_readers_submit_pinned(c, !p->pipelined,
								 hash_bytes((const unsigned char *) m->u.entry_process.map_name.p,
											(int) m->u.entry_process.map_name.len),
								 TG_REQ_PROCESS, in->data, in->len, done, p);
		return !p->pipelined;
	}
	tg_readers_submit(c, true, TG_REQ_MESSAGE, in->data, in->len, done, p);
	return true;
}
