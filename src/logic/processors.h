/*
 * processors.h — the 16 built-in entry processors of TopGun
 * (core/EntryProcessor.ts BuiltInProcessors), natively (PostgreSQL-free).
 *
 * A processor sees the current value (JV_UNDEF when the key is absent,
 * tombstoned or expired) and the args (JV_UNDEF when absent) and answers
 * {success, result, newValue, error}.  new_value JV_UNDEF means "delete the key
 * if it has a value, else write nothing".  `value` may be modified in place.
 */
#ifndef TG_LOGIC_PROCESSORS_H
#define TG_LOGIC_PROCESSORS_H

#include "logic/jv.h"

typedef struct TgProcOut
{
	bool		success;
	Jv		   *result;			/* never NULL: JV_UNDEF when absent */
	Jv		   *new_value;		/* never NULL: JV_UNDEF when absent */
	const char *error;			/* when !success (arena or static memory) */
} TgProcOut;

#define TG_PROC_BUILTIN_PREFIX "builtin:"
#define TG_PROC_COUNT 16

/* Index of a built-in by its wire name ("builtin:increment"), or -1. */
extern int	tg_proc_find(const char *name, size_t len);
extern const char *tg_proc_name(int id);

/* Run built-in `id`.  Returns false only when the arena ran out (out->error set). */
extern bool tg_proc_run(int id, JvArena *a, Jv *value, Jv *args, TgProcOut *out);

#endif							/* TG_LOGIC_PROCESSORS_H */
