/*
 * message.c — tg_message_parse(): decode a frame, find its type, note the
 * reply id, and hand the frame to its family's checks (message_sync.c,
 * message_live.c, message_search.c, message_logic.c, message_journal.c).
 *
 * Follows PROTOCOL.md §3.1/§3.2 and PROTOCOL-ADDENDUM.md (the reference
 * client's Zod MessageSchema), with the extra limits PostgreSQL needs
 * (string lengths, no NUL characters in anything that becomes text,
 * integral timestamps).  See message.h and docs/wire-codec.md.
 */
#include "wire/message_check.h"

#include <string.h>

static const char *const msg_type_names[TG_MSG_COUNT_] = {
	[TG_MSG_AUTH] = "AUTH",
	[TG_MSG_PING] = "PING",
	[TG_MSG_OP_BATCH] = "OP_BATCH",
	[TG_MSG_CLIENT_OP] = "CLIENT_OP",
	[TG_MSG_SYNC_INIT] = "SYNC_INIT",
	[TG_MSG_MERKLE_REQ_BUCKET] = "MERKLE_REQ_BUCKET",
	[TG_MSG_ORMAP_SYNC_INIT] = "ORMAP_SYNC_INIT",
	[TG_MSG_ORMAP_MERKLE_REQ_BUCKET] = "ORMAP_MERKLE_REQ_BUCKET",
	[TG_MSG_ORMAP_PUSH_DIFF] = "ORMAP_PUSH_DIFF",
	[TG_MSG_ORMAP_DIFF_REQUEST] = "ORMAP_DIFF_REQUEST",
	[TG_MSG_QUERY_SUB] = "QUERY_SUB",
	[TG_MSG_QUERY_UNSUB] = "QUERY_UNSUB",
	[TG_MSG_TOPIC_SUB] = "TOPIC_SUB",
	[TG_MSG_TOPIC_UNSUB] = "TOPIC_UNSUB",
	[TG_MSG_TOPIC_PUB] = "TOPIC_PUB",
	[TG_MSG_COUNTER_REQUEST] = "COUNTER_REQUEST",
	[TG_MSG_COUNTER_SYNC] = "COUNTER_SYNC",
	[TG_MSG_LOCK_REQUEST] = "LOCK_REQUEST",
	[TG_MSG_LOCK_RELEASE] = "LOCK_RELEASE",
	[TG_MSG_SEARCH] = "SEARCH",
	[TG_MSG_SEARCH_SUB] = "SEARCH_SUB",
	[TG_MSG_SEARCH_UNSUB] = "SEARCH_UNSUB",
	[TG_MSG_ENTRY_PROCESS] = "ENTRY_PROCESS",
	[TG_MSG_ENTRY_PROCESS_BATCH] = "ENTRY_PROCESS_BATCH",
	[TG_MSG_REGISTER_RESOLVER] = "REGISTER_RESOLVER",
	[TG_MSG_UNREGISTER_RESOLVER] = "UNREGISTER_RESOLVER",
	[TG_MSG_LIST_RESOLVERS] = "LIST_RESOLVERS",
	[TG_MSG_JOURNAL_READ] = "JOURNAL_READ",
	[TG_MSG_JOURNAL_SUBSCRIBE] = "JOURNAL_SUBSCRIBE",
	[TG_MSG_JOURNAL_UNSUBSCRIBE] = "JOURNAL_UNSUBSCRIBE",
	[TG_MSG_PARTITION_MAP_REQUEST] = "PARTITION_MAP_REQUEST",
	[TG_MSG_HYBRID_QUERY_SUBSCRIBE] = "HYBRID_QUERY_SUBSCRIBE",
	[TG_MSG_HYBRID_QUERY_UNSUBSCRIBE] = "HYBRID_QUERY_UNSUBSCRIBE",
};

/*
 * Where each type keeps the id its typed reply carries (message.h,
 * TgMessage.request_id); field NULL: no such reply.
 */
static const struct
{
	const char *field;
	bool		in_payload;
}			reply_ids[TG_MSG_COUNT_] = {
	[TG_MSG_LOCK_REQUEST] = {"requestId", true},
	[TG_MSG_LOCK_RELEASE] = {"requestId", true},
	[TG_MSG_SEARCH] = {"requestId", true},
	[TG_MSG_SEARCH_SUB] = {"subscriptionId", true},
	[TG_MSG_ENTRY_PROCESS] = {"requestId", false},
	[TG_MSG_ENTRY_PROCESS_BATCH] = {"requestId", false},
	[TG_MSG_REGISTER_RESOLVER] = {"requestId", false},
	[TG_MSG_UNREGISTER_RESOLVER] = {"requestId", false},
	[TG_MSG_LIST_RESOLVERS] = {"requestId", false},
	[TG_MSG_JOURNAL_READ] = {"requestId", false},
	[TG_MSG_JOURNAL_SUBSCRIBE] = {"requestId", false},
};

/* Fill msg->request_id from the raw tree, before any validation. */
static void
note_reply_id(const MpNode *root, TgMessage *msg)
{
	const MpNode *obj = root;
	const MpNode *id;

	if (reply_ids[msg->type].field == NULL)
		return;
	if (reply_ids[msg->type].in_payload)
	{
		obj = mp_map_get(root, "payload");
		if (obj == NULL || obj->type != MP_MAP)
			return;
	}
	id = mp_map_get(obj, reply_ids[msg->type].field);
	if (id == NULL || id->type != MP_STR || id->len > TG_WIRE_MAX_ID_BYTES ||
		memchr(id->v.s, '\0', id->len) != NULL)
		return;
	msg->has_request_id = true;
	msg->request_id.p = id->v.s;
	msg->request_id.len = id->len;
}

const char *
tg_msg_type_name(TgMsgType type)
{
	if ((int) type < 0 || type >= TG_MSG_COUNT_)
		return "UNKNOWN";
	return msg_type_names[type];
}

/* ------------------------------------------------------------- other */

static bool
parse_by_type(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	switch (msg->type)
	{
		case TG_MSG_AUTH:
			return tgw_req_str(v, root, "", "token", 0, UINT32_MAX, S_NO_NUL, &msg->u.auth.token);
		case TG_MSG_PING:
			return tgw_req_number(v, root, "", "timestamp", &msg->u.ping.timestamp);
		case TG_MSG_OP_BATCH:
			return tgw_parse_op_batch(v, root, msg);
		case TG_MSG_CLIENT_OP:
			return tgw_parse_client_op(v, root, msg);
		case TG_MSG_SYNC_INIT:
			if (!tgw_map_name(v, root, "", &msg->u.sync_init.map_name))
				return false;
			return tgw_opt_number(v, root, "", "lastSyncTimestamp",
							  &msg->u.sync_init.has_last_sync,
							  &msg->u.sync_init.last_sync);
		case TG_MSG_MERKLE_REQ_BUCKET:
		case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			return tgw_parse_bucket_req(v, root, msg);
		case TG_MSG_ORMAP_SYNC_INIT:
			return tgw_parse_ormap_sync_init(v, root, msg);
		case TG_MSG_ORMAP_PUSH_DIFF:
			return tgw_parse_ormap_push_diff(v, root, msg);
		case TG_MSG_ORMAP_DIFF_REQUEST:
			return tgw_parse_ormap_diff_request(v, root, msg);
		case TG_MSG_QUERY_SUB:
			return tgw_parse_query_sub(v, root, msg);
		case TG_MSG_QUERY_UNSUB:
			if (!tgw_payload(v, root, &payload))
				return false;
			return tgw_req_str(v, payload, "payload", "queryId", 0, TG_WIRE_MAX_ID_BYTES,
						   S_NO_NUL, &msg->u.query_unsub.query_id);
		case TG_MSG_TOPIC_SUB:
		case TG_MSG_TOPIC_UNSUB:
		case TG_MSG_TOPIC_PUB:
			if (!tgw_payload(v, root, &payload))
				return false;
			if (!tgw_req_str(v, payload, "payload", "topic", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.topic.topic))
				return false;
			if (msg->type == TG_MSG_TOPIC_PUB)
				msg->u.topic.data = mp_map_get(payload, "data");
			return true;
		case TG_MSG_COUNTER_REQUEST:
			if (!tgw_payload(v, root, &payload))
				return false;
			return tgw_req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						   S_NO_NUL, &msg->u.counter_request.name);
		case TG_MSG_COUNTER_SYNC:
			return tgw_parse_counter_sync(v, root, msg);
		case TG_MSG_LOCK_REQUEST:
			if (!tgw_payload(v, root, &payload))
				return false;
			if (!tgw_req_str(v, payload, "payload", "requestId", 0, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_request.request_id))
				return false;
			if (!tgw_req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_request.name))
				return false;
			return tgw_opt_number(v, payload, "payload", "ttl",
							  &msg->u.lock_request.has_ttl, &msg->u.lock_request.ttl);
		case TG_MSG_LOCK_RELEASE:
			if (!tgw_payload(v, root, &payload))
				return false;
			if (!tgw_opt_str(v, payload, "payload", "requestId", 0, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, false, &msg->u.lock_release.has_request_id,
						 &msg->u.lock_release.request_id))
				return false;
			if (!tgw_req_str(v, payload, "payload", "name", 1, TG_WIRE_MAX_ID_BYTES,
						 S_NO_NUL, &msg->u.lock_release.name))
				return false;
			return tgw_req_number(v, payload, "payload", "fencingToken",
							  &msg->u.lock_release.fencing_token);
		case TG_MSG_SEARCH:
		case TG_MSG_SEARCH_SUB:
		case TG_MSG_SEARCH_UNSUB:
			return tgw_parse_search(v, root, msg);
		case TG_MSG_HYBRID_QUERY_SUBSCRIBE:
		case TG_MSG_HYBRID_QUERY_UNSUBSCRIBE:
			return tgw_parse_hybrid_query(v, root, msg);
		case TG_MSG_ENTRY_PROCESS:
		case TG_MSG_ENTRY_PROCESS_BATCH:
			return tgw_parse_entry_process(v, root, msg);
		case TG_MSG_REGISTER_RESOLVER:
		case TG_MSG_UNREGISTER_RESOLVER:
		case TG_MSG_LIST_RESOLVERS:
			return tgw_parse_resolver(v, root, msg);
		case TG_MSG_JOURNAL_READ:
		case TG_MSG_JOURNAL_SUBSCRIBE:
		case TG_MSG_JOURNAL_UNSUBSCRIBE:
			return tgw_parse_journal(v, root, msg);
		case TG_MSG_PARTITION_MAP_REQUEST:
			return tgw_parse_partition_map_request(v, root, msg);
		case TG_MSG_COUNT_:
			break;
	}
	return tgw_err(v, NULL, "internal error: unhandled message type");
}

TgParseResult
tg_message_parse(const uint8_t *data, size_t len, const MpLimits *limits,
				 TgMessage *msg, char *err, size_t errlen)
{
	MpLimits	deflim;
	const MpNode *root;
	const MpNode *type;
	V			v;

	memset(msg, 0, sizeof(*msg));
	mp_arena_init(&msg->arena);
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (limits == NULL)
	{
		deflim.max_depth = 32;
		deflim.max_nodes = len > UINT32_MAX - 1 ? UINT32_MAX : (uint32_t) len + 1;
		deflim.max_str = len > UINT32_MAX ? UINT32_MAX : (uint32_t) len;
		limits = &deflim;
	}

	root = mp_decode(&msg->arena, data, len, limits, err, errlen);
	if (root == NULL)
	{
		if (err != NULL && strncmp(err, "out of memory", 13) == 0)
			return TG_PARSE_NOMEM;
		return TG_PARSE_DECODE_ERROR;
	}
	msg->root = root;

	v.arena = &msg->arena;
	v.err = err;
	v.errlen = errlen;
	v.nomem = false;

	if (root->type != MP_MAP)
	{
		tgw_err(&v, NULL, "message must be a map, got %s", tgw_got(root));
		return TG_PARSE_INVALID;
	}
	type = mp_map_get(root, "type");
	if (type == NULL)
	{
		tgw_err(&v, "type", "required");
		return TG_PARSE_INVALID;
	}
	if (type->type != MP_STR)
	{
		tgw_err(&v, "type", "expected a string, got %s", tgw_got(type));
		return TG_PARSE_INVALID;
	}
	for (int t = 0; t < TG_MSG_COUNT_; t++)
	{
		if (mp_str_eq(type, msg_type_names[t]))
		{
			msg->type = (TgMsgType) t;
			msg->known_type = true;
			note_reply_id(root, msg);
			if (parse_by_type(&v, root, msg))
				return TG_PARSE_OK;
			return v.nomem ? TG_PARSE_NOMEM : TG_PARSE_INVALID;
		}
	}

	/* Unknown type: quote it, cut at a character boundary, no controls. */
	{
		char		shown[68];
		uint32_t	n = type->len;
		uint32_t	o = 0;

		if (n > 64)
		{
			n = 64;
			while (n > 0 && ((uint8_t) type->v.s[n] & 0xC0) == 0x80)
				n--;
		}
		for (uint32_t i = 0; i < n; i++)
		{
			uint8_t		c = (uint8_t) type->v.s[i];

			shown[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
		}
		shown[o] = '\0';
		tgw_err(&v, NULL, "unknown message type %s%s", shown, type->len > n ? "..." : "");
	}
	return TG_PARSE_INVALID;
}

void
tg_message_free(TgMessage *msg)
{
	mp_arena_free(&msg->arena);
	msg->root = NULL;
}

