/*
 * reads.h — what a reader executor does with a request (reads.c).
 */
#ifndef TG_EXEC_READS_H
#define TG_EXEC_READS_H

#include "ipc/ipc.h"
#include "utils/jsonb.h"
#include "worker/worker.h"

/* In a transaction; the reply goes through tg_conn_send() / tg_exec_out. */
extern void tg_reads_serve(TgConn *c, TgRecKind kind, const char *payload, size_t len);

/* A TG_REQ_PROCESS frame, parsed (read_msgs.c; in a transaction: may raise). */
typedef struct TgProcReq
{
	text	   *map;
	text	   *key;
	int			builtin;		/* built-in processor id, -1: registered or unknown */
	Jsonb	   *args;			/* NULL: absent */
	char	   *request_id;
} TgProcReq;

extern void tg_read_process_req(const char *payload, size_t len, TgProcReq *r);

/*
 * reader_batch.c: serve n TG_REQ_PROCESS requests (rec[i] with payload[i])
 * in one transaction, replies into out[i]; false when that transaction
 * failed and nothing of it committed (the caller serves them one by one).
 */
extern bool tg_reader_serve_batch(const TgRec *rec, const char *const *payload, TgIpcBuf *out, int n);

#endif							/* TG_EXEC_READS_H */
