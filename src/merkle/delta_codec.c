/*
 * delta_codec.c — encode and decode the records of a topgun.merkle_pending
 * row (format in delta_codec.h).  No PostgreSQL dependency: unit-tested and
 * fuzzed on its own (test/unit/test_merkle_delta.c, fuzz/fuzz_merkle_delta.c).
 */
#include "merkle/delta_codec.h"

#include <string.h>

static int
popcount16(uint16_t v)
{
	int			n = 0;

	for (; v; v &= (uint16_t) (v - 1))
		n++;
	return n;
}

size_t
tg_delta_record_size(uint16_t touched)
{
	return 3 + 4 * (size_t) popcount16(touched);
}

size_t
tg_delta_encode(uint8_t *out, int prefix, uint16_t touched, const uint32_t *leaf)
{
	size_t		n = 0;

	out[n++] = (uint8_t) prefix;
	out[n++] = (uint8_t) touched;
	out[n++] = (uint8_t) (touched >> 8);
	for (int i = 0; i < 16; i++)
	{
		uint32_t	d = leaf[i];

		if ((touched & (1u << i)) == 0)
			continue;
		out[n++] = (uint8_t) d;
		out[n++] = (uint8_t) (d >> 8);
		out[n++] = (uint8_t) (d >> 16);
		out[n++] = (uint8_t) (d >> 24);
	}
	return n;
}

int
tg_delta_next(const uint8_t *buf, size_t len, size_t *pos, TgDeltaRecord *rec)
{
	size_t		p = *pos;
	size_t		need;

	if (p >= len)
		return 0;
	if (len - p < 3)
		return -1;
	rec->prefix = buf[p];
	rec->touched = (uint16_t) (buf[p + 1] | (buf[p + 2] << 8));
	if (rec->touched == 0)
		return -1;
	need = tg_delta_record_size(rec->touched);
	if (len - p < need)
		return -1;
	p += 3;
	memset(rec->leaf, 0, sizeof(rec->leaf));
	for (int i = 0; i < 16; i++)
	{
		if ((rec->touched & (1u << i)) == 0)
			continue;
		rec->leaf[i] = (uint32_t) buf[p] | ((uint32_t) buf[p + 1] << 8) |
			((uint32_t) buf[p + 2] << 16) | ((uint32_t) buf[p + 3] << 24);
		p += 4;
	}
	*pos = p;
	return 1;
}

int
tg_delta_next_range(const uint8_t *buf, size_t len, size_t *pos, TgDeltaRecord *rec, int lo, int hi)
{
	size_t		p = *pos;

	while (p < len)
	{
		uint16_t	touched;
		size_t		need;

		if (len - p < 3)
			return -1;
		touched = (uint16_t) (buf[p + 1] | (buf[p + 2] << 8));
		if (touched == 0)
			return -1;
		need = tg_delta_record_size(touched);
		if (len - p < need)
			return -1;
		if (buf[p] >= lo && buf[p] <= hi)
		{
			*pos = p;
			return tg_delta_next(buf, len, pos, rec);
		}
		p += need;
		*pos = p;
	}
	return 0;
}
