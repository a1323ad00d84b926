/*
 * logic_pg.h — PostgreSQL-side interface between pg_builtins.c (jsonb ⇄ jv,
 * built-in runs) and pg_execute.c (topgun.execute_on_key / execute_on_keys).
 */
#ifndef TG_LOGIC_PG_H
#define TG_LOGIC_PG_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "logic/resolvers.h"

typedef enum TgWrite
{
	TG_WRITE_NONE,
	TG_WRITE_SET,
	TG_WRITE_REMOVE
} TgWrite;

/* Response {success, result?, newValue?, error?}; *write / *new_value say what to store. */
extern Jsonb *tg_logic_run_builtin(int id, Jsonb *cur, Jsonb *args, bool args_absent,
								   TgWrite *write, Jsonb **new_value);

/* One built-in resolver step (pg_resolve.c chains them). */
extern TgResAction tg_logic_resolve_builtin(int id, Jsonb *local, bool has_local_ts, Jsonb *remote,
											int remote_vs_local, text *key, text *identity, bool is_server,
											Jsonb **value, const char **reason);

/*
 * One client LWW op for the resolver chains (tg_resolve_batch): in, the op
 * as the write path has it already decoded; out, what the chain answered.
 */
typedef struct TgResolveItem
{
	text	   *map;
	text	   *key;
	Jsonb	   *value;			/* a REMOVE: JSON null (SQL NULL from SQL callers) */
	Datum		ts;				/* topgun.hlc */
	TgResAction action;			/* out: accept, reject, merge or local */
	Jsonb	   *merged;			/* out, merge: the value to write (NULL: none, keep the op's) */
	char	   *reason;			/* out, reject: why (NULL: none given) */
} TgResolveItem;

/*
 * Run the resolver chains (docs/resolvers.md) on n ops; identity NULL for
 * none; sql_writes: only the apply_to_sql resolvers.  Outputs are allocated
 * in the caller's memory context.  topgun.resolve_ops is this on arrays.
 */
extern void tg_resolve_batch(TgResolveItem *ops, int n, text *identity, bool is_server, bool sql_writes);

/*
 * Whether some registered resolver's map pattern matches map (in a
 * transaction); the list is kept until topgun.resolvers changes, or until
 * tg_resolvers_forget().
 */
extern bool tg_resolvers_cover_map(const char *map, size_t len);
extern void tg_resolvers_forget(void);

/* _PG_init: topgun.sql_write_resolvers and the shared lock table. */
extern void tg_logic_init(void);

/* The largest processor args (jsonb bytes) execute_on_key(s) accept. */
#define TG_PROCESSOR_MAX_ARGS_BYTES (256 * 1024)

/* The processor locks of n single keys (maps[i], keys[i]), in deadlock-free order. */
extern void tg_lock_keys(text **maps, text **keys, int n);
/* A built-in processor over keys whose locks are held (duplicates in order). */
extern void tg_execute_builtin_keys(text *map, text **keys, int nk, int builtin, Jsonb *args,
									Jsonb **responses);

#endif							/* TG_LOGIC_PG_H */
