/*
 * worker_auth.c — JWT configuration of the sync server.
 *
 * The key is built from the GUCs at start and on every SIGHUP.  The secret
 * policy (production mode) decides whether the worker may listen at all.
 */
#include "postgres.h"

#include <errno.h>
#include <stdio.h>

#include "auth/jwt.h"
#include "worker/worker.h"
#include "worker/worker_int.h"

TgJwtKey	tg_jwt_key;
bool		tg_jwt_key_ok = false;

static char last_problem[512] = "";

/*
 * Read the HS256 secret from topgun.jwt_secret_file (trailing newlines
 * stripped).  Returns a malloc'd string or NULL with the reason in err.
 */
static char *
read_secret_file(const char *path, char *err, size_t errlen)
{
	FILE	   *f = fopen(path, "r");
	char	   *buf;
	size_t		n;

	if (f == NULL)
	{
		snprintf(err, errlen, "could not open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(4097);
	if (buf == NULL)
	{
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, 4096, f);
	if (!feof(f))
	{
		fclose(f);
		free(buf);
		snprintf(err, errlen, "\"%s\" is larger than 4096 bytes", path);
		return NULL;
	}
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (strlen(buf) != n)
	{
		free(buf);
		snprintf(err, errlen, "\"%s\" contains a NUL byte", path);
		return NULL;
	}
	return buf;
}

/* Log a configuration problem once (until it changes), not every reload. */
static void
report_problem(int elevel, const char *msg)
{
	if (strcmp(last_problem, msg) == 0)
		return;
	strlcpy(last_problem, msg, sizeof(last_problem));
	ereport(elevel, (errmsg("%s", msg)));
}

/*
 * (Re)build the verification key from the configuration.  Returns false
 * when the worker must not serve (production policy refused the
 * configuration); the reason has been logged.
 */
static bool configure(bool first, char **file_secret_out);

bool
tg_auth_configure(bool first)
{
	char	   *file_secret = NULL;
	bool		ok = configure(first, &file_secret);

	if (file_secret)
	{
		explicit_bzero(file_secret, strlen(file_secret));
		free(file_secret);
	}
	return ok;
}

static bool
configure(bool first, char **file_secret_out)
{
	TgJwtAlg	alg = (TgJwtAlg) tg_jwt_algorithm;
	const char *src;
	char		why[256];
	char		err[256];
	char		msg[512];
	TgJwtSecretCheck verdict;
	TgJwtKey	nkey;
	bool		ok;
	char	   *file_secret = NULL;

	src = (alg == TG_JWT_HS256) ? tg_jwt_secret : tg_jwt_public_key_file;
	if (src == NULL)
		src = "";
	if (alg == TG_JWT_HS256 && tg_jwt_secret_file && tg_jwt_secret_file[0])
	{
		file_secret = read_secret_file(tg_jwt_secret_file, err, sizeof(err));
		if (file_secret == NULL)
		{
			snprintf(msg, sizeof(msg), "topgun: topgun.jwt_secret_file: %s", err);
			report_problem(WARNING, msg);
			tg_auth_release();
			/* a configured but unreadable secret never falls back to the dev secret */
			return !tg_production;
		}
		*file_secret_out = file_secret;
		src = file_secret;
	}
	why[0] = '\0';
	verdict = tg_jwt_check_secret(alg, src, tg_production, why, sizeof(why));

	if (verdict == TG_JWT_SECRET_FATAL)
	{
		snprintf(msg, sizeof(msg),
				 "topgun sync server refuses to serve (topgun.production = on): %s", why);
		report_problem(WARNING, msg);
		tg_auth_release();
		return false;
	}

	memset(&nkey, 0, sizeof(nkey));
	if (verdict == TG_JWT_SECRET_MISSING)
	{
		if (alg == TG_JWT_HS256)
		{
			report_problem(WARNING,
						   "topgun: topgun.jwt_secret is not set; using the public development secret \"topgun-secret-dev\" (never do this in production)");
			ok = tg_jwt_key_init_hmac(&nkey, TG_JWT_DEV_SECRET,
									  strlen(TG_JWT_DEV_SECRET), err, sizeof(err));
		}
		else
		{
			report_problem(WARNING,
						   "topgun: topgun.jwt_public_key_file is not set; every AUTH will fail");
			tg_auth_release();
			return true;
		}
	}
	else
	{
		if (verdict == TG_JWT_SECRET_WARN)
		{
			snprintf(msg, sizeof(msg), "topgun: weak JWT configuration: %s", why);
			report_problem(WARNING, msg);
		}
		if (alg == TG_JWT_HS256)
			ok = tg_jwt_key_init_hmac(&nkey, src, strlen(src), err, sizeof(err));
		else
			ok = tg_jwt_key_load_pem(&nkey, alg, src, err, sizeof(err));
	}

	if (!ok)
	{
		snprintf(msg, sizeof(msg), "topgun: could not load the JWT key: %s", err);
		tg_auth_release();
		if (tg_production)
		{
			snprintf(msg, sizeof(msg),
					 "topgun sync server refuses to serve (topgun.production = on): could not load the JWT key: %s", err);
			report_problem(WARNING, msg);
			return false;
		}
		report_problem(WARNING, msg);
		return true;
	}

	tg_auth_release();
	tg_jwt_key = nkey;
	tg_jwt_key_ok = true;
	if (verdict == TG_JWT_SECRET_OK)
		last_problem[0] = '\0';
	if (!first)
		ereport(LOG, (errmsg("topgun: JWT configuration reloaded (%s)", tg_jwt_alg_name(alg))));
	return true;
}

void
tg_auth_release(void)
{
	if (tg_jwt_key_ok)
		tg_jwt_key_free(&tg_jwt_key);
	memset(&tg_jwt_key, 0, sizeof(tg_jwt_key));
	tg_jwt_key_ok = false;
}
