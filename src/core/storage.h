/*
 * storage.h — validation and map-kind helpers shared by the CRDT write paths.
 */
#ifndef TG_STORAGE_H
#define TG_STORAGE_H

#include "postgres.h"
#include "access/htup.h"
#include "fmgr.h"
#include "utils/jsonb.h"

typedef enum TgMapKind
{
	TG_KIND_LWW = 'l',
	TG_KIND_OR = 'o'
} TgMapKind;

extern int	tg_max_value_bytes;

extern void tg_check_map_name(text *map);
extern void tg_check_key(text *key);
extern void tg_check_tag(text *tag);
extern void tg_check_value(Jsonb *value);
extern void tg_check_ttl(int64 ttl);
extern void tg_require_map_kind(text *map, TgMapKind kind);
extern TgMapKind tg_map_kind_register(text *map, TgMapKind kind);
extern char *tg_kind_mismatch_message(text *map, TgMapKind stored, TgMapKind wanted);
extern bool tg_jsonb_is_null(Jsonb *jb);
extern HeapTuple tg_before_row_tuple(FunctionCallInfo fcinfo, const char *trigger_function);

#endif							/* TG_STORAGE_H */
