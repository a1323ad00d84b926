/*
 * hlc_parse.c — the hlc text parser (see hlc_parse.h).
 */
#include "core/hlc_parse.h"

#include <string.h>

static bool
parse_uint(const char *s, size_t len, int64_t max, int64_t *out)
{
	int64_t		v = 0;
	size_t		i;

	if (len == 0 || len > 19)
		return false;
	if (len > 1 && s[0] == '0')
		return false;
	for (i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

bool
tg_hlc_parse_text(const char *str, size_t len, int64_t *millis, int64_t *counter,
				  const char **node, size_t *nodelen)
{
	const char *c1 = memchr(str, ':', len);
	const char *c2;
	size_t		rest;

	if (c1 == NULL)
		return false;
	rest = len - (size_t) (c1 + 1 - str);
	c2 = memchr(c1 + 1, ':', rest);
	if (c2 == NULL)
		return false;
	*node = c2 + 1;
	*nodelen = len - (size_t) (*node - str);
	if (*nodelen > TG_HLC_MAX_NODE || memchr(*node, '\0', *nodelen) != NULL)
		return false;
	if (!parse_uint(str, (size_t) (c1 - str), TG_HLC_MAX_VALUE, millis))
		return false;
	return parse_uint(c1 + 1, (size_t) (c2 - c1 - 1), TG_HLC_MAX_VALUE, counter);
}
