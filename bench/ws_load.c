/*
 * ws_load.c — load generator for the topgun sync server.
 *
 * Speaks the TopGun protocol over plain TCP with its own minimal WebSocket
 * client framing (RFC 6455: masked client frames, fragment reassembly,
 * ping/pong/close) and hand-written msgpack encoding that mirrors what the
 * TopGun client sends (map16 objects, float64 millis, d4 00 00 undefined,
 * string op ids).  Tokens are HS256 JWTs minted with OpenSSL.
 *
 * Phases (all bounded in time):
 *   1. closed loop, for each connection count in --connections: every
 *      connection keeps --window OP_BATCHes of --batch ops in flight and
 *      sends the next one when an OP_ACK (sent by the server only after the
 *      commit is durable) comes back.  Prints acked ops/s and p50/p99/max
 *      ack latency.  Ops are spread over --maps maps and drawn from --mix.
 *   2. open loop at a fixed --rate ops/s spread over --rate-connections
 *      connections (batches of --rate-batch ops, pipelined): latency is
 *      measured from the scheduled send time, so queueing delay counts.
 *   3. idle memory: opens --idle authenticated connections that send nothing
 *      and reads the worker's private memory (RssAnon) from /proc/<--worker-pid>/status before
 *      and after (needs permission to read that file).
 *
 * Build: cc -O2 -Wall -Wextra -o bench/ws_load bench/ws_load.c -lcrypto -lm
 * Usage: see bench/README.md, or ws_load --help.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ------------------------------------------------------------ utilities */

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fprintf(stderr, "ws_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static double
wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double) tv.tv_sec * 1000.0 + tv.tv_usec / 1000;
}

typedef struct Buf
{
	unsigned char *p;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_reserve(Buf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t		ncap = b->cap ? b->cap * 2 : 4096;

	while (ncap < b->len + extra)
		ncap *= 2;
	b->p = realloc(b->p, ncap);
	if (!b->p)
		die("out of memory");
	b->cap = ncap;
}

static void
buf_put(Buf *b, const void *data, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
buf_byte(Buf *b, unsigned char c)
{
	buf_reserve(b, 1);
	b->p[b->len++] = c;
}

/* Drop the first n bytes. */
static void
buf_consume(Buf *b, size_t n)
{
	if (n >= b->len)
	{
		b->len = 0;
		return;
	}
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

/* ------------------------------------------------------ msgpack encoder */

static void
mp_map16(Buf *b, unsigned n)
{
	unsigned char h[3] = {0xde, (unsigned char) (n >> 8), (unsigned char) n};

	buf_put(b, h, 3);
}

static void
mp_array(Buf *b, unsigned n)
{
	if (n < 16)
		buf_byte(b, 0x90 | n);
	else
	{
		unsigned char h[3] = {0xdc, (unsigned char) (n >> 8), (unsigned char) n};

		buf_put(b, h, 3);
	}
}

static void
mp_strn(Buf *b, const char *s, size_t n)
{
	if (n < 32)
		buf_byte(b, 0xa0 | n);
	else if (n < 256)
	{
		buf_byte(b, 0xd9);
		buf_byte(b, n);
	}
	else
	{
		unsigned char h[3] = {0xda, (unsigned char) (n >> 8), (unsigned char) n};

		buf_put(b, h, 3);
	}
	buf_put(b, s, n);
}

static void
mp_str(Buf *b, const char *s)
{
	mp_strn(b, s, strlen(s));
}

static void
mp_uint(Buf *b, uint32_t v)
{
	if (v < 128)
		buf_byte(b, v);
	else if (v < 256)
	{
		buf_byte(b, 0xcc);
		buf_byte(b, v);
	}
	else if (v < 65536)
	{
		unsigned char h[3] = {0xcd, (unsigned char) (v >> 8), (unsigned char) v};

		buf_put(b, h, 3);
	}
	else
	{
		unsigned char h[5] = {0xce, (unsigned char) (v >> 24), (unsigned char) (v >> 16),
		(unsigned char) (v >> 8), (unsigned char) v};

		buf_put(b, h, 5);
	}
}

static void
mp_f64(Buf *b, double d)
{
	uint64_t	u;
	unsigned char h[9];

	memcpy(&u, &d, 8);
	h[0] = 0xcb;
	for (int i = 0; i < 8; i++)
		h[1 + i] = (unsigned char) (u >> (56 - 8 * i));
	buf_put(b, h, 9);
}

static void
mp_undefined(Buf *b)
{
	unsigned char h[3] = {0xd4, 0x00, 0x00};

	buf_put(b, h, 3);
}

/* ------------------------------------------------------ msgpack reader */

typedef struct Rd
{
	const unsigned char *p;
	const unsigned char *end;
	bool		bad;
} Rd;

static uint64_t
rd_be(Rd *r, int n)
{
	uint64_t	v = 0;

	if (r->end - r->p < n)
	{
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = (v << 8) | *r->p++;
	return v;
}

/* Read a str header; returns length and leaves p at the bytes, or -1. */
static long
rd_str(Rd *r)
{
	if (r->p >= r->end)
		return -1;
	unsigned char c = *r->p;
	long		n;

	if ((c & 0xe0) == 0xa0)
	{
		r->p++;
		n = c & 0x1f;
	}
	else if (c == 0xd9)
	{
		r->p++;
		n = rd_be(r, 1);
	}
	else if (c == 0xda)
	{
		r->p++;
		n = rd_be(r, 2);
	}
	else if (c == 0xdb)
	{
		r->p++;
		n = rd_be(r, 4);
	}
	else
		return -1;
	if (r->bad || r->end - r->p < n)
		return -1;
	return n;
}

/* Map header: number of pairs, or -1 if not a map. */
static long
rd_map(Rd *r)
{
	if (r->p >= r->end)
		return -1;
	unsigned char c = *r->p;

	if ((c & 0xf0) == 0x80)
	{
		r->p++;
		return c & 0x0f;
	}
	if (c == 0xde)
	{
		r->p++;
		return rd_be(r, 2);
	}
	if (c == 0xdf)
	{
		r->p++;
		return rd_be(r, 4);
	}
	return -1;
}

static void rd_skip(Rd *r, int depth);

static void
rd_skip_n(Rd *r, uint64_t n)
{
	if ((uint64_t) (r->end - r->p) < n)
		r->bad = true;
	else
		r->p += n;
}

static void
rd_skip(Rd *r, int depth)
{
	if (r->bad || r->p >= r->end || depth > 64)
	{
		r->bad = true;
		return;
	}
	unsigned char c = *r->p++;
	uint64_t	n;

	if (c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return;
	if ((c & 0xf0) == 0x80 || (c & 0xf0) == 0x90)
	{
		n = (c & 0x0f) * ((c & 0xf0) == 0x80 ? 2 : 1);
		for (uint64_t i = 0; i < n && !r->bad; i++)
			rd_skip(r, depth + 1);
		return;
	}
	if ((c & 0xe0) == 0xa0)
	{
		rd_skip_n(r, c & 0x1f);
		return;
	}
	switch (c)
	{
		case 0xc4: case 0xd9: rd_skip_n(r, rd_be(r, 1)); return;
		case 0xc5: case 0xda: rd_skip_n(r, rd_be(r, 2)); return;
		case 0xc6: case 0xdb: rd_skip_n(r, rd_be(r, 4)); return;
		case 0xcc: case 0xd0: rd_skip_n(r, 1); return;
		case 0xcd: case 0xd1: rd_skip_n(r, 2); return;
		case 0xca: case 0xce: case 0xd2: rd_skip_n(r, 4); return;
		case 0xcb: case 0xcf: case 0xd3: rd_skip_n(r, 8); return;
		case 0xd4: rd_skip_n(r, 2); return;
		case 0xd5: rd_skip_n(r, 3); return;
		case 0xd6: rd_skip_n(r, 5); return;
		case 0xd7: rd_skip_n(r, 9); return;
		case 0xd8: rd_skip_n(r, 17); return;
		case 0xc7: n = rd_be(r, 1); rd_skip_n(r, n + 1); return;
		case 0xc8: n = rd_be(r, 2); rd_skip_n(r, n + 1); return;
		case 0xc9: n = rd_be(r, 4); rd_skip_n(r, n + 1); return;
		case 0xdc: case 0xde:
			n = rd_be(r, 2) * (c == 0xde ? 2 : 1);
			for (uint64_t i = 0; i < n && !r->bad; i++)
				rd_skip(r, depth + 1);
			return;
		case 0xdd: case 0xdf:
			n = rd_be(r, 4) * (c == 0xdf ? 2 : 1);
			for (uint64_t i = 0; i < n && !r->bad; i++)
				rd_skip(r, depth + 1);
			return;
		default:
			r->bad = true;
	}
}

static bool
rd_key_is(Rd *r, const char *key)
{
	long		n = rd_str(r);

	if (n < 0)
	{
		r->bad = true;
		return false;
	}
	bool		eq = (size_t) n == strlen(key) && memcmp(r->p, key, n) == 0;

	r->p += n;
	return eq;
}

typedef struct Msg
{
	char		type[32];
	char		last_id[32];
	int			results_failed;
	int			error_code;
	const unsigned char *data;	/* BATCH envelope: the bin field "data" */
	size_t		datalen;
} Msg;

/* Extract type, payload.lastId and failed results of a server message. */
static bool
parse_msg(const unsigned char *data, size_t len, Msg *m)
{
	Rd			r = {data, data + len, false};
	long		n = rd_map(&r);

	memset(m, 0, sizeof(*m));
	if (n < 0)
		return false;
	for (long i = 0; i < n && !r.bad; i++)
	{
		long		kl = rd_str(&r);

		if (kl < 0)
			return false;
		r.p += kl;
		if (kl == 4 && memcmp(r.p - 4, "type", 4) == 0)
		{
			long		l = rd_str(&r);

			if (l < 0 || l >= (long) sizeof(m->type))
				return false;
			memcpy(m->type, r.p, l);
			r.p += l;
		}
		else if (kl == 4 && memcmp(r.p - 4, "data", 4) == 0 && r.p < r.end &&
				 (*r.p == 0xc4 || *r.p == 0xc5 || *r.p == 0xc6))
		{
			int			w = *r.p == 0xc4 ? 1 : *r.p == 0xc5 ? 2 : 4;

			r.p++;
			m->datalen = rd_be(&r, w);
			if (r.bad || (size_t) (r.end - r.p) < m->datalen)
				return false;
			m->data = r.p;
			r.p += m->datalen;
		}
		else
			rd_skip(&r, 0);		/* any other field's value */
	}
	if (r.bad)
		return false;

	/* Second pass for payload fields (keys may come in any order). */
	r.p = data;
	n = rd_map(&r);
	for (long i = 0; i < n && !r.bad; i++)
	{
		if (!rd_key_is(&r, "payload"))
		{
			rd_skip(&r, 0);
			continue;
		}
		long		pn = rd_map(&r);

		if (pn < 0)
		{
			rd_skip(&r, 0);
			continue;
		}
		for (long j = 0; j < pn && !r.bad; j++)
		{
			long		kl = rd_str(&r);

			if (kl < 0)
				return false;
			const unsigned char *k = r.p;

			r.p += kl;
			if (kl == 6 && memcmp(k, "lastId", 6) == 0)
			{
				long		l = rd_str(&r);

				if (l < 0 || l >= (long) sizeof(m->last_id))
					return false;
				memcpy(m->last_id, r.p, l);
				r.p += l;
			}
			else if (kl == 4 && memcmp(k, "code", 4) == 0 && r.p < r.end)
			{
				unsigned char c = *r.p;

				if (c < 0x80)
				{
					m->error_code = c;
					r.p++;
				}
				else if (c == 0xcd)
				{
					r.p++;
					m->error_code = rd_be(&r, 2);
				}
				else
					rd_skip(&r, 0);
			}
			else if (kl == 7 && memcmp(k, "results", 7) == 0)
			{
				/* count entries with success:false */
				unsigned char c = r.p < r.end ? *r.p : 0;
				long		an;

				if ((c & 0xf0) == 0x90)
				{
					an = c & 0x0f;
					r.p++;
				}
				else if (c == 0xdc)
				{
					r.p++;
					an = rd_be(&r, 2);
				}
				else if (c == 0xdd)
				{
					r.p++;
					an = rd_be(&r, 4);
				}
				else
				{
					rd_skip(&r, 0);
					continue;
				}
				for (long e = 0; e < an && !r.bad; e++)
				{
					long		en = rd_map(&r);

					if (en < 0)
					{
						rd_skip(&r, 0);
						continue;
					}
					for (long f = 0; f < en && !r.bad; f++)
					{
						if (rd_key_is(&r, "success") && r.p < r.end)
						{
							if (*r.p == 0xc2)
								m->results_failed++;
							r.p++;
						}
						else
							rd_skip(&r, 0);
					}
				}
			}
			else
				rd_skip(&r, 0);
		}
	}
	return !r.bad;
}

/* --------------------------------------------------------------- JWT */

static void
b64url(Buf *out, const unsigned char *in, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		i;

	for (i = 0; i + 2 < n; i += 3)
	{
		uint32_t	v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];

		buf_byte(out, tbl[(v >> 18) & 63]);
		buf_byte(out, tbl[(v >> 12) & 63]);
		buf_byte(out, tbl[(v >> 6) & 63]);
		buf_byte(out, tbl[v & 63]);
	}
	if (n - i == 1)
	{
		uint32_t	v = in[i] << 16;

		buf_byte(out, tbl[(v >> 18) & 63]);
		buf_byte(out, tbl[(v >> 12) & 63]);
	}
	else if (n - i == 2)
	{
		uint32_t	v = (in[i] << 16) | (in[i + 1] << 8);

		buf_byte(out, tbl[(v >> 18) & 63]);
		buf_byte(out, tbl[(v >> 12) & 63]);
		buf_byte(out, tbl[(v >> 6) & 63]);
	}
}

static char *
mint_hs256(const char *secret)
{
	Buf			t = {0};
	char		payload[256];
	long		now = time(NULL);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

	snprintf(payload, sizeof(payload),
			 "{\"sub\":\"ws-load\",\"userId\":\"ws-load\",\"roles\":[\"USER\"],\"iat\":%ld,\"exp\":%ld}",
			 now, now + 3600);
	b64url(&t, (const unsigned char *) header, strlen(header));
	buf_byte(&t, '.');
	b64url(&t, (const unsigned char *) payload, strlen(payload));
	if (!HMAC(EVP_sha256(), secret, strlen(secret), t.p, t.len, mac, &maclen))
		die("HMAC failed");
	buf_byte(&t, '.');
	b64url(&t, mac, maclen);
	buf_byte(&t, 0);
	return (char *) t.p;
}

/* ---------------------------------------------------------- WebSocket */

#define MAX_PEND 256

typedef struct Pending
{
	uint64_t	last_id;
	double		t0;
	int			nops;
} Pending;

typedef struct Conn
{
	int			fd;
	int			idx;
	Buf			in;				/* raw bytes received */
	Buf			msg;			/* fragment reassembly */
	Buf			out;			/* bytes not yet written */
	size_t		out_off;
	bool		authed;
	bool		closed;
	uint64_t	next_id;
	uint32_t	counter;
	double		last_millis;
	char		node[48];
	Pending		pend[MAX_PEND];
	int			pend_head;
	int			pend_count;
} Conn;

static const char *g_host = "127.0.0.1";
static int	g_port = 8080;
static const char *g_map = "ws-load";
static char *g_token;
static int	g_value_bytes = 64;
static int	g_words = 0;		/* --words: Zipf text instead of --value-size bytes */
static int	g_maps = 1;			/* maps the ops are spread over */
static int	g_nconn = 1;		/* connections of the running phase */

/* op mix: cumulative weights of PUT, REMOVE, OR_ADD out of g_mix_total */
enum
{
	MIX_PUT, MIX_REMOVE, MIX_OR_ADD, MIX_KINDS
};
static const char *const mix_names[MIX_KINDS] = {"put", "remove", "or_add"};
static int	g_mix[MIX_KINDS] = {1, 0, 0};
static int	g_mix_total = 1;
static uint32_t g_rng = 2463534242u;

static uint32_t
xorshift(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 17;
	g_rng ^= g_rng << 5;
	return g_rng;
}

/* Append one masked client frame (FIN, opcode) to c->out. */
static void
ws_frame(Conn *c, int opcode, const unsigned char *data, size_t n)
{
	unsigned char h[14];
	size_t		hl = 0;
	uint32_t	mk = xorshift();
	unsigned char mask[4] = {(unsigned char) mk, (unsigned char) (mk >> 8),
	(unsigned char) (mk >> 16), (unsigned char) (mk >> 24)};

	h[hl++] = 0x80 | opcode;
	if (n < 126)
		h[hl++] = 0x80 | n;
	else if (n < 65536)
	{
		h[hl++] = 0x80 | 126;
		h[hl++] = n >> 8;
		h[hl++] = n;
	}
	else
	{
		h[hl++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			h[hl++] = (unsigned char) ((uint64_t) n >> (8 * i));
	}
	memcpy(h + hl, mask, 4);
	hl += 4;
	buf_put(&c->out, h, hl);
	buf_reserve(&c->out, n);
	for (size_t i = 0; i < n; i++)
		c->out.p[c->out.len + i] = data[i] ^ mask[i & 3];
	c->out.len += n;
}

/* Try to write pending output; false on a fatal error. */
static bool
conn_flush(Conn *c)
{
	while (c->out_off < c->out.len)
	{
		ssize_t		w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (w < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			if (errno == EINTR)
				continue;
			return false;
		}
		c->out_off += w;
	}
	c->out.len = 0;
	c->out_off = 0;
	return true;
}

static int
tcp_connect(void)
{
	struct addrinfo hints = {0}, *res;
	char		port[16];
	int			fd;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", g_port);
	if (getaddrinfo(g_host, port, &hints, &res) != 0)
		die("cannot resolve %s", g_host);
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
	{
		freeaddrinfo(res);
		close(fd);
		return -1;
	}
	freeaddrinfo(res);
	int			one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Read at least one more chunk into c->in, waiting up to timeout_ms. */
static bool
conn_read_wait(Conn *c, int timeout_ms)
{
	struct pollfd p = {c->fd, POLLIN, 0};

	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	buf_reserve(&c->in, 65536);
	ssize_t		r = recv(c->fd, c->in.p + c->in.len, 65536, 0);

	if (r <= 0)
		return false;
	c->in.len += r;
	return true;
}

/*
 * Take one complete server message out of c->in (handling control frames and
 * fragments).  Returns 1 and sets *data and *len (valid until the next call),
 * 0 if more bytes are needed, -1 on close or protocol error.
 */
static int
ws_next_message(Conn *c, const unsigned char **data, size_t *len)
{
	for (;;)
	{
		unsigned char *p = c->in.p;
		size_t		avail = c->in.len;

		if (avail < 2)
			return 0;
		int			fin = p[0] & 0x80;
		int			op = p[0] & 0x0f;
		uint64_t	n = p[1] & 0x7f;
		size_t		hl = 2;

		if (p[1] & 0x80)
			return -1;			/* servers never mask */
		if (n == 126)
		{
			if (avail < 4)
				return 0;
			n = (p[2] << 8) | p[3];
			hl = 4;
		}
		else if (n == 127)
		{
			if (avail < 10)
				return 0;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = (n << 8) | p[2 + i];
			hl = 10;
		}
		if (avail < hl + n)
			return 0;
		const unsigned char *pl = p + hl;

		if (op == 0x8)
		{
			c->closed = true;
			return -1;
		}
		if (op == 0x9)
		{
			ws_frame(c, 0xA, pl, n);
			buf_consume(&c->in, hl + n);
			continue;
		}
		if (op == 0xA)
		{
			buf_consume(&c->in, hl + n);
			continue;
		}
		if (op != 0 && op != 1 && op != 2)
			return -1;
		if (fin && op != 0 && c->msg.len == 0)
		{
			/* common case: unfragmented; copy out so c->in can move */
			c->msg.len = 0;
			buf_put(&c->msg, pl, n);
			buf_consume(&c->in, hl + n);
			*data = c->msg.p;
			*len = c->msg.len;
			c->msg.len = 0;
			return 1;
		}
		buf_put(&c->msg, pl, n);
		buf_consume(&c->in, hl + n);
		if (fin)
		{
			*data = c->msg.p;
			*len = c->msg.len;
			c->msg.len = 0;
			return 1;
		}
	}
}

static void
conn_send_msg(Conn *c, Buf *m)
{
	ws_frame(c, 0x2, m->p, m->len);
}

static Conn *conn_open_once(int idx, bool *retry);

/*
 * Open, upgrade and authenticate one connection (blocking, with timeouts).
 * A server that is not serving yet closes with 1013 before AUTH_ACK: retry.
 */
static Conn *
conn_open(int idx)
{
	for (int attempt = 0;; attempt++)
	{
		bool		retry = false;
		Conn	   *c = conn_open_once(idx, &retry);

		if (c)
			return c;
		if (!retry || attempt >= 40)
			die("connection %d: closed during auth (server not ready?)", idx);
		usleep(250000);
	}
}

static Conn *
conn_open_once(int idx, bool *retry)
{
	Conn	   *c = calloc(1, sizeof(Conn));
	char		req[512];
	int			fd = -1;

	if (!c)
		die("out of memory");
	c->idx = idx;
	snprintf(c->node, sizeof(c->node), "wsload-%d-%d", (int) getpid(), idx);
	for (int attempt = 0; attempt < 50 && fd < 0; attempt++)
	{
		fd = tcp_connect();
		if (fd < 0)
			usleep(100000);
	}
	if (fd < 0)
		die("cannot connect to %s:%d: %s", g_host, g_port, strerror(errno));
	c->fd = fd;
	snprintf(req, sizeof(req),
			 "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
			 g_host, g_port);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t) strlen(req))
		die("handshake send failed");
	for (;;)
	{
		unsigned char *e = c->in.len ? memmem(c->in.p, c->in.len, "\r\n\r\n", 4) : NULL;

		if (e)
		{
			if (c->in.len < 12 || memcmp(c->in.p + 9, "101", 3) != 0)
				die("connection %d: no WebSocket upgrade: %.*s", idx, (int) (e - c->in.p), c->in.p);
			buf_consume(&c->in, e + 4 - c->in.p);
			break;
		}
		if (!conn_read_wait(c, 5000))
			die("connection %d: handshake timed out", idx);
	}

	/* AUTH, then wait for AUTH_ACK (AUTH_REQUIRED comes first). */
	Buf			m = {0};

	mp_map16(&m, 2);
	mp_str(&m, "type");
	mp_str(&m, "AUTH");
	mp_str(&m, "token");
	mp_str(&m, g_token);
	conn_send_msg(c, &m);
	free(m.p);
	if (!conn_flush(c))
		die("connection %d: send failed", idx);
	double		deadline = now_ms() + 10000;

	while (!c->authed)
	{
		const unsigned char *d;
		size_t		l;
		int			r;

		while ((r = ws_next_message(c, &d, &l)) == 1)
		{
			Msg			msg;

			if (parse_msg(d, l, &msg))
			{
				if (strcmp(msg.type, "AUTH_ACK") == 0)
					c->authed = true;
				else if (strcmp(msg.type, "AUTH_FAIL") == 0)
					die("connection %d: AUTH_FAIL (wrong secret?)", idx);
			}
		}
		if (r < 0)
		{
			close(c->fd);
			free(c->in.p);
			free(c->msg.p);
			free(c->out.p);
			free(c);
			*retry = true;
			return NULL;
		}
		if (c->authed)
			break;
		if (now_ms() > deadline || !conn_read_wait(c, 1000))
		{
			if (now_ms() > deadline)
				die("connection %d: no AUTH_ACK", idx);
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return c;
}

static void
conn_close(Conn *c)
{
	close(c->fd);
	free(c->in.p);
	free(c->msg.p);
	free(c->out.p);
	free(c);
}

/*
 * The map an op goes to.  With --maps N <= connections, connection c writes
 * map c mod N (one map per connection when N equals the connections); with
 * more maps than connections, connection c writes maps c, c + conns, ...
 * round-robin, so every map is written and no two connections share one.
 * OR_ADD ops write the OR-map twin of that map (a map has one kind).
 */
static void
op_map(char *out, size_t outsz, Conn *c, uint64_t id, bool or_map)
{
	int			per = (g_maps + g_nconn - 1) / g_nconn;
	int			m = (c->idx + g_nconn * (int) (id % (uint64_t) per)) % g_maps;

	if (g_maps == 1)
		snprintf(out, outsz, "%s%s", g_map, or_map ? "-or" : "");
	else
		snprintf(out, outsz, "%s%s-%d", g_map, or_map ? "-or" : "", m);
}

static int
op_kind(void)
{
	int			r = (int) (xorshift() % (uint32_t) g_mix_total);
	int			k;

	for (k = 0; k < MIX_KINDS - 1; k++)
	{
		if (r < g_mix[k])
			break;
		r -= g_mix[k];
	}
	return k;
}

static void
put_timestamp(Buf *m, Conn *c)
{
	mp_map16(m, 3);
	mp_str(m, "millis");
	mp_f64(m, c->last_millis);
	mp_str(m, "counter");
	mp_uint(m, c->counter);
	mp_str(m, "nodeId");
	mp_str(m, c->node);
}

/*
 * --words N: N - 1 .. N + 1 words (by id) drawn from a 50,000-word Zipf
 * vocabulary (s = 1: rank = floor(exp(u ln 50000))); the word of rank r is
 * "z" and r's digits as consonants, as in bench/search_bench.sh's word(): no
 * stop word, and the stemmer keeps it.  Returns the text's length.
 */
static int
zipf_text(char *out, uint64_t id)
{
	static const char digit[] = "bcdfghjklm";
	int			n = g_words + (int) (id % 3) - 1;
	int			len = 0;

	for (int w = 0; w < n; w++)
	{
		double		u = xorshift() / 4294967296.0;
		int			r = (int) floor(exp(u * log(50000.0)));
		char		d[16];
		int			nd = snprintf(d, sizeof(d), "%d", r < 1 ? 1 : r);

		if (w > 0)
			out[len++] = ' ';
		out[len++] = 'z';
		for (int k = 0; k < nd; k++)
			out[len++] = digit[d[k] - '0'];
	}
	return len;
}

static void
put_value(Buf *m, uint64_t id)
{
	static char *txt;

	if (txt == NULL)
	{
		/* a word is at most "z" and 5 digits, and a separator */
		txt = malloc((g_words > 0 ? (size_t) (g_words + 1) * 7 : (size_t) g_value_bytes) + 1);
		if (txt == NULL)
			die("out of memory");
	}
	mp_map16(m, 3);
	mp_str(m, "n");
	mp_uint(m, (uint32_t) id);
	mp_str(m, "done");
	buf_byte(m, (id & 1) ? 0xc3 : 0xc2);
	mp_str(m, "text");
	if (g_words > 0)
	{
		mp_strn(m, txt, zipf_text(txt, id));
		return;
	}
	for (int k = 0; k < g_value_bytes; k++)
		txt[k] = 'a' + (k + id) % 26;
	mp_strn(m, txt, g_value_bytes);
}

/* Queue one OP_BATCH of nops ops (kinds from --mix) on c; t0 = the time it counts from. */
static bool
conn_send_batch(Conn *c, int nops, double t0)
{
	static Buf	m;
	char		idbuf[32];
	char		key[64];
	char		map[128];
	char		tag[128];

	if (c->pend_count >= MAX_PEND)
		return false;
	m.len = 0;
	mp_map16(&m, 2);
	mp_str(&m, "type");
	mp_str(&m, "OP_BATCH");
	mp_str(&m, "payload");
	mp_map16(&m, 1);
	mp_str(&m, "ops");
	mp_array(&m, nops);
	for (int i = 0; i < nops; i++)
	{
		double		ms = wall_ms();
		int			kind = op_kind();

		if (ms <= c->last_millis)
		{
			ms = c->last_millis;
			c->counter++;
		}
		else
		{
			c->last_millis = ms;
			c->counter = 0;
		}
		uint64_t	id = ++c->next_id;

		snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long) id);
		snprintf(key, sizeof(key), "c%d-k%llu", c->idx, (unsigned long long) (id % 1000));
		op_map(map, sizeof(map), c, id, kind == MIX_OR_ADD);

		mp_map16(&m, 9);
		mp_str(&m, "mapName");
		mp_str(&m, map);
		mp_str(&m, "opType");
		mp_str(&m, kind == MIX_PUT ? "PUT" : kind == MIX_REMOVE ? "REMOVE" : "OR_ADD");
		mp_str(&m, "key");
		mp_str(&m, key);
		mp_str(&m, "record");
		if (kind == MIX_OR_ADD)
			mp_undefined(&m);
		else
		{
			mp_map16(&m, 2);
			mp_str(&m, "value");
			if (kind == MIX_REMOVE)
				buf_byte(&m, 0xc0);	/* null: a tombstone */
			else
				put_value(&m, id);
			mp_str(&m, "timestamp");
			put_timestamp(&m, c);
		}
		mp_str(&m, "orRecord");
		if (kind == MIX_OR_ADD)
		{
			snprintf(tag, sizeof(tag), "%.0f:%u:%s", c->last_millis, c->counter, c->node);
			mp_map16(&m, 3);
			mp_str(&m, "value");
			put_value(&m, id);
			mp_str(&m, "timestamp");
			put_timestamp(&m, c);
			mp_str(&m, "tag");
			mp_str(&m, tag);
		}
		else
			mp_undefined(&m);
		mp_str(&m, "orTag");
		mp_undefined(&m);
		mp_str(&m, "timestamp");
		put_timestamp(&m, c);
		mp_str(&m, "synced");
		buf_byte(&m, 0xc2);
		mp_str(&m, "id");
		mp_str(&m, idbuf);
	}
	conn_send_msg(c, &m);
	int			slot = (c->pend_head + c->pend_count) % MAX_PEND;

	c->pend[slot].last_id = c->next_id;
	c->pend[slot].t0 = t0;
	c->pend[slot].nops = nops;
	c->pend_count++;
	return true;
}

/* ------------------------------------------------------------ statistics */

typedef struct Stats
{
	double	   *lat;
	size_t		n;
	size_t		cap;
	uint64_t	ops;
	uint64_t	rejected;
	uint64_t	errors;
} Stats;

static void
stats_add(Stats *s, double v)
{
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->lat = realloc(s->lat, s->cap * sizeof(double));
		if (!s->lat)
			die("out of memory");
	}
	s->lat[s->n++] = v;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

static double
pct(Stats *s, double p)
{
	if (!s->n)
		return NAN;
	size_t		i = (size_t) ceil(p / 100.0 * s->n);

	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return s->lat[i];
}

static uint32_t
le32(const unsigned char *p)
{
	return p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/*
 * Handle one server message; a BATCH envelope (PROTOCOL.md 1.5: bin data =
 * [u32le count][u32le len, msg]...) is opened and its messages handled in order.
 */
static void
handle_msg(Conn *c, const unsigned char *d, size_t l, Stats *st, bool measuring, double tnow,
		   int *acked_batches, int depth)
{
	Msg			m;

	if (!parse_msg(d, l, &m))
	{
		st->errors++;
		return;
	}
	if (strcmp(m.type, "BATCH") == 0 && m.data != NULL && depth == 0)
	{
		const unsigned char *p = m.data,
				   *end = m.data + m.datalen;
		uint32_t	count;

		if (end - p < 4)
		{
			st->errors++;
			return;
		}
		count = le32(p);
		p += 4;
		for (uint32_t i = 0; i < count; i++)
		{
			uint32_t	len;

			if (end - p < 4 || (size_t) (end - p - 4) < (len = le32(p)))
			{
				st->errors++;
				return;
			}
			handle_msg(c, p + 4, len, st, measuring, tnow, acked_batches, depth + 1);
			p += 4 + len;
		}
	}
	else if (strcmp(m.type, "OP_ACK") == 0)
	{
		uint64_t	id = strtoull(m.last_id, NULL, 10);

		/* Acks come in order; match the oldest pending batch by lastId. */
		while (c->pend_count > 0)
		{
			Pending    *p = &c->pend[c->pend_head];

			c->pend_head = (c->pend_head + 1) % MAX_PEND;
			c->pend_count--;
			if (p->last_id == id)
			{
				if (measuring)
				{
					stats_add(st, tnow - p->t0);
					st->ops += p->nops;
					st->rejected += m.results_failed;
				}
				(*acked_batches)++;
				break;
			}
		}
	}
	else if (strcmp(m.type, "ERROR") == 0 || strcmp(m.type, "OP_REJECTED") == 0)
		st->errors++;
}

/* Handle every complete message on c; returns false if the connection died. */
static bool
conn_process(Conn *c, Stats *st, bool measuring, double tnow, int *acked_batches)
{
	const unsigned char *d;
	size_t		l;
	int			r;

	while ((r = ws_next_message(c, &d, &l)) == 1)
		handle_msg(c, d, l, st, measuring, tnow, acked_batches, 0);
	return r >= 0;
}

/*
 * Run one phase.  rate_ops = 0: closed loop (one outstanding batch per
 * connection).  Otherwise open loop at rate_ops ops/s.
 */
static void
run_phase(int nconn, int batch, int window, double seconds, double rate_ops, const char *label)
{
	Conn	  **cs = calloc(nconn, sizeof(Conn *));
	struct pollfd *pfd = calloc(nconn, sizeof(struct pollfd));
	Stats		st = {0};
	double		warmup = seconds > 4 ? 1000.0 : 0.0;
	int			acked = 0;
	uint64_t	dead = 0;

	g_nconn = nconn;
	for (int i = 0; i < nconn; i++)
		cs[i] = conn_open(i);

	double		start = now_ms();
	double		measure_from = start + warmup;
	double		end = measure_from + seconds * 1000.0;
	double		interval = rate_ops > 0 ? 1000.0 * batch / rate_ops : 0;
	double		next_send = start;
	int			rr = 0;

	if (rate_ops <= 0)
		for (int i = 0; i < nconn; i++)
			for (int w = 0; w < window; w++)
				conn_send_batch(cs[i], batch, now_ms());

	for (;;)
	{
		double		t = now_ms();

		if (t >= end)
			break;
		if (rate_ops > 0)
		{
			while (next_send <= t)
			{
				Conn	   *c = cs[rr++ % nconn];

				if (!c->closed && !conn_send_batch(c, batch, next_send))
					st.errors++;	/* too many outstanding: counts as a miss */
				next_send += interval;
			}
		}
		for (int i = 0; i < nconn; i++)
		{
			if (!cs[i]->closed && !conn_flush(cs[i]))
				cs[i]->closed = true;
			pfd[i].fd = cs[i]->closed ? -1 : cs[i]->fd;
			pfd[i].events = POLLIN | (cs[i]->out.len > cs[i]->out_off ? POLLOUT : 0);
			pfd[i].revents = 0;
		}
		int			timeout = (int) fmin(end - t, rate_ops > 0 ? fmax(0, next_send - t) : 100);

		if (poll(pfd, nconn, timeout) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		t = now_ms();
		for (int i = 0; i < nconn; i++)
		{
			Conn	   *c = cs[i];

			if (c->closed || !(pfd[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			for (;;)
			{
				buf_reserve(&c->in, 262144);
				ssize_t		r = recv(c->fd, c->in.p + c->in.len, 262144, 0);

				if (r > 0)
				{
					c->in.len += r;
					continue;
				}
				if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				{
					c->closed = true;
					dead++;
				}
				break;
			}
			int			before = acked;

			if (!conn_process(c, &st, t >= measure_from, t, &acked))
			{
				if (!c->closed)
					dead++;
				c->closed = true;
			}
			/* closed loop: refill what was acked */
			if (rate_ops <= 0 && !c->closed)
				for (int k = before; k < acked; k++)
					conn_send_batch(c, batch, now_ms());
		}
	}
	double		elapsed = (fmin(now_ms(), end) - measure_from) / 1000.0;

	qsort(st.lat, st.n, sizeof(double), cmp_double);
	printf("%-12s connections=%-4d maps=%-4d batch=%-4d window=%-2d %s acked_ops/s=%-9.0f ack_latency_ms p50=%.2f p99=%.2f max=%.2f"
		   " batches=%zu rejected_ops=%llu errors=%llu dropped_connections=%llu\n",
		   label, nconn, g_maps, batch, rate_ops > 0 ? 0 : window, rate_ops > 0 ? "open-loop" : "closed-loop", st.ops / elapsed,
		   pct(&st, 50), pct(&st, 99), st.n ? st.lat[st.n - 1] : NAN, st.n,
		   (unsigned long long) st.rejected, (unsigned long long) st.errors, (unsigned long long) dead);
	fflush(stdout);
	for (int i = 0; i < nconn; i++)
		conn_close(cs[i]);
	free(cs);
	free(pfd);
	free(st.lat);
}

static long
rss_kb(int pid)
{
	char		path[64], line[256];
	long		kb = -1;
	FILE	   *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
run_idle(int n, int worker_pid)
{
	Conn	  **cs = calloc(n, sizeof(Conn *));
	long		before, after;

	before = rss_kb(worker_pid);
	if (before < 0)
		die("cannot read /proc/%d/status (worker pid?)", worker_pid);
	for (int i = 0; i < n; i++)
		cs[i] = conn_open(100000 + i);
	usleep(2000000);
	after = rss_kb(worker_pid);
	printf("idle         connections=%-5d worker_anon_rss_kb before=%ld after=%ld per_connection_bytes=%.0f\n",
		   n, before, after, (after - before) * 1024.0 / n);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		conn_close(cs[i]);
	free(cs);
}

/* --mix put,remove,or_add (equal weights) or put:8,remove:1,or_add:1 */
static void
parse_mix(const char *spec)
{
	char	   *list = strdup(spec);

	memset(g_mix, 0, sizeof(g_mix));
	g_mix_total = 0;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
	{
		char	   *colon = strchr(tok, ':');
		int			w = 1;
		int			k;

		if (colon)
		{
			*colon = 0;
			w = atoi(colon + 1);
		}
		for (k = 0; k < MIX_KINDS; k++)
			if (strcmp(tok, mix_names[k]) == 0)
				break;
		if (k == MIX_KINDS || w < 0 || w > 1000)
			die("bad --mix entry \"%s\" (put, remove, or_add, optionally :weight 0..1000)", tok);
		g_mix[k] += w;
		g_mix_total += w;
	}
	free(list);
	if (g_mix_total == 0)
		die("--mix has no op with a positive weight");
}

static void
usage(void)
{
	printf("usage: ws_load [options]\n"
		   "  --host H              server address (127.0.0.1)\n"
		   "  --port N              sync server port (8080)\n"
		   "  --secret S | --secret-file F   HS256 secret used to mint the token\n"
		   "  --token T             use this JWT instead of minting one\n"
		   "  --map NAME            map written to (ws-load)\n"
		   "  --connections LIST    closed-loop phases, e.g. 1,10,50 (default)\n"
		   "  --batch N             ops per OP_BATCH in closed loop (100)\n"
		   "  --window W            OP_BATCHes in flight per connection in closed loop (1)\n"
		   "  --maps N              spread the ops over N maps (1; see op_map())\n"
		   "  --mix LIST            op kinds, e.g. put,remove,or_add or put:8,remove:1,or_add:1 (put)\n"
		   "  --duration S          seconds measured per phase (10)\n"
		   "  --value-size B        size of the text field of each value (64; alias --value-bytes)\n"
		   "  --words N             text field of ~N words from a 50,000-word Zipf vocabulary instead\n"
		   "  --rate R              open-loop phase at R ops/s (10000; 0 = skip)\n"
		   "  --rate-connections N  connections for the open-loop phase (10)\n"
		   "  --rate-batch N        ops per batch in the open-loop phase (10)\n"
		   "  --idle K              idle connections for the memory phase (1000; 0 = skip)\n"
		   "  --worker-pid P        pid of the 'topgun sync server' process (memory phase)\n");
}

int
main(int argc, char **argv)
{
	const char *conns = "1,10,50";
	const char *secret = NULL;
	int			batch = 100;
	int			window = 1;
	const char *mix = "put";
	double		duration = 10;
	double		rate = 10000;
	int			rate_conns = 10;
	int			rate_batch = 10;
	int			idle = 1000;
	int			worker_pid = 0;
	static struct option opts[] = {
		{"host", required_argument, 0, 'h'},
		{"port", required_argument, 0, 'p'},
		{"secret", required_argument, 0, 's'},
		{"secret-file", required_argument, 0, 'S'},
		{"token", required_argument, 0, 't'},
		{"map", required_argument, 0, 'm'},
		{"connections", required_argument, 0, 'c'},
		{"batch", required_argument, 0, 'b'},
		{"duration", required_argument, 0, 'd'},
		{"value-bytes", required_argument, 0, 'v'},
		{"value-size", required_argument, 0, 'v'},
		{"window", required_argument, 0, 'W'},
		{"words", required_argument, 0, 'T'},
		{"maps", required_argument, 0, 'M'},
		{"mix", required_argument, 0, 'X'},
		{"rate", required_argument, 0, 'r'},
		{"rate-connections", required_argument, 0, 'R'},
		{"rate-batch", required_argument, 0, 'B'},
		{"idle", required_argument, 0, 'i'},
		{"worker-pid", required_argument, 0, 'w'},
		{"help", no_argument, 0, 'H'},
		{0, 0, 0, 0}
	};
	int			o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'h': g_host = optarg; break;
			case 'p': g_port = atoi(optarg); break;
			case 's': secret = optarg; break;
			case 'S':
				{
					static char sbuf[4096];
					FILE	   *f = fopen(optarg, "r");
					size_t		n;

					if (!f)
						die("cannot open %s", optarg);
					n = fread(sbuf, 1, sizeof(sbuf) - 1, f);
					fclose(f);
					while (n > 0 && (sbuf[n - 1] == '\n' || sbuf[n - 1] == '\r'))
						n--;
					sbuf[n] = 0;
					secret = sbuf;
					break;
				}
			case 't': g_token = optarg; break;
			case 'm': g_map = optarg; break;
			case 'c': conns = optarg; break;
			case 'b': batch = atoi(optarg); break;
			case 'd': duration = atof(optarg); break;
			case 'v': g_value_bytes = atoi(optarg); break;
			case 'T': g_words = atoi(optarg); break;
			case 'W': window = atoi(optarg); break;
			case 'M': g_maps = atoi(optarg); break;
			case 'X': mix = optarg; break;
			case 'r': rate = atof(optarg); break;
			case 'R': rate_conns = atoi(optarg); break;
			case 'B': rate_batch = atoi(optarg); break;
			case 'i': idle = atoi(optarg); break;
			case 'w': worker_pid = atoi(optarg); break;
			case 'H': usage(); return 0;
			default: usage(); return 2;
		}
	}
	if (!g_token)
	{
		if (!secret)
			die("give --secret, --secret-file or --token");
		g_token = mint_hs256(secret);
	}
	if (batch < 1 || batch > 65535 || rate_batch < 1 || duration <= 0 || duration > 600)
		die("bad --batch / --rate-batch / --duration");
	if (window < 1 || window > MAX_PEND / 2 || g_maps < 1 || g_maps > 100000 ||
		g_value_bytes < 0 || g_value_bytes > 65535 || g_words < 0 || g_words > 8000)
		die("bad --window (1..%d) / --maps (1..100000) / --value-size (0..65535) / --words (0..8000)", MAX_PEND / 2);
	parse_mix(mix);
	g_rng ^= (uint32_t) getpid();

	printf("# ws_load: %s:%d map=%s maps=%d mix=%s %s=%d duration=%.0fs per phase\n",
		   g_host, g_port, g_map, g_maps, mix, g_words > 0 ? "zipf_words" : "value_bytes",
		   g_words > 0 ? g_words : g_value_bytes, duration);
	/*
	 * Memory first: after the load phases the worker's heap has free space
	 * that new connections would reuse, hiding what they cost.
	 */
	if (idle > 0)
	{
		if (worker_pid <= 0)
			printf("idle         skipped: no --worker-pid\n");
		else
			run_idle(idle, worker_pid);
	}
	{
		char	   *list = strdup(conns);

		for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
		{
			int			n = atoi(tok);

			if (n > 0)
				run_phase(n, batch, window, duration, 0, "throughput");
		}
		free(list);
	}
	if (rate > 0)
		run_phase(rate_conns, rate_batch, 1, duration, rate, "fixed-rate");
	return 0;
}
