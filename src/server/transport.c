/*
 * transport.c — the socket process's libwebsockets side: connection
 * objects, reassembly of inbound messages, the per-connection outbound
 * queue (coalesced into BATCH frames, PROTOCOL.md 1.5), closing, and the
 * connection slots of topgun.connections.
 *
 * lws callbacks never call PostgreSQL functions that can raise an error:
 * they only move bytes between sockets and malloc'd queues.
 */
#include "postgres.h"

#include <unistd.h>

#include <libwebsockets.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "server/server.h"
#include "worker/worker.h"
#include "metrics/metrics.h"
#include "metrics/metrics_pg.h"

static uint64 next_conn_id = 1;
static int	nconns_live = 0;
static TgInMsg *inq_head = NULL;
static TgInMsg *inq_tail = NULL;
static bool *slot_used = NULL;

/* Largest message accepted from a socket that has not authenticated yet. */
#define TG_PREAUTH_MAX_MESSAGE_BYTES (64 * 1024)

/* AUTH_REQUIRED exactly as msgpackr encodes it (PROTOCOL §1.6). */
static const unsigned char auth_required_msg[] = {
	0xde, 0x00, 0x01, 0xa4, 't', 'y', 'p', 'e',
	0xad, 'A', 'U', 'T', 'H', '_', 'R', 'E', 'Q', 'U', 'I', 'R', 'E', 'D'
};

static int	wake_fd = -1;
static void (*on_open) (TgConn *c) = NULL;

void
tg_sock_init(int fd, void (*open_cb) (TgConn *c))
{
	wake_fd = fd;
	on_open = open_cb;
	slot_used = MemoryContextAllocZero(TopMemoryContext,
									   sizeof(bool) * tg_worker_shared->nslots);
	for (int i = 0; i < tg_worker_shared->nslots; i++)
		tg_worker_shared->slots[i].in_use = false;
}

/* The complete messages received since the last call, in arrival order. */
TgInMsg *
tg_sock_take_inbound(void)
{
	TgInMsg    *l = inq_head;

	inq_head = inq_tail = NULL;
	return l;
}

/* ------------------------------------------------------ shared slots */

void
tg_sock_update_slot(TgConn *c)
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
	s->rate_limited = c->rate_limited;
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
		s->limit_hits = s->denied = s->rate_limited = 0;
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
 * Queue one complete message (more: a further part of the reply the last
 * message began).  Returns false (and schedules a hard close) when the
 * client is not draining and the queue would exceed
 * topgun.max_outbound_bytes, or when memory runs out.
 *
 * A reply that goes into an empty queue is accepted whatever its size (a big
 * QUERY_RESP or leaf, an ORMAP_DIFF_RESPONSE in parts) and is not counted
 * against the cap while it drains: what is queued behind it must fit the
 * cap, so a client that does not drain is caught by the next messages.
 */
static bool
enqueue(TgConn *c, const unsigned char *data, size_t len, bool more)
{
	TgOutMsg   *m;

	if (c->closed || c->kill_now || c->wsi == NULL)
		return false;
	if (!more)
		c->exempt_open = c->out_bytes == 0;
	if (!c->exempt_open && c->out_bytes - c->exempt_bytes + len > (size_t) tg_max_outbound_bytes)
	{
		tg_stat_add(TG_STAT_SLOW_CLIENTS_CLOSED, 1);
		ereport(LOG,
				(errmsg("topgun: closing connection %llu (%s): outbound queue exceeds topgun.max_outbound_bytes (%d)",
						(unsigned long long) c->id, c->remote, tg_max_outbound_bytes)));
		tg_sock_kill(c, 1008, "Outbound queue overflow");
		return false;
	}
	m = malloc(offsetof(TgOutMsg, buf) + LWS_PRE + len);
	if (m == NULL)
	{
		tg_sock_kill(c, 1011, "Out of memory");
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
	if (c->exempt_open)
		c->exempt_bytes += len;
	lws_callback_on_writable(c->wsi);
	return true;
}

bool
tg_sock_send(TgConn *c, const unsigned char *data, size_t len)
{
	return enqueue(c, data, len, false);
}

bool
tg_sock_send_more(TgConn *c, const unsigned char *data, size_t len)
{
	return enqueue(c, data, len, true);
}

/* n bytes were written: the queue drains from its head, the exempt reply first */
static void
drained(TgConn *c, size_t n)
{
	c->exempt_bytes -= Min(n, c->exempt_bytes);
}

void
tg_sock_close(TgConn *c, int code, const char *reason)
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
	c->exempt_bytes = 0;
	c->exempt_open = false;
}

/* Drop the queue and close at once (slow consumer, overflow, OOM). */
void
tg_sock_kill(TgConn *c, int code, const char *reason)
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
	free(c);
}

static void
inq_push(TgConn *c, unsigned char *data, size_t len)
{
	TgInMsg    *m = malloc(sizeof(TgInMsg));

	if (m == NULL)
	{
		free(data);
		tg_sock_kill(c, 1011, "Out of memory");
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
}

/* ------------------------------------------------------ lws callbacks */

typedef struct TgPss
{
	TgConn	   *conn;
	char	   *http_body;		/* plain HTTP GET: response body (malloc'd) */
	size_t		http_len;
	size_t		http_off;		/* bytes of it written so far */
} TgPss;

/* Largest piece of an HTTP body written per WRITEABLE callback. */
#define TG_HTTP_CHUNK 16384

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
		c->close_code = LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE;
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
		drained(c, m->len);
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
				/* /health, /health/live, /metrics, / (src/metrics/http.c) */
				unsigned char buf[LWS_PRE + 512];
				unsigned char *start = &buf[LWS_PRE];
				unsigned char *p = start;
				unsigned char *end = &buf[sizeof(buf) - 1];
				char		peer[64];
				TgHttpResponse r;

				lws_get_peer_simple(wsi, peer, sizeof(peer));
				if (!tg_http_respond(in ? (const char *) in : "/", peer, tg_metrics_enabled,
									 tg_metrics_allow, &r))
				{
					free(r.body);
					lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL);
					return -1;
				}
				pss->http_body = r.body;
				pss->http_len = r.len;
				pss->http_off = 0;
				if (lws_add_http_common_headers(wsi, (unsigned int) r.status, r.content_type,
												r.len, &p, end) ||
					lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
												 (const unsigned char *) "no-store", 8, &p, end) ||
					lws_finalize_write_http_header(wsi, start, &p, end))
					return 1;
				lws_callback_on_writable(wsi);
				return 0;
			}
		case LWS_CALLBACK_HTTP_WRITEABLE:
			{
				unsigned char buf[LWS_PRE + TG_HTTP_CHUNK];
				size_t		n;
				bool		last;

				if (pss == NULL || pss->http_body == NULL)
					return 0;
				n = Min(pss->http_len - pss->http_off, (size_t) TG_HTTP_CHUNK);
				last = pss->http_off + n == pss->http_len;
				memcpy(buf + LWS_PRE, pss->http_body + pss->http_off, n);
				if (lws_write(wsi, buf + LWS_PRE, n,
							  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int) n)
					return 1;
				pss->http_off += n;
				if (!last)
				{
					lws_callback_on_writable(wsi);
					return 0;
				}
				free(pss->http_body);
				pss->http_body = NULL;
				if (lws_http_transaction_completed(wsi))
					return -1;
				return 0;
			}
		case LWS_CALLBACK_CLOSED_HTTP:
			if (pss)
			{
				free(pss->http_body);
				pss->http_body = NULL;
			}
			return 0;

		case LWS_CALLBACK_ESTABLISHED:
			c = conn_new(wsi);
			if (c == NULL)
				return -1;
			pss->conn = c;
			tg_metrics_inc(TG_M_CONN_OPENED, 0, 1);
			tg_metrics_add(TG_M_CONN_OPEN, 0, 1);
			if (!tg_ready)
			{
				tg_stat_add(TG_STAT_CONN_REFUSED, 1);
				tg_metrics_inc(TG_M_CONN_REFUSED, TG_REFUSE_NOT_READY, 1);
				tg_sock_close(c, 1013, "Server not ready");
				return 0;
			}
			if (nconns_live >= tg_max_connections ||
				(c->slot = slot_acquire(c)) < 0)
			{
				tg_stat_add(TG_STAT_CONN_REFUSED, 1);
				tg_metrics_inc(TG_M_CONN_REFUSED, TG_REFUSE_OVERLOADED, 1);
				tg_sock_close(c, 1013, "Server overloaded");
				return 0;
			}
			nconns_live++;
			tg_stat_add(TG_STAT_CONN_ACCEPTED, 1);
			on_open(c);
			tg_sock_send(c, auth_required_msg, sizeof(auth_required_msg));
			return 0;

		case LWS_CALLBACK_RECEIVE:
			if (c == NULL)
				return -1;
			return handle_receive(wsi, c, (const unsigned char *) in, len);

		case LWS_CALLBACK_SERVER_WRITEABLE:
			if (c == NULL)
				return 0;
			return handle_writeable(wsi, c);

		case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
			/* the peer's close code, unless we had chosen one already */
			if (c != NULL && !c->closing && c->close_code == 0 && len >= 2)
				c->close_code = (((const unsigned char *) in)[0] << 8) | ((const unsigned char *) in)[1];
			return 0;

		case LWS_CALLBACK_CLOSED:
			if (c == NULL)
				return 0;
			tg_metrics_add(TG_M_CONN_OPEN, 0, -1);
			tg_metrics_conn_closed(c->close_code ? c->close_code : 1006);
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
		while (read(wake_fd, buf, sizeof(buf)) > 0)
			;
	}
	return 0;
}

struct lws_protocols tg_sock_protocols[] = {
	{"topgun", tg_ws_callback, sizeof(TgPss), 16384, 0, NULL, 0},
	{"topgun-wake", tg_wake_callback, 0, 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}
};

/* Free the connections whose socket closed (gone() is told first). */
void
tg_sock_reap(void (*gone) (TgConn *c))
{
	TgConn	   *c = tg_conns;

	while (c)
	{
		TgConn	   *n = c->next;

		if (c->closed)
		{
			gone(c);
			conn_free(c);
		}
		c = n;
	}
}
