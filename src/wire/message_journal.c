/*
 * message_journal.c — event journal (PROTOCOL-ADDENDUM.md §A6.1, top-level
 * fields): JOURNAL_READ, JOURNAL_SUBSCRIBE, JOURNAL_UNSUBSCRIBE; and the
 * cluster-mode PARTITION_MAP_REQUEST (§A8.1, optional payload).
 */
#include "wire/message_check.h"

/* fromSequence: a decimal bigint as a string, here 0..2^63-1. */
static bool
check_sequence(V *v, const MpNode *root, bool required, bool *has, int64_t *out)
{
	TgStr		s;
	uint64_t	acc = 0;

	*has = false;
	if (required)
	{
		if (!tgw_req_str(v, root, "", "fromSequence", 1, 19, 0, &s))
			return false;
	}
	else
	{
		bool		present;

		if (!tgw_opt_str(v, root, "", "fromSequence", 1, 19, 0, false, &present, &s))
			return false;
		if (!present)
			return true;
	}
	for (uint32_t i = 0; i < s.len; i++)
	{
		if (s.p[i] < '0' || s.p[i] > '9')
			return tgw_err(v, "fromSequence", "must be a decimal integer 0..2^63-1");
		acc = acc * 10 + (uint64_t) (s.p[i] - '0');
	}
	if (acc > (uint64_t) INT64_MAX)
		return tgw_err(v, "fromSequence", "must be a decimal integer 0..2^63-1");
	*has = true;
	*out = (int64_t) acc;
	return true;
}

/* types?: ('PUT'|'UPDATE'|'DELETE')[] as a TgJournalType mask */
static bool
check_types(V *v, const MpNode *root, bool *has, uint32_t *mask)
{
	static const char *const names[] = {"PUT", "UPDATE", "DELETE"};
	const MpNode *arr = mp_map_get(root, "types");

	*has = false;
	*mask = 0;
	if (arr == NULL)
		return true;
	if (arr->type != MP_ARRAY)
		return tgw_err(v, "types", "expected an array, got %s", tgw_got(arr));
	if (arr->len > TG_WIRE_MAX_JOURNAL_TYPES)
		return tgw_err(v, "types", "at most %u items, got %u", TG_WIRE_MAX_JOURNAL_TYPES,
					   arr->len);
	for (uint32_t i = 0; i < arr->len; i++)
	{
		uint32_t	bit = 0;
		char		p[PATH_LEN];

		for (int k = 0; k < 3; k++)
			if (mp_str_eq(&arr->v.items[i], names[k]))
				bit = 1u << k;
		if (bit == 0)
		{
			tgw_indexpath(p, "types", i);
			return tgw_err(v, p, "must be one of PUT, UPDATE, DELETE");
		}
		*mask |= bit;
	}
	*has = true;
	return true;
}

bool
tgw_parse_journal(V *v, const MpNode *root, TgMessage *msg)
{
	bool		read = msg->type == TG_MSG_JOURNAL_READ;

	if (msg->type == TG_MSG_JOURNAL_UNSUBSCRIBE)
		return tgw_req_str(v, root, "", "subscriptionId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
						   &msg->u.journal_unsub.subscription_id);
	if (!tgw_req_str(v, root, "", "requestId", 0, TG_WIRE_MAX_ID_BYTES, S_NO_NUL,
					 &msg->u.journal.request_id))
		return false;
	if (!check_sequence(v, root, read, &msg->u.journal.has_from_sequence,
						&msg->u.journal.from_sequence))
		return false;
	if (!tgw_opt_str(v, root, "", "mapName", 1, TG_WIRE_MAX_MAP_BYTES, S_NO_NUL, false,
					 &msg->u.journal.has_map_name, &msg->u.journal.map_name))
		return false;
	if (read)
		return tgw_opt_number(v, root, "", "limit", &msg->u.journal.has_limit,
							  &msg->u.journal.limit);
	return check_types(v, root, &msg->u.journal.has_types, &msg->u.journal.types_mask);
}

bool
tgw_parse_partition_map_request(V *v, const MpNode *root, TgMessage *msg)
{
	const MpNode *payload;

	if (!tgw_opt_map(v, root, "", "payload", false, &payload))
		return false;
	if (payload == NULL)
		return true;
	return tgw_opt_number(v, payload, "payload", "currentVersion",
						  &msg->u.partition_map_request.has_current_version,
						  &msg->u.partition_map_request.current_version);
}
