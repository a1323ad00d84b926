/*
 * ring.h — the shared-memory ring of committed change events (ring.c), as
 * seen by the producer side (capture.c).  The consumer API is changes.h.
 */
#ifndef TG_CHANGES_RING_H
#define TG_CHANGES_RING_H

#include "changes/changes.h"

/* Bytes a record takes on the ring. */
extern Size tg_changes_record_size(int maplen, int keylen, int taglen, int payloadlen);
/* Serialise one event into a transaction-local buffer (seq filled at commit). */
extern void tg_changes_encode(StringInfo buf, TgChangeKind kind, uint64 origin,
							  const char *map, int maplen, const char *key, int keylen,
							  const char *tag, int taglen, const char *payload, int payloadlen);
/* Append a committed transaction's events (and count `lost` ones) to the ring. */
extern void tg_changes_publish(const char *buf, Size len, int nevents, uint64 lost);
extern bool tg_changes_has_consumer(void);
extern Size tg_changes_ring_size(void);

#endif							/* TG_CHANGES_RING_H */
