/*
 * test_merkle_delta.c — the record format of topgun.merkle_pending rows
 * (src/merkle/delta_codec.c): sizes, byte layout, round trips of every
 * touched-leaf pattern, and refusal of truncated or empty records.
 */
#include "merkle/delta_codec.h"

#include <stdio.h>
#include <string.h>

static int	passed,
			failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) passed++; \
		else { failed++; printf("not ok %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
	} while (0)

static void
test_layout(void)
{
	uint32_t	leaf[16] = {0};
	uint8_t		buf[TG_DELTA_RECORD_MAX];
	size_t		n;
	static const uint8_t want[] = {0x05, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff};

	leaf[0] = 1;
	leaf[1] = 99;				/* not touched: not written */
	leaf[2] = 0xffffffffu;
	n = tg_delta_encode(buf, 5, 0x0005, leaf);
	CHECK(n == sizeof(want) && memcmp(buf, want, n) == 0, "layout of a two-leaf record (%zu bytes)", n);
	CHECK(tg_delta_record_size(0x0005) == 11, "size of two leaves");
	CHECK(tg_delta_record_size(0xffff) == TG_DELTA_RECORD_MAX, "size of sixteen leaves");
	CHECK(tg_delta_record_size(0x8000) == 7, "size of one leaf");
}

static void
test_round_trip(void)
{
	uint8_t		buf[TG_DELTA_RECORD_MAX * 300];
	size_t		len = 0;
	int			nrec = 0;
	int			bad = 0;
	size_t		pos = 0;
	TgDeltaRecord rec;
	int			r;
	int			k = 0;

	/* every touched pattern of a stride, with prefixes 0..255 cycling */
	for (uint32_t t = 1; t <= 0xffff; t += 257)
	{
		uint32_t	leaf[16];

		for (int i = 0; i < 16; i++)
			leaf[i] = t * 2654435761u + (uint32_t) i;
		len += tg_delta_encode(buf + len, nrec % 256, (uint16_t) t, leaf);
		nrec++;
	}
	while ((r = tg_delta_next(buf, len, &pos, &rec)) == 1)
	{
		uint32_t	t = 1 + 257 * (uint32_t) k;

		if (rec.prefix != k % 256 || rec.touched != (uint16_t) t)
			bad++;
		for (int i = 0; i < 16; i++)
			if (rec.leaf[i] != ((t & (1u << i)) ? t * 2654435761u + (uint32_t) i : 0))
				bad++;
		k++;
	}
	CHECK(r == 0 && pos == len, "the whole buffer is read (r=%d, pos=%zu of %zu)", r, pos, len);
	CHECK(k == nrec && bad == 0, "%d of %d records back, %d mismatches", k, nrec, bad);
}

static void
test_malformed(void)
{
	uint32_t	leaf[16] = {7, 8, 9};
	uint8_t		buf[TG_DELTA_RECORD_MAX];
	size_t		n = tg_delta_encode(buf, 200, 0x0007, leaf);
	TgDeltaRecord rec;
	size_t		pos;
	int			truncations_refused = 0;

	for (size_t cut = 1; cut < n; cut++)
	{
		pos = 0;
		if (tg_delta_next(buf, cut, &pos, &rec) == -1 && pos == 0)
			truncations_refused++;
	}
	CHECK(truncations_refused == (int) n - 1, "every truncation refused (%d of %zu)", truncations_refused, n - 1);
	pos = 0;
	CHECK(tg_delta_next(buf, 0, &pos, &rec) == 0, "empty: end");
	{
		uint8_t		none[3] = {1, 0, 0};

		pos = 0;
		CHECK(tg_delta_next(none, 3, &pos, &rec) == -1, "a record without leaves is refused");
	}
	pos = 0;
	CHECK(tg_delta_next(buf, n, &pos, &rec) == 1 && rec.prefix == 200 && rec.leaf[2] == 9 && pos == n,
		  "the untruncated record reads");
}

static void
test_range(void)
{
	uint8_t		buf[TG_DELTA_RECORD_MAX * 256];
	size_t		len = 0;
	size_t		pos = 0;
	TgDeltaRecord rec;
	int			r,
				seen = 0,
				wrong = 0;

	for (int p = 0; p < 256; p += 3)
	{
		uint32_t	leaf[16] = {0};

		leaf[p % 16] = (uint32_t) p;
		len += tg_delta_encode(buf + len, p, (uint16_t) (1u << (p % 16)), leaf);
	}
	while ((r = tg_delta_next_range(buf, len, &pos, &rec, 30, 60)) == 1)
	{
		seen++;
		if (rec.prefix < 30 || rec.prefix > 60 || rec.leaf[rec.prefix % 16] != (uint32_t) rec.prefix)
			wrong++;
	}
	CHECK(r == 0 && pos == len && seen == 11 && wrong == 0, "range 30..60: %d records, %d wrong, r=%d", seen, wrong, r);
	pos = 0;
	CHECK(tg_delta_next_range(buf, len - 1, &pos, &rec, 300, 300) == -1, "a truncated tail is refused while skipping");
}

int
main(void)
{
	test_layout();
	test_round_trip();
	test_malformed();
	test_range();
	printf("test_merkle_delta: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
