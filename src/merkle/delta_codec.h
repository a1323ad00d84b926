/*
 * delta_codec.h — the bytes of a topgun.merkle_pending row (PostgreSQL-free).
 *
 * A row holds the Merkle deltas one commit made to some depth-2 nodes of one
 * map, as a sequence of records:
 *
 *     prefix   1 byte             the node (0..255)
 *     touched  2 bytes, LE        bit i: leaf (prefix << 4 | i) has a delta
 *     deltas   4 bytes LE each    one per set bit of touched, lowest bit first
 *
 * A record with no touched leaf is malformed (the encoder never writes one).
 */
#ifndef TG_DELTA_CODEC_H
#define TG_DELTA_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes per row the writer aims at: below TOAST's 2 kB threshold. */
#define TG_DELTA_ROW_BYTES 1900
/* The largest record: 16 leaves. */
#define TG_DELTA_RECORD_MAX (3 + 16 * 4)

typedef struct TgDeltaRecord
{
	int			prefix;
	uint16_t	touched;
	uint32_t	leaf[16];		/* leaf[i] valid where bit i of touched is set, 0 elsewhere */
} TgDeltaRecord;

/* Size of the record of a node with these touched leaves. */
extern size_t tg_delta_record_size(uint16_t touched);

/* Write one record at out (room for tg_delta_record_size(touched) bytes); returns its size. */
extern size_t tg_delta_encode(uint8_t *out, int prefix, uint16_t touched, const uint32_t *leaf);

/*
 * Read the record at *pos of buf[0..len) and advance *pos.  Returns 1 for a
 * record, 0 at the end, -1 for malformed bytes (truncated, or no leaf).
 */
extern int	tg_delta_next(const uint8_t *buf, size_t len, size_t *pos, TgDeltaRecord *rec);

/*
 * The same, for the next record whose prefix lies in [lo, hi]: the others are
 * skipped over (their lengths checked, their deltas not read).
 */
extern int	tg_delta_next_range(const uint8_t *buf, size_t len, size_t *pos, TgDeltaRecord *rec,
								int lo, int hi);

#endif
