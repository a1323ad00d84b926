/*
 * requests.c — the session executor's side of the feature messages
 * (PROTOCOL-ADDENDUM §A0-§A8): access checks and the typed failure replies
 * (the client ignores ERROR, so a request it waits for always gets its own
 * reply type), then the database part in a reader executor
 * (read_msgs.c).  Also PARTITION_MAP for cluster-mode clients and the
 * messages that want no answer.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "core/hlc.h"
#include "exec/exec.h"
#include "exec/readers.h"
#include "exec/resolve.h"

#define PARTITION_COUNT 271

typedef struct Pending
{
	TgMsgType	type;
	char	   *request_id;
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

	if (c)
	{
		if (msg)
			tg_readers_forward_frames(c, NULL, msg, len, NULL);
		else
			tg_send_typed_failure(c, p->type, p->request_id, strlen(p->request_id), err->message);
	}
	if (p->type == TG_MSG_REGISTER_RESOLVER || p->type == TG_MSG_UNREGISTER_RESOLVER)
		tg_resolvers_invalidate();	/* client writes see the change at once */
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
	if (p == NULL || (p->request_id = strndup(rid.p, rid.len)) == NULL)
	{
		free(p);
		tg_send_typed_failure(c, m->type, rid.p, rid.len, "Server out of memory");
		return false;
	}
	p->type = m->type;
	tg_readers_submit(c, true, TG_REQ_MESSAGE, in->data, in->len, done, p);
	return true;
}

/*
 * PARTITION_MAP for a cluster-mode client (§A8.2): every key belongs to this
 * node (every node of a mesh holds everything), advertised at
 * topgun.advertise_url.  Only for a currentVersion below 1, as the reference.
 */
void
tg_partition_map(TgConn *c, TgMessage *m)
{
	const char *node = tg_node_id();
	char		url[512];
	MpBuf	   *b;

	if (m->u.partition_map_request.has_current_version &&
		m->u.partition_map_request.current_version >= 1)
		return;
	if (tg_advertise_url && tg_advertise_url[0])
		strlcpy(url, tg_advertise_url, sizeof(url));
	else
		snprintf(url, sizeof(url), "ws://%s:%d",
				 (tg_listen_addresses && tg_listen_addresses[0] && strcmp(tg_listen_addresses, "*") != 0)
				 ? tg_listen_addresses : "localhost", tg_port);
	b = tg_buf_begin();
	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "PARTITION_MAP");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 5);
	mp_put_str(b, "version");
	mp_put_int(b, 1);
	mp_put_str(b, "partitionCount");
	mp_put_int(b, PARTITION_COUNT);
	mp_put_str(b, "generatedAt");
	mp_put_float64(b, (double) tg_now_ms());
	mp_put_str(b, "nodes");
	mp_put_array_header(b, 1);
	mp_put_map_header(b, 3);
	mp_put_str(b, "nodeId");
	mp_put_str(b, node);
	mp_put_str(b, "endpoints");
	mp_put_map_header(b, 1);
	mp_put_str(b, "websocket");
	mp_put_str(b, url);
	mp_put_str(b, "status");
	mp_put_str(b, "ACTIVE");
	mp_put_str(b, "partitions");
	mp_put_array_header(b, PARTITION_COUNT);
	for (int i = 0; i < PARTITION_COUNT; i++)
	{
		mp_put_map_header(b, 3);
		mp_put_str(b, "partitionId");
		mp_put_int(b, i);
		mp_put_str(b, "ownerNodeId");
		mp_put_str(b, node);
		mp_put_str(b, "backupNodeIds");
		mp_put_array_header(b, 0);
	}
	tg_buf_send(c, b);
}
