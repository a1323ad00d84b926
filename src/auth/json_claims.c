/*
 * json_claims.c — strict, allocation-free JSON reader for JWT headers and
 * claim sets.  See json_claims.h.
 *
 * Validation is a recursive descent bounded by max_depth, so stack use is
 * bounded too.  The walking helpers (iterators, accessors) run on validated
 * text but still test every pointer against the end of the span: a caller
 * that skipped validation gets nonsense, never an out-of-bounds read.
 */
#include "auth/json_claims.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

static int
hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read 4 hex digits at p (caller checked p + 4 <= end); -1 if not hex. */
static long
hex4(const char *p)
{
	long		v = 0;

	for (int i = 0; i < 4; i++)
	{
		int			h = hex_val(p[i]);

		if (h < 0)
			return -1;
		v = (v << 4) | h;
	}
	return v;
}

/*
 * Length of the well-formed UTF-8 sequence starting at p (lead byte >=
 * 0x80), or 0 if it is not well-formed (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 */
static int
utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	int			n;
	unsigned char lo = 0x80,
				hi = 0xBF;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	else
		return 0;
	if (end - p < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* Validate a string starting at the opening quote; return past the closing one. */
static const char *
parse_string(const char *p, const char *end)
{
	p++;						/* opening quote */
	while (p < end)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c == '\\')
		{
			if (end - p < 2)
				return NULL;
			switch (p[1])
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					p += 2;
					break;
				case 'u':
					{
						long		u;

						if (end - p < 6 || (u = hex4(p + 2)) < 0)
							return NULL;
						p += 6;
						if (u >= 0xDC00 && u <= 0xDFFF)
							return NULL;	/* lone low surrogate */
						if (u >= 0xD800 && u <= 0xDBFF)
						{
							long		lo;

							/* a high surrogate must be followed by \uDC00-\uDFFF */
							if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
								(lo = hex4(p + 2)) < 0xDC00 || lo > 0xDFFF)
								return NULL;
							p += 6;
						}
						break;
					}
				default:
					return NULL;
			}
		}
		else if (c >= 0x80)
		{
			int			n = utf8_seq_len((const unsigned char *) p,
										 (const unsigned char *) end);

			if (n == 0)
				return NULL;
			p += n;
		}
		else
			p++;
	}
	return NULL;				/* unterminated */
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const char *
parse_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return NULL;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
	{
		while (p < end && is_digit(*p))
			p++;
	}
	else
		return NULL;
	if (p < end && *p == '.')
	{
		p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	return p;
}

static const char *
parse_literal(const char *p, const char *end, const char *lit)
{
	size_t		n = strlen(lit);

	if ((size_t) (end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

static const char *parse_value(const char *p, const char *end, int depth,
							   int max_depth);

static const char *
parse_container(const char *p, const char *end, int depth, int max_depth,
				bool is_object)
{
	char		close = is_object ? '}' : ']';

	if (depth >= max_depth)
		return NULL;
	p = skip_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;)
	{
		if (is_object)
		{
			if (p >= end || *p != '"')
				return NULL;
			p = parse_string(p, end);
			if (p == NULL)
				return NULL;
			p = skip_ws(p, end);
			if (p >= end || *p != ':')
				return NULL;
			p = skip_ws(p + 1, end);
		}
		p = parse_value(p, end, depth + 1, max_depth);
		if (p == NULL)
			return NULL;
		p = skip_ws(p, end);
		if (p >= end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = skip_ws(p + 1, end);
	}
}

static const char *
parse_value(const char *p, const char *end, int depth, int max_depth)
{
	if (p >= end)
		return NULL;
	switch (*p)
	{
		case '{':
			return parse_container(p, end, depth, max_depth, true);
		case '[':
			return parse_container(p, end, depth, max_depth, false);
		case '"':
			return parse_string(p, end);
		case 't':
			return parse_literal(p, end, "true");
		case 'f':
			return parse_literal(p, end, "false");
		case 'n':
			return parse_literal(p, end, "null");
		default:
			return parse_number(p, end);
	}
}

static TgJsonType
type_of(char c)
{
	switch (c)
	{
		case '{':
			return TG_JSON_OBJECT;
		case '[':
			return TG_JSON_ARRAY;
		case '"':
			return TG_JSON_STRING;
		case 't':
			return TG_JSON_TRUE;
		case 'f':
			return TG_JSON_FALSE;
		case 'n':
			return TG_JSON_NULL;
		default:
			return TG_JSON_NUMBER;
	}
}

bool
tg_json_parse(const char *doc, size_t len, int max_depth, TgJsonValue *root)
{
	const char *end = doc + len;
	const char *p;
	const char *q;

	if (doc == NULL)
		return false;
	p = skip_ws(doc, end);
	q = parse_value(p, end, 0, max_depth);
	if (q == NULL)
		return false;
	if (skip_ws(q, end) != end)
		return false;			/* trailing garbage */
	if (root)
	{
		root->type = type_of(*p);
		root->start = p;
		root->len = (size_t) (q - p);
	}
	return true;
}

/*
 * Skip one value of validated text without recursion; returns the end of
 * the value, or end if the text is cut short.
 */
static const char *
skip_value(const char *p, const char *end)
{
	int			nest = 0;

	while (p < end)
	{
		char		c = *p;

		if (c == '"')
		{
			p++;
			while (p < end && *p != '"')
				p += (*p == '\\' && end - p >= 2) ? 2 : 1;
			if (p >= end)
				return end;
			p++;
		}
		else if (c == '{' || c == '[')
		{
			nest++;
			p++;
		}
		else if (c == '}' || c == ']')
		{
			if (nest == 0)
				return p;		/* closer of the enclosing container */
			nest--;
			p++;
		}
		else if (nest == 0 && (c == ',' || c == ':' || is_ws(c)))
			return p;
		else
			p++;
		if (nest == 0 && (c == '"' || c == '}' || c == ']'))
			return p;
	}
	return end;
}

bool
tg_json_iter_init(TgJsonIter *it, const TgJsonValue *container)
{
	if (container == NULL || container->len < 2 ||
		(container->type != TG_JSON_ARRAY && container->type != TG_JSON_OBJECT))
		return false;
	it->p = container->start + 1;
	it->end = container->start + container->len - 1;	/* the closer */
	it->is_object = container->type == TG_JSON_OBJECT;
	it->done = false;
	return true;
}

/* Read one value at the iterator position into *v. */
static bool
iter_take(TgJsonIter *it, TgJsonValue *v)
{
	const char *q;

	it->p = skip_ws(it->p, it->end);
	if (it->p >= it->end)
		return false;
	q = skip_value(it->p, it->end);
	if (q <= it->p)
		return false;
	v->type = type_of(*it->p);
	v->start = it->p;
	v->len = (size_t) (q - it->p);
	it->p = q;
	return true;
}

/* Position the iterator at the next element; false at the end. */
static bool
iter_advance(TgJsonIter *it)
{
	if (it->done)
		return false;
	it->p = skip_ws(it->p, it->end);
	if (it->p < it->end && *it->p == ',')
		it->p = skip_ws(it->p + 1, it->end);
	if (it->p >= it->end)
	{
		it->done = true;
		return false;
	}
	return true;
}

bool
tg_json_array_next(TgJsonIter *it, TgJsonValue *elem)
{
	if (it->is_object || !iter_advance(it))
		return false;
	if (!iter_take(it, elem))
	{
		it->done = true;
		return false;
	}
	return true;
}

bool
tg_json_object_next(TgJsonIter *it, TgJsonValue *key, TgJsonValue *val)
{
	if (!it->is_object || !iter_advance(it))
		return false;
	if (!iter_take(it, key) || key->type != TG_JSON_STRING)
	{
		it->done = true;
		return false;
	}
	it->p = skip_ws(it->p, it->end);
	if (it->p >= it->end || *it->p != ':')
	{
		it->done = true;
		return false;
	}
	it->p++;
	if (!iter_take(it, val))
	{
		it->done = true;
		return false;
	}
	return true;
}

/*
 * Decode the next character of string text at *pp (inside the quotes) into
 * out[0..4); returns its byte count, 0 at the closing quote or end, -1 on a
 * bad escape.
 */
static int
next_char(const char **pp, const char *end, char out[4])
{
	const char *p = *pp;
	unsigned long cp;

	if (p >= end || *p == '"')
		return 0;
	if (*p != '\\')
	{
		int			n = 1;

		if ((unsigned char) *p >= 0x80)
		{
			n = utf8_seq_len((const unsigned char *) p, (const unsigned char *) end);
			if (n == 0)
				return -1;
		}
		memcpy(out, p, n);
		*pp = p + n;
		return n;
	}
	if (end - p < 2)
		return -1;
	switch (p[1])
	{
		case '"':
		case '\\':
		case '/':
			out[0] = p[1];
			*pp = p + 2;
			return 1;
		case 'b':
			out[0] = '\b';
			*pp = p + 2;
			return 1;
		case 'f':
			out[0] = '\f';
			*pp = p + 2;
			return 1;
		case 'n':
			out[0] = '\n';
			*pp = p + 2;
			return 1;
		case 'r':
			out[0] = '\r';
			*pp = p + 2;
			return 1;
		case 't':
			out[0] = '\t';
			*pp = p + 2;
			return 1;
		case 'u':
			break;
		default:
			return -1;
	}
	{
		long		u;

		if (end - p < 6 || (u = hex4(p + 2)) < 0)
			return -1;
		p += 6;
		if (u >= 0xDC00 && u <= 0xDFFF)
			return -1;
		if (u >= 0xD800 && u <= 0xDBFF)
		{
			long		lo;

			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				(lo = hex4(p + 2)) < 0xDC00 || lo > 0xDFFF)
				return -1;
			p += 6;
			cp = 0x10000 + (((unsigned long) u - 0xD800) << 10) +
				((unsigned long) lo - 0xDC00);
		}
		else
			cp = (unsigned long) u;
	}
	*pp = p;
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

long
tg_json_string_decode(const TgJsonValue *v, char *buf, size_t buflen,
					  bool *has_nul)
{
	const char *p;
	const char *end;
	size_t		n = 0;
	char		ch[4];
	int			k;

	if (has_nul)
		*has_nul = false;
	if (v == NULL || v->type != TG_JSON_STRING || v->len < 2 || buflen == 0)
		return -1;
	p = v->start + 1;
	end = v->start + v->len - 1;
	while ((k = next_char(&p, end, ch)) > 0)
	{
		if (n + (size_t) k >= buflen)
			return -1;
		memcpy(buf + n, ch, k);
		if (k == 1 && ch[0] == '\0' && has_nul)
			*has_nul = true;
		n += k;
	}
	if (k < 0)
		return -1;
	buf[n] = '\0';
	return (long) n;
}

bool
tg_json_string_equals(const TgJsonValue *v, const char *s)
{
	const char *p;
	const char *end;
	size_t		slen = strlen(s);
	size_t		n = 0;
	char		ch[4];
	int			k;

	if (v == NULL || v->type != TG_JSON_STRING || v->len < 2)
		return false;
	p = v->start + 1;
	end = v->start + v->len - 1;
	while ((k = next_char(&p, end, ch)) > 0)
	{
		if (n + (size_t) k > slen || memcmp(s + n, ch, k) != 0)
			return false;
		n += k;
	}
	return k == 0 && n == slen;
}

int
tg_json_object_get(const TgJsonValue *obj, const char *key, TgJsonValue *val)
{
	TgJsonIter	it;
	TgJsonValue k,
				v;
	int			count = 0;

	if (obj == NULL || obj->type != TG_JSON_OBJECT || !tg_json_iter_init(&it, obj))
		return 0;
	while (tg_json_object_next(&it, &k, &v))
	{
		if (tg_json_string_equals(&k, key))
		{
			if (count == 0 && val)
				*val = v;
			count++;
		}
	}
	return count;
}

bool
tg_json_number(const TgJsonValue *v, double *out)
{
	static const double pow10_exact[] = {
		1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
		1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
	};
	const char *p;
	const char *end;
	bool		neg = false;
	uint64_t	mant = 0;
	int			ndigits = 0;	/* significant digits kept in mant */
	long		dexp = 0;		/* decimal exponent to apply to mant */
	long		e = 0;
	bool		eneg = false;
	double		d;

	if (v == NULL || v->type != TG_JSON_NUMBER || v->len == 0)
		return false;
	p = v->start;
	end = v->start + v->len;
	if (parse_number(p, end) != end)
		return false;
	if (*p == '-')
	{
		neg = true;
		p++;
	}
	/* integer part */
	for (; p < end && is_digit(*p); p++)
	{
		if (ndigits < 19)
		{
			if (mant != 0 || *p != '0')
			{
				mant = mant * 10 + (uint64_t) (*p - '0');
				ndigits++;
			}
		}
		else
			dexp++;				/* dropped digit still scales the value */
	}
	if (p < end && *p == '.')
	{
		for (p++; p < end && is_digit(*p); p++)
		{
			if (ndigits < 19)
			{
				if (mant != 0 || *p != '0')
				{
					mant = mant * 10 + (uint64_t) (*p - '0');
					ndigits++;
				}
				dexp--;
			}
		}
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = (*p++ == '-');
		for (; p < end && is_digit(*p); p++)
		{
			/* saturate: anything this large is 0 or infinity anyway */
			if (e < 100000)
				e = e * 10 + (*p - '0');
		}
	}
	dexp += eneg ? -e : e;

	if (mant == 0)
		d = 0.0;
	else if (mant < (UINT64_C(1) << 53) && dexp >= -22 && dexp <= 22)
		d = dexp >= 0 ? (double) mant * pow10_exact[dexp]
			: (double) mant / pow10_exact[-dexp];	/* correctly rounded */
	else if (dexp > 400)
		d = HUGE_VAL;
	else if (dexp < -400)
		d = 0.0;
	else if (dexp < -300)
		/* two steps so that the power of ten itself does not underflow */
		d = ((double) mant * pow(10.0, (double) (dexp + 40))) * 1e-40;
	else
		d = (double) mant * pow(10.0, (double) dexp);
	if (!isfinite(d))
		return false;
	*out = neg ? -d : d;
	return true;
}
