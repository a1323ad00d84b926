/*
 * ipc.c — record buffers and the DSM segment of the sync server's queues
 * (see ipc.h).  Record buffers use malloc only: the socket process fills
 * them inside libwebsockets callbacks, where nothing may ereport.
 */
#include "postgres.h"

#include <signal.h>

#include "storage/shm_toc.h"

#include "ipc/ipc.h"

#define TG_IPC_TOC_MAGIC 0x74676331

static Size
padded(Size n)
{
	return (n + 7) & ~((Size) 7);
}

void
tg_ipc_put(TgIpcBuf *b, TgRecKind kind, uint64 conn, const void *p, size_t len)
{
	size_t		need = sizeof(TgRec) + padded(len);
	TgRec		r;

	if (b->failed)
		return;
	if (b->len + need > b->cap)
	{
		size_t		ncap = Max(b->cap * 2, b->len + need);
		char	   *n;

		ncap = Max(ncap, 4096);
		n = realloc(b->data, ncap);
		if (n == NULL)
		{
			b->failed = true;
			return;
		}
		b->data = n;
		b->cap = ncap;
	}
	r.kind = (uint32) kind;
	r.len = (uint32) len;
	r.conn = conn;
	memcpy(b->data + b->len, &r, sizeof(r));
	if (len > 0)
		memcpy(b->data + b->len + sizeof(r), p, len);
	if (padded(len) > len)
		memset(b->data + b->len + sizeof(r) + len, 0, padded(len) - len);
	b->len += need;
}

void
tg_ipc_buf_reset(TgIpcBuf *b)
{
	b->len = 0;
	b->failed = false;
	/* a huge message once must not pin its buffer forever */
	if (b->cap > (size_t) 16 * 1024 * 1024)
	{
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

void
tg_ipc_buf_free(TgIpcBuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

void
tg_rec_iter_init(TgRecIter *it, const void *data, Size len)
{
	it->p = data;
	it->end = (const char *) data + len;
}

bool
tg_rec_next(TgRecIter *it, TgRec *rec, const char **payload)
{
	if (it->end - it->p < (ptrdiff_t) sizeof(TgRec))
		return false;
	memcpy(rec, it->p, sizeof(TgRec));
	if ((Size) (it->end - it->p) - sizeof(TgRec) < padded(rec->len))
		elog(ERROR, "topgun: truncated queue record (kind %u, %u bytes)", rec->kind, rec->len);
	*payload = it->p + sizeof(TgRec);
	it->p += sizeof(TgRec) + padded(rec->len);
	return true;
}

/* ----------------------------------------------------------- segment */

static Size
queue_size(int id)
{
	if (id == TG_Q_IN)
		return TG_IPC_IN_SIZE;
	if (id == TG_Q_OUT)
		return TG_IPC_OUT_SIZE;
	return ((id - TG_Q_RREQ_BASE) % 2 == 0) ? TG_IPC_RREQ_SIZE : TG_IPC_RREP_SIZE;
}

dsm_segment *
tg_ipc_create(int nreaders, TgIpcHeader **hdr_out)
{
	shm_toc_estimator e;
	Size		size;
	dsm_segment *seg;
	shm_toc    *toc;
	TgIpcHeader *hdr;
	int			nq = 2 + 2 * nreaders;

	Assert(nreaders >= 1 && nreaders <= TG_MAX_READERS);
	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, sizeof(TgIpcHeader));
	shm_toc_estimate_chunk(&e, TG_IPC_IN_SIZE);
	shm_toc_estimate_chunk(&e, TG_IPC_OUT_SIZE);
	for (int i = 0; i < nreaders; i++)
	{
		shm_toc_estimate_chunk(&e, TG_IPC_RREQ_SIZE);
		shm_toc_estimate_chunk(&e, TG_IPC_RREP_SIZE);
	}
	shm_toc_estimate_keys(&e, 1 + nq);
	size = shm_toc_estimate(&e);

	seg = dsm_create(size, 0);
	dsm_pin_mapping(seg);
	toc = shm_toc_create(TG_IPC_TOC_MAGIC, dsm_segment_address(seg), size);
	hdr = shm_toc_allocate(toc, sizeof(TgIpcHeader));
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = TG_IPC_MAGIC;
	hdr->nreaders = nreaders;
	pg_atomic_init_u32(&hdr->sp_pid, 0);
	pg_atomic_init_u32(&hdr->sp_wake_pending, 0);
	pg_atomic_init_u32(&hdr->sp_blocked, 0);
	pg_atomic_init_u32(&hdr->session_pid, 0);
	shm_toc_insert(toc, 0, hdr);
	{
		int			ids[2 + 2 * TG_MAX_READERS];

		ids[0] = TG_Q_IN;
		ids[1] = TG_Q_OUT;
		for (int i = 0; i < nreaders; i++)
		{
			ids[2 + 2 * i] = TG_Q_RREQ_BASE + 2 * i;
			ids[3 + 2 * i] = TG_Q_RREP_BASE + 2 * i;
		}
		for (int i = 0; i < nq; i++)
		{
			void	   *mem = shm_toc_allocate(toc, queue_size(ids[i]));

			shm_mq_create(mem, queue_size(ids[i]));
			shm_toc_insert(toc, (uint64) ids[i], mem);
		}
	}
	*hdr_out = hdr;
	return seg;
}

TgIpcHeader *
tg_ipc_attach(dsm_segment *seg)
{
	shm_toc    *toc = shm_toc_attach(TG_IPC_TOC_MAGIC, dsm_segment_address(seg));
	TgIpcHeader *hdr;

	if (toc == NULL)
		ereport(ERROR, (errmsg("topgun: bad magic in the executor queue segment")));
	hdr = shm_toc_lookup(toc, 0, false);
	if (hdr->magic != TG_IPC_MAGIC)
		ereport(ERROR, (errmsg("topgun: bad header in the executor queue segment")));
	return hdr;
}

shm_mq *
tg_ipc_queue(dsm_segment *seg, int id)
{
	shm_toc    *toc = shm_toc_attach(TG_IPC_TOC_MAGIC, dsm_segment_address(seg));

	return shm_toc_lookup(toc, (uint64) id, false);
}

/* Re-create a queue whose counterpart died (nobody may be attached). */
void
tg_ipc_reset_queue(dsm_segment *seg, int id)
{
	shm_mq_create(tg_ipc_queue(seg, id), queue_size(id));
}

shm_mq_result
tg_ipc_send_nowait(shm_mq_handle *h, const void *data, Size len)
{
	return shm_mq_send(h, len, data, true, true);
}

void
tg_ipc_wake_socket(TgIpcHeader *hdr)
{
	uint32		pid = pg_atomic_read_u32(&hdr->sp_pid);

	if (pid != 0 && pg_atomic_exchange_u32(&hdr->sp_wake_pending, 1) == 0)
		kill((pid_t) pid, SIGUSR2);
}
