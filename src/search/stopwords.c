/*
 * stopwords.c — the reference's ENGLISH_STOPWORDS set
 * (core/query/tokenization/stopwords.ts: 173 entries, "when" twice, so 172
 * words), sorted by strcmp for bsearch.
 */
#include "search/tokenize.h"

#include <stdlib.h>
#include <string.h>

static const char *const stopwords[] = {
	"a", "about", "above", "across", "after", "again", "against", "all", "along", "also",
	"although", "am", "among", "an", "and", "any", "are", "around", "as", "at", "be", "because",
	"been", "before", "behind", "being", "below", "beneath", "beside", "between", "beyond",
	"both", "but", "by", "can", "could", "d", "did", "do", "does", "doing", "down", "during",
	"each", "either", "ever", "every", "except", "few", "for", "from", "had", "has", "have",
	"having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if",
	"in", "inside", "into", "is", "it", "its", "itself", "just", "ll", "m", "many", "may", "me",
	"might", "more", "most", "much", "must", "my", "myself", "near", "neither", "no", "none",
	"nor", "not", "now", "of", "off", "on", "once", "only", "onto", "or", "other", "ought", "our",
	"ours", "ourselves", "out", "outside", "over", "own", "past", "re", "s", "same", "several",
	"shall", "she", "should", "since", "so", "some", "such", "t", "than", "that", "the", "their",
	"theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through",
	"throughout", "to", "too", "toward", "towards", "under", "underneath", "unless", "until",
	"up", "upon", "ve", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
	"while", "who", "whom", "why", "will", "with", "within", "without", "would", "yet", "you",
	"your", "yours", "yourself", "yourselves",
};

static int
cmp_word(const void *key, const void *elem)
{
	return strcmp((const char *) key, *(const char *const *) elem);
}

bool
tg_is_stopword(const char *word)
{
	return bsearch(word, stopwords, sizeof(stopwords) / sizeof(stopwords[0]),
				   sizeof(stopwords[0]), cmp_word) != NULL;
}
