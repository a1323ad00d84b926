/*
 * msgpack.c — MessagePack decoder (hostile-input safe, into an arena tree),
 * the arena, and the tree accessors.  The encoder is msgpack_encode.c, the
 * msgpack → JSON text writer msgpack_json.c.
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
	arena->chunk_min = 0;
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
		size_t		csize = arena->chunk_min ? arena->chunk_min : MP_CHUNK_MIN;

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
	arena->chunk_min = 0;
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
