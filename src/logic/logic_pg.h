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

/* _PG_init: topgun.sql_write_resolvers and the shared lock table. */
extern void tg_logic_init(void);

#endif							/* TG_LOGIC_PG_H */
