/*
 * message_logic.c — server-side logic the client calls, top-level fields
 * (PROTOCOL-ADDENDUM.md §A4.1, §A5.1): ENTRY_PROCESS, ENTRY_PROCESS_BATCH,
 * REGISTER_RESOLVER, UNREGISTER_RESOLVER, LIST_RESOLVERS.  The `code`
 * fields are bounded and kept, never executed.
 */
#include "wire/message_check.h"

/* processor {name 1..100, code 1..10000 (UTF-16 units), args? any} */
static bool
check_processor(V *v, const MpNode *root, TgProcessor *p)
{
	const MpNode *proc;

	if (!tgw_req_node(v, root, "", "processor", MP_MAP, &proc))
		return false;
	if (!tgw_req_str(v, proc, "processor", "name", 1, TG_WIRE_MAX_PROCESSOR_NAME,
					 S_NO_NUL | S_UTF16, &p->name))
		return false;
	if (!tgw_req_str(v, proc, "processor", "code", 1, TG_WIRE_MAX_PROCESSOR_CODE,
					 S_UTF16, &p->code))
		return false;
	p->args = mp_map_get(proc, "args");
	return true;
}

bool
tgw_parse_entry_process(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *keys;

	if (!tgw_req_str(v, root, "", "requestId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
					 &msg->u.entry_process.request_id))
		return false;
	if (!tgw_map_name(v, root, "", &msg->u.entry_process.map_name))
		return false;
	if (msg->type == TG_MSG_ENTRY_PROCESS)
	{
		if (!tgw_req_str(v, root, "", "key", 0, TG_WIRE_MAX_KEY_BYTES, S_NO_NUL,
						 &msg->u.entry_process.key))
			return false;
	}
	else
	{
		if (!tgw_req_node(v, root, "", "keys", MP_ARRAY, &keys))
			return false;
		if (!tgw_check_str_array(v, keys, "keys", TG_WIRE_MAX_BATCH_KEYS, 0,
								 TG_WIRE_MAX_KEY_BYTES, S_NO_NUL,
								 &msg->u.entry_process.n_keys, &msg->u.entry_process.keys))
			return false;
	}
	return check_processor(v, root, &msg->u.entry_process.processor);
}

static bool
parse_register(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *res;
	int64_t		prio;

	if (!tgw_req_str(v, root, "", "requestId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
					 &msg->u.register_resolver.request_id))
		return false;
	if (!tgw_map_name(v, root, "", &msg->u.register_resolver.map_name))
		return false;
	if (!tgw_req_node(v, root, "", "resolver", MP_MAP, &res))
		return false;
	if (!tgw_req_str(v, res, "resolver", "name", 1, TG_WIRE_MAX_RESOLVER_NAME,
					 S_NO_NUL | S_UTF16, &msg->u.register_resolver.name))
		return false;
	if (!tgw_req_str(v, res, "resolver", "code", 0, TG_WIRE_MAX_RESOLVER_CODE, S_UTF16,
					 &msg->u.register_resolver.code))
		return false;
	if (!tgw_opt_int(v, res, "resolver", "priority", 0, 100, "0..100",
					 &msg->u.register_resolver.has_priority, &prio))
		return false;
	msg->u.register_resolver.priority = (int32_t) prio;
	return tgw_opt_str(v, res, "resolver", "keyPattern", 0, TG_WIRE_MAX_PATTERN_BYTES,
					   S_NO_NUL, false, &msg->u.register_resolver.has_key_pattern,
					   &msg->u.register_resolver.key_pattern);
}

bool
tgw_parse_resolver(V *v, const MpNode *root, TgMessage *msg)
{
	if (msg->type == TG_MSG_REGISTER_RESOLVER)
		return parse_register(v, root, msg);
	if (msg->type == TG_MSG_LIST_RESOLVERS)
	{
		if (!tgw_req_str(v, root, "", "requestId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
						 &msg->u.list_resolvers.request_id))
			return false;
		return tgw_opt_str(v, root, "", "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, false,
						   &msg->u.list_resolvers.has_map_name,
						   &msg->u.list_resolvers.map_name);
	}
	if (!tgw_req_str(v, root, "", "requestId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
					 &msg->u.unregister_resolver.request_id))
		return false;
	if (!tgw_map_name(v, root, "", &msg->u.unregister_resolver.map_name))
		return false;
	return tgw_req_str(v, root, "", "resolverName", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
					   &msg->u.unregister_resolver.resolver_name);
}
