/*
 * resolvers.h — TopGun's built-in conflict resolvers
 * (core/ConflictResolver.ts BuiltInResolvers) and the chain that runs them
 * (server/ConflictResolverService.ts resolve), PostgreSQL-free.
 *
 * Difference from the reference chain: an answer of `local` ends the chain
 * and keeps the stored value (the reference goes on to the next resolver and
 * finally accepts).
 */
#ifndef TG_LOGIC_RESOLVERS_H
#define TG_LOGIC_RESOLVERS_H

#include "logic/jv.h"

typedef enum TgResAction
{
	TG_RES_ACCEPT,
	TG_RES_REJECT,
	TG_RES_MERGE,
	TG_RES_LOCAL,
	TG_RES_THROW				/* the resolver failed: the chain skips it */
} TgResAction;

typedef struct TgResCtx
{
	const char *key;
	size_t		key_len;
	Jv		   *local;			/* JV_UNDEF: absent, tombstoned or expired */
	bool		has_local_ts;	/* a stored record exists (tombstones too) */
	Jv		   *remote;			/* the incoming value; JV_NULL for a delete */
	int			remote_vs_local;	/* sign of compare(remote ts, local ts) */
	const char *user_id;		/* authenticated identity, NULL for none */
	size_t		user_id_len;
	bool		is_server;		/* the writer has the "server" role */
} TgResCtx;

typedef struct TgResOut
{
	TgResAction action;
	Jv		   *value;			/* ACCEPT / MERGE */
	const char *reason;			/* REJECT; THROW: the error */
} TgResOut;

#define TG_RES_COUNT 11

extern int	tg_res_find(const char *name, size_t len);	/* "builtin:lww" ... or -1 */
extern const char *tg_res_name(int id);
extern int	tg_res_default_priority(int id);
extern void tg_res_run(int id, JvArena *a, const TgResCtx *ctx, TgResOut *out);

/*
 * Whether resolver `id` looks into the local / remote value.  One it does
 * not read may be passed as a placeholder (any value other than JV_UNDEF
 * standing for "present"); an accept then answers with that placeholder, so
 * the caller must use the op's own value for accept.
 */
extern void tg_res_reads(int id, bool *local, bool *remote);

/* keyPattern glob: `*` any run, `?` one character, anchored, case-sensitive. */
extern bool tg_res_glob(const char *pat, size_t plen, const char *s, size_t slen);

#endif							/* TG_LOGIC_RESOLVERS_H */
