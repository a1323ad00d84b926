/*
 * reader_batch.c — single-key entry processors (TG_REQ_PROCESS) share one
 * reader transaction: a durable commit costs what one processor's does, so
 * a batch of n costs about one commit instead of n (issue 15's throughput).
 *
 * Requests on different keys are independent, so their order is free; a
 * connection's requests on one key keep the order it sent them in (its
 * requests all go to one reader, FIFO, and run here in arrival order).  The
 * batch first takes every key's processor locks (tg_lock_keys: bucket
 * shared, key exclusive, in a deadlock-free order; batches of different
 * keys never wait for each other), then runs the built-ins set-based:
 * requests with the same map, built-in and args become one
 * tg_execute_builtin_keys() call (one read of their keys, one lww_put_many;
 * a repeated key sees its predecessor's result, as execute_on_keys does).
 * Registered processors and unknown names run one by one through the
 * ordinary path (read_msgs.c), in the same transaction.
 *
 * Holding several keys can still meet a group commit or a multi-key batch
 * holding rows in another order: the batch waits at most lock_timeout for
 * any lock, then gives up, and the caller serves its requests one by one
 * (one key each, as before).  Any other failure does the same, so a request
 * that fails fails alone, and nothing of a failed batch is half-committed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/reads.h"
#include "logic/logic_pg.h"

/* Longest wait for a lock inside a batch before falling back (ms). */
#define BATCH_LOCK_TIMEOUT "200ms"

typedef struct BatchItem
{
	TgProcReq	r;
	bool		done;
} BatchItem;

static bool
same_text(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

static bool
same_args(Jsonb *a, Jsonb *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0;
}

static bool
has_key(Jsonb *obj, const char *k)
{
	JsonbValue	kv;

	kv.type = jbvString;
	kv.val.string.val = (char *) k;
	kv.val.string.len = strlen(k);
	return findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &kv) != NULL;
}

/*
 * ENTRY_PROCESS_RESPONSE {type, requestId} || response, as the SQL path
 * builds it, written straight to msgpack (no jsonb of the reply): the
 * response's own pairs, then type and requestId unless it has them (its
 * keys win, as in jsonb ||).
 */
static void
reply(TgIpcBuf *out, uint64 req, const char *request_id, Jsonb *resp)
{
	TgConn		dummy;
	MpBuf	   *b;
	bool		obj = JB_ROOT_IS_OBJECT(resp) && !JB_ROOT_IS_SCALAR(resp);
	bool		own_type = obj && has_key(resp, "type");
	bool		own_id = obj && has_key(resp, "requestId");

	memset(&dummy, 0, sizeof(dummy));
	dummy.id = req;
	dummy.slot = -1;
	tg_exec_out = out;
	b = tg_buf_begin();
	if (tg_put_jsonb_object_plus(b, resp, (own_type ? 0 : 1) + (own_id ? 0 : 1)))
	{
		if (!own_type)
		{
			mp_put_str(b, "type");
			mp_put_str(b, "ENTRY_PROCESS_RESPONSE");
		}
		if (!own_id)
		{
			mp_put_str(b, "requestId");
			mp_put_str(b, request_id);
		}
	}
	else
	{
		StringInfoData s;
		Jsonb	   *head;

		initStringInfo(&s);
		appendStringInfoString(&s, "{\"type\": \"ENTRY_PROCESS_RESPONSE\", \"requestId\": ");
		escape_json(&s, request_id);
		appendStringInfoChar(&s, '}');
		head = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
		tg_put_jsonb(b, DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(head),
															JsonbPGetDatum(resp))));
	}
	tg_buf_send(&dummy, b);
}

/* Every not yet done built-in request like items[first]: one set-based call. */
static void
run_group(BatchItem *items, int n, int first, const TgRec *rec, TgIpcBuf *out)
{
	BatchItem  *f = &items[first];
	int		   *members = palloc(sizeof(int) * n);
	text	  **keys = palloc(sizeof(text *) * n);
	Jsonb	  **resp = palloc(sizeof(Jsonb *) * n);
	int			m = 0;

	for (int j = first; j < n; j++)
	{
		BatchItem  *x = &items[j];

		if (x->done || x->r.builtin != f->r.builtin || !same_text(x->r.map, f->r.map) ||
			!same_args(x->r.args, f->r.args))
			continue;
		members[m] = j;
		keys[m++] = x->r.key;
		x->done = true;
	}
	tg_execute_builtin_keys(f->r.map, keys, m, f->r.builtin, f->r.args, resp);
	for (int k = 0; k < m; k++)
	{
		int			i = members[k];

		reply(&out[i], rec[i].conn, items[i].r.request_id, resp[k]);
	}
}

bool
tg_reader_serve_batch(const TgRec *rec, const char *const *payload, TgIpcBuf *out, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	TgIpcBuf   *saved = tg_exec_out;
	volatile bool ok = true;

	PG_TRY();
	{
		BatchItem  *items;

		tg_txn_begin();
		(void) set_config_option("lock_timeout", BATCH_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);	/* this transaction only */
		items = palloc0(sizeof(BatchItem) * n);
		for (int i = 0; i < n; i++)
			tg_read_process_req(payload[i], rec[i].len, &items[i].r);
		{
			text	  **maps = palloc(sizeof(text *) * n);
			text	  **keys = palloc(sizeof(text *) * n);

			for (int j = 0; j < n; j++)
			{
				maps[j] = items[j].r.map;
				keys[j] = items[j].r.key;
			}
			tg_lock_keys(maps, keys, n);	/* the keys' processor locks, before any of them runs */
		}
		for (int j = 0; j < n; j++)
		{
			BatchItem  *x = &items[j];

			if (x->done)
				continue;
			/* over-long args take the ordinary path, which refuses them */
			if (x->r.builtin >= 0 && (x->r.args == NULL || VARSIZE(x->r.args) <= TG_PROCESSOR_MAX_ARGS_BYTES))
				run_group(items, n, j, rec, out);
			else
			{
				TgConn		dummy;

				memset(&dummy, 0, sizeof(dummy));
				dummy.id = rec[j].conn;	/* the request id: every reply record carries it */
				dummy.slot = -1;
				tg_exec_out = &out[j];
				tg_reads_serve(&dummy, (TgRecKind) rec[j].kind, payload[j], rec[j].len);
				x->done = true;
			}
		}
		tg_exec_out = saved;
		tg_txn_end();
	}
	PG_CATCH();
	{
		ErrorData  *e;

		tg_exec_out = saved;
		e = tg_txn_recover();
		ereport(DEBUG1, (errmsg("topgun: a batch of %d entry processors is served one by one: %s",
								n, e->message)));
		tg_stat_add(TG_STAT_PROCESSOR_BATCH_RETRIES, 1);
		FreeErrorData(e);
		for (int i = 0; i < n; i++)
			tg_ipc_buf_reset(&out[i]);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}
