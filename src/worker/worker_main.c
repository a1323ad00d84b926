/*
 * worker_main.c — lifecycle of the sync-server background worker and the
 * libwebsockets transport.
 *
 * Threading/wait model: libwebsockets owns the wait (Debian's lws has no
 * external-poll support).  Signal handlers only set flags and write one byte
 * to a self-pipe whose read end is adopted into lws as a raw file, so a
 * signal makes lws_service() return.  A periodic lws_sul (250 ms) drives
 * housekeeping: postmaster liveness, auth/heartbeat timeouts, readiness.
 *
 * lws callbacks never call PostgreSQL functions that can raise an error:
 * they move bytes between sockets and malloc'd queues.  All SQL work runs
 * in the main loop after lws_service() returns (tg_proto_process).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/procsignal.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "topgun.h"
#include "worker/worker.h"

TgConn	   *tg_conns = NULL;
bool		tg_ready = false;

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sighup = false;
static volatile sig_atomic_t got_wakeup = false;
static volatile sig_atomic_t tick_due = false;
static int	wake_pipe[2] = {-1, -1};

static struct lws_context *lws_ctx = NULL;
static lws_sorted_usec_list_t tick_sul;
static uint64 next_conn_id = 1;
static int	nconns_live = 0;
static TgInMsg *inq_head = NULL;
static TgInMsg *inq_tail = NULL;
static int	inq_count = 0;		/* messages queued since the last hand-off */
static size_t inq_bytes = 0;	/* ... and their size */

/* group gathering, see gather_more_input() */
static uint64 last_process_us = 0;
static uint64 gather_epoch = 1;
static int	gather_senders = 0;		/* connections with a message in the queue */
static int	last_senders = 0;		/* ... in the previous group */
static int64 last_ready_check_ms = 0;
static Oid	served_ext_oid = InvalidOid;	/* extension we served with */
static bool *slot_used = NULL;

/* Largest message accepted from a socket that has not authenticated yet. */
#define TG_PREAUTH_MAX_MESSAGE_BYTES (64 * 1024)

/* AUTH_REQUIRED exactly as msgpackr encodes it (PROTOCOL §1.6). */
static const unsigned char auth_required_msg[] = {
	0xde, 0x00, 0x01, 0xa4, 't', 'y', 'p', 'e',
	0xad, 'A', 'U', 'T', 'H', '_', 'R', 'E', 'Q', 'U', 'I', 'R', 'E', 'D'
};

int64
tg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic milliseconds: for timeouts, immune to wall-clock jumps. */
int64
tg_mono_ms(void)
{
	return (int64) (mono_ns() / 1000000);
}

/* ------------------------------------------------------------ signals */

static void
wake_self(void)
{
	int			save_errno = errno;

	if (wake_pipe[1] >= 0)
	{
		char		b = 1;
		ssize_t		rc pg_attribute_unused();

		rc = write(wake_pipe[1], &b, 1);	/* EAGAIN: a wake is pending */
	}
	errno = save_errno;
}

static void
tg_sigterm(SIGNAL_ARGS)
{
	got_sigterm = true;
	wake_self();
	SetLatch(MyLatch);
}

static void
tg_sighup(SIGNAL_ARGS)
{
	got_sighup = true;
	wake_self();
	SetLatch(MyLatch);
}

static void
tg_sigusr2(SIGNAL_ARGS)
{
	got_wakeup = true;
	wake_self();
	SetLatch(MyLatch);
}

/*
 * SIGUSR1 carries procsignals (barriers, sinval catch-up, ...).  Let the
 * standard handler record them and make sure the loop wakes up to process
 * them with CHECK_FOR_INTERRUPTS(); otherwise e.g. DROP DATABASE waits on a
 * sleeping worker.
 */
static void
tg_sigusr1(SIGNAL_ARGS)
{
	int			save_errno = errno;

	procsignal_sigusr1_handler(postgres_signal_arg);
	wake_self();
	errno = save_errno;
}

/* ------------------------------------------------------ shared slots */

void
tg_conn_update_slot(TgConn *c)
{
	TgConnSlot *s;

	if (c->slot < 0 || tg_worker_shared == NULL)
		return;
	c->slot_dirty = false;
	s = &tg_worker_shared->slots[c->slot];
	TG_SLOT_BEGIN_WRITE(s);
	s->authenticated = c->authenticated;
	strlcpy(s->user, c->user_id[0] ? c->user_id : c->sub, TG_SLOT_USER_LEN);
	s->msgs_in = c->msgs_in;
	s->msgs_out = c->msgs_out;
	s->bytes_in = c->bytes_in;
	s->bytes_out = c->bytes_out;
	s->pending_out = c->out_bytes;
	s->watched_maps = c->nwatches + c->ntopics + c->ncounters;
	s->queries = c->nqueries;
	s->topics = c->ntopics;
	s->counters = c->ncounters;
	s->limit_hits = c->limit_hits;
	s->denied = c->denied;
	TG_SLOT_END_WRITE(s);
}

static int
slot_acquire(TgConn *c)
{
	TgConnSlot *s;

	if (tg_worker_shared == NULL)
		return -1;
	for (int i = 0; i < tg_worker_shared->nslots; i++)
	{
		if (slot_used[i])
			continue;
		slot_used[i] = true;
		s = &tg_worker_shared->slots[i];
		TG_SLOT_BEGIN_WRITE(s);
		s->in_use = true;
		s->authenticated = false;
		s->id = c->id;
		strlcpy(s->remote, c->remote, TG_SLOT_ADDR_LEN);
		s->user[0] = '\0';
		s->connected_since = GetCurrentTimestamp();
		s->msgs_in = s->msgs_out = s->bytes_in = s->bytes_out = s->pending_out = 0;
		s->watched_maps = 0;
		s->queries = s->topics = s->counters = 0;
		s->limit_hits = s->denied = 0;
		TG_SLOT_END_WRITE(s);
		return i;
	}
	return -1;
}

static void
slot_release(TgConn *c)
{
	TgConnSlot *s;

	if (c->slot < 0 || tg_worker_shared == NULL)
		return;
	s = &tg_worker_shared->slots[c->slot];
	TG_SLOT_BEGIN_WRITE(s);
	s->in_use = false;
	TG_SLOT_END_WRITE(s);
	slot_used[c->slot] = false;
	c->slot = -1;
}

/* -------------------------------------------------------- connections */

/*
 * Queue one complete message.  Returns false (and schedules a hard close)
 * when the client is not draining and the queue would exceed
 * topgun.max_outbound_bytes, or when memory runs out.
 */
bool
tg_conn_send(TgConn *c, const unsigned char *data, size_t len)
{
	TgOutMsg   *m;

	if (c->closed || c->kill_now || c->wsi == NULL)
		return false;
	/*
	 * One message larger than the cap is still accepted into an empty queue
	 * (a big QUERY_RESP or leaf); a client that does not drain is caught by
	 * the next message.
	 */
	if (c->out_bytes > 0 && c->out_bytes + len > (size_t) tg_max_outbound_bytes)
	{
		tg_stat_add(TG_STAT_SLOW_CLIENTS_CLOSED, 1);
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s): outbound queue exceeds topgun.max_outbound_bytes (%d)",
						(unsigned long long) c->id, c->remote, tg_max_outbound_bytes)));
		tg_conn_kill(c, 1008, "Outbound queue overflow");
		return false;
	}
	m = malloc(offsetof(TgOutMsg, buf) + LWS_PRE + len);
	if (m == NULL)
	{
		tg_conn_kill(c, 1011, "Out of memory");
		return false;
	}
	m->next = NULL;
	m->len = len;
	memcpy(m->buf + LWS_PRE, data, len);
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	c->out_bytes += len;
	lws_callback_on_writable(c->wsi);
	return true;
}

/* Close after everything queued so far has been written. */
void
tg_conn_close(TgConn *c, int code, const char *reason)
{
	if (c->closed || c->closing || c->wsi == NULL)
		return;
	c->closing = true;
	c->close_code = code;
	strlcpy(c->close_reason, reason, sizeof(c->close_reason));
	lws_callback_on_writable(c->wsi);
}

static void
free_outq(TgConn *c)
{
	while (c->out_head)
	{
		TgOutMsg   *n = c->out_head->next;

		free(c->out_head);
		c->out_head = n;
	}
	c->out_tail = NULL;
	c->out_bytes = 0;
}

/* Drop the queue and close at once (slow consumer, overflow, OOM). */
void
tg_conn_kill(TgConn *c, int code, const char *reason)
{
	if (c->closed || c->wsi == NULL)
		return;
	free_outq(c);
	c->closing = true;
	c->kill_now = true;
	c->close_code = code;
	strlcpy(c->close_reason, reason, sizeof(c->close_reason));
	/* the peer is not reading: a close frame would never get through */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static TgConn *
conn_new(struct lws *wsi)
{
	TgConn	   *c = calloc(1, sizeof(TgConn));

	if (c == NULL)
		return NULL;
	c->wsi = wsi;
	c->id = next_conn_id++;
	c->slot = -1;
	c->connected_ms = tg_mono_ms();
	c->last_ping_ms = c->connected_ms;
	c->last_rx_ms = c->connected_ms;
	lws_get_peer_simple(wsi, c->remote, sizeof(c->remote));
	c->next = tg_conns;
	if (tg_conns)
		tg_conns->prev = c;
	tg_conns = c;
	return c;
}

static void
conn_free(TgConn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		tg_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free_outq(c);
	free(c->rx);
	tg_live_conn_gone(c);
	for (int i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	while (c->watches)
	{
		TgWatch    *w = c->watches->next;

		free(c->watches->query_id);
		free(c->watches);
		c->watches = w;
	}
	free(c);
}

static void
inq_push(TgConn *c, unsigned char *data, size_t len)
{
	TgInMsg    *m = malloc(sizeof(TgInMsg));

	if (m == NULL)
	{
		free(data);
		tg_conn_kill(c, 1011, "Out of memory");
		return;
	}
	m->next = NULL;
	m->conn = c;
	m->len = len;
	m->data = data;
	if (inq_tail)
		inq_tail->next = m;
	else
		inq_head = m;
	inq_tail = m;
	inq_count++;
	inq_bytes += len;
	if (c->gather_epoch != gather_epoch)
	{
		c->gather_epoch = gather_epoch;
		gather_senders++;
	}
}

/* ------------------------------------------------------ lws callbacks */

typedef struct TgPss
{
	TgConn	   *conn;
	int			http_state;		/* plain HTTP GET: 1 = body pending */
} TgPss;

static const char http_body[] = "TopGun Server Running";

static int
handle_receive(struct lws *wsi, TgConn *c, const unsigned char *in, size_t len)
{
	size_t		remaining = lws_remaining_packet_payload(wsi);
	size_t		limit = (size_t) tg_max_message_bytes;

	/*
	 * Before authentication only AUTH and PING make sense, and both are
	 * small: cap unauthenticated messages so that anonymous sockets cannot
	 * make the worker buffer max_message_bytes each.
	 */
	if (!c->authenticated && limit > TG_PREAUTH_MAX_MESSAGE_BYTES)
		limit = TG_PREAUTH_MAX_MESSAGE_BYTES;

	if (c->closing)
		return 0;				/* ignore traffic on a closing socket */

	/* refuse as soon as the declared or accumulated size is too big */
	if (c->rx_len + len > limit || c->rx_len + len + remaining > limit)
	{
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s): message larger than topgun.max_message_bytes (%d)",
						(unsigned long long) c->id, c->remote, tg_max_message_bytes)));
		free(c->rx);
		c->rx = NULL;
		c->rx_len = c->rx_cap = 0;
		c->closing = true;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
						 (unsigned char *) "Message too big", 15);
		return -1;
	}
	if (c->rx_len + len > c->rx_cap)
	{
		size_t		ncap = Max(c->rx_cap * 2, c->rx_len + len + remaining);
		unsigned char *n;

		if (ncap > limit)
			ncap = limit;
		if (ncap < c->rx_len + len)
			ncap = c->rx_len + len;
		n = realloc(c->rx, ncap > 0 ? ncap : 1);
		if (n == NULL)
		{
			lws_close_reason(wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
							 (unsigned char *) "Out of memory", 13);
			return -1;
		}
		c->rx = n;
		c->rx_cap = ncap;
	}
	if (len > 0)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;

	if (lws_is_final_fragment(wsi) && remaining == 0)
	{
		unsigned char *data = c->rx;
		size_t		dlen = c->rx_len;

		c->rx = NULL;
		c->rx_len = c->rx_cap = 0;
		if (data == NULL)
		{
			data = malloc(1);
			if (data == NULL)
				return -1;
		}
		c->msgs_in++;
		c->bytes_in += dlen;
		c->slot_dirty = true;
		c->last_rx_ms = tg_mono_ms();
		inq_push(c, data, dlen);
	}
	return 0;
}

/* lws 4.1 keeps the close opcode out of its public enum (it is 4 on the wire). */
#define TG_LWS_WRITE_CLOSE ((enum lws_write_protocol) 4)

/*
 * Replace the first messages of the queue (at most 500 of them, 256 KiB) by
 * one BATCH envelope {type:'BATCH', count, data: bin [u32le count]
 * ([u32le len][msg])*}, as the reference server's CoalescingWriter does.
 * Under load one socket write then carries many events; a lone message is
 * still sent as is.  Returns false when there was nothing to combine or
 * memory ran out (the messages are then sent one by one).  Only touches
 * malloc'd memory: runs inside an lws callback.
 */
#define BATCH_MAX_MSGS	500
#define BATCH_MAX_BYTES	(256 * 1024)

static bool
coalesce(TgConn *c)
{
	static const unsigned char head[] = {
		0xde, 0x00, 0x03,
		0xa4, 't', 'y', 'p', 'e', 0xa5, 'B', 'A', 'T', 'C', 'H',
		0xa5, 'c', 'o', 'u', 'n', 't'
	};
	static const unsigned char data_key[] = {0xa4, 'd', 'a', 't', 'a'};
	uint32		count = 0;
	size_t		datalen = 4;
	size_t		total;
	TgOutMsg   *m,
			   *b;
	unsigned char *p;

	for (m = c->out_head; m && count < BATCH_MAX_MSGS; m = m->next)
	{
		if (count > 0 && datalen + 4 + m->len > BATCH_MAX_BYTES)
			break;
		datalen += 4 + m->len;
		count++;
	}
	if (count < 2)
		return false;
	total = sizeof(head) + 3 + sizeof(data_key) + 5 + datalen;
	b = malloc(offsetof(TgOutMsg, buf) + LWS_PRE + total);
	if (b == NULL)
		return false;
	p = b->buf + LWS_PRE;
	memcpy(p, head, sizeof(head));
	p += sizeof(head);
	if (count < 128)
		*p++ = (unsigned char) count;
	else
	{
		*p++ = 0xcd;
		*p++ = (unsigned char) (count >> 8);
		*p++ = (unsigned char) count;
	}
	memcpy(p, data_key, sizeof(data_key));
	p += sizeof(data_key);
	if (datalen < 65536)
	{
		*p++ = 0xc5;
		*p++ = (unsigned char) (datalen >> 8);
		*p++ = (unsigned char) datalen;
	}
	else
	{
		*p++ = 0xc6;
		*p++ = (unsigned char) (datalen >> 24);
		*p++ = (unsigned char) (datalen >> 16);
		*p++ = (unsigned char) (datalen >> 8);
		*p++ = (unsigned char) datalen;
	}
	*p++ = (unsigned char) count;
	*p++ = (unsigned char) (count >> 8);
	*p++ = (unsigned char) (count >> 16);
	*p++ = (unsigned char) (count >> 24);
	for (uint32 i = 0; i < count; i++)
	{
		TgOutMsg   *n = c->out_head;
		uint32		l = (uint32) n->len;

		*p++ = (unsigned char) l;
		*p++ = (unsigned char) (l >> 8);
		*p++ = (unsigned char) (l >> 16);
		*p++ = (unsigned char) (l >> 24);
		memcpy(p, n->buf + LWS_PRE, n->len);
		p += n->len;
		c->out_head = n->next;
		c->out_bytes -= n->len;
		free(n);
	}
	b->len = (size_t) (p - (b->buf + LWS_PRE));
	b->next = c->out_head;
	c->out_head = b;
	if (b->next == NULL)
		c->out_tail = b;
	c->out_bytes += b->len;
	/* counted as the inner messages, minus the one counted when it is written */
	c->msgs_out += count - 1;
	return true;
}

static int
handle_writeable(struct lws *wsi, TgConn *c)
{
	if (c->kill_now)
		return -1;
	if (c->out_head && c->out_head->next && coalesce(c))
	{
		/* several messages waiting: sent as one BATCH frame (PROTOCOL.md 1.5) */
	}
	if (c->out_head)
	{
		TgOutMsg   *m = c->out_head;
		int			n;

		n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_BINARY);
		if (n < 0)
			return -1;
		c->out_head = m->next;
		if (c->out_head == NULL)
			c->out_tail = NULL;
		c->out_bytes -= m->len;
		c->msgs_out++;
		c->bytes_out += m->len;
		c->slot_dirty = true;
		free(m);
		if (c->out_head || c->closing)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (c->closing && !c->close_sent)
	{
		/*
		 * Send the close frame ourselves and wait (5 s at most) for the
		 * peer's close.  lws_close_reason() + return -1 would close the
		 * socket at once, and a peer whose frames are still unread here
		 * would get a TCP RST (seen as 1006) and lose our last messages.
		 */
		unsigned char buf[LWS_PRE + 2 + sizeof(c->close_reason)];
		size_t		rlen = strlen(c->close_reason);

		buf[LWS_PRE] = (unsigned char) ((c->close_code >> 8) & 0xff);
		buf[LWS_PRE + 1] = (unsigned char) (c->close_code & 0xff);
		memcpy(buf + LWS_PRE + 2, c->close_reason, rlen);
		c->close_sent = true;
		if (lws_write(wsi, buf + LWS_PRE, 2 + rlen, TG_LWS_WRITE_CLOSE) < 0)
			return -1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
	}
	return 0;
}

static int
tg_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
			   void *user, void *in, size_t len)
{
	TgPss	   *pss = (TgPss *) user;
	TgConn	   *c = pss ? pss->conn : NULL;

	switch (reason)
	{
		case LWS_CALLBACK_HTTP:
			{
				unsigned char buf[LWS_PRE + 512];
				unsigned char *start = &buf[LWS_PRE];
				unsigned char *p = start;
				unsigned char *end = &buf[sizeof(buf) - 1];

				if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/plain",
												sizeof(http_body) - 1, &p, end))
					return 1;
				if (lws_finalize_write_http_header(wsi, start, &p, end))
					return 1;
				pss->http_state = 1;
				lws_callback_on_writable(wsi);
				return 0;
			}
		case LWS_CALLBACK_HTTP_WRITEABLE:
			{
				unsigned char buf[LWS_PRE + sizeof(http_body)];

				if (pss == NULL || pss->http_state != 1)
					return 0;
				pss->http_state = 2;
				memcpy(buf + LWS_PRE, http_body, sizeof(http_body) - 1);
				if (lws_write(wsi, buf + LWS_PRE, sizeof(http_body) - 1,
							  LWS_WRITE_HTTP_FINAL) != (int) (sizeof(http_body) - 1))
					return 1;
				if (lws_http_transaction_completed(wsi))
					return -1;
				return 0;
			}

		case LWS_CALLBACK_ESTABLISHED:
			c = conn_new(wsi);
			if (c == NULL)
				return -1;
			pss->conn = c;
			if (!tg_ready)
			{
				tg_stat_add(TG_STAT_CONN_REFUSED, 1);
				tg_conn_close(c, 1013, "Server not ready");
				return 0;
			}
			if (nconns_live >= tg_max_connections ||
				(c->slot = slot_acquire(c)) < 0)
			{
				tg_stat_add(TG_STAT_CONN_REFUSED, 1);
				tg_conn_close(c, 1013, "Server overloaded");
				return 0;
			}
			nconns_live++;
			tg_stat_add(TG_STAT_CONN_ACCEPTED, 1);
			tg_conn_send(c, auth_required_msg, sizeof(auth_required_msg));
			return 0;

		case LWS_CALLBACK_RECEIVE:
			if (c == NULL)
				return -1;
			return handle_receive(wsi, c, (const unsigned char *) in, len);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (c == NULL)
				return 0;
			return handle_writeable(wsi, c);

		case LWS_CALLBACK_CLOSED:
			if (c == NULL)
				return 0;
			if (c->slot >= 0)
			{
				slot_release(c);
				nconns_live--;
			}
			c->closed = true;
			c->wsi = NULL;
			pss->conn = NULL;
			free_outq(c);
			return 0;

		default:
			break;
	}
	return 0;
}

static int
tg_wake_callback(struct lws *wsi, enum lws_callback_reasons reason,
				 void *user, void *in, size_t len)
{
	if (reason == LWS_CALLBACK_RAW_RX_FILE)
	{
		char		buf[64];

		/* drain; the flags set by the handlers tell the main loop what to do */
		while (read(wake_pipe[0], buf, sizeof(buf)) > 0)
			;
	}
	return 0;
}

static struct lws_protocols tg_protocols[] = {
	{"topgun", tg_ws_callback, sizeof(TgPss), 16384, 0, NULL, 0},
	{"topgun-wake", tg_wake_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/*
 * Group commit gathering.  One lws_service() call reads what is ready at
 * that instant; under load, the clients whose acks were just written answer
 * a fraction of a millisecond later, and committing without them splits one
 * group into several.  Each commit costs a WAL flush plus a Merkle-tree update
 * of every touched depth-2 node (up to 256 rows per map, however few ops the
 * group has), so small groups waste the worker's only CPU.
 *
 * So before processing we keep reading while the group has fewer senders than
 * the previous one had: a client that was in the last group and has just
 * been acked is about to send again.  The wait is bounded by a quarter of the
 * previous group's processing time and by topgun.group_commit_delay: a single
 * client, or a lightly loaded server whose groups take microseconds, waits
 * (almost) nothing; a saturated one trades a little latency for much bigger
 * groups (measured with 50 connections: groups of 640 -> 2,600 ops, 43K ->
 * 51-57K acked ops/s; docs/worker.md).
 */

/*
 * Bounds of one gathering round, whatever the timing: the messages it may
 * queue (which also bounds the group), their total size (a few clients
 * sending messages of topgun.max_message_bytes must not make the worker hold
 * gigabytes), and how long input that keeps arriving may delay the group.
 */
#define TG_GATHER_MAX_MESSAGES	4096
#define TG_GATHER_MAX_BYTES		((size_t) 64 * 1024 * 1024)
#define TG_GATHER_MAX_US		2000

static void
gather_more_input(void)
{
	uint64		window_us = Min(last_process_us / 4, (uint64) tg_group_commit_delay_us);
	uint64		start = mono_ns();
	uint64		deadline = start + window_us * 1000;
	uint64		hard_deadline = start + (uint64) Max(window_us, TG_GATHER_MAX_US) * 1000;

	for (;;)
	{
		int			before = inq_count;
		uint64		now;

		if (got_sigterm || got_wakeup || inq_count >= TG_GATHER_MAX_MESSAGES ||
			inq_bytes >= TG_GATHER_MAX_BYTES)
			break;
		lws_service(lws_ctx, -1);	/* never blocks */
		now = mono_ns();
		if (now >= hard_deadline)
			break;
		if (inq_count != before)
			continue;			/* more may be readable already */
		if (gather_senders >= last_senders || now >= deadline)
			break;
		pg_usleep(50);			/* not spinning: the others need this CPU */
	}
	last_senders = gather_senders;
	gather_senders = 0;
	gather_epoch++;
}

static void
tick_cb(lws_sorted_usec_list_t *sul)
{
	tick_due = true;
	lws_sul_schedule(lws_ctx, 0, &tick_sul, tick_cb, 250 * LWS_US_PER_MS);
}

static void
lws_log_emit(int level, const char *line)
{
	/* lws lines end with a newline; LOG level never longjmps */
	ereport(LOG, (errmsg("topgun: libwebsockets: %.*s",
						 (int) strcspn(line, "\n"), line)));
}

/* --------------------------------------------------------- lifecycle */

/*
 * Resolve topgun.listen_addresses into an interface address for lws.
 * Returns false (with a log line) if it cannot be resolved.
 */
static bool
resolve_listen(char *out, size_t outlen, bool *ipv4)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int			rc;

	*ipv4 = false;
	out[0] = '\0';
	if (tg_listen_addresses == NULL || tg_listen_addresses[0] == '\0' ||
		strcmp(tg_listen_addresses, "*") == 0)
		return true;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(tg_listen_addresses, NULL, &hints, &res);
	if (rc != 0 || res == NULL)
	{
		ereport(WARNING,
				(errmsg("topgun: could not resolve topgun.listen_addresses \"%s\": %s",
						tg_listen_addresses, gai_strerror(rc))));
		return false;
	}
	/* prefer IPv4 when a name resolves to both (localhost) */
	for (struct addrinfo *a = res; a; a = a->ai_next)
	{
		if (a->ai_family == AF_INET)
		{
			inet_ntop(AF_INET, &((struct sockaddr_in *) a->ai_addr)->sin_addr, out, outlen);
			*ipv4 = true;
			break;
		}
	}
	if (!*ipv4)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *) res->ai_addr)->sin6_addr, out, outlen);
	freeaddrinfo(res);
	return true;
}

/*
 * Every WebSocket is a file descriptor: raise the soft RLIMIT_NOFILE so that
 * topgun.max_connections sockets fit next to PostgreSQL's own files.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t		want = (rlim_t) tg_max_connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		ereport(WARNING,
				(errmsg("topgun: open-file limit %lu is too low for topgun.max_connections = %d",
						(unsigned long) rl.rlim_cur, tg_max_connections),
				 errhint("Raise the hard limit (ulimit -Hn / LimitNOFILE) of the PostgreSQL service.")));
}

static bool
start_listener(void)
{
	struct lws_context_creation_info info;
	struct lws_vhost *vh;
	lws_sock_file_fd_type fd;
	char		iface[INET6_ADDRSTRLEN + 1];
	bool		ipv4;

	if (!resolve_listen(iface, sizeof(iface), &ipv4))
		return false;
	raise_fd_limit();

	memset(&info, 0, sizeof(info));
	info.port = tg_port;
	info.iface = iface[0] ? iface : NULL;
	info.protocols = tg_protocols;
	info.vhost_name = "default";
	info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
	if (ipv4)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.gid = -1;
	info.uid = -1;
	info.max_http_header_pool = 256;	/* concurrent upgrades in flight */
	info.fd_limit_per_thread = (unsigned int) tg_max_connections + 64;
	if (tg_ssl_cert_file && tg_ssl_cert_file[0])
	{
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = tg_ssl_cert_file;
		info.ssl_private_key_filepath = tg_ssl_key_file;
		info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 |
			SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
	}

	/* TOPGUN_LWS_LOG=<lws level bitmask> in the postmaster environment: debugging aid */
	lws_set_log_level(getenv("TOPGUN_LWS_LOG") ? atoi(getenv("TOPGUN_LWS_LOG")) : LLL_ERR,
					  lws_log_emit);
	lws_ctx = lws_create_context(&info);
	if (lws_ctx == NULL)
	{
		ereport(WARNING,
				(errmsg("topgun: could not start the sync server on %s port %d; retrying in 5 s",
						iface[0] ? iface : "*", tg_port)));
		return false;
	}
	vh = lws_get_vhost_by_name(lws_ctx, "default");
	memset(&fd, 0, sizeof(fd));
	fd.filefd = wake_pipe[0];
	if (vh == NULL ||
		lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "topgun-wake", NULL) == NULL)
	{
		ereport(WARNING, (errmsg("topgun: could not adopt the wake-up pipe into libwebsockets")));
		lws_context_destroy(lws_ctx);
		lws_ctx = NULL;
		return false;
	}
	lws_sul_schedule(lws_ctx, 0, &tick_sul, tick_cb, 250 * LWS_US_PER_MS);
	pg_atomic_write_u32(&tg_worker_shared->listening, 1);
	ereport(LOG,
			(errmsg("topgun sync server listening on %s port %d%s",
					iface[0] ? iface : "*", tg_port,
					info.ssl_cert_filepath ? " (TLS)" : "")));
	return true;
}

/* pg_extension.extversion of an installed extension, in *version (NAMEDATALEN) */
static void
read_extension_version(Oid oid, char *version)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	version[0] = '\0';
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(oid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			strlcpy(version, text_to_cstring(DatumGetTextPP(d)), NAMEDATALEN);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * OID of the extension in our database, or InvalidOid when it is missing,
 * being created or updated, or recovery is still in progress.  *version gets
 * its installed version ("" if unknown).  Own short transaction.
 */
static Oid
check_extension_oid(char *version)
{
	Oid			oid = InvalidOid;
	MemoryContext oldcxt = CurrentMemoryContext;

	version[0] = '\0';
	if (RecoveryInProgress())
		return InvalidOid;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		oid = get_extension_oid("topgun", true);
		if (creating_extension)
			oid = InvalidOid;
		if (OidIsValid(oid))
			read_extension_version(oid, version);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		oid = InvalidOid;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	return oid;
}

static void shutdown_clients(int code, const char *reason, bool with_notice);

static void
set_ready(bool ready)
{
	if (ready == tg_ready)
		return;
	tg_ready = ready;
	pg_atomic_write_u32(&tg_worker_shared->ready, ready ? 1 : 0);
	tg_live_ready(ready);
	if (!ready)
	{
		tg_proto_reset_plans();
		/* nothing can be served any more: let the clients retry later */
		for (TgConn *c = tg_conns; c; c = c->next)
			tg_conn_close(c, 1013, "Server not ready");
	}
	ereport(LOG,
			(errmsg(ready ? "topgun sync server ready: extension found in database \"%s\""
					: "topgun sync server not ready: extension missing, or not at the library's version, in database \"%s\"",
					tg_database)));
}

/* Force a readiness check at the next tick (after "function does not exist" ...). */
void
tg_request_ready_check(void)
{
	last_ready_check_ms = 0;
}

static void
housekeeping(void)
{
	int64		now = tg_mono_ms();

	if (!PostmasterIsAlive())
		proc_exit(1);

	/* readiness (extension present): a short transaction every second */
	if (now - last_ready_check_ms >= 1000)
	{
		Oid			oid;
		char		version[NAMEDATALEN];
		static char warned_version[NAMEDATALEN] = "";
		bool		version_ok;

		last_ready_check_ms = now;
		oid = check_extension_oid(version);
		if (OidIsValid(oid) && OidIsValid(served_ext_oid) && oid != served_ext_oid)
		{
			/*
			 * The extension was dropped and created again.  Cached plans
			 * (ours and the SQL core's) may hold OIDs of the old objects,
			 * e.g. the old hlc type as a parameter type; start afresh.
			 */
			ereport(LOG,
					(errmsg("topgun sync server restarting: extension \"topgun\" was re-created in database \"%s\"",
							tg_database)));
			shutdown_clients(1012, "Service Restart", false);
			proc_exit(1);
		}
		if (OidIsValid(oid))
			served_ext_oid = oid;

		/*
		 * A database still at an older version of the extension has the
		 * older storage layout, which this library cannot write: serve
		 * nothing (clients get the retryable 1013) until ALTER EXTENSION
		 * topgun UPDATE has run.  Said once per change, not every second.
		 */
		version_ok = !OidIsValid(oid) || strcmp(version, TG_EXTVERSION) == 0;
		if (OidIsValid(oid) && !version_ok && strcmp(version, warned_version) != 0)
			ereport(WARNING,
					(errmsg("topgun sync server not serving: extension \"topgun\" is at version %s in database \"%s\", the library is version %s",
							version, tg_database, TG_EXTVERSION),
					 errhint("Run ALTER EXTENSION topgun UPDATE in that database.")));
		strlcpy(warned_version, version_ok ? "" : version, sizeof(warned_version));
		set_ready(OidIsValid(oid) && version_ok);
	}

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || c->slot < 0)
			continue;
		if (!c->authenticated && now - c->connected_ms > tg_auth_timeout_ms)
			tg_conn_close(c, 4001, "Auth timeout");
		/*
		 * Liveness counts from the last frame *received*, not the last PING
		 * processed: a PING that arrived on time may still sit in the inbound
		 * queue behind a backlog (a big Merkle pull), and its sender must not
		 * be evicted for the server's own delay.
		 */
		else if (c->authenticated &&
				 now - Max(c->last_ping_ms, c->last_rx_ms) > tg_heartbeat_timeout_ms)
			tg_conn_close(c, 4002, "Heartbeat timeout");
		tg_conn_update_slot(c);
	}
}

static void
reap_dead(void)
{
	TgConn	   *c = tg_conns;

	while (c)
	{
		TgConn	   *n = c->next;

		if (c->closed)
		{
			tg_proto_conn_gone(c);
			conn_free(c);
		}
		c = n;
	}
}

static void
shutdown_clients(int code, const char *reason, bool with_notice)
{
	static const unsigned char shutdown_msg[] = {
		/* {type:'SHUTDOWN_PENDING', retryAfter:5000} as map16 */
		0xde, 0x00, 0x02,
		0xa4, 't', 'y', 'p', 'e',
		0xb0, 'S', 'H', 'U', 'T', 'D', 'O', 'W', 'N', '_', 'P', 'E', 'N', 'D', 'I', 'N', 'G',
		0xaa, 'r', 'e', 't', 'r', 'y', 'A', 'f', 't', 'e', 'r',
		0xcd, 0x13, 0x88
	};
	uint64		deadline;

	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->wsi == NULL || c->close_sent)
			continue;
		c->closing = false;
		if (with_notice)
			tg_conn_send(c, shutdown_msg, sizeof(shutdown_msg));
		tg_conn_close(c, code, reason);
	}
	/* give the sockets up to one second to flush */
	deadline = mono_ns() + 1000000000ULL;
	while (mono_ns() < deadline)
	{
		bool		any = false;

		for (TgConn *c = tg_conns; c; c = c->next)
			if (!c->closed)
				any = true;
		if (!any)
			break;
		lws_service(lws_ctx, 0);
	}
}

/* Whatever the exit path: the shared state must not claim a live server. */
static void
worker_exit_cb(int code, Datum arg)
{
	if (tg_worker_shared == NULL)
		return;
	pg_atomic_write_u32(&tg_worker_shared->listening, 0);
	pg_atomic_write_u32(&tg_worker_shared->ready, 0);
	pg_atomic_write_u32(&tg_worker_shared->worker_pid, 0);
	for (int i = 0; i < tg_worker_shared->nslots; i++)
	{
		TgConnSlot *sl = &tg_worker_shared->slots[i];

		if (sl->in_use)
		{
			TG_SLOT_BEGIN_WRITE(sl);
			sl->in_use = false;
			TG_SLOT_END_WRITE(sl);
		}
	}
}

static void
reload_config(void)
{
	got_sighup = false;
	ProcessConfigFile(PGC_SIGHUP);
	tg_auth_configure(false);
	/* last: a test that sees the count move knows the new settings apply */
	tg_stat_add(TG_STAT_RELOADS, 1);
}

void
tg_worker_main(Datum arg)
{
	MemoryContext loop_cxt;
	int64		next_listen_try = 0;
	bool		config_ok;

	if (pipe(wake_pipe) != 0 ||
		fcntl(wake_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
		fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC) != 0)
		ereport(FATAL, (errmsg("topgun: could not create the wake-up pipe: %m")));

	/*
	 * Every main-loop iteration allocates and frees the same large buffers
	 * (group-commit arrays, tuple stores, SPI results).  With glibc's
	 * defaults, blocks above 128 KiB are mmap'd and the heap top is trimmed
	 * back to the kernel, so each iteration page-faults them in again (~9 %
	 * of the worker's time under write load).  Keep them: the memory stays
	 * bounded by the largest iteration.
	 */
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);

	pqsignal(SIGTERM, tg_sigterm);
	pqsignal(SIGHUP, tg_sighup);
	pqsignal(SIGUSR2, tg_sigusr2);
	pqsignal(SIGUSR1, tg_sigusr1);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(tg_database, NULL, 0);
	pgstat_report_appname("topgun sync server");
	pgstat_report_activity(STATE_IDLE, NULL);

	/* acks are sent only for durable commits */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);

	slot_used = MemoryContextAllocZero(TopMemoryContext,
									   sizeof(bool) * tg_worker_shared->nslots);
	for (int i = 0; i < tg_worker_shared->nslots; i++)
		tg_worker_shared->slots[i].in_use = false;
	pg_atomic_write_u32(&tg_worker_shared->worker_pid, (uint32) MyProcPid);
	on_shmem_exit(worker_exit_cb, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "topgun worker loop",
									 ALLOCSET_DEFAULT_SIZES);

	/*
	 * Phase 1: wait until the configuration allows serving.  In production
	 * mode a missing/default/weak secret keeps the worker idle (alive, not
	 * listening) until a reload fixes it; no crash-restart loop.
	 */
	config_ok = tg_auth_configure(true);
	for (;;)
	{
		if (got_sigterm)
			proc_exit(1);
		if (config_ok)
		{
			int64		now = tg_mono_ms();

			if (now >= next_listen_try)
			{
				if (start_listener())
					break;
				next_listen_try = now + 5000;
			}
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (got_sighup)
		{
			got_sighup = false;
			ProcessConfigFile(PGC_SIGHUP);
			config_ok = tg_auth_configure(true);
			tg_stat_add(TG_STAT_RELOADS, 1);
		}
	}

	last_ready_check_ms = 0;
	housekeeping();

	/* Phase 2: serve. */
	while (!got_sigterm)
	{
		TgInMsg    *batch;
		bool		woken;

		lws_service(lws_ctx, 0);

		/*
		 * A query cancel (SIGINT) outside any transaction has nothing to
		 * cancel; do not let it raise an error at the top of the loop.
		 */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();

		if (got_sighup)
			reload_config();
		woken = got_wakeup;
		if (got_wakeup)
		{
			uint64		sent;

			got_wakeup = false;
			/* measure signal -> main loop latency of test wakes (topgun.worker_wake) */
			sent = pg_atomic_exchange_u64(&tg_worker_shared->wake_sent_ns, 0);
			if (sent != 0)
			{
				uint64		lat = mono_ns() - sent;

				pg_atomic_write_u64(&tg_worker_shared->wake_last_ns, lat);
				if (lat > pg_atomic_read_u64(&tg_worker_shared->wake_max_ns))
					pg_atomic_write_u64(&tg_worker_shared->wake_max_ns, lat);
				pg_atomic_fetch_add_u64(&tg_worker_shared->wake_count, 1);
				pg_atomic_fetch_add_u64(&tg_worker_shared->wake_total_ns, lat);
			}
		}
		if (tick_due)
		{
			tick_due = false;
			housekeeping();
		}

		if (inq_head)
			gather_more_input();
		batch = inq_head;
		inq_head = inq_tail = NULL;
		inq_count = 0;
		inq_bytes = 0;
		if (batch)
		{
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);
			uint64		t0 = mono_ns();

			pgstat_report_activity(STATE_RUNNING, "topgun: processing messages");
			tg_proto_process(batch);	/* frees the list */
			pgstat_report_activity(STATE_IDLE, NULL);
			last_process_us = (mono_ns() - t0) / 1000;
			MemoryContextSwitchTo(old);
		}
		{
			/* committed changes of other backends (and query re-runs) */
			MemoryContext old = MemoryContextSwitchTo(loop_cxt);

			tg_live_poll(woken);
			MemoryContextSwitchTo(old);
		}
		reap_dead();
		MemoryContextReset(loop_cxt);
	}

	ereport(LOG, (errmsg("topgun sync server shutting down")));
	shutdown_clients(1001, "Server Shutdown", true);
	pg_atomic_write_u32(&tg_worker_shared->listening, 0);
	pg_atomic_write_u32(&tg_worker_shared->ready, 0);
	pg_atomic_write_u32(&tg_worker_shared->worker_pid, 0);
	lws_context_destroy(lws_ctx);
	lws_ctx = NULL;
	tg_auth_release();

	/*
	 * Exit code 1 keeps the worker registered: after pg_terminate_backend
	 * it is restarted; during a postmaster shutdown nothing is restarted.
	 */
	proc_exit(1);
}
