/*
 * fuzz_hlc.c — libFuzzer target for the hlc text parser (user input to
 * topgun.hlc, tags of OR-map records from the wire).  Checks that an
 * accepted text round-trips to the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hlc_parse.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t		millis,
				counter;
	const char *node;
	size_t		nodelen;
	char	   *copy = malloc(size ? size : 1);

	/* the parser must not rely on a terminator: give it an exact-size buffer */
	memcpy(copy, data, size);
	if (tg_hlc_parse_text(copy, size, &millis, &counter, &node, &nodelen))
	{
		char		buf[64 + TG_HLC_MAX_NODE];
		int			n = snprintf(buf, sizeof(buf), "%lld:%lld:", (long long) millis, (long long) counter);

		if (millis < 0 || millis > TG_HLC_MAX_VALUE || counter < 0 || counter > TG_HLC_MAX_VALUE ||
			nodelen > TG_HLC_MAX_NODE || node < copy || node + nodelen != copy + size)
			abort();
		memcpy(buf + n, node, nodelen);
		if ((size_t) n + nodelen != size || memcmp(buf, copy, size) != 0)
			abort();			/* accepted text must be canonical */
	}
	free(copy);
	return 0;
}
