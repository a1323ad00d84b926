/*
 * stem.c — Porter (1980) exactly as the reference implements it
 * (core/query/tokenization/porter-stemmer.ts), with its two deviations:
 *   1. in steps 2-4 a suffix that matches but fails its measure condition
 *      does not end the step: the later rules of the list are still tried
 *      (agreement -> agreem);
 *   2. a y that follows a y counts as a vowel (the vowel test only looks at
 *      whether the previous unit is one of a e i o u).
 * Words shorter than 3 units are returned unchanged.
 */
#include "search/stem.h"

#include <stdbool.h>
#include <string.h>

static bool
is_aeiou(uint16_t c)
{
	return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/* Vowel at i: a e i o u, or y neither first nor after one of a e i o u. */
static bool
is_vowel(const uint16_t *w, size_t i)
{
	if (is_aeiou(w[i]))
		return true;
	return w[i] == 'y' && i > 0 && !is_aeiou(w[i - 1]);
}

/* m: the number of vowel-then-consonant pairs in w[0..n). */
static int
measure(const uint16_t *w, size_t n)
{
	int			m = 0;
	bool		prev_vowel = false;

	for (size_t i = 0; i < n; i++)
	{
		bool		v = is_vowel(w, i);

		if (prev_vowel && !v)
			m++;
		prev_vowel = v;
	}
	return m;
}

static bool
has_vowel(const uint16_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_vowel(w, i))
			return true;
	return false;
}

/* *d: ends in two equal units that are not one of a e i o u. */
static bool
ends_double(const uint16_t *w, size_t n)
{
	return n >= 2 && w[n - 1] == w[n - 2] && !is_aeiou(w[n - 1]);
}

/* *o: consonant (not aeiou), vowel, consonant (not aeiou, w, x or y). */
static bool
ends_cvc(const uint16_t *w, size_t n)
{
	uint16_t	c;

	if (n < 3 || is_aeiou(w[n - 3]) || !is_vowel(w, n - 2))
		return false;
	c = w[n - 1];
	return !is_aeiou(c) && c != 'w' && c != 'x' && c != 'y';
}

static bool
ends_with(const uint16_t *w, size_t n, const char *suf)
{
	size_t		k = strlen(suf);

	if (k > n)
		return false;
	for (size_t i = 0; i < k; i++)
		if (w[n - k + i] != (unsigned char) suf[i])
			return false;
	return true;
}

/* Replace the last `cut` units by `rep`. */
static void
replace_tail(uint16_t *w, size_t *n, size_t cut, const char *rep)
{
	size_t		k = strlen(rep);

	*n -= cut;
	for (size_t i = 0; i < k; i++)
		w[(*n)++] = (unsigned char) rep[i];
}

typedef struct Rule
{
	const char *suffix;
	const char *replacement;
} Rule;

static const Rule step2_rules[] = {
	{"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"},
	{"izer", "ize"}, {"abli", "able"}, {"alli", "al"}, {"entli", "ent"}, {"eli", "e"},
	{"ousli", "ous"}, {"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"},
	{"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"},
	{"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}, {NULL, NULL}
};

static const Rule step3_rules[] = {
	{"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"}, {"ical", "ic"},
	{"ful", ""}, {"ness", ""}, {NULL, NULL}
};

/*
 * Steps 2 and 3: the first rule whose suffix matches with m(base) > 0
 * applies; a match that fails the measure goes on to the next rule
 * (deviation 1).
 */
static void
apply_rules(uint16_t *w, size_t *n, const Rule *rules)
{
	for (const Rule *r = rules; r->suffix != NULL; r++)
	{
		size_t		k = strlen(r->suffix);

		if (ends_with(w, *n, r->suffix) && measure(w, *n - k) > 0)
		{
			replace_tail(w, n, k, r->replacement);
			return;
		}
	}
}

static const char *const step4_suffixes[] = {
	"al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
	"ion", "ou", "ism", "ate", "iti", "ous", "ive", "ize", NULL
};

static void
step4(uint16_t *w, size_t *n)
{
	for (const char *const *s = step4_suffixes; *s != NULL; s++)
	{
		size_t		k = strlen(*s);
		size_t		base;

		if (!ends_with(w, *n, *s) || measure(w, *n - k) <= 1)
			continue;
		base = *n - k;
		/* "ion" also needs the base to end in s or t, else the step stops */
		if (strcmp(*s, "ion") != 0 || (base > 0 && (w[base - 1] == 's' || w[base - 1] == 't')))
			*n = base;
		return;
	}
}

static void
step1b(uint16_t *w, size_t *n)
{
	size_t		base;

	if (ends_with(w, *n, "eed") && *n > 3)
	{
		if (measure(w, *n - 3) > 0)
			*n -= 1;			/* eed -> ee */
		return;
	}
	if (ends_with(w, *n, "ed") && *n > 2)
		base = *n - 2;
	else if (ends_with(w, *n, "ing") && *n > 3)
		base = *n - 3;
	else
		return;
	if (!has_vowel(w, base))
		return;
	*n = base;
	if (ends_with(w, *n, "at") || ends_with(w, *n, "bl") || ends_with(w, *n, "iz"))
		replace_tail(w, n, 0, "e");
	else if (ends_double(w, *n) && w[*n - 1] != 'l' && w[*n - 1] != 's' && w[*n - 1] != 'z')
		*n -= 1;
	else if (measure(w, *n) == 1 && ends_cvc(w, *n))
		replace_tail(w, n, 0, "e");
}

void
tg_porter_stem(uint16_t *w, size_t *n)
{
	if (*n < 3)
		return;

	/* step 1a */
	if (ends_with(w, *n, "sses") || ends_with(w, *n, "ies"))
		*n -= 2;
	else if (ends_with(w, *n, "s") && !ends_with(w, *n, "ss"))
		*n -= 1;

	step1b(w, n);

	/* step 1c */
	if (ends_with(w, *n, "y") && has_vowel(w, *n - 1))
		w[*n - 1] = 'i';

	apply_rules(w, n, step2_rules);
	apply_rules(w, n, step3_rules);
	step4(w, n);

	/* step 5a */
	if (ends_with(w, *n, "e"))
	{
		int			m = measure(w, *n - 1);

		if (m > 1 || (m == 1 && !ends_cvc(w, *n - 1)))
			*n -= 1;
	}
	/* step 5b */
	if (measure(w, *n) > 1 && ends_double(w, *n) && w[*n - 1] == 'l')
		*n -= 1;
}
