/*
 * hlc.h — the topgun.hlc type: a hybrid logical clock timestamp
 * (millis, counter, nodeId), printed as "<millis>:<counter>:<nodeId>".
 */
#ifndef TG_HLC_H
#define TG_HLC_H

#include "postgres.h"
#include "fmgr.h"

#include "core/hlc_parse.h"

#define TG_HLC_MAX_MILLIS	TG_HLC_MAX_VALUE

/*
 * On-disk/in-memory layout.  8-byte aligned so millis can be read in place;
 * node bytes follow, not NUL-terminated (length from the varlena header).
 */
typedef struct TgHlc
{
	int32		vl_len_;
	int32		pad_;			/* keep millis 8-byte aligned; always zero */
	int64		millis;
	int64		counter;		/* JS number on the wire: 0..2^53-1 */
	char		node[FLEXIBLE_ARRAY_MEMBER];
} TgHlc;

#define TG_HLC_HDRSZ			offsetof(TgHlc, node)
#define TG_HLC_NODE_LEN(h)		((int) (VARSIZE(h) - TG_HLC_HDRSZ))

#define DatumGetTgHlcP(X)		((TgHlc *) PG_DETOAST_DATUM(X))
#define PG_GETARG_HLC_P(n)		DatumGetTgHlcP(PG_GETARG_DATUM(n))
#define PG_RETURN_HLC_P(x)		PG_RETURN_POINTER(x)

extern TgHlc *tg_hlc_make(int64 millis, int64 counter, const char *node, int nodelen);
extern int	tg_hlc_cmp(const TgHlc *a, const TgHlc *b);
extern void tg_hlc_check_node(const char *node, int len);
extern TgHlc *tg_hlc_parse(const char *str, int len, bool *ok);
extern char *tg_hlc_to_cstring(const TgHlc *h);

/* Node clock (clock.c). */
extern const char *tg_node_id(void);
extern TgHlc *tg_clock_now(void);
extern TgHlc *tg_clock_update(const TgHlc *remote);
extern void tg_clock_observe(const TgHlc *remote);
extern char *tg_clock_drift_error(const TgHlc *remote);
extern bool tg_clock_strict(void);

#endif							/* TG_HLC_H */
