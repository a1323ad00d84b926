/*
 * ring.c — the shared-memory ring that carries committed change events to
 * the sync worker.
 *
 * Positions are monotonically increasing byte offsets (head: next write,
 * tail: oldest record kept); data[pos % size].  Records may wrap.  When a
 * commit needs room, the oldest records are dropped; records the consumer
 * had not read yet are counted as lost so it can make its clients
 * resynchronise.  Memory is fixed at server start
 * (topgun.change_buffer_size), so the feed can never grow with load.
 */
#include "topgun.h"
#include "changes/ring.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/* On-ring record header; followed by map, key, tag and payload bytes. */
typedef struct RecHdr
{
	uint32		total;			/* header + data, bytes */
	uint8		kind;
	uint8		pad;
	uint16		maplen;
	uint32		keylen;
	uint32		taglen;
	uint32		payloadlen;
	uint64		origin;
	uint64		seq;
} RecHdr;

typedef struct Ring
{
	LWLock	   *lock;
	uint64		head;
	uint64		tail;
	uint64		next_seq;
	uint64		appended;		/* events ever appended */
	uint64		dropped;		/* events ever dropped to make room */
	uint64		consumer_pos;	/* consumer's cursor as of its last read */
	uint64		lost_unread;	/* dropped before the consumer read them, not yet reported */
	pg_atomic_uint32 consumer_pid;
	pg_atomic_uint32 wake_pending;
	Size		size;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} Ring;

static Ring *ring = NULL;
static int	ring_kb = 8192;
static shmem_request_hook_type prev_request = NULL;
static shmem_startup_hook_type prev_startup = NULL;

PG_FUNCTION_INFO_V1(tg_change_feed_stats);

static Size
ring_bytes(void)
{
	return (Size) ring_kb * 1024;
}

static void
ring_request(void)
{
	if (prev_request)
		prev_request();
	RequestAddinShmemSpace(MAXALIGN(offsetof(Ring, data) + ring_bytes()));
	RequestNamedLWLockTranche("topgun change feed", 1);
}

static void
ring_startup(void)
{
	bool		found;

	if (prev_startup)
		prev_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ring = ShmemInitStruct("topgun change feed", offsetof(Ring, data) + ring_bytes(), &found);
	if (!found)
	{
		ring->lock = &(GetNamedLWLockTranche("topgun change feed"))->lock;
		ring->head = ring->tail = 0;
		ring->next_seq = 1;
		ring->appended = ring->dropped = ring->lost_unread = ring->consumer_pos = 0;
		pg_atomic_init_u32(&ring->consumer_pid, 0);
		pg_atomic_init_u32(&ring->wake_pending, 0);
		ring->size = ring_bytes();
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tg_changes_init(void)
{
	DefineCustomIntVariable("topgun.change_buffer_size",
							"Shared memory for committed change events on their way to the sync worker.",
							"When the worker falls this far behind, the oldest unread events are dropped "
							"and the affected clients are made to resynchronise.",
							&ring_kb, 8192, 64, 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
	prev_request = shmem_request_hook;
	shmem_request_hook = ring_request;
	prev_startup = shmem_startup_hook;
	shmem_startup_hook = ring_startup;
}

static void
ring_put(uint64 pos, const void *src, Size len)
{
	Size		off = pos % ring->size;
	Size		first = Min(len, ring->size - off);

	memcpy(ring->data + off, src, first);
	if (first < len)
		memcpy(ring->data, (const char *) src + first, len - first);
}

static void
ring_get(uint64 pos, void *dst, Size len)
{
	Size		off = pos % ring->size;
	Size		first = Min(len, ring->size - off);

	memcpy(dst, ring->data + off, first);
	if (first < len)
		memcpy((char *) dst + first, ring->data, len - first);
}

/* Bytes a record takes on the ring. */
Size
tg_changes_record_size(int maplen, int keylen, int taglen, int payloadlen)
{
	return sizeof(RecHdr) + maplen + keylen + taglen + payloadlen;
}

/*
 * Serialise one event into a transaction-local buffer (seq filled at commit).
 */
void
tg_changes_encode(StringInfo buf, TgChangeKind kind, uint64 origin,
				  const char *map, int maplen, const char *key, int keylen,
				  const char *tag, int taglen, const char *payload, int payloadlen)
{
	RecHdr		h;

	memset(&h, 0, sizeof(h));
	h.total = tg_changes_record_size(maplen, keylen, taglen, payloadlen);
	h.kind = (uint8) kind;
	h.maplen = (uint16) maplen;
	h.keylen = keylen;
	h.taglen = taglen;
	h.payloadlen = payloadlen;
	h.origin = origin;
	appendBinaryStringInfo(buf, (const char *) &h, sizeof(h));
	if (maplen)
		appendBinaryStringInfo(buf, map, maplen);
	if (keylen)
		appendBinaryStringInfo(buf, key, keylen);
	if (taglen)
		appendBinaryStringInfo(buf, tag, taglen);
	if (payloadlen)
		appendBinaryStringInfo(buf, payload, payloadlen);
}

/*
 * Append a committed transaction's events (called from the COMMIT callback:
 * must not fail).  `lost` counts events the transaction could not even
 * collect (its own buffer overflowed); they are reported as lost too.
 */
void
tg_changes_publish(const char *buf, Size len, int nevents, uint64 lost)
{
	Size		off = 0;
	uint32		pid;

	if (ring == NULL || (nevents == 0 && lost == 0))
		return;
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (len > ring->size)
	{
		/* cannot fit at all: everything is lost */
		lost += nevents;
		len = 0;
		nevents = 0;
	}
	while (ring->head + len - ring->tail > ring->size)
	{
		RecHdr		h;

		ring_get(ring->tail, &h, sizeof(h));
		if (ring->tail >= ring->consumer_pos)
			ring->lost_unread++;
		ring->tail += h.total;
		ring->dropped++;
	}
	while (off < len)
	{
		RecHdr		h;

		memcpy(&h, buf + off, sizeof(h));
		h.seq = ring->next_seq++;
		ring_put(ring->head, &h, sizeof(h));
		ring_put(ring->head + sizeof(h), buf + off + sizeof(h), h.total - sizeof(h));
		ring->head += h.total;
		off += h.total;
	}
	ring->appended += nevents;
	ring->lost_unread += lost;
	LWLockRelease(ring->lock);

	/* One signal until the consumer reads again, however many commits. */
	pid = pg_atomic_read_u32(&ring->consumer_pid);
	if (pid != 0 && pg_atomic_exchange_u32(&ring->wake_pending, 1) == 0)
		kill((pid_t) pid, SIGUSR2);
}

Size
tg_changes_ring_size(void)
{
	return ring_bytes();
}

bool
tg_changes_has_consumer(void)
{
	return ring != NULL && pg_atomic_read_u32(&ring->consumer_pid) != 0;
}

void
tg_changes_register_consumer(bool on)
{
	if (ring == NULL)
		return;
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	pg_atomic_write_u32(&ring->consumer_pid, on ? (uint32) MyProcPid : 0);
	pg_atomic_write_u32(&ring->wake_pending, 0);
	ring->consumer_pos = ring->head;
	ring->lost_unread = 0;
	LWLockRelease(ring->lock);
}

uint64
tg_changes_head(void)
{
	uint64		h;

	if (ring == NULL)
		return 0;
	LWLockAcquire(ring->lock, LW_SHARED);
	h = ring->head;
	LWLockRelease(ring->lock);
	return h;
}

int
tg_changes_read(uint64 *cursor, StringInfo out, Size max_bytes, uint64 *lost)
{
	int			n = 0;
	uint64		pos;

	resetStringInfo(out);
	*lost = 0;
	if (ring == NULL)
		return 0;
	/* re-arm the wake-up before looking, so no commit can slip between */
	pg_atomic_write_u32(&ring->wake_pending, 0);
	pg_memory_barrier();
	LWLockAcquire(ring->lock, LW_EXCLUSIVE);
	if (*cursor < ring->tail)
		*cursor = ring->tail;
	if (*cursor > ring->head)
		*cursor = ring->head;
	pos = *cursor;
	while (pos < ring->head)
	{
		RecHdr		h;

		ring_get(pos, &h, sizeof(h));
		if (out->len > 0 && (Size) out->len + h.total > max_bytes)
			break;
		enlargeStringInfo(out, h.total);
		ring_get(pos, out->data + out->len, h.total);
		out->len += h.total;
		pos += h.total;
		n++;
	}
	*cursor = pos;
	ring->consumer_pos = pos;
	*lost = ring->lost_unread;
	ring->lost_unread = 0;
	LWLockRelease(ring->lock);
	return n;
}

bool
tg_changes_decode(StringInfo buf, int *offset, TgChange *ev)
{
	RecHdr		h;
	const char *p;

	if (*offset + (int) sizeof(RecHdr) > buf->len)
		return false;
	memcpy(&h, buf->data + *offset, sizeof(h));
	p = buf->data + *offset + sizeof(h);
	ev->kind = (TgChangeKind) h.kind;
	ev->origin = h.origin;
	ev->seq = h.seq;
	ev->map = p;
	ev->maplen = h.maplen;
	p += h.maplen;
	ev->key = p;
	ev->keylen = h.keylen;
	p += h.keylen;
	ev->tag = p;
	ev->taglen = h.taglen;
	p += h.taglen;
	ev->payload = p;
	ev->payloadlen = h.payloadlen;
	*offset += h.total;
	return true;
}

/* topgun.change_feed_stats(): one row describing the feed. */
Datum
tg_change_feed_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (ring == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topgun change feed is not initialised")));
	LWLockAcquire(ring->lock, LW_SHARED);
	values[0] = Int64GetDatum((int64) ring->size);
	values[1] = Int64GetDatum((int64) (ring->head - ring->tail));
	values[2] = Int64GetDatum((int64) ring->appended);
	values[3] = Int64GetDatum((int64) ring->dropped);
	values[4] = Int64GetDatum((int64) (ring->head - Min(ring->consumer_pos, ring->head)));
	values[5] = Int64GetDatum((int64) ring->next_seq - 1);
	values[6] = Int32GetDatum((int32) pg_atomic_read_u32(&ring->consumer_pid));
	nulls[6] = values[6] == Int32GetDatum(0);
	values[7] = Int64GetDatum((int64) ring->lost_unread);
	LWLockRelease(ring->lock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* --------------------------------------------------------------------------
 * A SQL-level consumer, for operators and tests: lets a session read the
 * feed when no sync worker consumes it (topgun.port = 0).
 * --------------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(tg_change_feed_attach);
PG_FUNCTION_INFO_V1(tg_change_feed_read);

static uint64 sql_cursor = 0;
static bool sql_attached = false;

static void
sql_detach(int code, Datum arg)
{
	if (sql_attached && ring != NULL &&
		pg_atomic_read_u32(&ring->consumer_pid) == (uint32) MyProcPid)
		tg_changes_register_consumer(false);
	sql_attached = false;
}

Datum
tg_change_feed_attach(PG_FUNCTION_ARGS)
{
	uint32		pid;

	if (ring == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topgun change feed is not initialised")));
	pid = pg_atomic_read_u32(&ring->consumer_pid);
	if (pid != 0 && pid != (uint32) MyProcPid && kill((pid_t) pid, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the change feed is already consumed by process %u", pid),
				 errhint("Only one consumer (normally the sync worker) can read the feed.")));
	if (!sql_attached)
		before_shmem_exit(sql_detach, (Datum) 0);
	tg_changes_register_consumer(true);
	sql_attached = true;
	sql_cursor = tg_changes_head();
	PG_RETURN_VOID();
}

static const char *
kind_text(TgChangeKind k)
{
	switch (k)
	{
		case TG_CHANGE_LWW:
			return "lww";
		case TG_CHANGE_OR_ADD:
			return "or_add";
		case TG_CHANGE_OR_REMOVE:
			return "or_remove";
		case TG_CHANGE_TOPIC:
			return "topic";
		case TG_CHANGE_COUNTER:
			return "counter";
	}
	return "?";
}

/* topgun._change_feed_read() → (seq, kind, map, key, tag, payload, origin, lost) */
Datum
tg_change_feed_read(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StringInfoData buf;
	uint64		lost;
	int			off = 0;
	TgChange	ev;

	if (!sql_attached)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this session is not attached to the change feed"),
				 errhint("Call topgun._change_feed_attach() first.")));
	InitMaterializedSRF(fcinfo, 0);
	initStringInfo(&buf);
	tg_changes_read(&sql_cursor, &buf, 64 * 1024 * 1024, &lost);
	while (tg_changes_decode(&buf, &off, &ev))
	{
		Datum		v[8];
		bool		n[8] = {0};

		v[0] = Int64GetDatum((int64) ev.seq);
		v[1] = CStringGetTextDatum(kind_text(ev.kind));
		v[2] = PointerGetDatum(cstring_to_text_with_len(ev.map, ev.maplen));
		v[3] = PointerGetDatum(cstring_to_text_with_len(ev.key, ev.keylen));
		n[3] = ev.keylen == 0 && ev.kind != TG_CHANGE_LWW && ev.kind != TG_CHANGE_OR_ADD;
		v[4] = PointerGetDatum(cstring_to_text_with_len(ev.tag, ev.taglen));
		n[4] = ev.taglen == 0;
		v[5] = PointerGetDatum(cstring_to_text_with_len(ev.payload, ev.payloadlen));
		n[5] = ev.payloadlen == 0;
		v[6] = Int64GetDatum((int64) ev.origin);
		v[7] = Int64GetDatum((int64) lost);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	if (lost > 0 && off == 0)
	{
		/* report a loss even when nothing else arrived */
		Datum		v[8] = {0};
		bool		n[8] = {true, false, true, true, true, true, true, false};

		v[1] = CStringGetTextDatum("lost");
		v[7] = Int64GetDatum((int64) lost);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}
