/*
 * msgpack.c — MessagePack decoder (hostile-input safe, into an arena tree),
 * encoder (msgpackr-compatible forms) and the msgpack → JSON text writer.
 *
 * PostgreSQL-free: see msgpack.h for the contract.
 */
#include "wire/msgpack.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* printf-style checking of our own formatting helpers */
#if defined(__GNUC__) || defined(__clang__)
#define tg_printf_attr(f, a) __attribute__((format(printf, f, a)))
#else
#define tg_printf_attr(f, a)
#endif

/* ================================================================= arena */

struct MpArenaChunk
{
	MpArenaChunk *next;
	size_t		size;			/* usable bytes after the header */
	size_t		used;
	/* data follows, 16-byte aligned */
};

#define MP_CHUNK_HDR	((sizeof(MpArenaChunk) + 15) & ~(size_t) 15)
#define MP_CHUNK_MIN	(16 * 1024)

void
mp_arena_init(MpArena *arena)
{
	arena->head = NULL;
	arena->allocated = 0;
}

void *
mp_arena_alloc(MpArena *arena, size_t size)
{
	MpArenaChunk *c = arena->head;
	size_t		need;

	if (size == 0)
		size = 1;
	if (size > SIZE_MAX / 2)
		return NULL;
	need = (size + 7) & ~(size_t) 7;

	if (c == NULL || c->size - c->used < need)
	{
		/* Grow geometrically so that large trees need few chunks. */
		size_t		csize = MP_CHUNK_MIN;

		if (c != NULL && c->size < (SIZE_MAX / 4) && c->size * 2 > csize)
			csize = c->size * 2;
		if (csize > 4 * 1024 * 1024)
			csize = 4 * 1024 * 1024;
		if (csize < need)
			csize = need;
		c = malloc(MP_CHUNK_HDR + csize);
		if (c == NULL)
			return NULL;
		c->size = csize;
		c->used = 0;
		c->next = arena->head;
		arena->head = c;
		arena->allocated += MP_CHUNK_HDR + csize;
	}

	{
		void	   *p = (char *) c + MP_CHUNK_HDR + c->used;

		c->used += need;
		return p;
	}
}

char *
mp_arena_strndup(MpArena *arena, const char *s, size_t len)
{
	char	   *p;

	if (len == SIZE_MAX)
		return NULL;
	p = mp_arena_alloc(arena, len + 1);
	if (p == NULL)
		return NULL;
	if (len > 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void
mp_arena_free(MpArena *arena)
{
	MpArenaChunk *c = arena->head;

	while (c != NULL)
	{
		MpArenaChunk *next = c->next;

		free(c);
		c = next;
	}
	arena->head = NULL;
	arena->allocated = 0;
}

/* =============================================================== decoder */

typedef struct MpDecoder
{
	const uint8_t *data;
	size_t		len;
	size_t		pos;
	MpArena    *arena;
	uint32_t	max_depth;
	uint32_t	max_nodes;
	uint32_t	max_str;
	uint64_t	nodes;			/* nodes allocated so far */
	char	   *err;
	size_t		errlen;
} MpDecoder;

static bool dec_fail(MpDecoder *d, const char *fmt,...) tg_printf_attr(2, 3);

static bool
dec_fail(MpDecoder *d, const char *fmt,...)
{
	va_list		ap;

	if (d->err != NULL && d->errlen > 0)
	{
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return false;
}

static inline size_t
dec_remaining(const MpDecoder *d)
{
	return d->len - d->pos;
}

/* Read n bytes of big-endian unsigned integer; the caller checked bounds. */
static inline uint64_t
be_read(const uint8_t *p, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static bool
dec_need(MpDecoder *d, size_t n, size_t at, const char *what)
{
	if (dec_remaining(d) < n)
		return dec_fail(d, "truncated %s at offset %zu", what, at);
	return true;
}

/*
 * Strict UTF-8 check: no overlong forms, no surrogates (D800..DFFF, which
 * WTF-8 would carry as ED A0..BF), nothing above U+10FFFF.  Returns the
 * offset of the first bad byte, or len when the string is valid.
 */
static size_t
utf8_check(const uint8_t *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		uint8_t		c = s[i];

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
		{
			if (i + 1 >= len || (s[i + 1] & 0xC0) != 0x80)
				return i;
			i += 2;
		}
		else if (c >= 0xE0 && c <= 0xEF)
		{
			uint8_t		lo = 0x80,
						hi = 0xBF;

			if (c == 0xE0)
				lo = 0xA0;		/* overlong below U+0800 */
			else if (c == 0xED)
				hi = 0x9F;		/* surrogates */
			if (i + 2 >= len || s[i + 1] < lo || s[i + 1] > hi ||
				(s[i + 2] & 0xC0) != 0x80)
				return i;
			i += 3;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			uint8_t		lo = 0x80,
						hi = 0xBF;

			if (c == 0xF0)
				lo = 0x90;		/* overlong below U+10000 */
			else if (c == 0xF4)
				hi = 0x8F;		/* above U+10FFFF */
			if (i + 3 >= len || s[i + 1] < lo || s[i + 1] > hi ||
				(s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
				return i;
			i += 4;
		}
		else
			return i;
	}
	return len;
}

static bool dec_value(MpDecoder *d, MpNode *out, uint32_t depth);

static bool
dec_str(MpDecoder *d, MpNode *out, size_t start, size_t hdr, uint64_t n)
{
	size_t		bad;

	if (!dec_need(d, hdr, start, "string header"))
		return false;
	if (n > d->max_str)
		return dec_fail(d, "string of %llu bytes at offset %zu exceeds the limit of %u",
						(unsigned long long) n, start, d->max_str);
	d->pos += hdr;
	if (n > dec_remaining(d))
		return dec_fail(d, "truncated string at offset %zu (declares %llu bytes, %zu present)",
						start, (unsigned long long) n, dec_remaining(d));
	bad = utf8_check(d->data + d->pos, (size_t) n);
	if (bad != n)
		return dec_fail(d, "invalid UTF-8 in string at offset %zu (byte %zu of the string)",
						start, bad);
	out->type = MP_STR;
	out->len = (uint32_t) n;
	out->v.s = (const char *) (d->data + d->pos);
	d->pos += (size_t) n;
	return true;
}

static bool
dec_bin(MpDecoder *d, MpNode *out, size_t start, size_t hdr, uint64_t n)
{
	if (n > d->max_str)
		return dec_fail(d, "bin of %llu bytes at offset %zu exceeds the limit of %u",
						(unsigned long long) n, start, d->max_str);
	d->pos += hdr;
	if (n > dec_remaining(d))
		return dec_fail(d, "truncated bin at offset %zu (declares %llu bytes, %zu present)",
						start, (unsigned long long) n, dec_remaining(d));
	out->type = MP_BIN;
	out->len = (uint32_t) n;
	out->v.bin = d->data + d->pos;
	d->pos += (size_t) n;
	return true;
}

/* hdr covers the marker, length bytes and the type byte. */
static bool
dec_ext(MpDecoder *d, MpNode *out, size_t start, size_t hdr, uint64_t n)
{
	int8_t		etype;

	if (n > d->max_str)
		return dec_fail(d, "ext of %llu bytes at offset %zu exceeds the limit of %u",
						(unsigned long long) n, start, d->max_str);
	etype = (int8_t) d->data[d->pos + hdr - 1];
	d->pos += hdr;
	if (n > dec_remaining(d))
		return dec_fail(d, "truncated ext at offset %zu (declares %llu bytes, %zu present)",
						start, (unsigned long long) n, dec_remaining(d));
	out->type = etype == 0 ? MP_UNDEFINED : MP_EXT;
	out->len = (uint32_t) n;
	out->v.ext.type = etype;
	out->v.ext.data = d->data + d->pos;
	d->pos += (size_t) n;
	return true;
}

static bool
dec_container(MpDecoder *d, MpNode *out, size_t start, size_t hdr,
			  uint64_t count, bool is_map, uint32_t depth)
{
	uint64_t	nnodes = is_map ? count * 2 : count;
	MpNode	   *kids = NULL;

	if (depth > d->max_depth)
		return dec_fail(d, "nesting deeper than %u at offset %zu", d->max_depth, start);
	d->pos += hdr;
	/* Every element needs at least one byte: check before allocating. */
	if (nnodes > dec_remaining(d))
		return dec_fail(d, "truncated %s at offset %zu (declares %llu elements, %zu bytes left)",
						is_map ? "map" : "array", start,
						(unsigned long long) count, dec_remaining(d));
	if (d->nodes + nnodes > d->max_nodes)
		return dec_fail(d, "more than %u values at offset %zu", d->max_nodes, start);
	d->nodes += nnodes;
	if (nnodes > 0)
	{
		kids = mp_arena_alloc(d->arena, (size_t) nnodes * sizeof(MpNode));
		if (kids == NULL)
			return dec_fail(d, "out of memory decoding %s at offset %zu",
							is_map ? "map" : "array", start);
	}
	out->type = is_map ? MP_MAP : MP_ARRAY;
	out->len = (uint32_t) count;
	if (is_map)
		out->v.kv = kids;
	else
		out->v.items = kids;
	for (uint64_t i = 0; i < nnodes; i++)
	{
		if (!dec_value(d, &kids[i], depth))
			return false;
	}
	return true;
}

/* depth = number of containers enclosing this value. */
static bool
dec_value(MpDecoder *d, MpNode *out, uint32_t depth)
{
	size_t		start = d->pos;
	const uint8_t *p;
	uint8_t		c;

	memset(out, 0, sizeof(*out));
	out->offset = (uint32_t) (start > UINT32_MAX ? UINT32_MAX : start);
	if (!dec_need(d, 1, start, "value"))
		return false;
	p = d->data + d->pos;
	c = p[0];

	if (c <= 0x7f)
	{
		out->type = MP_INT;
		out->v.i = c;
		d->pos++;
		return true;
	}
	if (c >= 0xe0)
	{
		out->type = MP_INT;
		out->v.i = (int8_t) c;
		d->pos++;
		return true;
	}
	if (c >= 0x80 && c <= 0x8f)
		return dec_container(d, out, start, 1, c & 0x0f, true, depth + 1);
	if (c >= 0x90 && c <= 0x9f)
		return dec_container(d, out, start, 1, c & 0x0f, false, depth + 1);
	if (c >= 0xa0 && c <= 0xbf)
		return dec_str(d, out, start, 1, c & 0x1f);

	switch (c)
	{
		case 0xc0:
			out->type = MP_NIL;
			d->pos++;
			return true;
		case 0xc1:
			return dec_fail(d, "reserved byte 0xc1 at offset %zu", start);
		case 0xc2:
		case 0xc3:
			out->type = MP_BOOL;
			out->v.b = (c == 0xc3);
			d->pos++;
			return true;
		case 0xc4:
		case 0xc5:
		case 0xc6:
			{
				int			nb = 1 << (c - 0xc4);

				if (!dec_need(d, 1 + nb, start, "bin header"))
					return false;
				return dec_bin(d, out, start, 1 + nb, be_read(p + 1, nb));
			}
		case 0xc7:
		case 0xc8:
		case 0xc9:
			{
				int			nb = 1 << (c - 0xc7);

				if (!dec_need(d, 2 + nb, start, "ext header"))
					return false;
				return dec_ext(d, out, start, 2 + nb, be_read(p + 1, nb));
			}
		case 0xca:
			{
				uint32_t	bits;
				float		f;

				if (!dec_need(d, 5, start, "float32"))
					return false;
				bits = (uint32_t) be_read(p + 1, 4);
				memcpy(&f, &bits, 4);
				out->type = MP_FLOAT;
				out->v.f = (double) f;
				d->pos += 5;
				return true;
			}
		case 0xcb:
			{
				uint64_t	bits;
				double		f;

				if (!dec_need(d, 9, start, "float64"))
					return false;
				bits = be_read(p + 1, 8);
				memcpy(&f, &bits, 8);
				out->type = MP_FLOAT;
				out->v.f = f;
				d->pos += 9;
				return true;
			}
		case 0xcc:
		case 0xcd:
		case 0xce:
		case 0xcf:
			{
				int			nb = 1 << (c - 0xcc);
				uint64_t	u;

				if (!dec_need(d, 1 + nb, start, "unsigned integer"))
					return false;
				u = be_read(p + 1, nb);
				if (u > (uint64_t) INT64_MAX)
				{
					out->type = MP_UINT;
					out->v.u = u;
				}
				else
				{
					out->type = MP_INT;
					out->v.i = (int64_t) u;
				}
				d->pos += 1 + nb;
				return true;
			}
		case 0xd0:
		case 0xd1:
		case 0xd2:
		case 0xd3:
			{
				int			nb = 1 << (c - 0xd0);
				uint64_t	u;
				int64_t		v;

				if (!dec_need(d, 1 + nb, start, "signed integer"))
					return false;
				u = be_read(p + 1, nb);
				/* sign-extend without relying on implementation-defined casts */
				if (nb < 8 && (u & ((uint64_t) 1 << (nb * 8 - 1))))
					u |= ~(uint64_t) 0 << (nb * 8);
				memcpy(&v, &u, sizeof(v));
				out->type = MP_INT;
				out->v.i = v;
				d->pos += 1 + nb;
				return true;
			}
		case 0xd4:
		case 0xd5:
		case 0xd6:
		case 0xd7:
		case 0xd8:
			if (!dec_need(d, 2, start, "ext header"))
				return false;
			return dec_ext(d, out, start, 2, (uint64_t) 1 << (c - 0xd4));
		case 0xd9:
		case 0xda:
		case 0xdb:
			{
				int			nb = 1 << (c - 0xd9);

				if (!dec_need(d, 1 + nb, start, "string header"))
					return false;
				return dec_str(d, out, start, 1 + nb, be_read(p + 1, nb));
			}
		case 0xdc:
		case 0xdd:
			{
				int			nb = c == 0xdc ? 2 : 4;

				if (!dec_need(d, 1 + nb, start, "array header"))
					return false;
				return dec_container(d, out, start, 1 + nb, be_read(p + 1, nb),
									 false, depth + 1);
			}
		case 0xde:
		case 0xdf:
			{
				int			nb = c == 0xde ? 2 : 4;

				if (!dec_need(d, 1 + nb, start, "map header"))
					return false;
				return dec_container(d, out, start, 1 + nb, be_read(p + 1, nb),
									 true, depth + 1);
			}
		default:
			break;
	}
	/* not reached: every byte value is handled above */
	return dec_fail(d, "unexpected byte 0x%02x at offset %zu", c, start);
}

MpNode *
mp_decode(MpArena *arena, const uint8_t *data, size_t len,
		  const MpLimits *limits, char *err, size_t errlen)
{
	MpDecoder	d;
	MpNode	   *root;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	d.data = data;
	d.len = data == NULL ? 0 : len;
	d.pos = 0;
	d.arena = arena;
	d.max_depth = limits->max_depth;
	if (d.max_depth > MP_HARD_MAX_DEPTH)
		d.max_depth = MP_HARD_MAX_DEPTH;
	d.max_nodes = limits->max_nodes;
	d.max_str = limits->max_str;
	d.nodes = 1;
	d.err = err;
	d.errlen = errlen;

	if (d.len == 0)
	{
		dec_fail(&d, "empty message");
		return NULL;
	}
	if (d.len > UINT32_MAX)
	{
		dec_fail(&d, "message of %zu bytes is too large", d.len);
		return NULL;
	}
	if (d.max_nodes < 1)
	{
		dec_fail(&d, "more than %u values at offset 0", d.max_nodes);
		return NULL;
	}
	root = mp_arena_alloc(arena, sizeof(MpNode));
	if (root == NULL)
	{
		dec_fail(&d, "out of memory");
		return NULL;
	}
	if (!dec_value(&d, root, 0))
		return NULL;
	if (d.pos != d.len)
	{
		dec_fail(&d, "%zu trailing bytes after the value at offset %zu",
				 d.len - d.pos, d.pos);
		return NULL;
	}
	return root;
}

const char *
mp_type_name(MpType type)
{
	switch (type)
	{
		case MP_NIL:
			return "nil";
		case MP_BOOL:
			return "boolean";
		case MP_INT:
		case MP_UINT:
			return "integer";
		case MP_FLOAT:
			return "float";
		case MP_STR:
			return "string";
		case MP_BIN:
			return "bin";
		case MP_ARRAY:
			return "array";
		case MP_MAP:
			return "map";
		case MP_EXT:
			return "ext";
		case MP_UNDEFINED:
			return "undefined";
	}
	return "unknown";
}

/* ============================================================ accessors */

static const MpNode *
map_find_last(const MpNode *map, const char *key, size_t keylen)
{
	if (map == NULL || map->type != MP_MAP)
		return NULL;
	for (uint32_t i = map->len; i > 0; i--)
	{
		const MpNode *k = &map->v.kv[2 * (i - 1)];

		if (k->type == MP_STR && k->len == keylen &&
			(keylen == 0 || memcmp(k->v.s, key, keylen) == 0))
			return &map->v.kv[2 * (i - 1) + 1];
	}
	return NULL;
}

const MpNode *
mp_map_getn(const MpNode *map, const char *key, size_t keylen)
{
	const MpNode *v = map_find_last(map, key, keylen);

	if (v == NULL || v->type == MP_UNDEFINED)
		return NULL;
	return v;
}

const MpNode *
mp_map_get(const MpNode *map, const char *key)
{
	return mp_map_getn(map, key, strlen(key));
}

const MpNode *
mp_map_get_raw(const MpNode *map, const char *key)
{
	return map_find_last(map, key, strlen(key));
}

bool
mp_str_eq(const MpNode *n, const char *s)
{
	size_t		len;

	if (n == NULL || n->type != MP_STR)
		return false;
	len = strlen(s);
	return n->len == len && (len == 0 || memcmp(n->v.s, s, len) == 0);
}

bool
mp_is_number(const MpNode *n)
{
	return n != NULL &&
		(n->type == MP_INT || n->type == MP_UINT || n->type == MP_FLOAT);
}

double
mp_number_as_double(const MpNode *n)
{
	if (n == NULL)
		return 0;
	switch (n->type)
	{
		case MP_INT:
			return (double) n->v.i;
		case MP_UINT:
			return (double) n->v.u;
		case MP_FLOAT:
			return n->v.f;
		default:
			return 0;
	}
}

bool
mp_number_as_int64(const MpNode *n, int64_t min, int64_t max, int64_t *out)
{
	int64_t		v;

	if (n == NULL)
		return false;
	switch (n->type)
	{
		case MP_INT:
			v = n->v.i;
			break;
		case MP_UINT:
			return false;		/* > INT64_MAX, beyond any range we use */
		case MP_FLOAT:
			{
				double		f = n->v.f;

				/* the range test also rejects NaN */
				if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
					return false;
				if (f != floor(f))
					return false;
				v = (int64_t) f;
				break;
			}
		default:
			return false;
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* =============================================================== encoder */

#define MP_DEFAULT_MAX_BYTES	((size_t) 1 << 30)

void
mp_buf_init(MpBuf *b, size_t max_bytes)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max_bytes = max_bytes == 0 ? MP_DEFAULT_MAX_BYTES : max_bytes;
	b->failed = false;
	b->oom = false;
}

void
mp_buf_reset(MpBuf *b)
{
	b->len = 0;
	b->failed = false;
	b->oom = false;
}

void
mp_buf_free(MpBuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

uint8_t *
mp_buf_steal(MpBuf *b, size_t *len)
{
	uint8_t    *p;

	if (b->failed || b->len == 0)
	{
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	p = b->data;
	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

/* Make room for n more bytes (plus one spare byte for a JSON NUL). */
static bool
buf_reserve(MpBuf *b, size_t n)
{
	size_t		want;
	size_t		ncap;
	uint8_t    *p;

	if (b->failed)
		return false;
	if (n > b->max_bytes || b->len > b->max_bytes - n)
	{
		b->failed = true;
		return false;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return true;
	ncap = b->cap < 256 ? 256 : b->cap;
	while (ncap < want)
	{
		if (ncap > SIZE_MAX / 2)
		{
			ncap = want;
			break;
		}
		ncap *= 2;
	}
	if (ncap > b->max_bytes + 1)
		ncap = b->max_bytes + 1;
	p = realloc(b->data, ncap);
	if (p == NULL)
	{
		b->failed = true;
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = ncap;
	return true;
}

bool
mp_put_raw(MpBuf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return false;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return true;
}

/* marker byte followed by an nb-byte big-endian value */
static bool
put_be(MpBuf *b, uint8_t marker, uint64_t v, int nb)
{
	uint8_t		tmp[9];

	tmp[0] = marker;
	for (int i = 0; i < nb; i++)
		tmp[1 + i] = (uint8_t) (v >> (8 * (nb - 1 - i)));
	return mp_put_raw(b, tmp, 1 + nb);
}

bool
mp_put_nil(MpBuf *b)
{
	static const uint8_t c = 0xc0;

	return mp_put_raw(b, &c, 1);
}

bool
mp_put_bool(MpBuf *b, bool v)
{
	uint8_t		c = v ? 0xc3 : 0xc2;

	return mp_put_raw(b, &c, 1);
}

bool
mp_put_undefined(MpBuf *b)
{
	static const uint8_t u[3] = {0xd4, 0x00, 0x00};

	return mp_put_raw(b, u, 3);
}

bool
mp_put_uint32(MpBuf *b, uint32_t v)
{
	if (v <= 0x7f)
	{
		uint8_t		c = (uint8_t) v;

		return mp_put_raw(b, &c, 1);
	}
	if (v <= 0xff)
		return put_be(b, 0xcc, v, 1);
	if (v <= 0xffff)
		return put_be(b, 0xcd, v, 2);
	return put_be(b, 0xce, v, 4);
}

/* v in [-2^31, -1] */
static bool
put_negative_int(MpBuf *b, int64_t v)
{
	uint64_t	u;

	memcpy(&u, &v, sizeof(u));
	if (v >= -32)
	{
		uint8_t		c = (uint8_t) (u & 0xff);

		return mp_put_raw(b, &c, 1);
	}
	if (v >= -128)
		return put_be(b, 0xd0, u & 0xff, 1);
	if (v >= -32768)
		return put_be(b, 0xd1, u & 0xffff, 2);
	return put_be(b, 0xd2, u & 0xffffffff, 4);
}

bool
mp_put_float64(MpBuf *b, double v)
{
	uint64_t	bits;

	memcpy(&bits, &v, sizeof(bits));
	return put_be(b, 0xcb, bits, 8);
}

bool
mp_put_number(MpBuf *b, double v)
{
	if (v >= -2147483648.0 && v <= 4294967295.0 && v == floor(v))
	{
		if (v >= 0)				/* -0.0 too: msgpackr writes 00 */
			return mp_put_uint32(b, (uint32_t) v);
		return put_negative_int(b, (int64_t) v);
	}
	return mp_put_float64(b, v);
}

bool
mp_put_int(MpBuf *b, int64_t v)
{
	if (v >= 0 && v <= (int64_t) UINT32_MAX)
		return mp_put_uint32(b, (uint32_t) v);
	if (v < 0 && v >= INT32_MIN)
		return put_negative_int(b, v);
	return mp_put_float64(b, (double) v);
}

bool
mp_put_millis(MpBuf *b, int64_t millis)
{
	return mp_put_float64(b, (double) millis);
}

bool
mp_put_strn(MpBuf *b, const char *s, size_t len)
{
	bool		ok;

	if (len < 32)
	{
		uint8_t		c = (uint8_t) (0xa0 | len);

		ok = mp_put_raw(b, &c, 1);
	}
	else if (len <= 0xff)
		ok = put_be(b, 0xd9, len, 1);
	else if (len <= 0xffff)
		ok = put_be(b, 0xda, len, 2);
	else if (len <= 0xffffffffu)
		ok = put_be(b, 0xdb, len, 4);
	else
	{
		b->failed = true;
		return false;
	}
	return ok && mp_put_raw(b, s, len);
}

bool
mp_put_str(MpBuf *b, const char *s)
{
	return mp_put_strn(b, s, strlen(s));
}

bool
mp_put_bin(MpBuf *b, const void *p, size_t len)
{
	bool		ok;

	if (len <= 0xff)
		ok = put_be(b, 0xc4, len, 1);
	else if (len <= 0xffff)
		ok = put_be(b, 0xc5, len, 2);
	else if (len <= 0xffffffffu)
		ok = put_be(b, 0xc6, len, 4);
	else
	{
		b->failed = true;
		return false;
	}
	return ok && mp_put_raw(b, p, len);
}

bool
mp_put_map_header(MpBuf *b, uint32_t npairs)
{
	if (npairs <= 0xffff)
		return put_be(b, 0xde, npairs, 2);
	return put_be(b, 0xdf, npairs, 4);
}

bool
mp_put_array_header(MpBuf *b, uint32_t n)
{
	if (n <= 15)
	{
		uint8_t		c = (uint8_t) (0x90 | n);

		return mp_put_raw(b, &c, 1);
	}
	if (n <= 0xffff)
		return put_be(b, 0xdc, n, 2);
	return put_be(b, 0xdd, n, 4);
}

size_t
mp_put_map16_begin(MpBuf *b)
{
	size_t		mark = b->len;

	put_be(b, 0xde, 0, 2);
	return mark;
}

bool
mp_put_map16_end(MpBuf *b, size_t mark, uint32_t npairs)
{
	if (b->failed)
		return false;
	if (npairs > 0xffff || mark + 3 > b->len || b->data[mark] != 0xde)
	{
		b->failed = true;
		return false;
	}
	b->data[mark + 1] = (uint8_t) (npairs >> 8);
	b->data[mark + 2] = (uint8_t) npairs;
	return true;
}

bool
mp_put_timestamp(MpBuf *b, int64_t millis, uint32_t counter,
				 const char *node_id, size_t node_id_len)
{
	mp_put_map_header(b, 3);
	mp_put_strn(b, "millis", 6);
	mp_put_millis(b, millis);
	mp_put_strn(b, "counter", 7);
	mp_put_uint32(b, counter);
	mp_put_strn(b, "nodeId", 6);
	return mp_put_strn(b, node_id, node_id_len);
}

static bool
put_node_depth(MpBuf *b, const MpNode *n, int depth)
{
	if (depth > MP_HARD_MAX_DEPTH)
	{
		b->failed = true;
		return false;
	}
	switch (n->type)
	{
		case MP_NIL:
			return mp_put_nil(b);
		case MP_BOOL:
			return mp_put_bool(b, n->v.b);
		case MP_INT:
			return mp_put_int(b, n->v.i);
		case MP_UINT:
			return mp_put_float64(b, (double) n->v.u);
		case MP_FLOAT:
			return mp_put_number(b, n->v.f);
		case MP_STR:
			return mp_put_strn(b, n->v.s, n->len);
		case MP_BIN:
			return mp_put_bin(b, n->v.bin, n->len);
		case MP_ARRAY:
			mp_put_array_header(b, n->len);
			for (uint32_t i = 0; i < n->len; i++)
				if (!put_node_depth(b, &n->v.items[i], depth + 1))
					return false;
			return mp_buf_ok(b);
		case MP_MAP:
			mp_put_map_header(b, n->len);
			for (uint32_t i = 0; i < 2 * n->len; i++)
				if (!put_node_depth(b, &n->v.kv[i], depth + 1))
					return false;
			return mp_buf_ok(b);
		case MP_UNDEFINED:
			return mp_put_undefined(b);
		case MP_EXT:
			{
				uint8_t		t = (uint8_t) n->v.ext.type;
				uint8_t		hdr[6];
				size_t		hl;

				switch (n->len)
				{
					case 1:
						hdr[0] = 0xd4;
						hl = 1;
						break;
					case 2:
						hdr[0] = 0xd5;
						hl = 1;
						break;
					case 4:
						hdr[0] = 0xd6;
						hl = 1;
						break;
					case 8:
						hdr[0] = 0xd7;
						hl = 1;
						break;
					case 16:
						hdr[0] = 0xd8;
						hl = 1;
						break;
					default:
						if (n->len <= 0xff)
						{
							hdr[0] = 0xc7;
							hdr[1] = (uint8_t) n->len;
							hl = 2;
						}
						else if (n->len <= 0xffff)
						{
							hdr[0] = 0xc8;
							hdr[1] = (uint8_t) (n->len >> 8);
							hdr[2] = (uint8_t) n->len;
							hl = 3;
						}
						else
						{
							hdr[0] = 0xc9;
							hdr[1] = (uint8_t) (n->len >> 24);
							hdr[2] = (uint8_t) (n->len >> 16);
							hdr[3] = (uint8_t) (n->len >> 8);
							hdr[4] = (uint8_t) n->len;
							hl = 5;
						}
						break;
				}
				hdr[hl++] = t;
				mp_put_raw(b, hdr, hl);
				return mp_put_raw(b, n->v.ext.data, n->len);
			}
	}
	b->failed = true;
	return false;
}

bool
mp_put_node(MpBuf *b, const MpNode *n)
{
	return put_node_depth(b, n, 0);
}

/* ================================================================= JSON */

typedef struct JsonCtx
{
	MpBuf	   *out;
	char	   *err;
	size_t		errlen;
} JsonCtx;

static bool json_fail(JsonCtx *j, const MpNode *n, const char *fmt,...) tg_printf_attr(3, 4);

static bool
json_fail(JsonCtx *j, const MpNode *n, const char *fmt,...)
{
	va_list		ap;
	char		msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (j->err != NULL && j->errlen > 0)
	{
		if (n != NULL)
			snprintf(j->err, j->errlen, "%s (at offset %u)", msg, n->offset);
		else
			snprintf(j->err, j->errlen, "%s", msg);
	}
	return false;
}

static bool
json_oom(JsonCtx *j)
{
	return json_fail(j, NULL, j->out->oom ? "out of memory writing JSON" :
					 "JSON text exceeds the size limit");
}

static bool
json_string(JsonCtx *j, const MpNode *n, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t		run = 0;

	if (!mp_put_raw(j->out, "\"", 1))
		return json_oom(j);
	for (size_t i = 0; i < len; i++)
	{
		uint8_t		c = (uint8_t) s[i];
		char		esc[7];
		size_t		elen = 0;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (c == 0)
			return json_fail(j, n, "string contains a NUL character, which jsonb cannot store");
		/* flush the plain run before this byte */
		if (!mp_put_raw(j->out, s + run, i - run))
			return json_oom(j);
		esc[0] = '\\';
		switch (c)
		{
			case '"':
				esc[1] = '"';
				elen = 2;
				break;
			case '\\':
				esc[1] = '\\';
				elen = 2;
				break;
			case '\b':
				esc[1] = 'b';
				elen = 2;
				break;
			case '\f':
				esc[1] = 'f';
				elen = 2;
				break;
			case '\n':
				esc[1] = 'n';
				elen = 2;
				break;
			case '\r':
				esc[1] = 'r';
				elen = 2;
				break;
			case '\t':
				esc[1] = 't';
				elen = 2;
				break;
			default:
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				elen = 6;
				break;
		}
		if (!mp_put_raw(j->out, esc, elen))
			return json_oom(j);
		run = i + 1;
	}
	if (!mp_put_raw(j->out, s + run, len - run) || !mp_put_raw(j->out, "\"", 1))
		return json_oom(j);
	return true;
}

#define JSON_MAX_SAFE	INT64_C(9007199254740992)	/* 2^53 */

static bool
json_double(JsonCtx *j, const MpNode *n, double f)
{
	char		tmp[40];

	if (isnan(f))
		return json_fail(j, n, "NaN cannot be stored in JSON");
	if (isinf(f))
		return json_fail(j, n, "Infinity cannot be stored in JSON");
	if (f == 0)
	{
		/* -0 becomes 0, as JSON.stringify does */
		tmp[0] = '0';
		tmp[1] = '\0';
	}
	else
	{
		/* shortest of %.15g/%.16g/%.17g that reads back exactly */
		static const int precs[] = {15, 16, 17};

		for (int k = 0; k < 3; k++)
		{
			snprintf(tmp, sizeof(tmp), "%.*g", precs[k], f);
			if (strtod(tmp, NULL) == f)
				break;
		}
	}
	if (!mp_put_raw(j->out, tmp, strlen(tmp)))
		return json_oom(j);
	return true;
}

static bool
json_value(JsonCtx *j, const MpNode *n, int depth)
{
	char		tmp[40];

	switch (n->type)
	{
		case MP_NIL:
			if (!mp_put_raw(j->out, "null", 4))
				return json_oom(j);
			return true;
		case MP_BOOL:
			if (!(n->v.b ? mp_put_raw(j->out, "true", 4) : mp_put_raw(j->out, "false", 5)))
				return json_oom(j);
			return true;
		case MP_INT:
			if (n->v.i > JSON_MAX_SAFE || n->v.i < -JSON_MAX_SAFE)
				return json_fail(j, n, "integer beyond 2^53");
			snprintf(tmp, sizeof(tmp), "%lld", (long long) n->v.i);
			if (!mp_put_raw(j->out, tmp, strlen(tmp)))
				return json_oom(j);
			return true;
		case MP_UINT:
			return json_fail(j, n, "integer beyond 2^53");
		case MP_FLOAT:
			return json_double(j, n, n->v.f);
		case MP_STR:
			return json_string(j, n, n->v.s, n->len);
		case MP_BIN:
			return json_fail(j, n, "binary data (bin) cannot be stored as JSON");
		case MP_EXT:
			if (n->v.ext.type == -1)
				return json_fail(j, n, "Date values (ext -1) cannot be stored as JSON");
			return json_fail(j, n, "msgpack extension type %d cannot be stored as JSON",
							 (int) n->v.ext.type);
		case MP_UNDEFINED:
			return json_fail(j, n, "undefined cannot be stored as JSON here");
		case MP_ARRAY:
			if (depth >= MP_JSON_MAX_DEPTH)
				return json_fail(j, n, "value nested deeper than %d levels", MP_JSON_MAX_DEPTH);
			if (!mp_put_raw(j->out, "[", 1))
				return json_oom(j);
			for (uint32_t i = 0; i < n->len; i++)
			{
				const MpNode *it = &n->v.items[i];

				if (it->type == MP_UNDEFINED)
					return json_fail(j, it, "undefined inside an array cannot be stored as JSON");
				if (i > 0 && !mp_put_raw(j->out, ",", 1))
					return json_oom(j);
				if (!json_value(j, it, depth + 1))
					return false;
			}
			if (!mp_put_raw(j->out, "]", 1))
				return json_oom(j);
			return true;
		case MP_MAP:
			{
				bool		first = true;

				if (depth >= MP_JSON_MAX_DEPTH)
					return json_fail(j, n, "value nested deeper than %d levels", MP_JSON_MAX_DEPTH);
				if (!mp_put_raw(j->out, "{", 1))
					return json_oom(j);
				for (uint32_t i = 0; i < n->len; i++)
				{
					const MpNode *k = &n->v.kv[2 * i];
					const MpNode *v = &n->v.kv[2 * i + 1];

					if (k->type != MP_STR)
						return json_fail(j, k, "map key of type %s cannot be stored as JSON "
										 "(object keys must be strings)",
										 mp_type_name(k->type));
					/* JSON.stringify drops undefined properties */
					if (v->type == MP_UNDEFINED)
						continue;
					if (!first && !mp_put_raw(j->out, ",", 1))
						return json_oom(j);
					first = false;
					if (!json_string(j, k, k->v.s, k->len))
						return false;
					if (!mp_put_raw(j->out, ":", 1))
						return json_oom(j);
					if (!json_value(j, v, depth + 1))
						return false;
				}
				if (!mp_put_raw(j->out, "}", 1))
					return json_oom(j);
				return true;
			}
	}
	return json_fail(j, n, "unknown value type");
}

bool
mp_value_to_json(const MpNode *v, MpBuf *out, char *err, size_t errlen)
{
	JsonCtx		j;

	j.out = out;
	j.err = err;
	j.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (v == NULL)
		return json_fail(&j, NULL, "missing value");
	if (out->failed)
		return json_oom(&j);
	if (!json_value(&j, v, 0))
		return false;
	/* buf_reserve always keeps one spare byte for this terminator */
	if (!buf_reserve(out, 0))
		return json_oom(&j);
	out->data[out->len] = '\0';
	return true;
}
