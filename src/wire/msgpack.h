/*
 * msgpack.h — MessagePack decoder and encoder for the TopGun wire protocol.
 *
 * PostgreSQL-free (C11 + libc): linked into topgun.so and also built
 * standalone by `make unit` and `make fuzz`.  Do not include postgres.h.
 *
 * Decoder
 * -------
 * mp_decode() turns one complete msgpack value into a tree of MpNode
 * allocated from an MpArena (malloc'd chunks released by one
 * mp_arena_free()).  It is written for hostile input:
 *   - nothing is allocated from a declared size before the bytes are known
 *     to be present: an array's count must be <= remaining bytes, a map's
 *     2*count <= remaining bytes (every element needs at least one byte);
 *   - caller limits on depth, total node count and string/bin/ext length;
 *   - strict: bytes after the first value are an error, 0xc1 is an error;
 *   - every str is validated as UTF-8 (no overlong forms, no surrogates
 *     U+D800..U+DFFF — PostgreSQL cannot store them — nothing above
 *     U+10FFFF);
 *   - ext type 0 (msgpackr's `undefined`, usually `d4 00 00`) becomes
 *     MP_UNDEFINED, meaning "absent"; other ext types become MP_EXT.
 * Strings, bins and ext data point INTO the input buffer (no copy): the
 * input must outlive the tree.  float32 is widened to double.  Integers are
 * kept exact: every integer that fits int64_t is MP_INT (whatever its wire
 * form), only uint64 values above INT64_MAX are MP_UINT.
 *
 * Encoder
 * -------
 * MpBuf is a growable malloc'd buffer with a hard size cap.  Failures
 * (cap reached, out of memory) are sticky: every mp_put_* returns false once
 * the buffer failed, nothing aborts, and mp_buf_ok() tells the caller at the
 * end.  The forms written are those msgpackr 1.11.8 writes, so our output is
 * byte-identical to the golden vectors:
 *   - maps (JS objects) are ALWAYS map16 (`de`), map32 above 65535 entries;
 *   - arrays fixarray / array16 / array32; strings with the smallest header;
 *   - integers in the smallest form, unsigned forms for values >= 0, and any
 *     number outside int32/uint32 range as float64 (`cb`) — never `cf`/`d3`,
 *     which the JS client would turn into BigInt.
 */
#ifndef TG_WIRE_MSGPACK_H
#define TG_WIRE_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ arena */

typedef struct MpArenaChunk MpArenaChunk;

/* A bump allocator over malloc'd chunks.  Zero-initialise or mp_arena_init(). */
typedef struct MpArena
{
	MpArenaChunk *head;			/* newest chunk first */
	size_t		allocated;		/* total bytes obtained from malloc */
	size_t		chunk_min;		/* first chunk's size (0: 16 KiB), for small long-lived trees */
} MpArena;

extern void mp_arena_init(MpArena *arena);

/* 8-byte aligned, uninitialised memory; NULL when out of memory. */
extern void *mp_arena_alloc(MpArena *arena, size_t size);

/* Copy len bytes into the arena and NUL-terminate them; NULL on OOM. */
extern char *mp_arena_strndup(MpArena *arena, const char *s, size_t len);

/* Release every chunk; the arena can be reused afterwards. */
extern void mp_arena_free(MpArena *arena);

/* ------------------------------------------------------------------- tree */

typedef enum MpType
{
	MP_NIL = 0,
	MP_BOOL,
	MP_INT,						/* any integer that fits int64_t: v.i */
	MP_UINT,					/* integer > INT64_MAX (only from `cf`): v.u */
	MP_FLOAT,					/* float64, or float32 widened: v.f */
	MP_STR,						/* valid UTF-8, not NUL-terminated: v.s, len */
	MP_BIN,						/* v.bin, len */
	MP_ARRAY,					/* v.items[0..len-1] */
	MP_MAP,						/* v.kv[0..2*len-1]: key, value, key, value... */
	MP_EXT,						/* ext type != 0: v.ext.type, v.ext.data, len */
	MP_UNDEFINED				/* ext type 0: JS `undefined`, i.e. "absent" */
} MpType;

typedef struct MpNode
{
	MpType		type;
	uint32_t	len;			/* bytes for STR/BIN/EXT, items for ARRAY,
								 * pairs for MAP, 0 otherwise */
	uint32_t	offset;			/* offset of the value's first byte in the
								 * input (for error messages) */
	union
	{
		bool		b;
		int64_t		i;
		uint64_t	u;
		double		f;
		const char *s;
		const uint8_t *bin;
		struct MpNode *kv;
		struct MpNode *items;
		struct
		{
			int8_t		type;
			const uint8_t *data;
		}			ext;
	}			v;
} MpNode;

/* Limits applied by mp_decode(); all must be > 0. */
typedef struct MpLimits
{
	uint32_t	max_depth;		/* nesting depth of containers; the root is
								 * depth 1.  Clamped to MP_HARD_MAX_DEPTH. */
	uint32_t	max_nodes;		/* total nodes in the tree (map keys count) */
	uint32_t	max_str;		/* max bytes of one str, bin or ext payload */
} MpLimits;

/* The recursion of decoder and JSON writer never goes deeper than this. */
#define MP_HARD_MAX_DEPTH	256

/*
 * Decode exactly one msgpack value occupying all of data[0..len-1].
 * Returns the root node (allocated in arena), or NULL with a message such as
 * "invalid UTF-8 in string at offset 17" in err.  On failure the arena may
 * hold partial allocations; free it as usual.
 */
extern MpNode *mp_decode(MpArena *arena, const uint8_t *data, size_t len,
						 const MpLimits *limits, char *err, size_t errlen);

/* Static name of a type, e.g. "map", "string", "undefined". */
extern const char *mp_type_name(MpType type);

/*
 * Map lookup by string key.  Returns NULL when map is not an MP_MAP, when
 * the key is absent, or when its value is MP_UNDEFINED.  With duplicate keys
 * the LAST one wins (JavaScript object semantics, as msgpackr decodes).
 */
extern const MpNode *mp_map_get(const MpNode *map, const char *key);
extern const MpNode *mp_map_getn(const MpNode *map, const char *key, size_t keylen);

/* Like mp_map_get, but returns an MP_UNDEFINED value instead of NULL. */
extern const MpNode *mp_map_get_raw(const MpNode *map, const char *key);

/* True when n is an MP_STR whose bytes equal the NUL-terminated s. */
extern bool mp_str_eq(const MpNode *n, const char *s);

/* MP_INT, MP_UINT or MP_FLOAT. */
extern bool mp_is_number(const MpNode *n);

/* The numeric value as a double (0 for non-numbers); int64 may round. */
extern double mp_number_as_double(const MpNode *n);

/*
 * If n is a number with an exact integral value in [min, max], store it in
 * *out and return true.  Accepts int, uint and float64 encodings (a float
 * must be finite and integral; -0.0 counts as 0).
 */
extern bool mp_number_as_int64(const MpNode *n, int64_t min, int64_t max,
							   int64_t *out);

/* --------------------------------------------------------------- encoder */

typedef struct MpBuf
{
	uint8_t    *data;			/* malloc'd; NULL until the first write */
	size_t		len;
	size_t		cap;
	size_t		max_bytes;		/* hard cap on len */
	bool		failed;			/* sticky: cap exceeded or out of memory */
	bool		oom;			/* the failure was malloc/realloc */
} MpBuf;

/* Initialise an empty buffer that may grow to max_bytes (0 = 1 GiB). */
extern void mp_buf_init(MpBuf *b, size_t max_bytes);

/* Forget the contents and the failure, keep the allocation. */
extern void mp_buf_reset(MpBuf *b);

/* Free the storage; the buffer can be re-initialised. */
extern void mp_buf_free(MpBuf *b);

/* False once any write failed. */
static inline bool
mp_buf_ok(const MpBuf *b)
{
	return !b->failed;
}

/*
 * Hand the malloc'd bytes to the caller (who must free() them) and reset b
 * to empty.  Returns NULL if the buffer failed or is empty.
 */
extern uint8_t *mp_buf_steal(MpBuf *b, size_t *len);

/* Append raw bytes: already-encoded msgpack, or text for the JSON writer. */
extern bool mp_put_raw(MpBuf *b, const void *p, size_t n);

extern bool mp_put_nil(MpBuf *b);
extern bool mp_put_bool(MpBuf *b, bool v);

/* `d4 00 00`, msgpackr's undefined (e.g. ERROR's details: undefined). */
extern bool mp_put_undefined(MpBuf *b);

/*
 * A JS number: integral values in [-2^31, 2^32-1] in the smallest int form
 * (unsigned forms for >= 0, -0 as `00`), everything else (fractions, large
 * integers, NaN, +-Inf) as float64 `cb`.
 */
extern bool mp_put_number(MpBuf *b, double v);

/* Same rule for an integer: int32/uint32 range → int form, else float64. */
extern bool mp_put_int(MpBuf *b, int64_t v);

/* A uint32 hash: smallest unsigned form (fixint, cc, cd, ce). */
extern bool mp_put_uint32(MpBuf *b, uint32_t v);

/* float64 `cb`, always. */
extern bool mp_put_float64(MpBuf *b, double v);

/* HLC millis: float64 always, as the client sends them. */
extern bool mp_put_millis(MpBuf *b, int64_t millis);

/* Strings: fixstr / str8 / str16 / str32 by byte length. */
extern bool mp_put_str(MpBuf *b, const char *s);
extern bool mp_put_strn(MpBuf *b, const char *s, size_t len);

/* bin8 / bin16 / bin32. */
extern bool mp_put_bin(MpBuf *b, const void *p, size_t len);

/* Object header: map16 (`de`), or map32 above 65535 entries.  Never fixmap. */
extern bool mp_put_map_header(MpBuf *b, uint32_t npairs);

/* fixarray / array16 / array32. */
extern bool mp_put_array_header(MpBuf *b, uint32_t n);

/*
 * For objects whose size is known only at the end: mp_put_map16_begin()
 * writes `de 00 00` and returns its position; mp_put_map16_end() patches
 * the count in (false if npairs > 65535 or the buffer failed).
 */
extern size_t mp_put_map16_begin(MpBuf *b);
extern bool mp_put_map16_end(MpBuf *b, size_t mark, uint32_t npairs);

/*
 * {millis: float64, counter: <number>, nodeId: <str>} as a map16, in that
 * key order (the reference server's Timestamp).
 */
extern bool mp_put_timestamp(MpBuf *b, int64_t millis, uint32_t counter,
							 const char *node_id, size_t node_id_len);

/*
 * Re-encode a decoded value with the rules above (maps as map16/map32,
 * integers via mp_put_int, MP_UINT as float64, floats via mp_put_number so
 * 1.0 becomes `01`, MP_UNDEFINED as `d4 00 00`, MP_EXT re-emitted with its
 * type).  Used to forward application values (records, topic data).
 */
extern bool mp_put_node(MpBuf *b, const MpNode *n);

/* ------------------------------------------------------------ JSON text */

/* Nesting limit of mp_value_to_json(). */
#define MP_JSON_MAX_DEPTH	128

/*
 * Append the JSON text of an application value to out (for PostgreSQL
 * jsonb).  See docs/wire-codec.md for the mapping.  On success out holds
 * NUL-terminated text (the NUL is not counted in out->len) and true is
 * returned; on failure false with the reason in err (out's contents are then
 * unspecified).  Rejected: bin, ext (Date and others), undefined except as
 * an object property value (then the property is omitted), non-string map
 * keys, NUL characters in strings or keys, NaN/Infinity, integers beyond
 * +-2^53, nesting beyond MP_JSON_MAX_DEPTH.
 */
extern bool mp_value_to_json(const MpNode *v, MpBuf *out, char *err, size_t errlen);

#endif							/* TG_WIRE_MSGPACK_H */
