/*
 * regex_parse.c — parse a JS RegExp pattern (as UTF-16 units) into the
 * AST of regex_internal.h: atoms, classes and escapes, groups,
 * quantifiers, alternation.  See regex.c for the supported subset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/regex_internal.h"


void
tgr_perr(Parser *ps, const char *msg)
{
	if (!ps->failed)
		snprintf(ps->err, ps->errlen, "%s", msg);
	ps->failed = true;
}

static RNode *
node_new(Parser *ps, int type)
{
	RNode	   *n;

	if (ps->failed)
		return NULL;
	if (ps->nnodes >= ps->capnodes)
	{
		tgr_perr(ps, "regular expression too complex");
		return NULL;
	}
	n = &ps->nodes[ps->nnodes++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	return n;
}

/* ------------------------------------------------------------ UTF-16 */

/*
 * Decode UTF-8 (already validated by the msgpack decoder, but be defensive:
 * bad bytes become U+FFFD) into UTF-16 units.  Returns the unit count;
 * out must have room for 2 * len units.
 */
size_t
tg_utf8_to_utf16(const char *s, size_t len, uint16_t *out)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		i = 0,
				o = 0;

	while (i < len)
	{
		uint32_t	cp;
		int			extra;

		if (u[i] < 0x80)
		{
			cp = u[i];
			extra = 0;
		}
		else if ((u[i] & 0xE0) == 0xC0)
		{
			cp = u[i] & 0x1F;
			extra = 1;
		}
		else if ((u[i] & 0xF0) == 0xE0)
		{
			cp = u[i] & 0x0F;
			extra = 2;
		}
		else if ((u[i] & 0xF8) == 0xF0)
		{
			cp = u[i] & 0x07;
			extra = 3;
		}
		else
		{
			out[o++] = 0xFFFD;
			i++;
			continue;
		}
		{
			int			k;
			bool		ok = true;

			for (k = 1; k <= extra; k++)
			{
				if (i + k >= len || (u[i + k] & 0xC0) != 0x80)
				{
					ok = false;
					break;
				}
				cp = (cp << 6) | (u[i + k] & 0x3F);
			}
			if (!ok)
			{
				out[o++] = 0xFFFD;
				i++;
				continue;
			}
		}
		i += extra + 1;
		if (cp >= 0x10000)
		{
			cp -= 0x10000;
			out[o++] = (uint16_t) (0xD800 + (cp >> 10));
			out[o++] = (uint16_t) (0xDC00 + (cp & 0x3FF));
		}
		else
			out[o++] = (uint16_t) cp;
	}
	return o;
}

/* ------------------------------------------------------------ classes */

static bool
add_range(Parser *ps, uint16_t lo, uint16_t hi)
{
	TgRegex    *re = ps->re;

	if (re->nranges >= ps->capranges)
	{
		uint32_t	cap = ps->capranges ? ps->capranges * 2 : 32;
		Range	   *r;

		if (cap > 65536)
		{
			tgr_perr(ps, "regular expression too complex");
			return false;
		}
		r = realloc(re->ranges, sizeof(Range) * cap);
		if (r == NULL)
		{
			tgr_perr(ps, "out of memory");
			return false;
		}
		re->ranges = r;
		ps->capranges = cap;
	}
	re->ranges[re->nranges].lo = lo;
	re->ranges[re->nranges].hi = hi;
	re->nranges++;
	return true;
}

static const Range digit_ranges[] = {{'0', '9'}};
static const Range word_ranges[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
static const Range space_ranges[] = {
	{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
	{0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}
};

/* Add a predefined set (sorted, disjoint), or its complement. */
static void
add_set(Parser *ps, const Range *set, int n, bool complement)
{
	if (!complement)
	{
		for (int i = 0; i < n; i++)
			add_range(ps, set[i].lo, set[i].hi);
		return;
	}
	{
		uint32_t	next = 0;

		for (int i = 0; i < n; i++)
		{
			if (set[i].lo > next)
				add_range(ps, (uint16_t) next, (uint16_t) (set[i].lo - 1));
			next = (uint32_t) set[i].hi + 1;
		}
		if (next <= 0xFFFF)
			add_range(ps, (uint16_t) next, 0xFFFF);
	}
}

static int
new_class(Parser *ps, bool negate)
{
	TgRegex    *re = ps->re;

	if (re->nclasses >= ps->capclasses)
	{
		uint32_t	cap = ps->capclasses ? ps->capclasses * 2 : 8;
		Class	   *c = realloc(re->classes, sizeof(Class) * cap);

		if (c == NULL)
		{
			tgr_perr(ps, "out of memory");
			return -1;
		}
		re->classes = c;
		ps->capclasses = cap;
	}
	re->classes[re->nclasses].first = re->nranges;
	re->classes[re->nclasses].n = 0;
	re->classes[re->nclasses].negate = negate;
	return (int) re->nclasses++;
}

static void
close_class(Parser *ps, int cls)
{
	ps->re->classes[cls].n = ps->re->nranges - ps->re->classes[cls].first;
}

static int
hexval(uint16_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read n hex digits at ps->i; -1 if not there (then nothing is consumed). */
static int
read_hex(Parser *ps, int n)
{
	int			v = 0;

	if (ps->i + n > ps->n)
		return -1;
	for (int k = 0; k < n; k++)
	{
		int			h = hexval(ps->p[ps->i + k]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	ps->i += n;
	return v;
}

/*
 * A character escape after '\' (not a class escape).  Returns the code
 * unit, or -1 after reporting an error.
 */
static int
char_escape(Parser *ps, bool in_class)
{
	uint16_t	c;
	int			v;

	if (ps->i >= ps->n)
	{
		tgr_perr(ps, "\\ at end of pattern");
		return -1;
	}
	c = ps->p[ps->i++];
	switch (c)
	{
		case 't':
			return '\t';
		case 'n':
			return '\n';
		case 'v':
			return '\v';
		case 'f':
			return '\f';
		case 'r':
			return '\r';
		case 'b':
			return in_class ? '\b' : -2;	/* caller handles \b outside */
		case '0':
			if (ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9')
			{
				tgr_perr(ps, "octal escapes are not supported");
				return -1;
			}
			return 0;
		case 'c':
			if (ps->i < ps->n &&
				((ps->p[ps->i] >= 'a' && ps->p[ps->i] <= 'z') ||
				 (ps->p[ps->i] >= 'A' && ps->p[ps->i] <= 'Z')))
				return ps->p[ps->i++] % 32;
			return '\\';		/* Annex B: "\c" stays a backslash */
		case 'x':
			v = read_hex(ps, 2);
			return v >= 0 ? v : 'x';
		case 'u':
			v = read_hex(ps, 4);
			return v >= 0 ? v : 'u';
		case 'k':
			tgr_perr(ps, "named backreferences are not supported");
			return -1;
		default:
			if (c >= '1' && c <= '9')
			{
				tgr_perr(ps, "backreferences are not supported");
				return -1;
			}
			return c;			/* identity escape */
	}
}

/* Class escapes \d \D \w \W \s \S: add to the open class; false if not one. */
static bool
class_escape(Parser *ps, uint16_t c)
{
	switch (c)
	{
		case 'd':
			add_set(ps, digit_ranges, 1, false);
			return true;
		case 'D':
			add_set(ps, digit_ranges, 1, true);
			return true;
		case 'w':
			add_set(ps, word_ranges, 4, false);
			return true;
		case 'W':
			add_set(ps, word_ranges, 4, true);
			return true;
		case 's':
			add_set(ps, space_ranges, 10, false);
			return true;
		case 'S':
			add_set(ps, space_ranges, 10, true);
			return true;
		default:
			return false;
	}
}

static RNode *
parse_class(Parser *ps)
{
	bool		negate = false;
	int			cls;
	RNode	   *n;

	if (ps->i < ps->n && ps->p[ps->i] == '^')
	{
		negate = true;
		ps->i++;
	}
	cls = new_class(ps, negate);
	if (cls < 0)
		return NULL;
	for (;;)
	{
		int			lo,
					hi;

		if (ps->i >= ps->n)
		{
			tgr_perr(ps, "unterminated character class");
			return NULL;
		}
		if (ps->p[ps->i] == ']')
		{
			ps->i++;
			break;
		}
		if (ps->p[ps->i] == '\\')
		{
			ps->i++;
			if (ps->i < ps->n && class_escape(ps, ps->p[ps->i]))
			{
				ps->i++;
				continue;
			}
			lo = char_escape(ps, true);
			if (lo < 0)
				return NULL;
		}
		else
			lo = ps->p[ps->i++];
		hi = lo;
		if (ps->i + 1 < ps->n && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']')
		{
			ps->i++;
			if (ps->p[ps->i] == '\\')
			{
				ps->i++;
				if (ps->i < ps->n && class_escape(ps, ps->p[ps->i]))
				{
					/* Annex B: [a-\d] is a, -, and the digits */
					ps->i++;
					add_range(ps, (uint16_t) lo, (uint16_t) lo);
					add_range(ps, '-', '-');
					continue;
				}
				hi = char_escape(ps, true);
				if (hi < 0)
					return NULL;
			}
			else
				hi = ps->p[ps->i++];
			if (hi < lo)
			{
				tgr_perr(ps, "range out of order in character class");
				return NULL;
			}
		}
		add_range(ps, (uint16_t) lo, (uint16_t) hi);
		if (ps->failed)
			return NULL;
	}
	close_class(ps, cls);
	n = node_new(ps, R_CLASS);
	if (n)
		n->x = (uint32_t) cls;
	return n;
}

static RNode *
parse_atom(Parser *ps)
{
	uint16_t	c = ps->p[ps->i];
	RNode	   *n;

	switch (c)
	{
		case '(':
			ps->i++;
			if (ps->i < ps->n && ps->p[ps->i] == '?')
			{
				if (ps->i + 1 < ps->n && ps->p[ps->i + 1] == ':')
					ps->i += 2;
				else if (ps->i + 2 < ps->n && ps->p[ps->i + 1] == '<' &&
						 ps->p[ps->i + 2] != '=' && ps->p[ps->i + 2] != '!')
				{
					/* named group: the name does not matter for test() */
					ps->i += 2;
					while (ps->i < ps->n && ps->p[ps->i] != '>')
					{
						uint16_t	k = ps->p[ps->i];

						if (!((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z') ||
							  (k >= '0' && k <= '9') || k == '_' || k == '$'))
						{
							tgr_perr(ps, "invalid capture group name");
							return NULL;
						}
						ps->i++;
					}
					if (ps->i >= ps->n)
					{
						tgr_perr(ps, "invalid capture group name");
						return NULL;
					}
					ps->i++;
				}
				else
				{
					tgr_perr(ps, "lookahead and lookbehind are not supported");
					return NULL;
				}
			}
			if (++ps->depth > 100)
			{
				tgr_perr(ps, "regular expression nested too deeply");
				return NULL;
			}
			n = tgr_parse_alt(ps);
			ps->depth--;
			if (ps->failed)
				return NULL;
			if (ps->i >= ps->n || ps->p[ps->i] != ')')
			{
				tgr_perr(ps, "unterminated group");
				return NULL;
			}
			ps->i++;
			return n;
		case ')':
			tgr_perr(ps, "unmatched ')'");
			return NULL;
		case '[':
			ps->i++;
			return parse_class(ps);
		case '.':
			ps->i++;
			return node_new(ps, R_ANY);
		case '^':
			ps->i++;
			return node_new(ps, R_BOL);
		case '$':
			ps->i++;
			return node_new(ps, R_EOL);
		case '*':
		case '+':
		case '?':
			tgr_perr(ps, "nothing to repeat");
			return NULL;
		case '\\':
			{
				int			v;

				ps->i++;
				if (ps->i < ps->n && (ps->p[ps->i] == 'b' || ps->p[ps->i] == 'B'))
				{
					n = node_new(ps, ps->p[ps->i] == 'b' ? R_WB : R_NWB);
					ps->i++;
					return n;
				}
				if (ps->i < ps->n &&
					(ps->p[ps->i] == 'd' || ps->p[ps->i] == 'D' || ps->p[ps->i] == 'w' ||
					 ps->p[ps->i] == 'W' || ps->p[ps->i] == 's' || ps->p[ps->i] == 'S'))
				{
					int			cls = new_class(ps, false);

					if (cls < 0)
						return NULL;
					class_escape(ps, ps->p[ps->i++]);
					close_class(ps, cls);
					n = node_new(ps, R_CLASS);
					if (n)
						n->x = (uint32_t) cls;
					return n;
				}
				v = char_escape(ps, false);
				if (v < 0)
					return NULL;
				n = node_new(ps, R_CHAR);
				if (n)
					n->x = (uint32_t) v;
				return n;
			}
		default:
			ps->i++;
			n = node_new(ps, R_CHAR);
			if (n)
				n->x = c;
			return n;
	}
}

/* {n}, {n,}, {n,m} at ps->i; false (nothing consumed) if not a quantifier. */
static bool
parse_braces(Parser *ps, int *min, int *max)
{
	size_t		j = ps->i + 1;
	long		a = 0,
				b;
	bool		digits = false;

	while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9')
	{
		a = a * 10 + (ps->p[j] - '0');
		if (a > 100000)
			a = 100000;
		digits = true;
		j++;
	}
	if (!digits || j >= ps->n)
		return false;
	if (ps->p[j] == '}')
		b = a;
	else if (ps->p[j] == ',')
	{
		j++;
		if (j < ps->n && ps->p[j] == '}')
			b = -1;
		else
		{
			bool		d2 = false;

			b = 0;
			while (j < ps->n && ps->p[j] >= '0' && ps->p[j] <= '9')
			{
				b = b * 10 + (ps->p[j] - '0');
				if (b > 100000)
					b = 100000;
				d2 = true;
				j++;
			}
			if (!d2 || j >= ps->n || ps->p[j] != '}')
				return false;
		}
	}
	else
		return false;
	ps->i = j + 1;
	*min = (int) a;
	*max = (int) b;
	return true;
}

static RNode *
parse_repeat(Parser *ps)
{
	RNode	   *atom;
	int			min,
				max;

	if (ps->p[ps->i] == '{')
	{
		int			a,
					b;

		if (parse_braces(ps, &a, &b))
		{
			tgr_perr(ps, "nothing to repeat");
			return NULL;
		}
		/* Annex B: a lone { is a literal */
		ps->i++;
		atom = node_new(ps, R_CHAR);
		if (atom)
			atom->x = '{';
	}
	else
		atom = parse_atom(ps);
	if (atom == NULL || ps->failed)
		return NULL;
	for (;;)
	{
		RNode	   *r;

		if (ps->i >= ps->n)
			return atom;
		switch (ps->p[ps->i])
		{
			case '*':
				min = 0;
				max = -1;
				ps->i++;
				break;
			case '+':
				min = 1;
				max = -1;
				ps->i++;
				break;
			case '?':
				min = 0;
				max = 1;
				ps->i++;
				break;
			case '{':
				if (!parse_braces(ps, &min, &max))
					return atom;
				if (max >= 0 && max < min)
				{
					tgr_perr(ps, "numbers out of order in {} quantifier");
					return NULL;
				}
				if (min > 1000 || max > 1000)
				{
					tgr_perr(ps, "counted repetition above 1000 is not supported");
					return NULL;
				}
				break;
			default:
				return atom;
		}
		if (ps->i < ps->n && ps->p[ps->i] == '?')
			ps->i++;			/* lazy: same test() result */
		if (atom->type == R_BOL || atom->type == R_EOL || atom->type == R_WB || atom->type == R_NWB)
		{
			tgr_perr(ps, "nothing to repeat");
			return NULL;
		}
		r = node_new(ps, R_REP);
		if (r == NULL)
			return NULL;
		r->a = atom;
		r->min = min;
		r->max = max;
		atom = r;
		/* a quantifier directly after a quantifier is an error in JS */
		if (ps->i < ps->n && (ps->p[ps->i] == '*' || ps->p[ps->i] == '+' || ps->p[ps->i] == '?'))
		{
			tgr_perr(ps, "nothing to repeat");
			return NULL;
		}
	}
}

static RNode *
parse_concat(Parser *ps)
{
	RNode	   *acc = NULL;

	while (ps->i < ps->n && ps->p[ps->i] != '|' && ps->p[ps->i] != ')')
	{
		RNode	   *r = parse_repeat(ps);

		if (r == NULL || ps->failed)
			return NULL;
		if (acc == NULL)
			acc = r;
		else
		{
			RNode	   *c = node_new(ps, R_CAT);

			if (c == NULL)
				return NULL;
			c->a = acc;
			c->b = r;
			acc = c;
		}
	}
	return acc ? acc : node_new(ps, R_EMPTY);
}

RNode *
tgr_parse_alt(Parser *ps)
{
	RNode	   *left = parse_concat(ps);

	while (!ps->failed && ps->i < ps->n && ps->p[ps->i] == '|')
	{
		RNode	   *alt;
		RNode	   *right;

		ps->i++;
		right = parse_concat(ps);
		if (right == NULL)
			return NULL;
		alt = node_new(ps, R_ALT);
		if (alt == NULL)
			return NULL;
		alt->a = left;
		alt->b = right;
		left = alt;
	}
	return left;
}

