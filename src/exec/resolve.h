/*
 * resolve.h — conflict resolvers on client writes (resolve.c).
 */
#ifndef TG_EXEC_RESOLVE_H
#define TG_EXEC_RESOLVE_H

#include "exec/events.h"
#include "logic/resolvers.h"

/* accept, merge (write value_json instead), reject (reason), local (keep the stored record) */
typedef TgResAction TgResOutcome;

typedef struct TgResolveOp
{
	const char *map;
	const char *key;
	const char *json;			/* the op's value (JSON text, "null" = delete) */
	const char *ts;				/* the op's timestamp (topgun.hlc text) */
	TgResOutcome outcome;
	char	   *value_json;
	char	   *reason;
} TgResolveOp;

extern bool tg_resolvers_on(const char *map);	/* in a transaction */
extern void tg_resolve(TgConn *writer, TgResolveOp *ops, int n);	/* in a transaction */
extern bool tg_restamp(const char *map, const char *key, const char *newer_than, TgEvent *ev);
extern void tg_resolvers_invalidate(void);

#endif							/* TG_EXEC_RESOLVE_H */
