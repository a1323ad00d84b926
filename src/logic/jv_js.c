/*
 * jv_js.c — the JavaScript conversions and operators the built-in
 * processors rely on: ToNumber, ToString (Number#toString included),
 * truthiness, === on primitives and the `+` operator.
 */
#include "logic/jv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Number#toString(): the shortest digits that round-trip, fixed notation for
 * exponents in [-7, 21), exponential ("1e+21", "1.5e-7") otherwise.
 */
void
jv_fmt_number(double d, char *buf, size_t cap)
{
	char		e[40];
	char		digits[20];
	int			nd = 0,
				exp10 = 0,
				p;
	char	   *o = buf;
	const char *q;

	if (isnan(d))
	{
		snprintf(buf, cap, "NaN");
		return;
	}
	if (isinf(d))
	{
		snprintf(buf, cap, d < 0 ? "-Infinity" : "Infinity");
		return;
	}
	if (d == 0)
	{
		snprintf(buf, cap, "0");
		return;
	}
	for (p = 1; p <= 17; p++)
	{
		snprintf(e, sizeof(e), "%.*e", p - 1, d);
		if (strtod(e, NULL) == d)
			break;
	}
	/* e is "-d.ddde+XX": collect the digits and the exponent */
	for (q = e; *q && *q != 'e'; q++)
		if (*q >= '0' && *q <= '9')
			digits[nd++] = *q;
	exp10 = atoi(q + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (cap < 32)
	{
		buf[0] = '\0';
		return;
	}
	if (d < 0)
		*o++ = '-';
	/* value = 0.d1d2... * 10^(exp10+1); n = exp10 + 1 as in ECMA-262 */
	{
		int			n = exp10 + 1;

		if (nd <= n && n <= 21)
		{
			memcpy(o, digits, nd);
			o += nd;
			for (int i = nd; i < n; i++)
				*o++ = '0';
		}
		else if (0 < n && n <= 21)
		{
			memcpy(o, digits, n);
			o += n;
			*o++ = '.';
			memcpy(o, digits + n, nd - n);
			o += nd - n;
		}
		else if (-6 < n && n <= 0)
		{
			*o++ = '0';
			*o++ = '.';
			for (int i = 0; i < -n; i++)
				*o++ = '0';
			memcpy(o, digits, nd);
			o += nd;
		}
		else
		{
			*o++ = digits[0];
			if (nd > 1)
			{
				*o++ = '.';
				memcpy(o, digits + 1, nd - 1);
				o += nd - 1;
			}
			o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
		}
	}
	*o = '\0';
}

static bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* StringToNumber (ECMA-262 7.1.4.1.1), ASCII whitespace only. */
static double
string_to_number(const char *s, size_t n)
{
	char		tmp[400];
	char	   *end;
	double		sign = 1;
	int			base = 0;

	while (n && is_ws((unsigned char) *s))
		s++, n--;
	while (n && is_ws((unsigned char) s[n - 1]))
		n--;
	if (n == 0)
		return 0;
	if (n >= sizeof(tmp))
		return NAN;
	if (n > 2 && s[0] == '0')
	{
		char		x = s[1] | 0x20;

		base = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
	}
	if (base)
	{
		double		v = 0;

		for (size_t i = 2; i < n; i++)
		{
			int			c = s[i],
						dv = (c >= '0' && c <= '9') ? c - '0'
				: ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? (c | 0x20) - 'a' + 10 : 99;

			if (dv >= base)
				return NAN;
			v = v * base + dv;
		}
		return v;
	}
	if (*s == '+' || *s == '-')
	{
		sign = *s == '-' ? -1 : 1;
		if (n - 1 == 8 && memcmp(s + 1, "Infinity", 8) == 0)
			return sign * INFINITY;
	}
	if (n == 8 && memcmp(s, "Infinity", 8) == 0)
		return INFINITY;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
			  s[i] == '+' || s[i] == '-'))
			return NAN;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	{
		double		v = strtod(tmp, &end);

		return (*end == '\0' && end != tmp) ? v : NAN;
	}
}

/* ToString for the primitive/array/object forms the built-ins meet. */
static void
to_string_buf(JvBuf *b, const Jv *v, int depth)
{
	char		num[40];

	switch (v ? v->t : JV_UNDEF)
	{
		case JV_UNDEF:
		case JV_HOLE:
			jv_buf_put(b, "undefined", 9);
			break;
		case JV_NULL:
			jv_buf_put(b, "null", 4);
			break;
		case JV_FALSE:
			jv_buf_put(b, "false", 5);
			break;
		case JV_TRUE:
			jv_buf_put(b, "true", 4);
			break;
		case JV_NUM:
			jv_fmt_number(v->num, num, sizeof(num));
			jv_buf_put(b, num, strlen(num));
			break;
		case JV_STR:
			jv_buf_put(b, v->s, v->len);
			break;
		case JV_OBJ:
			jv_buf_put(b, "[object Object]", 15);
			break;
		case JV_ARR:
			/* Array#join(","): null and undefined elements are empty */
			if (depth > 64)
				break;
			for (size_t i = 0; i < v->len; i++)
			{
				const Jv   *it = v->items[i];

				if (i)
					jv_buf_put(b, ",", 1);
				if (!JV_IS_NULLISH(it))
					to_string_buf(b, it, depth + 1);
			}
			break;
	}
}

Jv *
jv_to_string(JvArena *a, const Jv *v)
{
	JvBuf		b;

	jv_buf_init(&b, a);
	jv_buf_put(&b, "", 0);
	to_string_buf(&b, v, 0);
	if (b.failed)
		return NULL;
	return jv_str(a, b.data ? b.data : "", b.len);
}

double
jv_to_number(JvArena *a, const Jv *v)
{
	Jv		   *s;

	switch (v ? v->t : JV_UNDEF)
	{
		case JV_UNDEF:
		case JV_HOLE:
			return NAN;
		case JV_NULL:
		case JV_FALSE:
			return 0;
		case JV_TRUE:
			return 1;
		case JV_NUM:
			return v->num;
		case JV_STR:
			return string_to_number(v->s, v->len);
		default:
			s = jv_to_string(a, v);
			return s ? string_to_number(s->s, s->len) : NAN;
	}
}

bool
jv_truthy(const Jv *v)
{
	switch (v ? v->t : JV_UNDEF)
	{
		case JV_UNDEF:
		case JV_HOLE:
		case JV_NULL:
		case JV_FALSE:
			return false;
		case JV_NUM:
			return v->num != 0 && !isnan(v->num);
		case JV_STR:
			return v->len > 0;
		default:
			return true;
	}
}

bool
jv_strict_equal(const Jv *x, const Jv *y)
{
	JvType		tx = x ? (x->t == JV_HOLE ? JV_UNDEF : x->t) : JV_UNDEF;
	JvType		ty = y ? (y->t == JV_HOLE ? JV_UNDEF : y->t) : JV_UNDEF;

	if (tx != ty)
		return false;
	switch (tx)
	{
		case JV_NUM:
			return x->num == y->num;
		case JV_STR:
			return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
		case JV_ARR:
		case JV_OBJ:
			return x == y;
		default:
			return true;
	}
}

/* x + y: string concatenation when either primitive is a string, else numeric. */
Jv *
jv_add(JvArena *a, const Jv *x, const Jv *y)
{
	bool		sx = x && (x->t == JV_STR || x->t == JV_ARR || x->t == JV_OBJ);
	bool		sy = y && (y->t == JV_STR || y->t == JV_ARR || y->t == JV_OBJ);

	if (sx || sy)
	{
		JvBuf		b;

		jv_buf_init(&b, a);
		jv_buf_put(&b, "", 0);
		to_string_buf(&b, x, 0);
		to_string_buf(&b, y, 0);
		return b.failed ? NULL : jv_str(a, b.data, b.len);
	}
	return jv_num(a, jv_to_number(a, x) + jv_to_number(a, y));
}
