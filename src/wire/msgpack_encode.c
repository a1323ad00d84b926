/*
 * msgpack_encode.c — MessagePack encoder into a growable MpBuf
 * (msgpackr-compatible forms).  PostgreSQL-free: see msgpack.h.
 */
#include "wire/msgpack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
