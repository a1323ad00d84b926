/*
 * fnv.c — FNV-1a 32 over UTF-16 code units, fed from UTF-8.
 *
 * The TopGun client hashes JavaScript strings with charCodeAt(), i.e. UTF-16
 * code units, not bytes.  We decode UTF-8 on the fly and hash the code
 * units it stands for, so no conversion buffer is needed.
 */
#include "merkle/fnv.h"

static inline uint32_t
fnv_unit(uint32_t h, uint32_t unit)
{
	h ^= unit;
	return h * TG_FNV_PRIME;
}

uint32_t
tg_fnv_utf8(uint32_t h, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *) str;
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		uint32_t	cp;
		size_t		n;

		if (c < 0x80)
		{
			/* Fast path: ASCII is by far the common case for keys. */
			h = fnv_unit(h, c);
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
		{
			cp = c & 0x1f;
			n = 1;
		}
		else if (c >= 0xe0 && c <= 0xef)
		{
			cp = c & 0x0f;
			n = 2;
		}
		else if (c >= 0xf0 && c <= 0xf4)
		{
			cp = c & 0x07;
			n = 3;
		}
		else
		{
			h = fnv_unit(h, 0xfffd);
			i++;
			continue;
		}
		if (i + n >= len)
		{
			/* truncated sequence */
			h = fnv_unit(h, 0xfffd);
			i++;
			continue;
		}
		{
			size_t		k;
			int			ok = 1;

			for (k = 1; k <= n; k++)
			{
				if ((s[i + k] & 0xc0) != 0x80)
				{
					ok = 0;
					break;
				}
				cp = (cp << 6) | (s[i + k] & 0x3f);
			}
			/* reject overlong forms and out-of-range code points */
			if (ok && ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))))
				ok = 0;
			if (!ok)
			{
				h = fnv_unit(h, 0xfffd);
				i++;
				continue;
			}
		}
		i += n + 1;
		if (cp >= 0x10000)
		{
			cp -= 0x10000;
			h = fnv_unit(h, 0xd800 + (cp >> 10));
			h = fnv_unit(h, 0xdc00 + (cp & 0x3ff));
		}
		else
			h = fnv_unit(h, cp);	/* includes WTF-8 lone surrogates */
	}
	return h;
}
