/*
 * stringify.c — TopGun's ORMap value stringification, from jsonb.
 *
 * The OR-map entry hash covers each record's value as the client's
 * stringifyValue() renders it: strings raw, numbers and booleans with JS
 * String(), null as "null", and objects/arrays with
 * JSON.stringify(value, sortedTopLevelKeys) — the sorted top-level key list
 * acts as an allow-list at every nesting level.  Keys sort by UTF-16 code
 * units and numbers print in JS's shortest round-trip form, so both are
 * reproduced here exactly (checked against vectors/ormap_merkle.json).
 */
#include "topgun.h"
#include "merkle/merkle.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(tg_or_value_string);

/* Next UTF-16 code unit of a UTF-8 string; *pending carries a low surrogate. */
static int
next_unit(const unsigned char *s, int len, int *pos, int *pending)
{
	unsigned int cp;
	unsigned char c;

	if (*pending)
	{
		int			u = *pending;

		*pending = 0;
		return u;
	}
	if (*pos >= len)
		return -1;
	c = s[*pos];
	if (c < 0x80)
	{
		(*pos)++;
		return c;
	}
	if (c < 0xe0 && *pos + 1 < len)
	{
		cp = ((c & 0x1f) << 6) | (s[*pos + 1] & 0x3f);
		*pos += 2;
	}
	else if (c < 0xf0 && *pos + 2 < len)
	{
		cp = ((c & 0x0f) << 12) | ((s[*pos + 1] & 0x3f) << 6) | (s[*pos + 2] & 0x3f);
		*pos += 3;
	}
	else if (*pos + 3 < len)
	{
		cp = ((c & 0x07) << 18) | ((s[*pos + 1] & 0x3f) << 12) |
			((s[*pos + 2] & 0x3f) << 6) | (s[*pos + 3] & 0x3f);
		*pos += 4;
		cp -= 0x10000;
		*pending = 0xdc00 + (cp & 0x3ff);
		return 0xd800 + (cp >> 10);
	}
	else
	{
		(*pos)++;
		return 0xfffd;
	}
	return (int) cp;
}

/* Compare two UTF-8 strings in UTF-16 code-unit order (JS default sort). */
int
tg_utf16_cmp(const char *a, int alen, const char *b, int blen)
{
	int			pa = 0,
				pb = 0,
				qa = 0,
				qb = 0;

	for (;;)
	{
		int			ua = next_unit((const unsigned char *) a, alen, &pa, &qa);
		int			ub = next_unit((const unsigned char *) b, blen, &pb, &qb);

		if (ua != ub)
			return ua < ub ? -1 : 1;
		if (ua < 0)
			return 0;
	}
}

/*
 * JS Number.prototype.toString() for a finite or non-finite double.
 */
void
tg_js_number(StringInfo out, double d)
{
	char		buf[40];
	char		digits[20];
	int			k = 0;
	int			n;
	int			p;
	int			e;
	char	   *ep;

	if (isnan(d))
	{
		appendStringInfoString(out, "NaN");
		return;
	}
	if (isinf(d))
	{
		appendStringInfoString(out, d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (d == 0)
	{
		appendStringInfoChar(out, '0');
		return;
	}
	if (d < 0)
	{
		appendStringInfoChar(out, '-');
		d = -d;
	}
	/* shortest precision that round-trips */
	for (p = 1; p <= 17; p++)
	{
		snprintf(buf, sizeof(buf), "%.*e", p - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* buf is d.ddde[+-]XX: collect digits and exponent */
	for (ep = buf; *ep && *ep != 'e'; ep++)
		if (*ep >= '0' && *ep <= '9')
			digits[k++] = *ep;
	e = atoi(ep + 1);
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = '\0';
	n = e + 1;					/* value = 0.digits * 10^n */
	if (k <= n && n <= 21)
	{
		appendBinaryStringInfo(out, digits, k);
		for (p = 0; p < n - k; p++)
			appendStringInfoChar(out, '0');
	}
	else if (0 < n && n <= 21)
	{
		appendBinaryStringInfo(out, digits, n);
		appendStringInfoChar(out, '.');
		appendBinaryStringInfo(out, digits + n, k - n);
	}
	else if (-6 < n && n <= 0)
	{
		appendStringInfoString(out, "0.");
		for (p = 0; p < -n; p++)
			appendStringInfoChar(out, '0');
		appendBinaryStringInfo(out, digits, k);
	}
	else
	{
		appendStringInfoChar(out, digits[0]);
		if (k > 1)
		{
			appendStringInfoChar(out, '.');
			appendBinaryStringInfo(out, digits + 1, k - 1);
		}
		appendStringInfo(out, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
}

static double
numeric_to_double(Numeric num)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, NumericGetDatum(num)));
}

/* JSON.stringify's string quoting. */
static void
js_quote(StringInfo out, const char *s, int len)
{
	int			i;

	appendStringInfoChar(out, '"');
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		switch (c)
		{
			case '"':
				appendStringInfoString(out, "\\\"");
				break;
			case '\\':
				appendStringInfoString(out, "\\\\");
				break;
			case '\b':
				appendStringInfoString(out, "\\b");
				break;
			case '\f':
				appendStringInfoString(out, "\\f");
				break;
			case '\n':
				appendStringInfoString(out, "\\n");
				break;
			case '\r':
				appendStringInfoString(out, "\\r");
				break;
			case '\t':
				appendStringInfoString(out, "\\t");
				break;
			default:
				if (c < 0x20)
					appendStringInfo(out, "\\u%04x", c);
				else
					appendStringInfoChar(out, (char) c);
		}
	}
	appendStringInfoChar(out, '"');
}

typedef struct AllowKey
{
	const char *s;
	int			len;
} AllowKey;

static int
allow_cmp(const void *a, const void *b)
{
	const AllowKey *x = a;
	const AllowKey *y = b;

	return tg_utf16_cmp(x->s, x->len, y->s, y->len);
}

static void stringify_value(StringInfo out, JsonbValue *v, AllowKey *allow, int nallow);

static void
stringify_container(StringInfo out, JsonbContainer *c, AllowKey *allow, int nallow)
{
	int			i;
	bool		first = true;

	if (JsonContainerIsArray(c))
	{
		int			n = JsonContainerSize(c);

		appendStringInfoChar(out, '[');
		for (i = 0; i < n; i++)
		{
			JsonbValue *e = getIthJsonbValueFromContainer(c, i);

			if (i > 0)
				appendStringInfoChar(out, ',');
			stringify_value(out, e, allow, nallow);
		}
		appendStringInfoChar(out, ']');
		return;
	}
	appendStringInfoChar(out, '{');
	for (i = 0; i < nallow; i++)
	{
		JsonbValue	kv;
		JsonbValue *found;

		found = getKeyJsonValueFromContainer(c, allow[i].s, allow[i].len, &kv);
		if (found == NULL)
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		js_quote(out, allow[i].s, allow[i].len);
		appendStringInfoChar(out, ':');
		stringify_value(out, found, allow, nallow);
	}
	appendStringInfoChar(out, '}');
}

static void
stringify_value(StringInfo out, JsonbValue *v, AllowKey *allow, int nallow)
{
	check_stack_depth();
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(out, "null");
			break;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		case jbvNumeric:
			{
				double		d = numeric_to_double(v->val.numeric);

				if (isnan(d) || isinf(d))
					appendStringInfoString(out, "null");
				else
					tg_js_number(out, d);
				break;
			}
		case jbvString:
			js_quote(out, v->val.string.val, v->val.string.len);
			break;
		case jbvBinary:
			stringify_container(out, v->val.binary.data, allow, nallow);
			break;
		default:
			elog(ERROR, "topgun: unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * TopGun's stringifyValue(value) for a jsonb datum.
 */
void
tg_or_stringify_value(StringInfo out, Datum jsonb)
{
	Jsonb	   *jb = DatumGetJsonbP(jsonb);
	JsonbValue	v;
	AllowKey   *allow = NULL;
	int			nallow = 0;
	int			i;

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &v);
		switch (v.type)
		{
			case jbvNull:
				appendStringInfoString(out, "null");
				return;
			case jbvString:
				appendBinaryStringInfo(out, v.val.string.val, v.val.string.len);
				return;
			case jbvBool:
				appendStringInfoString(out, v.val.boolean ? "true" : "false");
				return;
			case jbvNumeric:
				tg_js_number(out, numeric_to_double(v.val.numeric));
				return;
			default:
				elog(ERROR, "topgun: unexpected jsonb scalar");
		}
	}

	/* The allow-list: own top-level keys (objects) or indices (arrays). */
	if (JB_ROOT_IS_OBJECT(jb))
	{
		JsonbIterator *it = JsonbIteratorInit(&jb->root);
		JsonbIteratorToken tok;
		int			cap = JB_ROOT_COUNT(jb) + 1;

		allow = palloc(cap * sizeof(AllowKey));
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				allow[nallow].s = v.val.string.val;
				allow[nallow].len = v.val.string.len;
				nallow++;
			}
		}
	}
	else
	{
		int			n = JB_ROOT_COUNT(jb);

		allow = palloc((n + 1) * sizeof(AllowKey));
		for (i = 0; i < n; i++)
		{
			char	   *s = psprintf("%d", i);

			allow[nallow].s = s;
			allow[nallow].len = strlen(s);
			nallow++;
		}
	}
	qsort(allow, nallow, sizeof(AllowKey), allow_cmp);
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	stringify_value(out, &v, allow, nallow);
}

Datum
tg_or_value_string(PG_FUNCTION_ARGS)
{
	StringInfoData out;

	initStringInfo(&out);
	tg_or_stringify_value(&out, PG_GETARG_DATUM(0));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
