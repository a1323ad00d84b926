/*
 * events.h — the one encoder of map events (SERVER_EVENT payloads) and the
 * one fan-out path that sends them to the connections watching the maps,
 * for client writes (apply.c, ormap.c) and change-feed events (feed.c).
 */
#ifndef TG_EXEC_EVENTS_H
#define TG_EXEC_EVENTS_H

#include "exec/exec.h"

typedef enum TgEventKind
{
	TG_EV_UPDATED,				/* LWW record (value nil = tombstone) */
	TG_EV_OR_ADD,				/* OR record */
	TG_EV_OR_REMOVE				/* OR tag removed */
} TgEventKind;

typedef struct TgEvent
{
	TgEventKind kind;
	const char *map;
	size_t		maplen;
	const char *key;
	size_t		keylen;
	const MpNode *value;		/* the value as sent, or ... */
	Jsonb	   *jvalue;			/* ... as stored (both NULL: nil) */
	const TgTimestamp *ts;		/* the record's timestamp, or ... */
	const char *ts_text;		/* ... as topgun.hlc text */
	bool		has_ttl;
	int64		ttl_ms;
	const char *tag;			/* OR_ADD / OR_REMOVE */
	size_t		taglen;
} TgEvent;

/* Events encoded once, then sent to every watcher of their maps. */
typedef struct TgEventList
{
	MpBuf		buf;
	MemoryContext cxt;			/* where the list lives */
	int			n;
	int			cap;
	struct TgEncodedEvent
	{
		const char *map;
		size_t		maplen;
		size_t		off;
		size_t		len;
	}		   *evs;
} TgEventList;

extern void tg_events_init(TgEventList *l);
extern void tg_events_add(TgEventList *l, const TgEvent *e);
extern void tg_events_free(TgEventList *l);

/*
 * Send the events to every authenticated connection (but `exclude`) that
 * watches their maps, with the server timestamp `hlc` (topgun.hlc text):
 * one SERVER_BATCH_EVENT per connection, or SERVER_EVENT when `single` (a
 * CLIENT_OP's one event).
 */
extern void tg_events_fan_out(TgEventList *l, const char *hlc, TgConn *exclude, bool single);

#endif							/* TG_EXEC_EVENTS_H */
