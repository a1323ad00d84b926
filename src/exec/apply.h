/*
 * apply.h — the group commit's ops, shared by apply.c (applying them) and
 * apply_resolve.c (the conflict resolvers on them, given the ops: it does
 * not call back into apply.c).  Session executor only.
 */
#ifndef TG_EXEC_APPLY_H
#define TG_EXEC_APPLY_H

#include "core/hlc.h"
#include "exec/exec.h"
#include "exec/resolve.h"
#include "metrics/metrics.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

typedef enum GState
{
	GS_PENDING = 0,
	GS_WON,						/* stored: fan out */
	GS_LOST,					/* merge kept the existing state: success */
	GS_REJECTED
} GState;

typedef struct GOp
{
	TgOp	   *op;
	int			batch;
	char	   *map;
	char	   *key;
	char	   *json;			/* value as JSON text (OR_ADD; LWW: NULL until gop_json()) */
	Jsonb	   *jvalue;			/* json parsed (LWW), once: gop_jsonb() */
	char	   *ts;				/* hlc text */
	TgHlc	   *hlc;			/* the LWW timestamp, once: gop_hlc() */
	char	   *tag;			/* OR_ADD tag / OR_REMOVE tag */
	bool		has_ttl;
	int64		ttl;
	GState		state;
	char	   *error;
	TgRejectReason reject;		/* why it was rejected (metrics) */
	bool		denied;			/* refused by access control */
	bool		resolved;		/* the map's conflict resolvers have run */
	TgResOutcome res;
} GOp;

typedef struct GBatch
{
	TgConn	   *conn;
	TgInMsg    *in;				/* owns the frame bytes */
	TgMessage  *msg;			/* owns the tree (palloc'd: ops point into it) */
	bool		client_op;
	int			first;
	int			nops;
	char	   *refused;		/* rate limited: the ERROR 429 text, no op applied */
} GBatch;

static inline void
gop_reject(GOp *g, TgRejectReason reason, const char *why)
{
	g->state = GS_REJECTED;
	g->reject = reason;
	/* the reason outlives the attempt's SPI memory (it goes into the ack) */
	g->error = MemoryContextStrdup(tg_proto_cxt, why);
}

static inline bool
is_lww_op(const GOp *g)
{
	return g->op->op_type != TG_OP_OR_ADD && g->op->op_type != TG_OP_OR_REMOVE;
}

/*
 * An LWW op's value and timestamp, decoded once per group (in tg_proto_cxt)
 * for the resolvers and the merge alike however often the group is retried.
 * In a transaction: the parse can raise.
 */
extern Jsonb *gop_jsonb(GOp *g);
extern const char *gop_json(GOp *g);
/* value_jsonb.c: a client value as jsonb without JSON text; NULL: use the text path */
extern Jsonb *tg_value_jsonb(const MpNode *value, size_t max_text);
extern Jsonb *tg_value_jsonb_in(const MpNode *value, size_t max_text);
extern TgHlc *gop_hlc(GOp *g);

/* In the group's transaction: run the resolvers on the LWW ops not yet judged. */
extern void tg_apply_resolve(GBatch *gbatches, int ngbatches, GOp *gops, int ngops);
/* After the commit: correct the writers of rejected ops and of ops kept local. */
extern void tg_apply_correct_writers(GBatch *gbatches, GOp *gops, int ngops);

#endif							/* TG_EXEC_APPLY_H */
