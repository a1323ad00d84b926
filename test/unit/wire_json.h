/*
 * wire_json.h — a small JSON reader for the golden vector .json twins
 * (test code only).  Parses RFC 8259 JSON into a malloc'd tree; \u escapes
 * are turned into UTF-8, and a lone surrogate escape into its 3-byte WTF-8
 * form, so strings are byte arrays with an explicit length.
 */
#ifndef TG_TEST_WIRE_JSON_H
#define TG_TEST_WIRE_JSON_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/msgpack.h"

typedef enum JType
{
	J_NULL,
	J_BOOL,
	J_NUM,
	J_STR,
	J_ARR,
	J_OBJ
} JType;

typedef struct JNode
{
	JType		type;
	bool		b;
	double		num;
	char	   *s;				/* J_STR: bytes (NUL-terminated, may hold NULs) */
	size_t		len;			/* J_STR bytes; J_ARR/J_OBJ element count */
	struct JNode **items;		/* J_ARR elements, J_OBJ values */
	char	  **keys;			/* J_OBJ keys (NUL-terminated) */
	size_t	   *keylens;
} JNode;

typedef struct JParser
{
	const char *p;
	const char *end;
	int			depth;
} JParser;

static inline JNode *jparse_value(JParser *jp);

static inline void
jskip(JParser *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\n' || *jp->p == '\r' || *jp->p == '\t'))
		jp->p++;
}

static inline JNode *
jnew(JType t)
{
	JNode	   *n = calloc(1, sizeof(JNode));

	if (n == NULL)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	n->type = t;
	return n;
}

static inline void
jput_utf8(char **buf, size_t *len, size_t *cap, uint32_t cp)
{
	unsigned char tmp[4];
	int			n;

	if (cp < 0x80)
	{
		tmp[0] = (unsigned char) cp;
		n = 1;
	}
	else if (cp < 0x800)
	{
		tmp[0] = 0xC0 | (cp >> 6);
		tmp[1] = 0x80 | (cp & 0x3F);
		n = 2;
	}
	else if (cp < 0x10000)
	{
		tmp[0] = 0xE0 | (cp >> 12);
		tmp[1] = 0x80 | ((cp >> 6) & 0x3F);
		tmp[2] = 0x80 | (cp & 0x3F);
		n = 3;
	}
	else
	{
		tmp[0] = 0xF0 | (cp >> 18);
		tmp[1] = 0x80 | ((cp >> 12) & 0x3F);
		tmp[2] = 0x80 | ((cp >> 6) & 0x3F);
		tmp[3] = 0x80 | (cp & 0x3F);
		n = 4;
	}
	while (*len + n + 1 > *cap)
	{
		*cap = *cap ? *cap * 2 : 64;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			exit(2);
	}
	memcpy(*buf + *len, tmp, n);
	*len += n;
}

static inline int
jhex4(const char *p, uint32_t *out)
{
	uint32_t	v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return 0;
	}
	*out = v;
	return 1;
}

static inline char *
jparse_string(JParser *jp, size_t *outlen)
{
	char	   *buf = NULL;
	size_t		len = 0,
				cap = 0;

	if (jp->p >= jp->end || *jp->p != '"')
		return NULL;
	jp->p++;
	buf = malloc(64);
	cap = 64;
	while (jp->p < jp->end && *jp->p != '"')
	{
		unsigned char c = (unsigned char) *jp->p++;

		if (c == '\\')
		{
			char		e;

			if (jp->p >= jp->end)
				goto bad;
			e = *jp->p++;
			switch (e)
			{
				case '"':
				case '\\':
				case '/':
					jput_utf8(&buf, &len, &cap, (uint32_t) e);
					break;
				case 'b':
					jput_utf8(&buf, &len, &cap, '\b');
					break;
				case 'f':
					jput_utf8(&buf, &len, &cap, '\f');
					break;
				case 'n':
					jput_utf8(&buf, &len, &cap, '\n');
					break;
				case 'r':
					jput_utf8(&buf, &len, &cap, '\r');
					break;
				case 't':
					jput_utf8(&buf, &len, &cap, '\t');
					break;
				case 'u':
					{
						uint32_t	cp,
									lo;

						if (jp->end - jp->p < 4 || !jhex4(jp->p, &cp))
							goto bad;
						jp->p += 4;
						if (cp >= 0xD800 && cp <= 0xDBFF && jp->end - jp->p >= 6 &&
							jp->p[0] == '\\' && jp->p[1] == 'u' && jhex4(jp->p + 2, &lo) &&
							lo >= 0xDC00 && lo <= 0xDFFF)
						{
							jp->p += 6;
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						}
						jput_utf8(&buf, &len, &cap, cp);
						break;
					}
				default:
					goto bad;
			}
		}
		else
		{
			if (len + 2 > cap)
			{
				cap *= 2;
				buf = realloc(buf, cap);
			}
			buf[len++] = (char) c;
		}
	}
	if (jp->p >= jp->end)
		goto bad;
	jp->p++;
	buf[len] = '\0';
	*outlen = len;
	return buf;
bad:
	free(buf);
	return NULL;
}

static inline JNode *
jparse_value(JParser *jp)
{
	JNode	   *n;

	jskip(jp);
	if (jp->p >= jp->end || jp->depth > 200)
		return NULL;
	switch (*jp->p)
	{
		case 'n':
			if (jp->end - jp->p < 4 || memcmp(jp->p, "null", 4) != 0)
				return NULL;
			jp->p += 4;
			return jnew(J_NULL);
		case 't':
			if (jp->end - jp->p < 4 || memcmp(jp->p, "true", 4) != 0)
				return NULL;
			jp->p += 4;
			n = jnew(J_BOOL);
			n->b = true;
			return n;
		case 'f':
			if (jp->end - jp->p < 5 || memcmp(jp->p, "false", 5) != 0)
				return NULL;
			jp->p += 5;
			return jnew(J_BOOL);
		case '"':
			n = jnew(J_STR);
			n->s = jparse_string(jp, &n->len);
			if (n->s == NULL)
				return NULL;
			return n;
		case '[':
			jp->p++;
			jp->depth++;
			n = jnew(J_ARR);
			jskip(jp);
			if (jp->p < jp->end && *jp->p == ']')
			{
				jp->p++;
				jp->depth--;
				return n;
			}
			for (;;)
			{
				JNode	   *it = jparse_value(jp);

				if (it == NULL)
					return NULL;
				n->items = realloc(n->items, (n->len + 1) * sizeof(JNode *));
				n->items[n->len++] = it;
				jskip(jp);
				if (jp->p < jp->end && *jp->p == ',')
				{
					jp->p++;
					continue;
				}
				if (jp->p < jp->end && *jp->p == ']')
				{
					jp->p++;
					jp->depth--;
					return n;
				}
				return NULL;
			}
		case '{':
			jp->p++;
			jp->depth++;
			n = jnew(J_OBJ);
			jskip(jp);
			if (jp->p < jp->end && *jp->p == '}')
			{
				jp->p++;
				jp->depth--;
				return n;
			}
			for (;;)
			{
				size_t		klen;
				char	   *k;
				JNode	   *val;

				jskip(jp);
				k = jparse_string(jp, &klen);
				if (k == NULL)
					return NULL;
				jskip(jp);
				if (jp->p >= jp->end || *jp->p != ':')
					return NULL;
				jp->p++;
				val = jparse_value(jp);
				if (val == NULL)
					return NULL;
				n->items = realloc(n->items, (n->len + 1) * sizeof(JNode *));
				n->keys = realloc(n->keys, (n->len + 1) * sizeof(char *));
				n->keylens = realloc(n->keylens, (n->len + 1) * sizeof(size_t));
				n->items[n->len] = val;
				n->keys[n->len] = k;
				n->keylens[n->len] = klen;
				n->len++;
				jskip(jp);
				if (jp->p < jp->end && *jp->p == ',')
				{
					jp->p++;
					continue;
				}
				if (jp->p < jp->end && *jp->p == '}')
				{
					jp->p++;
					jp->depth--;
					return n;
				}
				return NULL;
			}
		default:
			{
				char	   *endp;

				n = jnew(J_NUM);
				n->num = strtod(jp->p, &endp);
				if (endp == jp->p || endp > jp->end)
					return NULL;
				jp->p = endp;
				return n;
			}
	}
}

/* Parse a whole document; NULL on a syntax error. */
static inline JNode *
json_parse(const char *text, size_t len)
{
	JParser		jp;
	JNode	   *n;

	jp.p = text;
	jp.end = text + len;
	jp.depth = 0;
	n = jparse_value(&jp);
	if (n == NULL)
		return NULL;
	jskip(&jp);
	if (jp.p != jp.end)
		return NULL;
	return n;
}

static inline void
json_free(JNode *n)
{
	if (n == NULL)
		return;
	if (n->type == J_ARR || n->type == J_OBJ)
	{
		for (size_t i = 0; i < n->len; i++)
		{
			json_free(n->items[i]);
			if (n->type == J_OBJ)
				free(n->keys[i]);
		}
		free(n->items);
		free(n->keys);
		free(n->keylens);
	}
	free(n->s);
	free(n);
}

/* Object member by key (first match), or NULL. */
static inline JNode *
json_get(const JNode *obj, const char *key)
{
	if (obj == NULL || obj->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->len; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

/* The vectors' tagged {"$undefined":true} */
static inline bool
json_is_undefined(const JNode *n)
{
	return n != NULL && n->type == J_OBJ && n->len == 1 &&
		strcmp(n->keys[0], "$undefined") == 0;
}

/* Present, not null and not $undefined. */
static inline bool
json_has(const JNode *obj, const char *key)
{
	JNode	   *n = json_get(obj, key);

	return n != NULL && n->type != J_NULL && !json_is_undefined(n);
}

/*
 * JSON (test text) -> msgpack as msgpackr encodes it: integral numbers
 * below 2^53 as ints, other numbers as float64; the tags {"$undefined":..}
 * and {"$nan":..} become undefined (ext 0) and NaN.
 */
static inline void
json_put_msgpack(MpBuf *b, const JNode *j)
{
	switch (j->type)
	{
		case J_NULL:
			mp_put_nil(b);
			break;
		case J_BOOL:
			mp_put_bool(b, j->b);
			break;
		case J_NUM:
			if (j->num == floor(j->num) && fabs(j->num) < 9007199254740992.0)
				mp_put_int(b, (int64_t) j->num);
			else
				mp_put_float64(b, j->num);
			break;
		case J_STR:
			mp_put_strn(b, j->s, j->len);
			break;
		case J_ARR:
			mp_put_array_header(b, (uint32_t) j->len);
			for (size_t i = 0; i < j->len; i++)
				json_put_msgpack(b, j->items[i]);
			break;
		case J_OBJ:
			if (json_is_undefined(j))
				mp_put_undefined(b);
			else if (j->len == 1 && strcmp(j->keys[0], "$nan") == 0)
				mp_put_float64(b, NAN);
			else
			{
				mp_put_map_header(b, (uint32_t) j->len);
				for (size_t i = 0; i < j->len; i++)
				{
					mp_put_strn(b, j->keys[i], j->keylens[i]);
					json_put_msgpack(b, j->items[i]);
				}
			}
			break;
	}
}

#endif							/* TG_TEST_WIRE_JSON_H */
