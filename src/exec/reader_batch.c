/*
 * reader_batch.c — single-key entry processors (TG_REQ_PROCESS) share one
 * reader transaction: a durable commit costs what one processor's does, so
 * a batch of n costs about one commit instead of n (issue 15's throughput).
 *
 * The requests of a batch come from different connections (a connection has
 * one request out at a time), so their order among themselves is free: they
 * run sorted by their key's processor lock id, and two readers' batches take
 * those locks in the same order (no deadlock between batches).  Holding
 * several keys' locks can still meet a group commit or a multi-key batch
 * holding rows in another order: the batch waits at most lock_timeout for
 * any lock, then gives up, and the caller serves its requests one by one
 * (one key each, as before).  Any other failure does the same, so a request
 * that fails fails alone, and nothing of a failed batch is half-committed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/memutils.h"

#include "exec/exec.h"
#include "exec/reads.h"

/* Longest wait for a lock inside a batch before falling back (ms). */
#define BATCH_LOCK_TIMEOUT "200ms"

typedef struct BatchItem
{
	int			index;
	int64		lock;
} BatchItem;

static int
item_cmp(const void *a, const void *b)
{
	const BatchItem *x = a;
	const BatchItem *y = b;

	if (x->lock != y->lock)
		return x->lock < y->lock ? -1 : 1;
	return x->index - y->index;
}

bool
tg_reader_serve_batch(const TgRec *rec, const char *const *payload, TgIpcBuf *out, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	TgIpcBuf   *saved = tg_exec_out;
	BatchItem	   *items = palloc(sizeof(BatchItem) * n);
	volatile bool ok = true;

	for (int i = 0; i < n; i++)
	{
		items[i].index = i;
		items[i].lock = tg_reads_process_lock(payload[i], rec[i].len);
	}
	qsort(items, n, sizeof(BatchItem), item_cmp);
	PG_TRY();
	{
		tg_txn_begin();
		if (SPI_execute("SET LOCAL lock_timeout = '" BATCH_LOCK_TIMEOUT "'", false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "topgun: could not set lock_timeout");
		for (int j = 0; j < n; j++)
		{
			int			i = items[j].index;
			TgConn		dummy;

			memset(&dummy, 0, sizeof(dummy));
			dummy.id = rec[i].conn;	/* the request id: every reply record carries it */
			dummy.slot = -1;
			tg_exec_out = &out[i];
			tg_reads_serve(&dummy, (TgRecKind) rec[i].kind, payload[i], rec[i].len);
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
		FreeErrorData(e);
		for (int i = 0; i < n; i++)
			tg_ipc_buf_reset(&out[i]);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	pfree(items);
	return ok;
}
