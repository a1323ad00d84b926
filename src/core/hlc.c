/*
 * hlc.c — input/output, comparison and accessors of the topgun.hlc type.
 *
 * Order: millis, then counter, then nodeId by bytes.  TopGun's reference
 * compares nodeIds with localeCompare (ICU collation); byte order is what the
 * Rust server uses and the only order that is stable across machines, so we
 * use it and document the divergence (docs/sql-api.md).
 */
#include "topgun.h"
#include "core/hlc.h"
#include "core/hlc_parse.h"

#include <limits.h>

#include "common/hashfn.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(hlc_in);
PG_FUNCTION_INFO_V1(hlc_out);
PG_FUNCTION_INFO_V1(hlc_recv);
PG_FUNCTION_INFO_V1(hlc_send);
PG_FUNCTION_INFO_V1(hlc_construct);
PG_FUNCTION_INFO_V1(hlc_millis);
PG_FUNCTION_INFO_V1(hlc_counter);
PG_FUNCTION_INFO_V1(hlc_node);
PG_FUNCTION_INFO_V1(hlc_cmp);
PG_FUNCTION_INFO_V1(hlc_eq);
PG_FUNCTION_INFO_V1(hlc_ne);
PG_FUNCTION_INFO_V1(hlc_lt);
PG_FUNCTION_INFO_V1(hlc_le);
PG_FUNCTION_INFO_V1(hlc_gt);
PG_FUNCTION_INFO_V1(hlc_ge);
PG_FUNCTION_INFO_V1(hlc_hash);
PG_FUNCTION_INFO_V1(hlc_hash_extended);
PG_FUNCTION_INFO_V1(hlc_larger);
PG_FUNCTION_INFO_V1(hlc_smaller);

TgHlc *
tg_hlc_make(int64 millis, int64 counter, const char *node, int nodelen)
{
	TgHlc	   *h = (TgHlc *) palloc(TG_HLC_HDRSZ + nodelen);

	SET_VARSIZE(h, TG_HLC_HDRSZ + nodelen);
	h->pad_ = 0;
	h->counter = counter;
	h->millis = millis;
	memcpy(h->node, node, nodelen);
	return h;
}

/*
 * A nodeId must be at most TG_MAX_NODE_BYTES and free of NUL; TopGun allows
 * an empty one.
 * It may contain ':' (TopGun stores such timestamps; our text form takes
 * everything after the second ':' as the nodeId, so it still round-trips).
 */
void
tg_hlc_check_node(const char *node, int len)
{
	if (len > TG_MAX_NODE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("hlc node id is too long (%d bytes)", len),
				 errdetail("The maximum is %d bytes.", TG_MAX_NODE_BYTES)));
	if (memchr(node, '\0', len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hlc node id must not contain NUL bytes")));
}

/*
 * Parse "<millis>:<counter>:<nodeId>".  Returns NULL with *ok = false when
 * the text is not a valid hlc; never raises for syntax problems so callers
 * can choose their own error (tags, wire input).
 */
TgHlc *
tg_hlc_parse(const char *str, int len, bool *ok)
{
	int64_t		millis;
	int64_t		counter;
	const char *node;
	size_t		nodelen;

	*ok = tg_hlc_parse_text(str, (size_t) len, &millis, &counter, &node, &nodelen);
	if (!*ok)
		return NULL;
	return tg_hlc_make(millis, counter, node, (int) nodelen);
}

char *
tg_hlc_to_cstring(const TgHlc *h)
{
	return psprintf(INT64_FORMAT ":" INT64_FORMAT ":%.*s", h->millis, h->counter,
					TG_HLC_NODE_LEN(h), h->node);
}

int
tg_hlc_cmp(const TgHlc *a, const TgHlc *b)
{
	int			la,
				lb,
				r;

	if (a->millis != b->millis)
		return a->millis < b->millis ? -1 : 1;
	if (a->counter != b->counter)
		return a->counter < b->counter ? -1 : 1;
	la = TG_HLC_NODE_LEN(a);
	lb = TG_HLC_NODE_LEN(b);
	r = memcmp(a->node, b->node, Min(la, lb));
	if (r != 0)
		return r < 0 ? -1 : 1;
	return (la > lb) - (la < lb);
}

Datum
hlc_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	int			len = strlen(str);
	bool		ok;
	TgHlc	   *h;

	h = tg_hlc_parse(str, len, &ok);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type hlc: \"%s\"", str),
				 errdetail("Expected \"<millis>:<counter>:<nodeId>\" with millis and counter in 0..%lld and a nodeId of at most %d bytes.",
						   (long long) TG_HLC_MAX_MILLIS, TG_MAX_NODE_BYTES)));
	/* the database encoding already guarantees valid text */
	PG_RETURN_HLC_P(h);
}

Datum
hlc_out(PG_FUNCTION_ARGS)
{
	TgHlc	   *h = PG_GETARG_HLC_P(0);

	PG_RETURN_CSTRING(tg_hlc_to_cstring(h));
}

/* Binary form: int8 millis, int4 counter, text node (length-prefixed). */
Datum
hlc_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int64		millis = pq_getmsgint64(buf);
	int64		counter = pq_getmsgint64(buf);
	int			nodelen = pq_getmsgint(buf, 4);
	const char *node;
	char	   *conv;

	if (millis < 0 || millis > TG_HLC_MAX_MILLIS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("hlc millis out of range: " INT64_FORMAT, millis)));
	if (counter < 0 || counter > TG_HLC_MAX_MILLIS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("hlc counter out of range: " INT64_FORMAT, counter)));
	if (nodelen < 0 || nodelen > TG_MAX_NODE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid hlc node id length %d", nodelen)));
	node = pq_getmsgbytes(buf, nodelen);
	conv = pg_client_to_server(node, nodelen);
	if (conv != node)
		nodelen = strlen(conv);
	tg_hlc_check_node(conv, nodelen);
	PG_RETURN_HLC_P(tg_hlc_make(millis, counter, conv, nodelen));
}

Datum
hlc_send(PG_FUNCTION_ARGS)
{
	TgHlc	   *h = PG_GETARG_HLC_P(0);
	StringInfoData buf;
	char	   *conv;
	int			len = TG_HLC_NODE_LEN(h);

	pq_begintypsend(&buf);
	pq_sendint64(&buf, h->millis);
	pq_sendint64(&buf, h->counter);
	conv = pg_server_to_client(h->node, len);
	if (conv != h->node)
		len = strlen(conv);
	pq_sendint32(&buf, len);
	pq_sendbytes(&buf, conv, len);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

Datum
hlc_construct(PG_FUNCTION_ARGS)
{
	int64		millis = PG_GETARG_INT64(0);
	int64		counter = PG_GETARG_INT64(1);
	text	   *node = PG_GETARG_TEXT_PP(2);

	if (millis < 0 || millis > TG_HLC_MAX_MILLIS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("hlc millis must be between 0 and %lld", (long long) TG_HLC_MAX_MILLIS)));
	if (counter < 0 || counter > TG_HLC_MAX_MILLIS)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("hlc counter must be between 0 and %lld", (long long) TG_HLC_MAX_MILLIS)));
	tg_hlc_check_node(VARDATA_ANY(node), VARSIZE_ANY_EXHDR(node));
	PG_RETURN_HLC_P(tg_hlc_make(millis, counter, VARDATA_ANY(node), VARSIZE_ANY_EXHDR(node)));
}

Datum
hlc_millis(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PG_GETARG_HLC_P(0)->millis);
}

Datum
hlc_counter(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(PG_GETARG_HLC_P(0)->counter);
}

Datum
hlc_node(PG_FUNCTION_ARGS)
{
	TgHlc	   *h = PG_GETARG_HLC_P(0);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(h->node, TG_HLC_NODE_LEN(h)));
}

#define HLC_CMP_FN(name, expr) \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	int			c = tg_hlc_cmp(PG_GETARG_HLC_P(0), PG_GETARG_HLC_P(1)); \
	PG_RETURN_BOOL(expr); \
}

HLC_CMP_FN(hlc_eq, c == 0)
HLC_CMP_FN(hlc_ne, c != 0)
HLC_CMP_FN(hlc_lt, c < 0)
HLC_CMP_FN(hlc_le, c <= 0)
HLC_CMP_FN(hlc_gt, c > 0)
HLC_CMP_FN(hlc_ge, c >= 0)

Datum
hlc_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(tg_hlc_cmp(PG_GETARG_HLC_P(0), PG_GETARG_HLC_P(1)));
}

Datum
hlc_larger(PG_FUNCTION_ARGS)
{
	TgHlc	   *a = PG_GETARG_HLC_P(0);
	TgHlc	   *b = PG_GETARG_HLC_P(1);

	PG_RETURN_HLC_P(tg_hlc_cmp(a, b) >= 0 ? a : b);
}

Datum
hlc_smaller(PG_FUNCTION_ARGS)
{
	TgHlc	   *a = PG_GETARG_HLC_P(0);
	TgHlc	   *b = PG_GETARG_HLC_P(1);

	PG_RETURN_HLC_P(tg_hlc_cmp(a, b) <= 0 ? a : b);
}

/* Hash the logical content (not padding) so equal values hash equal. */
static uint64
hlc_hash_internal(const TgHlc *h, uint64 seed)
{
	uint64		r;

	r = hash_bytes_extended((const unsigned char *) &h->millis, sizeof(int64), seed);
	r = hash_combine64(r, hash_bytes_extended((const unsigned char *) &h->counter, sizeof(int64), seed));
	r = hash_combine64(r, hash_bytes_extended((const unsigned char *) h->node, TG_HLC_NODE_LEN(h), seed));
	return r;
}

Datum
hlc_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32((int32) hlc_hash_internal(PG_GETARG_HLC_P(0), 0));
}

Datum
hlc_hash_extended(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64((int64) hlc_hash_internal(PG_GETARG_HLC_P(0), PG_GETARG_INT64(1)));
}
