/*
 * message_search.c — full-text search (PROTOCOL-ADDENDUM.md §A1.5):
 * SEARCH, SEARCH_SUB, SEARCH_UNSUB; and the hybrid queries the client
 * sends outside its own schema (§A2): HYBRID_QUERY_SUBSCRIBE,
 * HYBRID_QUERY_UNSUBSCRIBE.  All keep their fields in `payload`.
 */
#include "wire/message_check.h"

/* options? {limit?, minScore?, boost?: field -> number} */
static bool
check_search_options(V *v, const MpNode *payload, TgSearchOptions *o)
{
	const MpNode *opts;
	const MpNode *boost;

	if (!tgw_opt_map(v, payload, "payload", "options", false, &opts))
		return false;
	if (opts == NULL)
		return true;
	if (!tgw_opt_number(v, opts, "payload.options", "limit", &o->has_limit, &o->limit))
		return false;
	if (!tgw_opt_number(v, opts, "payload.options", "minScore",
						&o->has_min_score, &o->min_score))
		return false;
	if (!tgw_opt_map(v, opts, "payload.options", "boost", false, &boost))
		return false;
	if (boost == NULL)
		return true;
	if (!tgw_check_number_map(v, boost, "payload.options.boost", TG_WIRE_MAX_BOOST_FIELDS,
							  TG_WIRE_MAX_ID_BYTES, S_NO_NUL))
		return false;
	o->boost = boost;
	return true;
}

bool
tgw_parse_search(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (msg->type == TG_MSG_SEARCH_UNSUB)
		return tgw_req_str(v, payload, "payload", "subscriptionId", 0, TG_WIRE_MAX_ID_BYTES,
						   S_NO_NUL, &msg->u.search_unsub.subscription_id);
	if (!tgw_req_str(v, payload, "payload",
					 msg->type == TG_MSG_SEARCH ? "requestId" : "subscriptionId",
					 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL, &msg->u.search.id))
		return false;
	if (!tgw_map_name(v, payload, "payload", &msg->u.search.map_name))
		return false;
	if (!tgw_req_str(v, payload, "payload", "query", 0, TG_WIRE_MAX_SEARCH_QUERY_BYTES,
					 S_NO_NUL, &msg->u.search.query))
		return false;
	return check_search_options(v, payload, &msg->u.search.options);
}

/*
 * Not in the client's MessageSchema: only the types are checked; the
 * client fills absent filter parts with undefined, null is taken as absent.
 */
bool
tgw_parse_hybrid_query(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;
	const MpNode *limit;

	if (!tgw_payload(v, root, &payload))
		return false;
	if (!tgw_req_str(v, payload, "payload", "subscriptionId", 0, TG_WIRE_MAX_ID_BYTES,
					 S_NO_NUL, &msg->u.hybrid_query.subscription_id))
		return false;
	if (msg->type == TG_MSG_HYBRID_QUERY_UNSUBSCRIBE)
		return true;
	if (!tgw_map_name(v, payload, "payload", &msg->u.hybrid_query.map_name))
		return false;
	if (!tgw_opt_map(v, payload, "payload", "predicate", true, &msg->u.hybrid_query.predicate))
		return false;
	if (!tgw_opt_map(v, payload, "payload", "where", true, &msg->u.hybrid_query.where))
		return false;
	if (!tgw_opt_map(v, payload, "payload", "sort", true, &msg->u.hybrid_query.sort))
		return false;
	limit = mp_map_get(payload, "limit");
	if (limit != NULL && limit->type != MP_NIL &&
		!tgw_opt_number(v, payload, "payload", "limit",
						&msg->u.hybrid_query.has_limit, &msg->u.hybrid_query.limit))
		return false;
	if (!tgw_opt_str(v, payload, "payload", "cursor", 0, UINT32_MAX, 0, true,
					 &msg->u.hybrid_query.has_cursor, &msg->u.hybrid_query.cursor))
		return false;
	return true;
}
