/*
 * mode.c — topgun.production and the settings whose default follows it.
 *
 * A leaf module (it calls nobody): the sync server registers the
 * topgun.production GUC (src/worker/worker_init.c), the SQL core and the
 * sync server read it here.  docs/configuration.md, "Production rules".
 */
#include "topgun.h"

bool		tg_production = false;

const struct config_enum_entry tg_auto_bool_options[] = {
	{"auto", TG_AUTO, false},
	{"on", TG_AUTO_ON, false},
	{"off", TG_AUTO_OFF, false},
	{"true", TG_AUTO_ON, true},
	{"false", TG_AUTO_OFF, true},
	{"yes", TG_AUTO_ON, true},
	{"no", TG_AUTO_OFF, true},
	{"1", TG_AUTO_ON, true},
	{"0", TG_AUTO_OFF, true},
	{NULL, 0, false}
};

bool
tg_auto_on(int mode)
{
	return mode == TG_AUTO_ON || (mode == TG_AUTO && tg_production);
}
