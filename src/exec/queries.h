/*
 * queries.h — live query internals shared by queries.c (subscriptions,
 * pages read by readers) and query_writes.c (what a write does to them).
 */
#ifndef TG_EXEC_QUERIES_H
#define TG_EXEC_QUERIES_H

#include "exec/exec.h"

#define MAX_CHANGED		64

/* a subscription whose page is to be read again after the commit */
typedef struct Pending
{
	struct Pending *next;
	TgQuerySub *sub;
	int			nchanged;		/* -1: too many, refresh every value */
	bool		refill;			/* only the row after the page's last (a member left) */
	char	   *changed[MAX_CHANGED];
	size_t		changed_len[MAX_CHANGED];
} Pending;

extern Pending *tg_qpending;

extern Pending *tg_qpending_find(TgQuerySub *sub);
/* QUERY_UPDATE of key: UPDATE with node (or jb), or REMOVE */
extern void tg_qsend_update(TgQuerySub *sub, const char *key, size_t keylen, const MpNode *node, Jsonb *jb,
						bool remove);
/* 413 and drop: the subscription would track more than topgun.max_query_results keys */
extern void tg_qdrop_for_limit(TgQuerySub *sub);
/* the client now holds key / no longer holds it */
extern void tg_qkey_enter(TgQuerySub *sub, const char *key, size_t keylen);
extern void tg_qkey_leave(TgQuerySub *sub, const char *key, size_t keylen);

#endif
