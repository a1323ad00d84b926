/*
 * query_sql.h — SQL for query pages over field indexes (query_sql.c), used
 * by the reader's page fetch (query_fetch.c).
 */
#ifndef TG_EXEC_QUERY_SQL_H
#define TG_EXEC_QUERY_SQL_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/portal.h"

#include "query/query.h"

/* the map, then at most 3 per prefilter comparison (path, constant(s); fuzz_query
 * checks one comparison per predicate node at most), the sort path and cursor,
 * and a two-field index's equality (path, constant) */
#define TG_QSQL_MAX_ARGS	(3 * TG_QUERY_MAX_NODES + 8)

typedef struct TgQIndex
{
	char	   *field;			/* the (first) field */
	char	   *next;			/* the second field of a composite index, or NULL */
	bool		ordered;		/* btree (ranges, order) or hash (equality) */
} TgQIndex;

typedef struct TgQSql
{
	StringInfoData sql;
	int			nargs;			/* $1 is the map */
	Oid			types[TG_QSQL_MAX_ARGS];
	Datum		values[TG_QSQL_MAX_ARGS];
	TgQIndex   *idx;
	int			nidx;
} TgQSql;

/* tg_qsql_paired's argument: which second field the index must have */
typedef struct TgQPair
{
	TgQSql	   *s;
	const char *next;
	size_t		nextlen;
} TgQPair;

extern void tg_qsql_init(TgQSql *s, const char *map);
extern void tg_qsql_load_indexes(TgQSql *s, const char *map);
extern int	tg_qsql_indexed(const char *attr, size_t len, void *arg);	/* TgPreIndexed */
extern int	tg_qsql_paired(const char *attr, size_t len, void *arg);	/* TgPreIndexed, arg TgQPair */
extern int	tg_qsql_param(TgQSql *s, Oid type, Datum value);
extern int	tg_qsql_path(TgQSql *s, const char *attr, size_t len);
extern int	tg_qsql_jsonb(TgQSql *s, const MpNode *v);
extern void tg_qsql_where(TgQSql *s, const TgPre *p);
extern void tg_qsql_numbers(TgQSql *s, int path, bool numbers);
extern Portal tg_qsql_open(TgQSql *s, bool fast);

#endif							/* TG_EXEC_QUERY_SQL_H */
