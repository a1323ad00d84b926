/*
 * capture.c — per-transaction collection of change events.
 *
 * Events are serialised into a buffer in TopTransactionContext as triggers
 * fire.  Subtransactions: each event remembers the nesting level that made it;
 * a rollback to savepoint truncates the buffer back to the first event of
 * the aborted level, a release relabels the tail to the parent level (levels
 * never decrease towards the tail, so both touch only that subtransaction's
 * events).  At COMMIT the buffer is appended to the shared ring; at abort or
 * PREPARE it is discarded (a prepared transaction is not pushed when it is
 * committed later; its changes reach clients through Merkle sync).
 *
 * A transaction may collect at most half the ring; beyond that it stops
 * collecting and reports the remaining events as lost, which makes the
 * consumer resynchronise its clients — memory stays bounded either way.
 */
#include "topgun.h"
#include "changes/changes.h"
#include "changes/ring.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

typedef struct EvMark
{
	int			offset;			/* start of the event in pending.data */
	int			nest;
} EvMark;

static StringInfo pending = NULL;
static EvMark *marks = NULL;
static int	nmarks = 0;
static int	marks_cap = 0;
static uint64 pending_lost = 0;
static uint64 current_origin = 0;
static uint32 skip_mask = 0;

PG_FUNCTION_INFO_V1(tg_publish);

void
tg_changes_set_origin(uint64 origin)
{
	current_origin = origin;
}

void
tg_changes_skip_kinds(uint32 mask)
{
	skip_mask = mask;
}

static Size
max_txn_bytes(void)
{
	return tg_changes_ring_size() / 2;
}

void
tg_changes_capture(TgChangeKind kind, const char *map, int maplen,
				   const char *key, int keylen, const char *tag, int taglen,
				   const char *payload, int payloadlen)
{
	Size		need;
	MemoryContext old;

	if ((skip_mask & (1u << kind)) != 0 || !tg_changes_has_consumer())
		return;					/* not wanted, or nobody listens: no cost */
	need = tg_changes_record_size(maplen, keylen, taglen, payloadlen);
	if (pending != NULL && (Size) pending->len + need > max_txn_bytes())
	{
		pending_lost++;
		return;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	if (pending == NULL)
		pending = makeStringInfo();
	if (nmarks == marks_cap)
	{
		marks_cap = marks_cap == 0 ? 32 : marks_cap * 2;
		marks = marks == NULL ? palloc(marks_cap * sizeof(EvMark))
			: repalloc(marks, marks_cap * sizeof(EvMark));
	}
	marks[nmarks].offset = pending->len;
	marks[nmarks].nest = GetCurrentTransactionNestLevel();
	nmarks++;
	tg_changes_encode(pending, kind, current_origin, map, maplen, key, keylen,
					  tag, taglen, payload, payloadlen);
	MemoryContextSwitchTo(old);
}

static void
reset_pending(void)
{
	pending = NULL;				/* memory goes with TopTransactionContext */
	marks = NULL;
	nmarks = marks_cap = 0;
	pending_lost = 0;
}

static void
xact_cb(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			/* after the commit record: publishing cannot fail */
			if (pending != NULL || pending_lost > 0)
				tg_changes_publish(pending ? pending->data : NULL, pending ? pending->len : 0,
								   nmarks, pending_lost);
			reset_pending();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
			reset_pending();
			break;
		default:
			break;
	}
}

static void
subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	int			nest;

	if (nmarks == 0)
		return;
	nest = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (nmarks > 0 && marks[nmarks - 1].nest >= nest)
		{
			nmarks--;
			pending->len = marks[nmarks].offset;
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		int			i = nmarks;

		while (i > 0 && marks[i - 1].nest >= nest)
			marks[--i].nest = nest - 1;
	}
}

void
tg_changes_capture_init(void)
{
	RegisterXactCallback(xact_cb, NULL);
	RegisterSubXactCallback(subxact_cb, NULL);
}

/*
 * topgun.publish(topic text, data jsonb): deliver a message to the topic's
 * subscribers when (and only if) the calling transaction commits.
 */
Datum
tg_publish(PG_FUNCTION_ARGS)
{
	text	   *topic;
	Jsonb	   *data;
	char	   *json;
	const char *s;
	int			len,
				i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic must not be NULL")));
	topic = PG_GETARG_TEXT_PP(0);
	s = VARDATA_ANY(topic);
	len = VARSIZE_ANY_EXHDR(topic);
	/* TopGun's rule: 1..256 characters of [A-Za-z0-9_.:/-] */
	if (len < 1 || len > 256)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid topic name: must be 1 to 256 characters")));
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-' || c == '.' || c == ':' || c == '/'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid topic name \"%.*s\"", len, s),
					 errdetail("Topic names use only letters, digits and _ - . : /")));
	}
	data = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	json = data ? JsonbToCString(NULL, &data->root, VARSIZE(data)) : pstrdup("null");
	if (strlen(json) > (size_t) 1024 * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("topic message is too large (%zu bytes)", strlen(json)),
				 errdetail("The maximum is 1 MiB.")));
	tg_changes_capture(TG_CHANGE_TOPIC, s, len, NULL, 0, NULL, 0, json, strlen(json));
	PG_RETURN_VOID();
}
