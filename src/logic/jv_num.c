/*
 * jv_num.c — JavaScript's Number#toString() for the JSON model (used by the
 * JavaScript conversions, jv_js.c, and the JSON writer, jv_out.c).
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
