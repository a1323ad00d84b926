/*
 * fuzz_merkle_delta.c — libFuzzer target for the decoder of
 * topgun.merkle_pending rows (src/merkle/delta_codec.c): rows can be written
 * by direct DML.  Checks that reading stays inside the buffer, that an
 * accepted buffer re-encodes to the same bytes, and that a refusal is final.
 */
#include <stdlib.h>
#include <string.h>

#include "merkle/delta_codec.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t    *copy = malloc(size ? size : 1);
	uint8_t    *again = malloc(size + TG_DELTA_RECORD_MAX);
	size_t		pos = 0,
				len = 0;
	TgDeltaRecord rec;
	int			r;

	memcpy(copy, data, size);	/* exact size: any over-read is caught */
	while ((r = tg_delta_next(copy, size, &pos, &rec)) == 1)
	{
		if (pos > size || rec.touched == 0 || rec.prefix < 0 || rec.prefix > 255)
			abort();
		len += tg_delta_encode(again + len, rec.prefix, rec.touched, rec.leaf);
		if (len != pos)
			abort();
	}
	if (r == 0 && (pos != size || memcmp(again, copy, size) != 0))
		abort();				/* accepted bytes must re-encode exactly */
	if (r == -1 && pos >= size)
		abort();
	/* a range read gives exactly the in-range records of a full read, and fails where it fails */
	{
		int			lo = size > 0 ? data[0] : 0,
					hi = size > 1 ? data[1] : 255;
		size_t		p1 = 0,
					p2 = 0;
		TgDeltaRecord a,
					b;
		int			r1,
					r2;

		for (;;)
		{
			do
				r1 = tg_delta_next(copy, size, &p1, &a);
			while (r1 == 1 && (a.prefix < lo || a.prefix > hi));
			r2 = tg_delta_next_range(copy, size, &p2, &b, lo, hi);
			if (r1 != r2)
				abort();
			if (r1 != 1)
				break;
			if (a.prefix != b.prefix || a.touched != b.touched || memcmp(a.leaf, b.leaf, sizeof(a.leaf)) != 0)
				abort();
		}
	}
	free(copy);
	free(again);
	return 0;
}
