/*
 * test_jwt.c — unit tests for src/auth/jwt.c and src/auth/json_claims.c.
 *
 * Tokens are built and signed here with the OpenSSL API (keys generated at
 * run time), then verified with the code under test.  The real TopGun
 * token from the shared vectors is checked too.  Run from test/unit
 * (`make unit`); vectors are found at ../../../shared/vectors or
 * $TOPGUN_VECTORS.
 */
#include "auth/jwt.h"
#include "auth/json_claims.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

static int	npassed,
			nfailed;

#define CHECK(cond, ...) check_((cond), __LINE__, #cond, __VA_ARGS__)

static void
check_(bool ok, int line, const char *expr, const char *fmt, ...)
{
	va_list		ap;

	if (ok)
	{
		npassed++;
		return;
	}
	nfailed++;
	fprintf(stderr, "FAIL line %d: %s: ", line, expr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define NOW		((int64_t) 1736000000)
#define SECRET	"an-hs256-secret-that-is-32-bytes-long!"

/* ------------------------------------------------------------------------
 * Token building helpers
 */

static char *
b64url(const unsigned char *in, size_t n)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *out = malloc(n / 3 * 4 + 5);
	size_t		o = 0,
				i;

	for (i = 0; i + 3 <= n; i += 3)
	{
		unsigned	v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];

		out[o++] = al[v >> 18];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = al[(v >> 6) & 63];
		out[o++] = al[v & 63];
	}
	if (n - i == 1)
	{
		unsigned	v = in[i] << 16;

		out[o++] = al[v >> 18];
		out[o++] = al[(v >> 12) & 63];
	}
	else if (n - i == 2)
	{
		unsigned	v = (in[i] << 16) | (in[i + 1] << 8);

		out[o++] = al[v >> 18];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = al[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

static char *
b64s(const char *s)
{
	return b64url((const unsigned char *) s, strlen(s));
}

/* Another base64url character (inner positions only: keeps the encoding canonical). */
static char
flip_b64(char c)
{
	return c == 'A' ? 'B' : 'A';
}

static char *
cat3(const char *a, const char *sep, const char *b)
{
	char	   *r = malloc(strlen(a) + strlen(sep) + strlen(b) + 1);

	sprintf(r, "%s%s%s", a, sep, b);
	return r;
}

/* Signature bytes over input; sets *siglen.  ES256 in raw R||S unless der. */
static unsigned char *
sign_raw(const char *alg, const void *hkey, size_t hkeylen, EVP_PKEY *pkey,
		 bool der, const char *input, size_t *siglen)
{
	unsigned char *sig = malloc(1024);

	if (strcmp(alg, "HS256") == 0)
	{
		unsigned int n = 0;

		HMAC(EVP_sha256(), hkey, (int) hkeylen, (const unsigned char *) input,
			 strlen(input), sig, &n);
		*siglen = n;
		return sig;
	}
	else
	{
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		size_t		n = 1024;

		if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
			EVP_DigestSign(ctx, sig, &n, (const unsigned char *) input, strlen(input)) != 1)
		{
			fprintf(stderr, "signing failed\n");
			ERR_print_errors_fp(stderr);
			exit(2);
		}
		EVP_MD_CTX_free(ctx);
		if (strcmp(alg, "ES256") == 0 && !der)
		{
			const unsigned char *p = sig;
			ECDSA_SIG  *es = d2i_ECDSA_SIG(NULL, &p, (long) n);
			const BIGNUM *r,
					   *s;

			ECDSA_SIG_get0(es, &r, &s);
			BN_bn2binpad(r, sig, 32);
			BN_bn2binpad(s, sig + 32, 32);
			ECDSA_SIG_free(es);
			n = 64;
		}
		*siglen = n;
		return sig;
	}
}

/* "h.p" + "." + signature, segments given already encoded. */
static char *
sign_segments(const char *alg, const void *hkey, size_t hkeylen, EVP_PKEY *pkey,
			  const char *hseg, const char *pseg)
{
	char	   *input = cat3(hseg, ".", pseg);
	size_t		n;
	unsigned char *sig = sign_raw(alg, hkey, hkeylen, pkey, false, input, &n);
	char	   *s = b64url(sig, n);
	char	   *tok = cat3(input, ".", s);

	free(input);
	free(sig);
	free(s);
	return tok;
}

/* Token with the given header JSON (NULL: {"alg":<alg>,"typ":"JWT"}) and payload JSON. */
static char *
make_token(const char *alg, const void *hkey, size_t hkeylen, EVP_PKEY *pkey,
		   const char *header, const char *payload)
{
	char		hdr[256];
	char	   *h,
			   *p,
			   *tok;

	if (header == NULL)
	{
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
		header = hdr;
	}
	h = b64s(header);
	p = b64s(payload);
	tok = sign_segments(alg, hkey, hkeylen, pkey, h, p);
	free(h);
	free(p);
	return tok;
}

static char *
hs(const char *payload)
{
	return make_token("HS256", SECRET, strlen(SECRET), NULL, NULL, payload);
}

static TgJwtResult
verify(const TgJwtKey *key, const char *tok, int leeway, TgJwtClaims *c,
	   char *err)
{
	return tg_jwt_verify(key, tok, strlen(tok), NOW, leeway, 0, 0, c, err, 128);
}

static char *
pubkey_pem(EVP_PKEY *pkey)
{
	BIO		   *b = BIO_new(BIO_s_mem());
	char	   *data;
	long		n;
	char	   *r;

	PEM_write_bio_PUBKEY(b, pkey);
	n = BIO_get_mem_data(b, &data);
	r = malloc(n + 1);
	memcpy(r, data, n);
	r[n] = '\0';
	BIO_free(b);
	return r;
}

static char *
privkey_pem(EVP_PKEY *pkey)
{
	BIO		   *b = BIO_new(BIO_s_mem());
	char	   *data;
	long		n;
	char	   *r;

	PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &data);
	r = malloc(n + 1);
	memcpy(r, data, n);
	r[n] = '\0';
	BIO_free(b);
	return r;
}

/* PEM with real newlines replaced by the two characters backslash, n. */
static char *
escape_newlines(const char *s)
{
	char	   *r = malloc(strlen(s) * 2 + 1);
	char	   *o = r;

	for (; *s; s++)
	{
		if (*s == '\n')
		{
			*o++ = '\\';
			*o++ = 'n';
		}
		else
			*o++ = *s;
	}
	*o = '\0';
	return r;
}

/* ------------------------------------------------------------------------
 * Vector files
 */

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	if (fread(buf, 1, n, f) != (size_t) n)
	{
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t) n;
	return buf;
}

/* Decode doc.<k1>.<k2> as a string into out; false if absent. */
static bool
json_path_string(const char *doc, size_t len, const char *k1, const char *k2,
				 char *out, size_t outlen)
{
	TgJsonValue root,
				a,
				b;

	if (!tg_json_parse(doc, len, 64, &root))
		return false;
	if (tg_json_object_get(&root, k1, &a) != 1)
		return false;
	if (tg_json_object_get(&a, k2, &b) != 1)
		return false;
	return tg_json_string_decode(&b, out, outlen, NULL) >= 0;
}

static void
test_vector_token(void)
{
	const char *dir = getenv("TOPGUN_VECTORS");
	char		path[1024];
	char		secret[256];
	char		token[4096];
	char	   *doc;
	size_t		len;
	TgJwtKey	key;
	TgJwtClaims c;
	char		err[128];
	TgJwtResult r;

	if (dir == NULL)
		dir = "../../../shared/vectors";
	snprintf(path, sizeof(path), "%s/messages/session_transcript.json", dir);
	doc = read_file(path, &len);
	CHECK(doc != NULL, "cannot read %s", path);
	if (doc == NULL)
		return;
	CHECK(json_path_string(doc, len, "session", "jwt_secret_hs256", secret, sizeof(secret)),
		  "session.jwt_secret_hs256 missing");
	free(doc);
	snprintf(path, sizeof(path), "%s/messages/c2s_AUTH.json", dir);
	doc = read_file(path, &len);
	CHECK(doc != NULL, "cannot read %s", path);
	if (doc == NULL)
		return;
	CHECK(json_path_string(doc, len, "message", "token", token, sizeof(token)),
		  "message.token missing");
	free(doc);

	CHECK(tg_jwt_key_init_hmac(&key, secret, strlen(secret), err, sizeof(err)), "%s", err);
	r = tg_jwt_verify(&key, token, strlen(token), NOW, 0, 0, 0, &c, err, sizeof(err));
	CHECK(r == TG_JWT_OK, "vector token: %s (%s)", tg_jwt_result_name(r), err);
	CHECK(c.has_sub && strcmp(c.sub, "user-1") == 0, "sub %s", c.sub);
	CHECK(c.has_user_id && strcmp(c.user_id, "user-1") == 0, "userId %s", c.user_id);
	CHECK(c.nroles == 1 && strcmp(c.roles[0], "USER") == 0 && !c.roles_defaulted,
		  "roles %d", c.nroles);
	CHECK(c.has_iat && c.iat == 1736000000.0 && !c.has_exp && !c.has_nbf, "iat %f", c.iat);
	/* no exp: accepted at any time, unless exp is required */
	r = tg_jwt_verify(&key, token, strlen(token), NOW + 10 * 365 * 86400, 0, 0, 0, &c, err, sizeof(err));
	CHECK(r == TG_JWT_OK, "vector token later: %s", err);
	r = tg_jwt_verify(&key, token, strlen(token), NOW, 0, 0, TG_JWT_REQUIRE_EXP, &c, err, sizeof(err));
	CHECK(r == TG_JWT_BAD_CLAIMS && strcmp(err, "jwt expiry required") == 0, "require exp: %s", err);

	/* the protocol example token "abc": jsonwebtoken says "jwt malformed" */
	snprintf(path, sizeof(path), "%s/messages/c2s_AUTH_protocol_example.json", dir);
	doc = read_file(path, &len);
	CHECK(doc != NULL && json_path_string(doc, len, "message", "token", token, sizeof(token)),
		  "cannot read %s", path);
	free(doc);
	r = tg_jwt_verify(&key, token, strlen(token), NOW, 0, 0, 0, &c, err, sizeof(err));
	CHECK(r == TG_JWT_MALFORMED && strcmp(err, "jwt malformed") == 0, "\"%s\": %s", token, err);
	tg_jwt_key_free(&key);

	/*
	 * The same token under another secret gives the text that the reference
	 * server's AUTH_FAIL vector carries.
	 */
	snprintf(path, sizeof(path), "%s/messages/s2c_AUTH_FAIL.json", dir);
	doc = read_file(path, &len);
	CHECK(doc != NULL && json_path_string(doc, len, "message", "error", secret, sizeof(secret)),
		  "cannot read %s", path);
	free(doc);
	snprintf(path, sizeof(path), "%s/messages/c2s_AUTH.json", dir);
	doc = read_file(path, &len);
	CHECK(doc != NULL && json_path_string(doc, len, "message", "token", token, sizeof(token)),
		  "cannot read %s", path);
	free(doc);
	CHECK(tg_jwt_key_init_hmac(&key, "vector-secret-not-for-productioN", 32, err, sizeof(err)), "%s", err);
	r = tg_jwt_verify(&key, token, strlen(token), NOW, 0, 0, 0, &c, err, sizeof(err));
	CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, secret) == 0, "%s vs vector \"%s\"", err, secret);
	tg_jwt_key_free(&key);
}

/* ------------------------------------------------------------------------
 * JSON reader
 */

static bool
jvalid(const char *s)
{
	TgJsonValue v;

	return tg_json_parse(s, strlen(s), 8, &v);
}

static void
test_json(void)
{
	static const char *good[] = {
		"{}", "[]", " {\"a\" : [1, -2.5e+3, 0, 0.0, 1E2, true, false, null, \"x\"]} ",
		"\"\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\"", "0", "-0", "\"\xc3\xa9\xf0\x9f\x98\x80\"",
		"[[[[[[[[]]]]]]]]", "1e400", "\"\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"", "[false,true]",
	};
	static const char *bad[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "01", "1.", ".5", "-", "+1",
		"1e", "1e+", "NaN", "Infinity", "tru", "nul", "[1] x", "{} {}", "\"abc", "\"\\x\"",
		"\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\t\"", "\"\xc0\x80\"",
		"\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"\xc3\"", "[[[[[[[[[]]]]]]]]]",
		"\"\xe0\x9f\xbf\"", "\"\x80\"", "\"\xe2\x82", "\"\xe2\x82\"", "\"\xf5\x80\x80\x80\"",
		"\"\\uD800\\uD800\"", "\"\\u00G0\"", "\"\\", "[1,", "{\"a\":", "[01]", "-01", "1.e5",
		"/*c*/{}", "{\"a\" 1}", "[1 2]", "\x00",
	};
	TgJsonValue root,
				v,
				k;
	TgJsonIter	it;
	double		d;
	char		buf[64];
	bool		has_nul;
	int			n;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK(jvalid(good[i]), "should parse: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!jvalid(bad[i]), "should not parse: %s", bad[i]);
	/* an embedded NUL byte in the buffer is not whitespace */
	CHECK(!tg_json_parse("{}\0", 3, 8, &root), "NUL after value");

	/* every escape and raw UTF-8 decode to the right bytes */
	{
		const char *doc = "\"a\\b\\f\\n\\r\\t\\u20AC\\u00e9\\uD83D\\uDE00\xc3\xa9\xe2\x82\xac\\\"\\/\"";
		const char *want = "a\b\f\n\r\t\xe2\x82\xac\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9\xe2\x82\xac\"/";
		long		dn;

		CHECK(tg_json_parse(doc, strlen(doc), 1, &v), "escape doc");
		dn = tg_json_string_decode(&v, buf, sizeof(buf), &has_nul);
		CHECK(dn == (long) strlen(want) && memcmp(buf, want, dn + 1) == 0 && !has_nul,
			  "escape decode (%ld bytes)", dn);
		CHECK(tg_json_string_equals(&v, want), "escape equals");
		CHECK(!tg_json_string_equals(&v, "a"), "escape prefix not equal");
	}

	/* iteration, lookup, decoding */
	{
		const char *doc = "{\"a\":[1,{\"x\":\"]}\"},\"s\"],\"b\" : \"h\\u0069\\u0000\", \"c\":-12.5e-1,\"a\":2}";

		CHECK(tg_json_parse(doc, strlen(doc), 8, &root) && root.type == TG_JSON_OBJECT, "doc");
		n = tg_json_object_get(&root, "a", &v);
		CHECK(n == 2 && v.type == TG_JSON_ARRAY, "dup count %d", n);
		tg_json_iter_init(&it, &v);
		n = 0;
		while (tg_json_array_next(&it, &k))
			n++;
		CHECK(n == 3, "array elems %d", n);
		CHECK(tg_json_object_get(&root, "b", &v) == 1 &&
			  tg_json_string_decode(&v, buf, sizeof(buf), &has_nul) == 3 && has_nul &&
			  memcmp(buf, "hi\0", 3) == 0, "decode with NUL");
		CHECK(!tg_json_string_equals(&v, "hi"), "NUL string is not hi");
		CHECK(tg_json_string_decode(&v, buf, 3, NULL) == -1, "too small buffer");
		CHECK(tg_json_object_get(&root, "c", &v) == 1 && tg_json_number(&v, &d) && d == -1.25,
			  "number %f", d);
		CHECK(tg_json_object_get(&root, "zz", NULL) == 0, "absent");
	}
	{
		static const struct
		{
			const char *s;
			double		d;
		}			nums[] = {
			{"1736000000", 1736000000.0}, {"1736000000.5", 1736000000.5}, {"1.5e3", 1500.0},
			{"-0.25", -0.25}, {"1e-5", 1e-5}, {"0", 0.0}, {"12345678901234567890123", 1.2345678901234568e22},
			{"0.000000000000000000000000000001", 1e-30}, {"1e308", 1e308}, {"1e-400", 0.0},
			{"17360000000000000000000e-13", 1736000000.0},
		};

		for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		{
			bool		ok = tg_json_parse(nums[i].s, strlen(nums[i].s), 1, &v) &&
				tg_json_number(&v, &d);
			double		rel = nums[i].d == 0 ? d : (d - nums[i].d) / nums[i].d;

			CHECK(ok && rel < 1e-15 && rel > -1e-15, "number %s -> %.17g", nums[i].s, d);
		}
		CHECK(tg_json_parse("1e400", 5, 1, &v) && !tg_json_number(&v, &d), "1e400 is infinite");
		CHECK(tg_json_parse("-1e999", 6, 1, &v) && !tg_json_number(&v, &d), "-1e999 is infinite");
	}
}

/* ------------------------------------------------------------------------
 * HS256
 */

static void
test_hs256(void)
{
	TgJwtKey	key;
	TgJwtClaims c;
	char		err[128];
	char		buf[512];
	char	   *t;
	TgJwtResult r;

	CHECK(tg_jwt_key_init_hmac(&key, SECRET, strlen(SECRET), err, sizeof(err)), "%s", err);

	/* happy path */
	t = hs("{\"sub\":\"alice\",\"roles\":[\"ADMIN\",\"USER\"],\"exp\":1736000600,\"nbf\":1735999000,\"iat\":1735999000}");
	r = verify(&key, t, 0, &c, err);
	CHECK(r == TG_JWT_OK && err[0] == '\0', "happy: %s", err);
	CHECK(strcmp(c.sub, "alice") == 0 && strcmp(c.user_id, "alice") == 0, "ids");
	CHECK(c.nroles == 2 && strcmp(c.roles[0], "ADMIN") == 0 && strcmp(c.roles[1], "USER") == 0, "roles");
	CHECK(c.has_exp && c.exp == 1736000600.0 && c.has_nbf && c.has_iat, "times");
	/* out may be NULL, token need not be NUL-terminated */
	{
		size_t		n = strlen(t);
		char	   *copy = malloc(n);

		memcpy(copy, t, n);
		r = tg_jwt_verify(&key, copy, n, NOW, 0, 0, 0, NULL, err, sizeof(err));
		CHECK(r == TG_JWT_OK, "unterminated: %s", err);
		free(copy);
	}
	/* a one-byte-shorter token is damaged */
	r = tg_jwt_verify(&key, t, strlen(t) - 1, NOW, 0, 0, 0, &c, err, sizeof(err));
	CHECK(r == TG_JWT_BAD_SIGNATURE || r == TG_JWT_MALFORMED, "truncated: %s", err);
	free(t);

	/* defaults: roles ["USER"], userId from sub; explicit userId wins */
	t = hs("{\"sub\":\"bob\"}");
	CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && c.roles_defaulted && c.nroles == 1 &&
		  strcmp(c.roles[0], "USER") == 0 && strcmp(c.user_id, "bob") == 0, "defaults: %s", err);
	free(t);
	t = hs("{\"sub\":\"bob\",\"userId\":\"u-7\",\"roles\":[]}");
	CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && c.nroles == 0 && !c.roles_defaulted &&
		  strcmp(c.user_id, "u-7") == 0, "userId: %s", err);
	free(t);
	t = hs("{}");
	CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && !c.has_sub && !c.has_user_id, "empty: %s", err);
	free(t);
	/* escapes decoded in claims and keys */
	t = hs("{\"s\\u0075b\":\"\\ud83d\\ude00\\u00e9\",\"roles\":[\"A\\/B\"]}");
	CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && strcmp(c.sub, "\xf0\x9f\x98\x80\xc3\xa9") == 0 &&
		  strcmp(c.roles[0], "A/B") == 0, "escapes: %s", err);
	free(t);

	/* wrong secret */
	{
		TgJwtKey	other;

		tg_jwt_key_init_hmac(&other, SECRET "x", strlen(SECRET) + 1, err, sizeof(err));
		t = hs("{\"sub\":\"alice\"}");
		r = verify(&other, t, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "invalid signature") == 0, "wrong secret: %s", err);
		free(t);
		tg_jwt_key_free(&other);
	}

	/* tampered payload / signature */
	{
		char	   *t1 = hs("{\"sub\":\"alice\",\"roles\":[\"USER\"]}");
		char	   *t2 = hs("{\"sub\":\"alice\",\"roles\":[\"ADMIN\"]}");
		char	   *d1a = strchr(t1, '.'),
				   *d1b = strrchr(t1, '.'),
				   *d2a = strchr(t2, '.'),
				   *d2b = strrchr(t2, '.');

		/* t2's payload with t1's signature */
		snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int) (d1a - t1), t1, (int) (d2b - d2a), d2a, d1b);
		r = verify(&key, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "invalid signature") == 0, "tampered payload: %s", err);
		/* flip the first signature character */
		strcpy(buf, t1);
		buf[d1b - t1 + 1] = buf[d1b - t1 + 1] == 'A' ? 'B' : 'A';
		r = verify(&key, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE, "tampered signature: %s", err);
		/* only the last signature byte differs (catches a partial compare) */
		{
			char	   *input = strndup(t1, d1b - t1);
			size_t		n;
			unsigned char *sig = sign_raw("HS256", SECRET, strlen(SECRET), NULL, false, input, &n);
			char	   *s;

			sig[31] ^= 0x01;
			s = b64url(sig, n);
			snprintf(buf, sizeof(buf), "%s.%s", input, s);
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_BAD_SIGNATURE, "last byte of HMAC: %s", err);
			free(s);
			sig[31] ^= 0x01;
			sig[0] ^= 0x80;
			s = b64url(sig, n);
			snprintf(buf, sizeof(buf), "%s.%s", input, s);
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_BAD_SIGNATURE, "first byte of HMAC: %s", err);
			free(s);
			free(sig);
			free(input);
		}
		/* truncated signature (31 bytes) */
		strcpy(buf, t1);
		buf[strlen(buf) - 3] = '\0';
		r = verify(&key, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE, "short signature: %s", err);
		/* empty signature */
		snprintf(buf, sizeof(buf), "%.*s.", (int) (d1b - t1), t1);
		r = verify(&key, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "jwt signature is required") == 0, "no sig: %s", err);
		/* a signature longer than any supported key's */
		{
			char	   *big = malloc(4000);

			snprintf(big, 4000, "%.*s.", (int) (d1b - t1), t1);
			memset(big + strlen(big), 'A', 2000);
			big[d1b - t1 + 1 + 2000] = '\0';
			r = verify(&key, big, 0, &c, err);
			CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "invalid signature") == 0, "huge sig: %s", err);
			free(big);
		}
		free(t1);
		free(t2);
	}

	/* alg: none, others, missing, not a string, duplicated, crit, typ */
	{
		static const struct
		{
			const char *hdr;
			TgJwtResult want;
			const char *text;
		}			hdrs[] = {
			{"{\"alg\":\"none\",\"typ\":\"JWT\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"None\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"HS512\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"hs256\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"HS256 \"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"HS256\\u0000\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"typ\":\"JWT\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":null}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":[\"HS256\"]}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"none\",\"\\u0061lg\":\"HS256\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\\u0000\":\"HS256\"}", TG_JWT_BAD_ALGORITHM, "invalid algorithm"},
			{"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", TG_JWT_BAD_ALGORITHM, "invalid token"},
			{"{\"alg\":\"HS256\",\"crit\":[]}", TG_JWT_BAD_ALGORITHM, "invalid token"},
			{"{\"alg\":\"HS256\",\"typ\":\"JWS\"}", TG_JWT_BAD_ALGORITHM, "invalid token"},
			{"{\"alg\":\"HS256\",\"typ\":1}", TG_JWT_BAD_ALGORITHM, "invalid token"},
			{"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}", TG_JWT_BAD_ALGORITHM, "invalid token"},
			{"{\"\\u0061lg\":\"HS256\"}", TG_JWT_OK, ""},
			{"{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}", TG_JWT_OK, ""},
			{"{\"a_rather_long_header_field_name\":{\"alg\":\"none\"},\"alg\":\"HS256\"}", TG_JWT_OK, ""},
			{" { \"alg\" : \"HS256\" } ", TG_JWT_OK, ""},
			{"[\"HS256\"]", TG_JWT_MALFORMED, "invalid token"},
			{"not json", TG_JWT_MALFORMED, "invalid token"},
			{"{\"alg\":\"HS256\"", TG_JWT_MALFORMED, "invalid token"},
			{"\"HS256\"", TG_JWT_MALFORMED, "invalid token"},
		};

		for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		{
			t = make_token("HS256", SECRET, strlen(SECRET), NULL, hdrs[i].hdr, "{\"sub\":\"a\"}");
			r = verify(&key, t, 0, &c, err);
			CHECK(r == hdrs[i].want && strcmp(err, hdrs[i].text) == 0,
				  "header %s: got %s (%s)", hdrs[i].hdr, tg_jwt_result_name(r), err);
			free(t);
		}
		/* unsigned alg:none token */
		{
			char	   *h = b64s("{\"alg\":\"none\"}"),
					   *p = b64s("{\"sub\":\"root\",\"roles\":[\"ADMIN\"]}");

			snprintf(buf, sizeof(buf), "%s.%s.", h, p);
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_BAD_ALGORITHM && strcmp(err, "invalid algorithm") == 0, "none: %s", err);
			free(h);
			free(p);
		}
	}

	/* time claims */
	{
		static const struct
		{
			const char *payload;
			int			leeway;
			TgJwtResult want;
			const char *text;
		}			times[] = {
			{"{\"exp\":1735999990}", 0, TG_JWT_EXPIRED, "jwt expired"},
			{"{\"exp\":1736000000}", 0, TG_JWT_EXPIRED, "jwt expired"},	/* exp == now */
			{"{\"exp\":1736000001}", 0, TG_JWT_OK, ""},
			{"{\"exp\":1736000000.5}", 0, TG_JWT_OK, ""},
			{"{\"exp\":1735999970}", 60, TG_JWT_OK, ""},	/* 30 s late, 60 s leeway */
			{"{\"exp\":1735999910}", 60, TG_JWT_EXPIRED, "jwt expired"},	/* 90 s late */
			{"{\"exp\":1735999970}", -5, TG_JWT_EXPIRED, "jwt expired"},
			{"{\"nbf\":1736000010}", 0, TG_JWT_NOT_ACTIVE, "jwt not active"},
			{"{\"nbf\":1736000000}", 0, TG_JWT_OK, ""},
			{"{\"nbf\":1736000030}", 60, TG_JWT_OK, ""},
			{"{\"nbf\":1736000090}", 60, TG_JWT_NOT_ACTIVE, "jwt not active"},
			{"{\"nbf\":1736000010,\"exp\":1}", 0, TG_JWT_NOT_ACTIVE, "jwt not active"},
			{"{\"exp\":\"1736000600\"}", 0, TG_JWT_BAD_CLAIMS, "invalid exp value"},
			{"{\"exp\":null}", 0, TG_JWT_BAD_CLAIMS, "invalid exp value"},
			{"{\"exp\":1e400}", 0, TG_JWT_BAD_CLAIMS, "invalid exp value"},
			{"{\"exp\":1e308}", 0, TG_JWT_OK, ""},
			{"{\"exp\":-1e308}", 0, TG_JWT_EXPIRED, "jwt expired"},
			{"{\"exp\":123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890}", 0, TG_JWT_BAD_CLAIMS, "invalid exp value"},
			{"{\"nbf\":-1e999}", 0, TG_JWT_BAD_CLAIMS, "invalid nbf value"},
			{"{\"nbf\":true}", 0, TG_JWT_BAD_CLAIMS, "invalid nbf value"},
			{"{\"iat\":{}}", 0, TG_JWT_BAD_CLAIMS, "invalid iat value"},
			{"{\"iat\":9e999}", 0, TG_JWT_BAD_CLAIMS, "invalid iat value"},
			{"{\"exp\":1736000600,\"exp\":1735000000}", 0, TG_JWT_BAD_CLAIMS, "invalid token"},
			{"{\"exp\":1736000600,\"\\u0065xp\":1735000000}", 0, TG_JWT_BAD_CLAIMS, "invalid token"},
			{"{\"sub\":\"a\",\"sub\":\"b\"}", 0, TG_JWT_BAD_CLAIMS, "invalid token"},
			{"{\"a_long_unrelated_claim\":[1,{\"exp\":1}],\"exp\":1736000600}", 0, TG_JWT_OK, ""},
			{"{\"roles\":[\"USER\"],\"roles\":[\"ADMIN\"]}", 0, TG_JWT_BAD_CLAIMS, "invalid token"},
		};

		for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		{
			t = hs(times[i].payload);
			r = verify(&key, t, times[i].leeway, &c, err);
			CHECK(r == times[i].want && strcmp(err, times[i].text) == 0,
				  "claims %s leeway %d: got %s (%s)", times[i].payload, times[i].leeway,
				  tg_jwt_result_name(r), err);
			free(t);
		}
		t = hs("{\"exp\":1736000600}");
		r = tg_jwt_verify(&key, t, strlen(t), NOW, 0, 0, TG_JWT_REQUIRE_EXP, &c, err, sizeof(err));
		CHECK(r == TG_JWT_OK, "require exp present: %s", err);
		free(t);
	}

	/* sub / userId / roles shapes */
	{
		char		role64[65],
					role65[66],
					id256[257],
					id257[258];
		char		payload[4096];
		char	   *p;

		static const struct
		{
			const char *payload;
			TgJwtResult want;
			const char *text;
		}			shapes[] = {
			{"{\"roles\":\"ADMIN\"}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"roles\":{\"0\":\"ADMIN\"}}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"roles\":null}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"roles\":[1]}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"roles\":[[\"ADMIN\"]]}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"roles\":[\"AD\\u0000MIN\"]}", TG_JWT_BAD_CLAIMS, "invalid roles value"},
			{"{\"sub\":42}", TG_JWT_BAD_CLAIMS, "invalid sub value"},
			{"{\"sub\":\"a\\u0000b\"}", TG_JWT_BAD_CLAIMS, "invalid sub value"},
			{"{\"userId\":[\"x\"]}", TG_JWT_BAD_CLAIMS, "invalid userId value"},
			{"[{\"sub\":\"a\"}]", TG_JWT_MALFORMED, "invalid token"},
			{"\"sub\"", TG_JWT_MALFORMED, "invalid token"},
			{"{\"sub\":\"a\"} x", TG_JWT_MALFORMED, "invalid token"},
			{"{\"sub\":\"a\",}", TG_JWT_MALFORMED, "invalid token"},
			{"", TG_JWT_MALFORMED, "invalid token"},
			{"{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", TG_JWT_MALFORMED, "invalid token"},
			{"{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", TG_JWT_OK, ""},
		};

		memset(role64, 'r', 64);
		role64[64] = '\0';
		memset(role65, 'r', 65);
		role65[65] = '\0';
		memset(id256, 'i', 256);
		id256[256] = '\0';
		memset(id257, 'i', 257);
		id257[257] = '\0';
		for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		{
			t = hs(shapes[i].payload);
			r = verify(&key, t, 0, &c, err);
			CHECK(r == shapes[i].want && strcmp(err, shapes[i].text) == 0,
				  "payload %s: got %s (%s)", shapes[i].payload, tg_jwt_result_name(r), err);
			free(t);
		}

		/* role length and count limits */
		snprintf(payload, sizeof(payload), "{\"roles\":[\"%s\"]}", role64);
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && strcmp(c.roles[0], role64) == 0, "64-byte role: %s", err);
		free(t);
		snprintf(payload, sizeof(payload), "{\"roles\":[\"%s\"]}", role65);
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_BAD_CLAIMS, "65-byte role: %s", err);
		free(t);
		p = payload + sprintf(payload, "{\"roles\":[");
		for (int i = 0; i < 32; i++)
			p += sprintf(p, "%s\"R%d\"", i ? "," : "", i);
		strcpy(p, "]}");
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && c.nroles == 32 && strcmp(c.roles[31], "R31") == 0,
			  "32 roles: %s", err);
		free(t);
		strcpy(p, ",\"R32\"]}");
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_BAD_CLAIMS, "33 roles: %s", err);
		free(t);
		snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", id256);
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && strcmp(c.user_id, id256) == 0, "256-byte sub: %s", err);
		free(t);
		snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", id257);
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_BAD_CLAIMS &&
			  strcmp(err, "sub longer than 256 bytes") == 0, "257-byte sub: %s", err);
		free(t);
		snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"userId\":\"%s\"}", id257);
		t = hs(payload);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_BAD_CLAIMS &&
			  strcmp(err, "userId longer than 256 bytes") == 0, "257-byte userId: %s", err);
		free(t);
		/* 86 escapes of 3 bytes each: 516 JSON bytes, 258 decoded: still too long */
		{
			char		esc[700];
			char	   *q = esc;

			for (int i = 0; i < 86; i++)
				q += sprintf(q, "\\u20ac");
			snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", esc);
			t = hs(payload);
			CHECK(verify(&key, t, 0, &c, err) == TG_JWT_BAD_CLAIMS &&
				  strcmp(err, "sub longer than 256 bytes") == 0, "escaped 258-byte sub: %s", err);
			free(t);
			/* 85 of them decode to 255 bytes from 510 JSON bytes: accepted */
			esc[85 * 6] = '\0';
			snprintf(payload, sizeof(payload), "{\"sub\":\"%s\"}", esc);
			t = hs(payload);
			CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK && strlen(c.sub) == 255,
				  "escaped 255-byte sub: %s", err);
			free(t);
		}
	}

	/* segments and base64url strictness; every variant is correctly signed */
	{
		char	   *h = b64s("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
		char	   *p;
		char		seg[256];
		char		pj[64];
		size_t		n;

		/* find a payload whose encoding leaves 2 characters in the last group */
		strcpy(pj, "{\"sub\":\"a\"}");
		while ((n = strlen(p = b64s(pj))) % 4 != 2)
		{
			free(p);
			memmove(pj + 1, pj, strlen(pj) + 1);
			pj[0] = ' ';
		}
		t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, p);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_OK, "canonical base: %s", err);
		free(t);

		/* padding */
		snprintf(seg, sizeof(seg), "%s==", p);
		t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, seg);
		r = verify(&key, t, 0, &c, err);
		CHECK(r == TG_JWT_MALFORMED && strcmp(err, "jwt malformed") == 0, "padding: %s", err);
		free(t);
		/* non-canonical trailing bits: last char + 1 keeps the byte, sets a spare bit */
		strcpy(seg, p);
		seg[n - 1] = seg[n - 1] == 'w' ? 'x' : (seg[n - 1] == 'g' ? 'h' : (seg[n - 1] == 'Q' ? 'R' : 'B'));
		t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, seg);
		r = verify(&key, t, 0, &c, err);
		CHECK(r == TG_JWT_MALFORMED, "trailing bits (%c->%c): %s", p[n - 1], seg[n - 1], err);
		free(t);
		/* length mod 4 == 1 */
		snprintf(seg, sizeof(seg), "%sAAA", p);
		t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, seg);
		CHECK(verify(&key, t, 0, &c, err) == TG_JWT_MALFORMED, "mod 1: %s", err);
		free(t);
		/* '+' '/' whitespace, '%', NUL */
		{
			static const char subst[] = {'+', '/', ' ', '\n', '\t', '=', '%', '*'};

			for (size_t i = 0; i < sizeof(subst); i++)
			{
				strcpy(seg, p);
				seg[3] = subst[i];
				t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, seg);
				r = verify(&key, t, 0, &c, err);
				CHECK(r == TG_JWT_MALFORMED && strcmp(err, "jwt malformed") == 0,
					  "char 0x%02x in payload: %s", subst[i], err);
				free(t);
				/* in the header */
				strcpy(seg, h);
				seg[5] = subst[i];
				t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, seg, p);
				r = verify(&key, t, 0, &c, err);
				CHECK(r == TG_JWT_MALFORMED, "char 0x%02x in header: %s", subst[i], err);
				free(t);
			}
			/* in the signature */
			t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, p);
			strcpy(buf, t);
			buf[strlen(buf) - 5] = '+';
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_MALFORMED, "'+' in signature: %s", err);
			/* standard base64 with padding in the signature */
			snprintf(buf, sizeof(buf), "%s=", t);
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_MALFORMED, "'=' after signature: %s", err);
			/* embedded NUL inside the given length */
			strcpy(buf, t);
			buf[4] = '\0';
			r = tg_jwt_verify(&key, buf, strlen(t), NOW, 0, 0, 0, &c, err, sizeof(err));
			CHECK(r == TG_JWT_MALFORMED, "NUL inside: %s", err);
			/* leading/trailing whitespace around the token */
			snprintf(buf, sizeof(buf), " %s", t);
			CHECK(verify(&key, buf, 0, &c, err) == TG_JWT_MALFORMED, "leading space: %s", err);
			snprintf(buf, sizeof(buf), "%s\n", t);
			CHECK(verify(&key, buf, 0, &c, err) == TG_JWT_MALFORMED, "trailing newline: %s", err);

			/* two and four segments; empty */
			snprintf(buf, sizeof(buf), "%s.%s", h, p);
			r = verify(&key, buf, 0, &c, err);
			CHECK(r == TG_JWT_MALFORMED && strcmp(err, "jwt malformed") == 0, "two segments: %s", err);
			snprintf(buf, sizeof(buf), "%s.", t);
			CHECK(verify(&key, buf, 0, &c, err) == TG_JWT_MALFORMED, "four segments: %s", err);
			snprintf(buf, sizeof(buf), "%s.%s", t, strrchr(t, '.') + 1);
			CHECK(verify(&key, buf, 0, &c, err) == TG_JWT_MALFORMED, "four segments (2): %s", err);
			CHECK(verify(&key, "..", 0, &c, err) == TG_JWT_MALFORMED, "..: %s", err);
			CHECK(verify(&key, "", 0, &c, err) == TG_JWT_MALFORMED && strcmp(err, "jwt must be provided") == 0,
				  "empty: %s", err);
			snprintf(buf, sizeof(buf), ".%s.%s", p, strrchr(t, '.') + 1);
			CHECK(verify(&key, buf, 0, &c, err) == TG_JWT_MALFORMED, "empty header: %s", err);
			free(t);
		}
		/* empty payload segment is decodable but not JSON */
		t = sign_segments("HS256", SECRET, strlen(SECRET), NULL, h, "");
		r = verify(&key, t, 0, &c, err);
		CHECK(r == TG_JWT_MALFORMED && strcmp(err, "invalid token") == 0, "empty payload: %s", err);
		free(t);
		free(p);
		free(h);
	}

	/* size caps */
	{
		char	   *payload = malloc(20000);
		size_t		tl;

		memset(payload, 0, 20000);
		strcpy(payload, "{\"sub\":\"big\",\"pad\":\"");
		memset(payload + strlen(payload), 'x', 7000);
		strcat(payload, "\"}");
		t = hs(payload);
		tl = strlen(t);
		CHECK(tl > 8192, "token length %zu", tl);
		r = tg_jwt_verify(&key, t, tl, NOW, 0, 0, 0, &c, err, sizeof(err));
		CHECK(r == TG_JWT_TOO_LARGE && strcmp(err, "jwt too large") == 0, "default cap: %s", err);
		r = tg_jwt_verify(&key, t, tl, NOW, 0, 16384, 0, &c, err, sizeof(err));
		CHECK(r == TG_JWT_OK, "raised cap: %s", err);
		r = tg_jwt_verify(&key, t, tl, NOW, 0, tl, 0, &c, err, sizeof(err));
		CHECK(r == TG_JWT_OK, "cap == length: %s", err);
		r = tg_jwt_verify(&key, t, tl, NOW, 0, tl - 1, 0, &c, err, sizeof(err));
		CHECK(r == TG_JWT_TOO_LARGE, "cap == length - 1: %s", err);
		free(t);
		/* larger than the hard cap, even when the caller asks for more */
		memset(payload + 20, 'x', 14000);
		strcpy(payload + 14020, "\"}");
		t = hs(payload);
		tl = strlen(t);
		r = tg_jwt_verify(&key, t, tl, NOW, 0, 1 << 20, 0, &c, err, sizeof(err));
		CHECK(tl > TG_JWT_HARD_MAX_TOKEN_BYTES && r == TG_JWT_TOO_LARGE, "hard cap: %s", err);
		free(t);
		t = hs("{\"sub\":\"a\"}");
		r = tg_jwt_verify(&key, t, strlen(t), NOW, 0, 20, 0, &c, err, sizeof(err));
		CHECK(r == TG_JWT_TOO_LARGE, "tiny cap: %s", err);
		free(t);
		free(payload);
	}

	/* err may be NULL; key must be initialised */
	{
		TgJwtKey	zero;

		t = hs("{\"exp\":1}");
		CHECK(tg_jwt_verify(&key, t, strlen(t), NOW, 0, 0, 0, &c, NULL, 0) == TG_JWT_EXPIRED, "NULL err");
		memset(&zero, 0, sizeof(zero));
		CHECK(tg_jwt_verify(&zero, t, strlen(t), NOW, 0, 0, 0, &c, err, sizeof(err)) == TG_JWT_BAD_ALGORITHM,
			  "zero key: %s", err);
		CHECK(tg_jwt_verify(NULL, t, strlen(t), NOW, 0, 0, 0, &c, err, sizeof(err)) == TG_JWT_BAD_ALGORITHM,
			  "NULL key: %s", err);
		free(t);
	}
	tg_jwt_key_free(&key);
	tg_jwt_key_free(&key);		/* idempotent */
	CHECK(!tg_jwt_key_init_hmac(&key, "", 0, err, sizeof(err)), "empty secret");
}

/* ------------------------------------------------------------------------
 * RS256 / ES256 and algorithm confusion
 */

static void
test_asymmetric(void)
{
	EVP_PKEY   *rsa = EVP_RSA_gen(2048);
	EVP_PKEY   *rsa2 = EVP_RSA_gen(2048);
	EVP_PKEY   *rsa1024 = EVP_RSA_gen(1024);
	EVP_PKEY   *ec = EVP_EC_gen("P-256");
	EVP_PKEY   *ec2 = EVP_EC_gen("P-256");
	EVP_PKEY   *ec384 = EVP_EC_gen("P-384");
	char	   *rsa_pem = pubkey_pem(rsa);
	char	   *ec_pem = pubkey_pem(ec);
	TgJwtKey	rk,
				ek,
				hk;
	TgJwtClaims c;
	char		err[256];
	char		buf[2048];
	char	   *t;
	TgJwtResult r;
	const char *payload = "{\"sub\":\"carol\",\"roles\":[\"USER\"],\"exp\":1736000600}";

	CHECK(rsa && rsa2 && rsa1024 && ec && ec2 && ec384, "key generation");
	CHECK(tg_jwt_key_load_pem(&rk, TG_JWT_RS256, rsa_pem, err, sizeof(err)) && rk.alg == TG_JWT_RS256,
		  "load RSA: %s", err);
	CHECK(tg_jwt_key_load_pem(&ek, TG_JWT_ES256, ec_pem, err, sizeof(err)) && ek.alg == TG_JWT_ES256,
		  "load EC: %s", err);
	CHECK(tg_jwt_key_init_hmac(&hk, SECRET, strlen(SECRET), err, sizeof(err)), "%s", err);
	CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty by key loading");

	/* RS256 happy path and failures */
	t = make_token("RS256", NULL, 0, rsa, NULL, payload);
	r = verify(&rk, t, 0, &c, err);
	CHECK(r == TG_JWT_OK && strcmp(c.sub, "carol") == 0, "RS256: %s", err);
	r = verify(&hk, t, 0, &c, err);
	CHECK(r == TG_JWT_BAD_ALGORITHM && strcmp(err, "invalid algorithm") == 0, "RS256 token vs HS256 key: %s", err);
	r = verify(&ek, t, 0, &c, err);
	CHECK(r == TG_JWT_BAD_ALGORITHM, "RS256 token vs ES256 key: %s", err);
	strcpy(buf, t);
	buf[strrchr(buf, '.') - buf + 10] = flip_b64(buf[strrchr(buf, '.') - buf + 10]);
	r = verify(&rk, buf, 0, &c, err);
	CHECK(r == TG_JWT_BAD_SIGNATURE, "RS256 tampered sig: %s", err);
	{
		/* the right signature without its last byte, and with an extra byte */
		char	   *input = strndup(t, strrchr(t, '.') - t);
		size_t		n;
		unsigned char *sig = sign_raw("RS256", NULL, 0, rsa, false, input, &n);
		char	   *s;

		CHECK(n == 256, "RSA-2048 signature is %zu bytes", n);
		s = b64url(sig, n - 1);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		r = verify(&rk, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE, "RS256 short sig: %s", err);
		free(s);
		sig[n] = 0;
		s = b64url(sig, n + 1);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		r = verify(&rk, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE, "RS256 long sig: %s", err);
		free(s);
		s = b64url(sig, n);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		CHECK(verify(&rk, buf, 0, &c, err) == TG_JWT_OK, "RS256 rebuilt: %s", err);
		free(s);
		free(sig);
		free(input);
	}
	free(t);
	t = make_token("RS256", NULL, 0, rsa2, NULL, payload);
	r = verify(&rk, t, 0, &c, err);
	CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "invalid signature") == 0, "RS256 other key: %s", err);
	free(t);
	t = make_token("RS256", NULL, 0, rsa, NULL, "{\"exp\":1}");
	r = verify(&rk, t, 0, &c, err);
	CHECK(r == TG_JWT_EXPIRED, "RS256 expired: %s", err);
	free(t);
	CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty by RS256 failures");

	/* algorithm confusion: HS256 token keyed with the RSA public key PEM text */
	t = make_token("HS256", rsa_pem, strlen(rsa_pem), NULL, NULL, payload);
	r = verify(&rk, t, 0, &c, err);
	CHECK(r == TG_JWT_BAD_ALGORITHM && strcmp(err, "invalid algorithm") == 0, "alg confusion: %s", err);
	free(t);
	/* ... and with the header lying that it is RS256 */
	t = make_token("HS256", rsa_pem, strlen(rsa_pem), NULL, "{\"alg\":\"RS256\"}", payload);
	r = verify(&rk, t, 0, &c, err);
	CHECK(r == TG_JWT_BAD_SIGNATURE, "HMAC signature under RS256 header: %s", err);
	free(t);
	t = make_token("HS256", ec_pem, strlen(ec_pem), NULL, NULL, payload);
	CHECK(verify(&ek, t, 0, &c, err) == TG_JWT_BAD_ALGORITHM, "alg confusion ES256: %s", err);
	free(t);

	/* ES256 happy path and failures */
	t = make_token("ES256", NULL, 0, ec, NULL, payload);
	r = verify(&ek, t, 0, &c, err);
	CHECK(r == TG_JWT_OK && strcmp(c.user_id, "carol") == 0, "ES256: %s", err);
	CHECK(verify(&rk, t, 0, &c, err) == TG_JWT_BAD_ALGORITHM, "ES256 token vs RS256 key: %s", err);
	CHECK(verify(&hk, t, 0, &c, err) == TG_JWT_BAD_ALGORITHM, "ES256 token vs HS256 key: %s", err);
	strcpy(buf, t);
	buf[strrchr(buf, '.') - buf + 3] = flip_b64(buf[strrchr(buf, '.') - buf + 3]);
	CHECK(verify(&ek, buf, 0, &c, err) == TG_JWT_BAD_SIGNATURE, "ES256 tampered sig: %s", err);
	free(t);
	t = make_token("ES256", NULL, 0, ec2, NULL, payload);
	CHECK(verify(&ek, t, 0, &c, err) == TG_JWT_BAD_SIGNATURE, "ES256 other key: %s", err);
	free(t);
	{
		char	   *h = b64s("{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
		char	   *p = b64s(payload);
		char	   *input = cat3(h, ".", p);
		size_t		n;
		unsigned char *raw = sign_raw("ES256", NULL, 0, ec, false, input, &n);
		unsigned char *der = sign_raw("ES256", NULL, 0, ec, true, input, &n);
		size_t		dern = n;
		unsigned char longer[65];
		char	   *s;

		/* raw R||S, 63 and 65 bytes */
		for (int len = 63; len <= 65; len += 2)
		{
			memcpy(longer, raw, 64);
			longer[64] = 0;
			s = b64url(longer, len);
			snprintf(buf, sizeof(buf), "%s.%s", input, s);
			r = verify(&ek, buf, 0, &c, err);
			CHECK(r == TG_JWT_BAD_SIGNATURE && strcmp(err, "invalid signature") == 0,
				  "ES256 %d-byte signature: %s", len, err);
			free(s);
		}
		/* correct 64 bytes works */
		s = b64url(raw, 64);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		CHECK(verify(&ek, buf, 0, &c, err) == TG_JWT_OK, "ES256 raw: %s", err);
		free(s);
		/* a DER signature (valid for OpenSSL) must be refused */
		s = b64url(der, dern);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		r = verify(&ek, buf, 0, &c, err);
		CHECK(r == TG_JWT_BAD_SIGNATURE, "ES256 DER signature (%zu bytes): %s", dern, err);
		free(s);
		/* r = 0 or s = 0 */
		memset(longer, 0, 64);
		memcpy(longer + 32, raw + 32, 32);
		s = b64url(longer, 64);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		CHECK(verify(&ek, buf, 0, &c, err) == TG_JWT_BAD_SIGNATURE, "ES256 r=0: %s", err);
		free(s);
		memset(longer, 0xff, 64);
		s = b64url(longer, 64);
		snprintf(buf, sizeof(buf), "%s.%s", input, s);
		CHECK(verify(&ek, buf, 0, &c, err) == TG_JWT_BAD_SIGNATURE, "ES256 r,s >= n: %s", err);
		free(s);
		free(raw);
		free(der);
		free(input);
		free(h);
		free(p);
	}
	CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty by ES256 failures");

	/* key loading rules */
	{
		TgJwtKey	k;
		char	   *pem;
		char	   *esc;
		char		path[] = "/tmp/test_jwt_keyXXXXXX";
		int			fd;

		pem = pubkey_pem(rsa1024);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_RS256, pem, err, sizeof(err)) && k.pkey == NULL,
			  "1024-bit RSA accepted");
		CHECK(!tg_jwt_key_init_from_config(&k, pem, err, sizeof(err)) && k.pkey == NULL,
			  "1024-bit RSA accepted from config");
		free(pem);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_RS256, ec_pem, err, sizeof(err)), "EC key as RS256");
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_ES256, rsa_pem, err, sizeof(err)), "RSA key as ES256");
		pem = pubkey_pem(ec384);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_ES256, pem, err, sizeof(err)), "P-384 key as ES256");
		free(pem);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_HS256, rsa_pem, err, sizeof(err)), "PEM as HS256");
		pem = privkey_pem(rsa);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_RS256, pem, err, sizeof(err)), "private key PEM accepted");
		free(pem);
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_RS256, "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n",
								   err, sizeof(err)), "garbage PEM");
		CHECK(!tg_jwt_key_load_pem(&k, TG_JWT_RS256, "/nonexistent/key.pem", err, sizeof(err)) &&
			  strstr(err, "could not open") != NULL, "missing file: %s", err);
		CHECK(ERR_peek_error() == 0, "OpenSSL error queue left non-empty by key refusals");

		/* from a file */
		fd = mkstemp(path);
		CHECK(fd >= 0 && write(fd, ec_pem, strlen(ec_pem)) == (ssize_t) strlen(ec_pem), "temp file");
		close(fd);
		CHECK(tg_jwt_key_load_pem(&k, TG_JWT_ES256, path, err, sizeof(err)), "load from file: %s", err);
		t = make_token("ES256", NULL, 0, ec, NULL, payload);
		CHECK(verify(&k, t, 0, &c, err) == TG_JWT_OK, "verify with file key: %s", err);
		free(t);
		tg_jwt_key_free(&k);
		unlink(path);

		/* PEM with literal \n (as in a JWT_SECRET environment variable) */
		esc = escape_newlines(rsa_pem);
		CHECK(strchr(esc, '\n') == NULL, "escaped");
		CHECK(tg_jwt_key_load_pem(&k, TG_JWT_RS256, esc, err, sizeof(err)), "escaped PEM: %s", err);
		tg_jwt_key_free(&k);

		/* TopGun configuration rule */
		CHECK(tg_jwt_key_init_from_config(&k, esc, err, sizeof(err)) && k.alg == TG_JWT_RS256,
			  "config RSA PEM: %s", err);
		t = make_token("RS256", NULL, 0, rsa, NULL, payload);
		CHECK(verify(&k, t, 0, &c, err) == TG_JWT_OK, "config RS256 verify: %s", err);
		free(t);
		t = make_token("HS256", esc, strlen(esc), NULL, NULL, payload);
		CHECK(verify(&k, t, 0, &c, err) == TG_JWT_BAD_ALGORITHM, "config RS256 confusion: %s", err);
		free(t);
		tg_jwt_key_free(&k);
		free(esc);
		CHECK(tg_jwt_key_init_from_config(&k, ec_pem, err, sizeof(err)) && k.alg == TG_JWT_ES256,
			  "config EC PEM: %s", err);
		tg_jwt_key_free(&k);
		CHECK(tg_jwt_key_init_from_config(&k, "line1\\nline2-and-enough-bytes-for-a-key", err, sizeof(err)) &&
			  k.alg == TG_JWT_HS256, "config HS256: %s", err);
		{
			const char *real = "line1\nline2-and-enough-bytes-for-a-key";

			t = make_token("HS256", real, strlen(real), NULL, NULL, payload);
			CHECK(verify(&k, t, 0, &c, err) == TG_JWT_OK, "config HS256 with newline: %s", err);
			free(t);
		}
		tg_jwt_key_free(&k);
		CHECK(!tg_jwt_key_init_from_config(&k, "", err, sizeof(err)), "config empty");
		CHECK(!tg_jwt_key_init_from_config(&k, NULL, err, sizeof(err)), "config NULL");
	}

	tg_jwt_key_free(&rk);
	tg_jwt_key_free(&ek);
	tg_jwt_key_free(&hk);
	free(rsa_pem);
	free(ec_pem);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec2);
	EVP_PKEY_free(ec384);
}

/* ------------------------------------------------------------------------
 * Secret policy
 */

static void
test_secret_policy(void)
{
	char		why[256];
	TgJwtAlg	a;

	CHECK(tg_jwt_check_secret(TG_JWT_HS256, NULL, true, why, sizeof(why)) == TG_JWT_SECRET_FATAL, "prod NULL");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "", true, why, sizeof(why)) == TG_JWT_SECRET_FATAL, "prod empty");
	CHECK(tg_jwt_check_secret(TG_JWT_RS256, NULL, true, why, sizeof(why)) == TG_JWT_SECRET_FATAL, "prod no key");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, NULL, false, why, sizeof(why)) == TG_JWT_SECRET_MISSING, "dev NULL");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "topgun-secret-dev", true, why, sizeof(why)) == TG_JWT_SECRET_FATAL &&
		  strstr(why, "topgun-secret-dev") != NULL, "prod dev secret: %s", why);
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "topgun-secret-dev", false, why, sizeof(why)) == TG_JWT_SECRET_WARN,
		  "dev dev secret");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "0123456789012345678901234567890", true, why, sizeof(why)) ==
		  TG_JWT_SECRET_FATAL && strstr(why, "31 bytes") != NULL, "prod 31 bytes: %s", why);
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "0123456789012345678901234567890", false, why, sizeof(why)) ==
		  TG_JWT_SECRET_WARN, "dev 31 bytes");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "01234567890123456789012345678901", true, why, sizeof(why)) ==
		  TG_JWT_SECRET_OK && why[0] == '\0', "prod 32 bytes: %s", why);
	/* 31 characters + a literal \n pair = 32 characters but 31 bytes as used */
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "012345678901234567890123456789\\n", true, why, sizeof(why)) ==
		  TG_JWT_SECRET_FATAL, "prod \\n counted once");
	CHECK(tg_jwt_check_secret(TG_JWT_RS256, "-----BEGIN PUBLIC KEY-----...", true, why, sizeof(why)) ==
		  TG_JWT_SECRET_OK, "prod PEM");
	CHECK(tg_jwt_check_secret(TG_JWT_HS256, "vector-secret-not-for-production", true, NULL, 0) ==
		  TG_JWT_SECRET_OK, "prod 32-byte vector secret, NULL why");

	CHECK(tg_jwt_alg_from_string("HS256", &a) && a == TG_JWT_HS256, "HS256");
	CHECK(tg_jwt_alg_from_string("RS256", &a) && a == TG_JWT_RS256, "RS256");
	CHECK(tg_jwt_alg_from_string("ES256", &a) && a == TG_JWT_ES256, "ES256");
	CHECK(!tg_jwt_alg_from_string("none", &a) && !tg_jwt_alg_from_string("hs256", &a) &&
		  !tg_jwt_alg_from_string(NULL, &a), "bad alg names");
	CHECK(strcmp(tg_jwt_alg_name(TG_JWT_ES256), "ES256") == 0, "alg name");
	CHECK(strcmp(tg_jwt_result_name(TG_JWT_EXPIRED), "expired") == 0, "result name");
}

int
main(void)
{
	test_json();
	test_vector_token();
	test_hs256();
	test_asymmetric();
	test_secret_policy();
	printf("test_jwt: %d passed, %d failed\n", npassed, nfailed);
	return nfailed ? 1 : 0;
}
