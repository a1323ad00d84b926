/*
 * changes.h — the commit-ordered change feed from every backend to the sync
 * worker.
 *
 * Row triggers on the storage tables (and topgun.publish()) collect change
 * events during a transaction; at commit they are appended to a ring buffer
 * in shared memory and the registered consumer (the sync worker) is woken
 * with one SIGUSR2.  A rolled-back transaction or subtransaction contributes
 * nothing, and a change is never visible in the feed before its commit.
 *
 * Events carry identities (map, key, tag), not values: the consumer re-reads
 * the committed row, so it always sends the latest committed state.  Per key,
 * events appear in commit order (writers of one key serialise on its row lock,
 * and the append happens before that lock is released).
 */
#ifndef TG_CHANGES_H
#define TG_CHANGES_H

#include "postgres.h"
#include "lib/stringinfo.h"

typedef enum TgChangeKind
{
	TG_CHANGE_LWW = 1,			/* an LWW record of (map, key) changed */
	TG_CHANGE_OR_ADD = 2,		/* OR record (map, key, tag) added or updated */
	TG_CHANGE_OR_REMOVE = 3,	/* OR record (map, key, tag) removed */
	TG_CHANGE_TOPIC = 4,		/* topgun.publish(): map = topic, payload = JSON text */
	TG_CHANGE_COUNTER = 5		/* PN counter `map` changed */
} TgChangeKind;

/* A decoded event; pointers refer to the caller's buffer. */
typedef struct TgChange
{
	TgChangeKind kind;
	uint64		origin;			/* tg_changes_set_origin() of the writer, 0 = none */
	uint64		seq;			/* position in the feed */
	const char *map;
	int			maplen;
	const char *key;
	int			keylen;
	const char *tag;
	int			taglen;
	const char *payload;
	int			payloadlen;
} TgChange;

/* Initialisation from _PG_init: the ring (ring.c), the capture (capture.c). */
extern void tg_changes_init(void);
extern void tg_changes_capture_init(void);

/* Producers (trigger.c, topgun.publish). */
extern void tg_changes_capture(TgChangeKind kind, const char *map, int maplen,
							   const char *key, int keylen, const char *tag, int taglen,
							   const char *payload, int payloadlen);
/* Tag this backend's following commits with an origin id (0 to clear). */
extern void tg_changes_set_origin(uint64 origin);
/*
 * Do not capture these kinds (bit mask of 1 << TgChangeKind) in this backend:
 * the sync worker fans out its own LWW and counter writes directly, so their
 * echoes would only cost ring space and reads.
 */
extern void tg_changes_skip_kinds(uint32 mask);

/* Consumer (the sync worker). */
extern void tg_changes_register_consumer(bool on);
extern uint64 tg_changes_head(void);

/*
 * Copy events from *cursor on into `out` (reset first), at most max_bytes
 * worth, and advance *cursor.  Returns the number of events copied; *lost is
 * set to the number of events the ring dropped before the consumer read them
 * (the consumer must then resynchronise its clients).  Decode the copied
 * events with tg_changes_decode().
 */
extern int	tg_changes_read(uint64 *cursor, StringInfo out, Size max_bytes, uint64 *lost);
extern bool tg_changes_decode(StringInfo buf, int *offset, TgChange *ev);

#endif							/* TG_CHANGES_H */
