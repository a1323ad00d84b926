/*
 * tokenize.c — see tokenize.h.  Works on UTF-16 units throughout, because
 * the reference measures lengths in UTF-16 units and its stemmer indexes
 * them; only the tokens are converted back to UTF-8.
 */
#include "search/tokenize.h"

#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "search/stem.h"

const TgTokenOpts tg_token_defaults = {true, true, 2, 40, NULL, 0};

/* Longest piece given to the stop-word test (the longest stop word is shorter). */
#define STOPWORD_MAX 16

/*
 * UTF-8 → UTF-16.  A generalized 3-byte sequence for a surrogate (WTF-8)
 * becomes that lone surrogate; any other malformed byte becomes U+FFFD.
 * Returns the number of units written (dst holds at least len units).
 */
static size_t
utf8_to_utf16(const unsigned char *s, size_t len, UChar *dst)
{
	size_t		i = 0,
				n = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		uint32_t	cp;
		size_t		k;

		if (c < 0x80)
		{
			dst[n++] = c;
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			k = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			k = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			k = 3, cp = c & 0x07;
		else
		{
			dst[n++] = 0xFFFD;
			i++;
			continue;
		}
		{
			size_t		j;

			for (j = 1; j <= k; j++)
			{
				if (i + j >= len || (s[i + j] & 0xC0) != 0x80)
					break;
				cp = (cp << 6) | (s[i + j] & 0x3F);
			}
			/* truncated, overlong or beyond U+10FFFF */
			if (j <= k || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			{
				dst[n++] = 0xFFFD;
				i++;
				continue;
			}
		}
		i += k + 1;
		if (cp >= 0x10000)
		{
			dst[n++] = U16_LEAD(cp);
			dst[n++] = U16_TRAIL(cp);
		}
		else
			dst[n++] = (UChar) cp;	/* surrogates included (WTF-8) */
	}
	return n;
}

/* Make room for one more token of up to `bytes` bytes. */
static bool
reserve(TgTokens *t, size_t bytes)
{
	if (t->n == t->ncap)
	{
		size_t		nc = t->ncap ? t->ncap * 2 : 16;
		uint32_t   *o = realloc(t->off, nc * sizeof(uint32_t));
		uint32_t   *b;

		if (o == NULL)
			return false;
		t->off = o;
		b = realloc(t->blen, nc * sizeof(uint32_t));
		if (b == NULL)
			return false;
		t->blen = b;
		t->ncap = nc;
	}
	if (t->len + bytes + 1 > t->cap)
	{
		size_t		nc = t->cap ? t->cap : 256;
		char	   *p;

		while (nc < t->len + bytes + 1)
			nc *= 2;
		p = realloc(t->buf, nc);
		if (p == NULL)
			return false;
		t->buf = p;
		t->cap = nc;
	}
	return true;
}

/* Append w[0..n) as UTF-8 (lone surrogates as WTF-8). */
static bool
push_token(TgTokens *t, const UChar *w, size_t n)
{
	char	   *p;
	size_t		i = 0;

	if (!reserve(t, n * 3))
		return false;
	t->off[t->n] = (uint32_t) t->len;
	p = t->buf + t->len;
	while (i < n)
	{
		uint32_t	cp = w[i++];

		if (U16_IS_LEAD(cp) && i < n && U16_IS_TRAIL(w[i]))
			cp = U16_GET_SUPPLEMENTARY(cp, w[i++]);
		if (cp < 0x80)
			*p++ = (char) cp;
		else if (cp < 0x800)
		{
			*p++ = (char) (0xC0 | (cp >> 6));
			*p++ = (char) (0x80 | (cp & 0x3F));
		}
		else if (cp < 0x10000)
		{
			*p++ = (char) (0xE0 | (cp >> 12));
			*p++ = (char) (0x80 | ((cp >> 6) & 0x3F));
			*p++ = (char) (0x80 | (cp & 0x3F));
		}
		else
		{
			*p++ = (char) (0xF0 | (cp >> 18));
			*p++ = (char) (0x80 | ((cp >> 12) & 0x3F));
			*p++ = (char) (0x80 | ((cp >> 6) & 0x3F));
			*p++ = (char) (0x80 | (cp & 0x3F));
		}
	}
	*p = '\0';
	t->blen[t->n] = (uint32_t) (p - (t->buf + t->len));
	t->len = (size_t) (p - t->buf) + 1;
	t->n++;
	return true;
}

static bool
is_stop(const UChar *w, size_t n, const TgTokenOpts *o)
{
	char		a[STOPWORD_MAX + 1];

	if (o->stopwords != NULL)
	{
		for (size_t i = 0; i < o->nstopwords; i++)
		{
			const char *s = o->stopwords[i];
			size_t		j = 0;

			while (j < n && s[j] != '\0' && (unsigned char) s[j] < 0x80 && w[j] == (unsigned char) s[j])
				j++;
			if (j == n && s[j] == '\0')
				return true;
		}
		return false;
	}
	if (n > STOPWORD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		if (w[i] == 0 || w[i] >= 0x80)
			return false;
		a[i] = (char) w[i];
	}
	a[n] = '\0';
	return tg_is_stopword(a);
}

static bool
is_word_char(UChar32 c)
{
	return (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_N_MASK)) != 0;
}

/* One piece: the length, stop-word and stem rules; appends when kept. */
static bool
take_piece(const UChar *p, size_t n, const TgTokenOpts *o, UChar *work, TgTokens *out)
{
	if (o->min_len >= 0 && n < (size_t) o->min_len)
		return true;
	if (is_stop(p, n, o))
		return true;
	memcpy(work, p, n * sizeof(UChar));
	if (o->stem)
		tg_porter_stem(work, &n);
	if ((o->min_len >= 0 && n < (size_t) o->min_len) || (o->max_len >= 0 && n > (size_t) o->max_len))
		return true;
	return push_token(out, work, n);
}

/*
 * The tokenizer: lowercase, split, and per piece either keep it as it is
 * (opts NULL: the parser half) or apply the length, stop-word and stem rules.
 */
static TgTokenizeResult
run(const char *s, size_t len, bool lowercase, const TgTokenOpts *opts, size_t max_tokens, TgTokens *out)
{
	UChar	   *src,
			   *low,
			   *work;
	int32_t		nsrc,
				nlow;
	UErrorCode	err = U_ZERO_ERROR;
	TgTokenizeResult res = TG_TOK_OK;
	int32_t		i = 0;

	if (len == 0)
		return TG_TOK_OK;
	if (len > (size_t) INT32_MAX / 4)
		len = (size_t) INT32_MAX / 4;	/* ICU lengths are int32 */
	src = malloc(len * sizeof(UChar));
	if (src == NULL)
		return TG_TOK_NOMEM;
	nsrc = (int32_t) utf8_to_utf16((const unsigned char *) s, len, src);
	low = src;
	nlow = nsrc;
	if (lowercase)
	{
		/* full case mapping can grow a string (U+0130 -> i + U+0307) */
		int32_t		cap = nsrc + nsrc / 2 + 8;

		for (;;)
		{
			low = malloc((size_t) cap * sizeof(UChar));
			if (low == NULL)
			{
				free(src);
				return TG_TOK_NOMEM;
			}
			err = U_ZERO_ERROR;
			nlow = u_strToLower(low, cap, src, nsrc, "", &err);
			if (err != U_BUFFER_OVERFLOW_ERROR)
				break;
			free(low);
			cap = nlow + 1;
		}
		free(src);
		src = NULL;
		if (U_FAILURE(err))
		{
			free(low);
			return TG_TOK_NOMEM;
		}
	}
	/* room for one appended unit (step 1b) */
	work = malloc(((size_t) nlow + 2) * sizeof(UChar));
	if (work == NULL)
	{
		free(low);
		return TG_TOK_NOMEM;
	}
	while (i < nlow)
	{
		int32_t		start,
					end;
		UChar32		c;

		/* skip separators */
		for (;;)
		{
			int32_t		at = i;

			if (i >= nlow)
				break;
			U16_NEXT(low, i, nlow, c);
			if (is_word_char(c))
			{
				i = at;
				break;
			}
		}
		if (i >= nlow)
			break;
		start = i;
		end = i;
		while (i < nlow)
		{
			U16_NEXT(low, i, nlow, c);
			if (!is_word_char(c))
				break;
			end = i;
		}
		if (out->n >= max_tokens || out->len > (size_t) INT32_MAX)
		{
			res = TG_TOK_FULL;
			break;
		}
		if (opts == NULL ? !push_token(out, low + start, (size_t) (end - start))
			: !take_piece(low + start, (size_t) (end - start), opts, work, out))
		{
			res = TG_TOK_NOMEM;
			break;
		}
	}
	free(work);
	free(low);
	return res;
}

TgTokenizeResult
tg_tokenize(const char *s, size_t len, const TgTokenOpts *opts, size_t max_tokens, TgTokens *out)
{
	return run(s, len, opts->lowercase, opts, max_tokens, out);
}

TgTokenizeResult
tg_split_words(const char *s, size_t len, size_t max_tokens, TgTokens *out)
{
	return run(s, len, true, NULL, max_tokens, out);
}

int
tg_filter_word(const char *w, size_t len, const TgTokenOpts *opts, TgTokens *out)
{
	UChar	   *src = malloc((len + 2) * sizeof(UChar));
	UChar	   *work = malloc((len + 2) * sizeof(UChar));
	size_t		before = out->n;
	bool		ok;

	ok = src != NULL && work != NULL &&
		take_piece(src, utf8_to_utf16((const unsigned char *) w, len, src), opts, work, out);
	free(src);
	free(work);
	return ok ? (out->n > before) : -1;
}

void
tg_tokens_free(TgTokens *t)
{
	free(t->buf);
	free(t->off);
	free(t->blen);
	memset(t, 0, sizeof(*t));
}
