/*
 * resolve.h — conflict resolvers on client writes (resolve.c).
 */
#ifndef TG_EXEC_RESOLVE_H
#define TG_EXEC_RESOLVE_H

#include "core/hlc.h"
#include "exec/events.h"
#include "logic/resolvers.h"
#include "utils/jsonb.h"

/* accept, merge (write value instead), reject (reason), local (keep the stored record) */
typedef TgResAction TgResOutcome;

/* One op, as the group commit has it decoded (nothing is parsed again). */
typedef struct TgResolveOp
{
	const char *map;
	const char *key;
	Jsonb	   *value;			/* the op's value (JSON null = delete) */
	TgHlc	   *ts;				/* the op's timestamp */
	TgResOutcome outcome;
	Jsonb	   *merged;			/* merge: in tg_proto_cxt */
	char	   *reason;			/* reject: in tg_proto_cxt */
} TgResolveOp;

extern void tg_resolve(TgConn *writer, TgResolveOp *ops, int n);	/* in a transaction */
extern bool tg_restamp(const char *map, const char *key, const char *newer_than, TgEvent *ev);

#endif							/* TG_EXEC_RESOLVE_H */
