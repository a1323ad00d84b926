/*
 * test_wire.c — unit tests of the wire codec (src/wire/msgpack.c,
 * src/wire/message.c) against the golden vectors and hostile inputs.
 *
 * Vectors: $TOPGUN_VECTORS, else ../../../shared/vectors (make unit runs
 * the tests with cwd test/unit).  Prints "N passed, M failed" and exits
 * non-zero when anything failed.
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/message.h"
#include "wire/msgpack.h"
#include "wire_json.h"

static int	n_pass = 0;
static int	n_fail = 0;

static void check_at(bool ok, const char *file, int line, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

static void
check_at(bool ok, const char *file, int line, const char *fmt,...)
{
	va_list		ap;

	if (ok)
	{
		n_pass++;
		return;
	}
	n_fail++;
	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define CHECK(cond, ...) \
	do { \
		bool		check_ok_ = (cond); \
		check_at(check_ok_, __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

static const MpLimits big_limits = {MP_HARD_MAX_DEPTH, 10000000, 100000000};

/* ================================================================ files */

static char vectors_dir[1024];

static bool
read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	long		n;

	if (f == NULL)
		return false;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*data = malloc(n > 0 ? (size_t) n + 1 : 1);
	if (*data == NULL || (n > 0 && fread(*data, 1, (size_t) n, f) != (size_t) n))
	{
		fclose(f);
		free(*data);
		return false;
	}
	(*data)[n > 0 ? n : 0] = 0;
	*len = (size_t) n;
	fclose(f);
	return true;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* hex text → bytes (malloc'd) */
static uint8_t *
unhex(const char *hex, size_t hexlen, size_t *outlen)
{
	uint8_t    *out = malloc(hexlen / 2 + 1);

	for (size_t i = 0; i + 1 < hexlen; i += 2)
		out[i / 2] = (uint8_t) (hexval(hex[i]) << 4 | hexval(hex[i + 1]));
	*outlen = hexlen / 2;
	return out;
}

static char *
tohex(const uint8_t *p, size_t n)
{
	char	   *s = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", p[i]);
	s[2 * n] = 0;
	return s;
}

typedef struct Vector
{
	char		name[256];
	uint8_t    *bytes;
	size_t		len;
	JNode	   *json;			/* whole .json twin */
	JNode	   *message;		/* json "message" */
} Vector;

static Vector *vectors;
static int	n_vectors;

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(((const Vector *) a)->name, ((const Vector *) b)->name);
}

static void
load_vectors(void)
{
	char		dir[1200];
	DIR		   *d;
	struct dirent *de;
	const char *env = getenv("TOPGUN_VECTORS");

	snprintf(vectors_dir, sizeof(vectors_dir), "%s",
			 env != NULL && env[0] ? env : "../../../shared/vectors");
	snprintf(dir, sizeof(dir), "%s/messages", vectors_dir);
	d = opendir(dir);
	if (d == NULL)
	{
		fprintf(stderr, "cannot open vector directory %s (set TOPGUN_VECTORS)\n", dir);
		exit(2);
	}
	while ((de = readdir(d)) != NULL)
	{
		size_t		nl = strlen(de->d_name);
		char		path[1600];
		Vector		v;
		uint8_t    *jtext;
		size_t		jlen;

		if (nl < 9 || strcmp(de->d_name + nl - 8, ".msgpack") != 0)
			continue;
		memset(&v, 0, sizeof(v));
		snprintf(v.name, sizeof(v.name), "%.*s", (int) (nl - 8), de->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!read_file(path, &v.bytes, &v.len))
		{
			fprintf(stderr, "cannot read %s\n", path);
			exit(2);
		}
		snprintf(path, sizeof(path), "%s/%s.json", dir, v.name);
		if (!read_file(path, &jtext, &jlen))
		{
			fprintf(stderr, "cannot read %s\n", path);
			exit(2);
		}
		v.json = json_parse((const char *) jtext, jlen);
		free(jtext);
		if (v.json == NULL)
		{
			fprintf(stderr, "cannot parse %s\n", path);
			exit(2);
		}
		v.message = json_get(v.json, "message");
		vectors = realloc(vectors, (n_vectors + 1) * sizeof(Vector));
		vectors[n_vectors++] = v;
	}
	closedir(d);
	qsort(vectors, n_vectors, sizeof(Vector), cmp_names);
}

static Vector *
find_vector(const char *name)
{
	for (int i = 0; i < n_vectors; i++)
		if (strcmp(vectors[i].name, name) == 0)
			return &vectors[i];
	fprintf(stderr, "vector %s not found\n", name);
	exit(2);
}

/* ========================================== MpNode vs vector JSON value */

static bool
tstr_eq_json(TgStr s, const JNode *j)
{
	return j != NULL && j->type == J_STR && j->len == s.len &&
		(s.len == 0 || memcmp(s.p, j->s, s.len) == 0);
}

static bool
mp_eq_json(const MpNode *m, const JNode *j, char *why, size_t whylen)
{
	if (j == NULL || m == NULL)
	{
		snprintf(why, whylen, "missing node");
		return false;
	}
	if (j->type == J_OBJ && j->len == 1 && j->keys[0][0] == '$')
	{
		const char *tag = j->keys[0];
		const JNode *val = j->items[0];

		if (strcmp(tag, "$undefined") == 0)
		{
			if (m->type != MP_UNDEFINED)
				snprintf(why, whylen, "expected undefined at offset %u", m->offset);
			return m->type == MP_UNDEFINED;
		}
		if (strcmp(tag, "$number") == 0)
		{
			double		f = mp_number_as_double(m);

			if (strcmp(val->s, "NaN") == 0)
				return m->type == MP_FLOAT && isnan(f);
			if (strcmp(val->s, "Infinity") == 0)
				return m->type == MP_FLOAT && isinf(f) && f > 0;
			if (strcmp(val->s, "-Infinity") == 0)
				return m->type == MP_FLOAT && isinf(f) && f < 0;
			return mp_is_number(m) && f == 0;
		}
		if (strcmp(tag, "$bin") == 0)
		{
			size_t		bl;
			uint8_t    *b = unhex(val->s, val->len, &bl);
			bool		ok = m->type == MP_BIN && m->len == bl &&
				(bl == 0 || memcmp(m->v.bin, b, bl) == 0);

			free(b);
			return ok;
		}
		if (strcmp(tag, "$date") == 0)
			return m->type == MP_EXT && m->v.ext.type == -1;
		if (strcmp(tag, "$bigint") == 0)
		{
			char		buf[32];

			if (m->type == MP_INT)
				snprintf(buf, sizeof(buf), "%lld", (long long) m->v.i);
			else if (m->type == MP_UINT)
				snprintf(buf, sizeof(buf), "%llu", (unsigned long long) m->v.u);
			else
				return false;
			return strcmp(buf, val->s) == 0;
		}
	}
	switch (j->type)
	{
		case J_NULL:
			if (m->type != MP_NIL)
				snprintf(why, whylen, "expected nil at offset %u", m->offset);
			return m->type == MP_NIL;
		case J_BOOL:
			return m->type == MP_BOOL && m->v.b == j->b;
		case J_NUM:
			if (!mp_is_number(m) || mp_number_as_double(m) != j->num)
			{
				snprintf(why, whylen, "number mismatch at offset %u", m->offset);
				return false;
			}
			return true;
		case J_STR:
			if (m->type != MP_STR || m->len != j->len || memcmp(m->v.s, j->s, j->len) != 0)
			{
				snprintf(why, whylen, "string mismatch at offset %u", m->offset);
				return false;
			}
			return true;
		case J_ARR:
			if (m->type != MP_ARRAY || m->len != j->len)
			{
				snprintf(why, whylen, "array mismatch at offset %u", m->offset);
				return false;
			}
			for (size_t i = 0; i < j->len; i++)
				if (!mp_eq_json(&m->v.items[i], j->items[i], why, whylen))
					return false;
			return true;
		case J_OBJ:
			if (m->type != MP_MAP || m->len != j->len)
			{
				snprintf(why, whylen, "map mismatch at offset %u", m->offset);
				return false;
			}
			for (size_t i = 0; i < j->len; i++)
			{
				const MpNode *k = &m->v.kv[2 * i];

				if (k->type != MP_STR || k->len != j->keylens[i] ||
					memcmp(k->v.s, j->keys[i], k->len) != 0)
				{
					snprintf(why, whylen, "key mismatch at offset %u", k->offset);
					return false;
				}
				if (!mp_eq_json(&m->v.kv[2 * i + 1], j->items[i], why, whylen))
					return false;
			}
			return true;
	}
	return false;
}

/* ====================================================== c2s vectors */

static void
check_timestamp_json(const char *vn, const char *what, const TgTimestamp *ts, const JNode *j)
{
	CHECK(j != NULL && json_get(j, "millis") != NULL &&
		  (double) ts->millis == json_get(j, "millis")->num,
		  "%s %s: millis %lld", vn, what, (long long) ts->millis);
	CHECK(json_get(j, "counter") != NULL && (double) ts->counter == json_get(j, "counter")->num,
		  "%s %s: counter %u", vn, what, ts->counter);
	CHECK(tstr_eq_json(ts->node_id, json_get(j, "nodeId")), "%s %s: nodeId", vn, what);
}

static void
check_value_json(const char *vn, const char *what, const MpNode *m, const JNode *j)
{
	char		why[128] = "";

	CHECK(mp_eq_json(m, j, why, sizeof(why)), "%s %s: value differs (%s)", vn, what, why);
}

static void
check_or_record_json(const char *vn, const TgOrRecord *r, const JNode *j)
{
	check_value_json(vn, "orRecord.value", r->value, json_get(j, "value"));
	check_timestamp_json(vn, "orRecord.timestamp", &r->ts, json_get(j, "timestamp"));
	CHECK(tstr_eq_json(r->tag, json_get(j, "tag")), "%s: tag", vn);
	CHECK(r->has_ttl == json_has(j, "ttlMs"), "%s: orRecord ttl presence", vn);
	if (r->has_ttl)
		CHECK((double) r->ttl_ms == json_get(j, "ttlMs")->num, "%s: ttlMs", vn);
}

static void
check_op_json(const char *vn, const TgOp *op, const JNode *j)
{
	const JNode *ot = json_get(j, "opType");

	CHECK(op->valid, "%s: op invalid: %s", vn, op->error ? op->error : "?");
	if (!op->valid)
		return;
	CHECK(op->has_id == json_has(j, "id"), "%s: id presence", vn);
	if (op->has_id)
		CHECK(tstr_eq_json(op->id, json_get(j, "id")), "%s: op id", vn);
	CHECK(tstr_eq_json(op->map_name, json_get(j, "mapName")), "%s: op mapName", vn);
	CHECK(tstr_eq_json(op->key, json_get(j, "key")), "%s: op key", vn);
	if (ot != NULL && ot->type == J_STR)
	{
		TgOpType	want = TG_OP_LWW;

		if (strcmp(ot->s, "PUT") == 0)
			want = TG_OP_PUT;
		else if (strcmp(ot->s, "REMOVE") == 0)
			want = TG_OP_REMOVE;
		else if (strcmp(ot->s, "OR_ADD") == 0)
			want = TG_OP_OR_ADD;
		else if (strcmp(ot->s, "OR_REMOVE") == 0)
			want = TG_OP_OR_REMOVE;
		CHECK(op->op_type == want && op->has_op_type, "%s: opType %s", vn, ot->s);
	}
	/* undefined and null both mean "absent" for these nullable fields */
	CHECK(op->has_record == json_has(j, "record"), "%s: record presence", vn);
	CHECK(op->has_or_record == json_has(j, "orRecord"), "%s: orRecord presence", vn);
	CHECK(op->has_or_tag == json_has(j, "orTag"), "%s: orTag presence", vn);
	if (op->has_record)
	{
		const JNode *r = json_get(j, "record");

		check_value_json(vn, "record.value", op->record.value, json_get(r, "value"));
		check_timestamp_json(vn, "record.timestamp", &op->record.ts, json_get(r, "timestamp"));
		CHECK(op->record.has_ttl == json_has(r, "ttlMs"), "%s: record ttl presence", vn);
		if (op->record.has_ttl)
			CHECK((double) op->record.ttl_ms == json_get(r, "ttlMs")->num, "%s: ttlMs", vn);
		if (json_get(r, "value")->type == J_NULL)
			CHECK(op->record.value->type == MP_NIL, "%s: tombstone value", vn);
	}
	if (op->has_or_record)
		check_or_record_json(vn, &op->or_record, json_get(j, "orRecord"));
	if (op->has_or_tag)
		CHECK(tstr_eq_json(op->or_tag, json_get(j, "orTag")), "%s: orTag", vn);
}

static void
check_number_field(const char *vn, const char *what, bool has, double v, const JNode *j)
{
	bool		want = j != NULL && j->type == J_NUM;

	CHECK(has == want, "%s: %s presence", vn, what);
	if (has && want)
		CHECK(v == j->num, "%s: %s = %g, want %g", vn, what, v, j->num);
}

static void
check_counter_parts(const char *vn, uint32_t n, const TgCounterPart *parts, const JNode *j)
{
	CHECK(j != NULL && j->type == J_OBJ && n == j->len, "%s: counter part count", vn);
	if (j == NULL || n != j->len)
		return;
	for (uint32_t i = 0; i < n; i++)
	{
		CHECK(parts[i].node_id.len == strlen(j->keys[i]) &&
			  memcmp(parts[i].node_id.p, j->keys[i], parts[i].node_id.len) == 0,
			  "%s: counter node %u", vn, i);
		CHECK((double) parts[i].value == j->items[i]->num, "%s: counter value %u", vn, i);
	}
}

static void
test_c2s_vector(Vector *v)
{
	TgMessage	msg;
	char		err[256];
	TgParseResult r;
	const JNode *m = v->message;
	const JNode *payload = json_get(m, "payload");
	const JNode *jtype = json_get(m, "type");
	const JNode *hex = json_get(v->json, "msgpack_hex");
	MpLimits	lim = {32, (uint32_t) v->len + 1, (uint32_t) v->len};
	char		why[128] = "";

	/* the .msgpack file and the json's hex agree */
	CHECK(hex != NULL && hex->len == 2 * v->len, "%s: msgpack_hex length", v->name);
	if (hex != NULL && hex->len == 2 * v->len)
	{
		char	   *h = tohex(v->bytes, v->len);

		CHECK(strcmp(h, hex->s) == 0, "%s: msgpack_hex differs from file", v->name);
		free(h);
	}

	/* the worker's limits: depth 32, nodes <= frame bytes */
	r = tg_message_parse(v->bytes, v->len, &lim, &msg, err, sizeof(err));
	CHECK(r == TG_PARSE_OK, "%s: parse failed (%d): %s", v->name, (int) r, err);
	if (r != TG_PARSE_OK)
	{
		tg_message_free(&msg);
		return;
	}
	CHECK(jtype != NULL && strcmp(tg_msg_type_name(msg.type), jtype->s) == 0,
		  "%s: type %s", v->name, tg_msg_type_name(msg.type));
	CHECK(mp_eq_json(msg.root, m, why, sizeof(why)), "%s: tree differs from json: %s",
		  v->name, why);

	switch (msg.type)
	{
		case TG_MSG_AUTH:
			CHECK(tstr_eq_json(msg.u.auth.token, json_get(m, "token")), "%s: token", v->name);
			break;
		case TG_MSG_PING:
			CHECK(msg.u.ping.timestamp == json_get(m, "timestamp")->num, "%s: ping ts", v->name);
			break;
		case TG_MSG_OP_BATCH:
			{
				const JNode *ops = json_get(payload, "ops");

				CHECK(ops != NULL && msg.u.op_batch.n_ops == ops->len, "%s: op count", v->name);
				CHECK(msg.u.op_batch.n_invalid == 0, "%s: invalid ops", v->name);
				for (uint32_t i = 0; ops != NULL && i < msg.u.op_batch.n_ops && i < ops->len; i++)
					check_op_json(v->name, &msg.u.op_batch.ops[i], ops->items[i]);
				break;
			}
		case TG_MSG_CLIENT_OP:
			check_op_json(v->name, &msg.u.client_op.op, payload);
			break;
		case TG_MSG_SYNC_INIT:
			CHECK(tstr_eq_json(msg.u.sync_init.map_name, json_get(m, "mapName")), "%s: mapName", v->name);
			check_number_field(v->name, "lastSyncTimestamp", msg.u.sync_init.has_last_sync,
							   msg.u.sync_init.last_sync, json_get(m, "lastSyncTimestamp"));
			break;
		case TG_MSG_MERKLE_REQ_BUCKET:
		case TG_MSG_ORMAP_MERKLE_REQ_BUCKET:
			CHECK(tstr_eq_json(msg.u.bucket_req.map_name, json_get(payload, "mapName")), "%s: mapName", v->name);
			CHECK(tstr_eq_json(msg.u.bucket_req.path, json_get(payload, "path")), "%s: path", v->name);
			break;
		case TG_MSG_ORMAP_SYNC_INIT:
			CHECK(tstr_eq_json(msg.u.ormap_sync_init.map_name, json_get(m, "mapName")), "%s: mapName", v->name);
			CHECK(msg.u.ormap_sync_init.root_hash == json_get(m, "rootHash")->num, "%s: rootHash", v->name);
			check_value_json(v->name, "bucketHashes", msg.u.ormap_sync_init.bucket_hashes,
							 json_get(m, "bucketHashes"));
			check_number_field(v->name, "lastSyncTimestamp", msg.u.ormap_sync_init.has_last_sync,
							   msg.u.ormap_sync_init.last_sync, json_get(m, "lastSyncTimestamp"));
			break;
		case TG_MSG_ORMAP_PUSH_DIFF:
			{
				const JNode *entries = json_get(payload, "entries");

				CHECK(tstr_eq_json(msg.u.ormap_push_diff.map_name, json_get(payload, "mapName")), "%s: mapName", v->name);
				CHECK(msg.u.ormap_push_diff.n_entries == entries->len, "%s: entries", v->name);
				for (uint32_t i = 0; i < msg.u.ormap_push_diff.n_entries && i < entries->len; i++)
				{
					const TgOrEntry *e = &msg.u.ormap_push_diff.entries[i];
					const JNode *je = entries->items[i];
					const JNode *recs = json_get(je, "records");
					const JNode *tombs = json_get(je, "tombstones");

					CHECK(tstr_eq_json(e->key, json_get(je, "key")), "%s: entry key", v->name);
					CHECK(e->n_records == recs->len, "%s: records", v->name);
					for (uint32_t k = 0; k < e->n_records && k < recs->len; k++)
						check_or_record_json(v->name, &e->records[k], recs->items[k]);
					CHECK(e->n_tombstones == tombs->len, "%s: tombstones", v->name);
					for (uint32_t k = 0; k < e->n_tombstones && k < tombs->len; k++)
						CHECK(tstr_eq_json(e->tombstones[k], tombs->items[k]), "%s: tombstone", v->name);
				}
				break;
			}
		case TG_MSG_ORMAP_DIFF_REQUEST:
			{
				const JNode *keys = json_get(payload, "keys");

				CHECK(tstr_eq_json(msg.u.ormap_diff_request.map_name, json_get(payload, "mapName")), "%s: mapName", v->name);
				CHECK(msg.u.ormap_diff_request.n_keys == keys->len, "%s: keys", v->name);
				for (uint32_t i = 0; i < msg.u.ormap_diff_request.n_keys && i < keys->len; i++)
					CHECK(tstr_eq_json(msg.u.ormap_diff_request.keys[i], keys->items[i]), "%s: key", v->name);
				break;
			}
		case TG_MSG_QUERY_SUB:
			CHECK(tstr_eq_json(msg.u.query_sub.query_id, json_get(payload, "queryId")), "%s: queryId", v->name);
			CHECK(tstr_eq_json(msg.u.query_sub.map_name, json_get(payload, "mapName")), "%s: mapName", v->name);
			check_value_json(v->name, "query", msg.u.query_sub.query, json_get(payload, "query"));
			break;
		case TG_MSG_QUERY_UNSUB:
			CHECK(tstr_eq_json(msg.u.query_unsub.query_id, json_get(payload, "queryId")), "%s: queryId", v->name);
			break;
		case TG_MSG_TOPIC_SUB:
		case TG_MSG_TOPIC_UNSUB:
		case TG_MSG_TOPIC_PUB:
			CHECK(tstr_eq_json(msg.u.topic.topic, json_get(payload, "topic")), "%s: topic", v->name);
			if (msg.type == TG_MSG_TOPIC_PUB)
				check_value_json(v->name, "data", msg.u.topic.data, json_get(payload, "data"));
			else
				CHECK(msg.u.topic.data == NULL, "%s: data", v->name);
			break;
		case TG_MSG_COUNTER_REQUEST:
			CHECK(tstr_eq_json(msg.u.counter_request.name, json_get(payload, "name")), "%s: name", v->name);
			break;
		case TG_MSG_COUNTER_SYNC:
			{
				const JNode *state = json_get(payload, "state");
				bool		cs = json_get(state, "positive") != NULL;

				CHECK(tstr_eq_json(msg.u.counter_sync.name, json_get(payload, "name")), "%s: name", v->name);
				CHECK(msg.u.counter_sync.client_shape == cs, "%s: counter shape", v->name);
				check_counter_parts(v->name, msg.u.counter_sync.n_p, msg.u.counter_sync.p,
									json_get(state, cs ? "positive" : "p"));
				check_counter_parts(v->name, msg.u.counter_sync.n_n, msg.u.counter_sync.n,
									json_get(state, cs ? "negative" : "n"));
				break;
			}
		default:
			CHECK(false, "%s: unexpected type %s", v->name, tg_msg_type_name(msg.type));
			break;
	}
	tg_message_free(&msg);
}

static void
test_c2s_vectors(void)
{
	int			n = 0;

	for (int i = 0; i < n_vectors; i++)
	{
		if (strncmp(vectors[i].name, "c2s_", 4) != 0)
			continue;
		test_c2s_vector(&vectors[i]);
		n++;
	}
	CHECK(n >= 40, "only %d c2s vectors found", n);
	printf("c2s vectors checked: %d\n", n);
}

/* Every vector (both directions): decode, compare with json, re-encode. */
static void
test_all_vectors_roundtrip(void)
{
	int			same = 0;

	for (int i = 0; i < n_vectors; i++)
	{
		Vector	   *v = &vectors[i];
		MpArena		a;
		char		err[256];
		char		why[128] = "";
		MpNode	   *root;
		MpBuf		b;

		mp_arena_init(&a);
		root = mp_decode(&a, v->bytes, v->len, &big_limits, err, sizeof(err));
		CHECK(root != NULL, "%s: decode failed: %s", v->name, err);
		if (root == NULL)
		{
			mp_arena_free(&a);
			continue;
		}
		CHECK(mp_eq_json(root, v->message, why, sizeof(why)), "%s: differs from json: %s",
			  v->name, why);
		/* msgpackr's forms are ours, so re-encoding must give the same bytes */
		mp_buf_init(&b, 0);
		CHECK(mp_put_node(&b, root), "%s: re-encode failed", v->name);
		if (b.len == v->len && memcmp(b.data, v->bytes, v->len) == 0)
			same++;
		else
		{
			char	   *h1 = tohex(v->bytes, v->len);
			char	   *h2 = tohex(b.data, b.len);

			CHECK(false, "%s: re-encoded bytes differ\n  want %s\n  got  %s", v->name, h1, h2);
			free(h1);
			free(h2);
		}
		mp_buf_free(&b);
		mp_arena_free(&a);
	}
	printf("vectors re-encoded byte-identically: %d of %d\n", same, n_vectors);
}

/* Every strict prefix of every vector must fail cleanly. */
static void
test_truncations(void)
{
	long		tried = 0;
	long		failed_ok = 0;

	for (int i = 0; i < n_vectors; i++)
	{
		Vector	   *v = &vectors[i];

		for (size_t n = 0; n < v->len; n++)
		{
			TgMessage	msg;
			char		err[256];
			uint8_t    *copy = malloc(n > 0 ? n : 1);
			TgParseResult r;

			/* a private copy so ASan catches any read past the prefix */
			memcpy(copy, v->bytes, n);
			r = tg_message_parse(copy, n, NULL, &msg, err, sizeof(err));
			tried++;
			if (r == TG_PARSE_DECODE_ERROR && err[0] != '\0')
				failed_ok++;
			else
				CHECK(false, "%s: prefix of %zu bytes gave %d (%s)", v->name, n, (int) r, err);
			tg_message_free(&msg);
			free(copy);
		}
	}
	CHECK(tried == failed_ok, "truncations: %ld of %ld failed cleanly", failed_ok, tried);
	printf("truncated prefixes rejected: %ld\n", failed_ok);
}

/* ========================================================= encoder */

static bool
bytes_eq_hex(const MpBuf *b, const char *hex)
{
	size_t		n;
	uint8_t    *want = unhex(hex, strlen(hex), &n);
	bool		ok = mp_buf_ok(b) && b->len == n && memcmp(b->data, want, n) == 0;

	free(want);
	return ok;
}

static void
expect_bytes(const char *what, MpBuf *b, const char *hex)
{
	char	   *got = tohex(b->data ? b->data : (const uint8_t *) "", b->len);

	CHECK(bytes_eq_hex(b, hex), "%s: want %s got %s", what, hex, got);
	free(got);
}

static void
expect_vector(const char *name, MpBuf *b)
{
	Vector	   *v = find_vector(name);
	char	   *want = tohex(v->bytes, v->len);
	char	   *got = tohex(b->data ? b->data : (const uint8_t *) "", b->len);

	CHECK(mp_buf_ok(b) && b->len == v->len && memcmp(b->data, v->bytes, v->len) == 0,
		  "%s: encoder output differs\n  want %s\n  got  %s", name, want, got);
	free(want);
	free(got);
}

static void
put_json_str(MpBuf *b, const JNode *j)
{
	mp_put_strn(b, j->s, j->len);
}

static void
test_encoder_vectors(void)
{
	MpBuf		b;

	mp_buf_init(&b, 1 << 20);

	/* AUTH_REQUIRED / AUTH_ACK */
	{
		const char *names[] = {"s2c_AUTH_REQUIRED", "s2c_AUTH_ACK"};

		for (int i = 0; i < 2; i++)
		{
			Vector	   *v = find_vector(names[i]);

			mp_buf_reset(&b);
			mp_put_map_header(&b, 1);
			mp_put_str(&b, "type");
			put_json_str(&b, json_get(v->message, "type"));
			expect_vector(names[i], &b);
		}
	}

	/* OP_ACK with results (one and several) and the reference shape */
	{
		const char *names[] = {"s2c_OP_ACK_with_results", "s2c_OP_ACK_with_results_multi",
		"s2c_OP_ACK_reference_shape"};

		for (int i = 0; i < 3; i++)
		{
			Vector	   *v = find_vector(names[i]);
			const JNode *p = json_get(v->message, "payload");
			const JNode *results = json_get(p, "results");
			size_t		mark;

			mp_buf_reset(&b);
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "type");
			mp_put_str(&b, "OP_ACK");
			mp_put_str(&b, "payload");
			/* exercise the patch-later map header */
			mark = mp_put_map16_begin(&b);
			mp_put_str(&b, "lastId");
			put_json_str(&b, json_get(p, "lastId"));
			mp_put_str(&b, "achievedLevel");
			put_json_str(&b, json_get(p, "achievedLevel"));
			if (results != NULL)
			{
				mp_put_str(&b, "results");
				mp_put_array_header(&b, (uint32_t) results->len);
				for (size_t k = 0; k < results->len; k++)
				{
					const JNode *r = results->items[k];

					mp_put_map_header(&b, 3);
					mp_put_str(&b, "opId");
					put_json_str(&b, json_get(r, "opId"));
					mp_put_str(&b, "success");
					mp_put_bool(&b, json_get(r, "success")->b);
					mp_put_str(&b, "achievedLevel");
					put_json_str(&b, json_get(r, "achievedLevel"));
				}
			}
			CHECK(mp_put_map16_end(&b, mark, results != NULL ? 3 : 2), "map16_end");
			expect_vector(names[i], &b);
		}
	}

	/* SYNC_RESP_ROOT (normal and empty map) */
	{
		const char *names[] = {"s2c_SYNC_RESP_ROOT", "s2c_SYNC_RESP_ROOT_empty_map"};

		for (int i = 0; i < 2; i++)
		{
			Vector	   *v = find_vector(names[i]);
			const JNode *p = json_get(v->message, "payload");
			const JNode *ts = json_get(p, "timestamp");
			const JNode *node = json_get(ts, "nodeId");

			mp_buf_reset(&b);
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "type");
			mp_put_str(&b, "SYNC_RESP_ROOT");
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "mapName");
			put_json_str(&b, json_get(p, "mapName"));
			mp_put_str(&b, "rootHash");
			mp_put_uint32(&b, (uint32_t) json_get(p, "rootHash")->num);
			mp_put_str(&b, "timestamp");
			mp_put_timestamp(&b, (int64_t) json_get(ts, "millis")->num,
							 (uint32_t) json_get(ts, "counter")->num, node->s, node->len);
			expect_vector(names[i], &b);
		}
	}

	/* SYNC_RESP_BUCKETS, including every unsigned width */
	{
		const char *names[] = {"s2c_SYNC_RESP_BUCKETS_root", "s2c_SYNC_RESP_BUCKETS_depth1",
			"s2c_SYNC_RESP_BUCKETS_depth2", "s2c_SYNC_RESP_BUCKETS_empty",
		"s2c_SYNC_RESP_BUCKETS_uint_encodings"};

		for (int i = 0; i < 5; i++)
		{
			Vector	   *v = find_vector(names[i]);
			const JNode *p = json_get(v->message, "payload");
			const JNode *buckets = json_get(p, "buckets");

			mp_buf_reset(&b);
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "type");
			mp_put_str(&b, "SYNC_RESP_BUCKETS");
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "mapName");
			put_json_str(&b, json_get(p, "mapName"));
			mp_put_str(&b, "path");
			put_json_str(&b, json_get(p, "path"));
			mp_put_str(&b, "buckets");
			mp_put_map_header(&b, (uint32_t) buckets->len);
			for (size_t k = 0; k < buckets->len; k++)
			{
				mp_put_strn(&b, buckets->keys[k], buckets->keylens[k]);
				mp_put_uint32(&b, (uint32_t) buckets->items[k]->num);
			}
			expect_vector(names[i], &b);
		}
	}

	/* PONG as we send it: serverTime only, float64 */
	{
		Vector	   *v = find_vector("s2c_PONG_recommended");

		mp_buf_reset(&b);
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "type");
		mp_put_str(&b, "PONG");
		mp_put_str(&b, "serverTime");
		mp_put_number(&b, json_get(v->message, "serverTime")->num);
		expect_vector("s2c_PONG_recommended", &b);
		/* mp_put_millis gives the same bytes for an integer millis */
		mp_buf_reset(&b);
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "type");
		mp_put_str(&b, "PONG");
		mp_put_str(&b, "serverTime");
		mp_put_millis(&b, (int64_t) json_get(v->message, "serverTime")->num);
		expect_vector("s2c_PONG_recommended", &b);
	}

	/* ERROR 400 with details: undefined, byte-identical to the reference */
	{
		Vector	   *v = find_vector("s2c_ERROR_400_reference_shape");
		const JNode *p = json_get(v->message, "payload");

		mp_buf_reset(&b);
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "type");
		mp_put_str(&b, "ERROR");
		mp_put_str(&b, "payload");
		mp_put_map_header(&b, 3);
		mp_put_str(&b, "code");
		mp_put_number(&b, json_get(p, "code")->num);
		mp_put_str(&b, "message");
		put_json_str(&b, json_get(p, "message"));
		mp_put_str(&b, "details");
		mp_put_undefined(&b);
		expect_vector("s2c_ERROR_400_reference_shape", &b);
	}
	mp_buf_free(&b);
}

static void
test_encoder_forms(void)
{
	MpBuf		b;
	struct
	{
		double		v;
		const char *hex;
	}			nums[] = {
		{0, "00"}, {-0.0, "00"}, {1, "01"}, {127, "7f"}, {128, "cc80"}, {255, "ccff"},
		{256, "cd0100"}, {65535, "cdffff"}, {65536, "ce00010000"},
		{4294967295.0, "ceffffffff"}, {4294967296.0, "cb41f0000000000000"},
		{-1, "ff"}, {-32, "e0"}, {-33, "d0df"}, {-128, "d080"}, {-129, "d1ff7f"},
		{-32768, "d18000"}, {-32769, "d2ffff7fff"}, {-2147483648.0, "d280000000"},
		{-2147483649.0, "cbc1e0000000200000"}, {1.5, "cb3ff8000000000000"},
		{1736000000000.0, "cb4279431a9d000000"},
		{NAN, "cb7ff8000000000000"}, {INFINITY, "cb7ff0000000000000"},
	};

	mp_buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
	{
		char		what[64];

		mp_buf_reset(&b);
		mp_put_number(&b, nums[i].v);
		snprintf(what, sizeof(what), "mp_put_number(%g)", nums[i].v);
		expect_bytes(what, &b, nums[i].hex);
	}
	mp_buf_reset(&b);
	mp_put_int(&b, INT64_C(1) << 40);
	expect_bytes("mp_put_int(2^40)", &b, "cb4270000000000000");
	mp_buf_reset(&b);
	mp_put_int(&b, -5);
	expect_bytes("mp_put_int(-5)", &b, "fb");
	mp_buf_reset(&b);
	mp_put_int(&b, INT64_MIN);
	expect_bytes("mp_put_int(INT64_MIN)", &b, "cbc3e0000000000000");
	mp_buf_reset(&b);
	mp_put_uint32(&b, 0x80000000u);
	expect_bytes("mp_put_uint32(2^31)", &b, "ce80000000");
	mp_buf_reset(&b);
	mp_put_millis(&b, 0);
	expect_bytes("mp_put_millis(0)", &b, "cb0000000000000000");

	/* string headers by byte length */
	{
		static char s[70000];
		struct
		{
			size_t		n;
			const char *hdr;
		}			strs[] = {{0, "a0"}, {31, "bf"}, {32, "d920"}, {255, "d9ff"},
		{256, "da0100"}, {65535, "daffff"}, {65536, "db00010000"}};

		memset(s, 'x', sizeof(s));
		for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		{
			size_t		hl = strlen(strs[i].hdr) / 2;
			uint8_t    *want;
			size_t		wl;

			mp_buf_reset(&b);
			mp_put_strn(&b, s, strs[i].n);
			want = unhex(strs[i].hdr, strlen(strs[i].hdr), &wl);
			CHECK(b.len == hl + strs[i].n && memcmp(b.data, want, hl) == 0,
				  "string of %zu bytes: header", strs[i].n);
			free(want);
		}
		mp_buf_reset(&b);
		mp_put_bin(&b, s, 300);
		CHECK(b.len == 303 && b.data[0] == 0xc5 && b.data[1] == 1 && b.data[2] == 44, "bin16 header");
	}
	mp_buf_reset(&b);
	mp_put_map_header(&b, 0);
	mp_put_map_header(&b, 1);
	mp_put_map_header(&b, 70000);
	expect_bytes("map headers", &b, "de0000de0001df00011170");
	mp_buf_reset(&b);
	mp_put_array_header(&b, 0);
	mp_put_array_header(&b, 15);
	mp_put_array_header(&b, 16);
	mp_put_array_header(&b, 70000);
	expect_bytes("array headers", &b, "909fdc0010dd00011170");
	mp_buf_reset(&b);
	mp_put_nil(&b);
	mp_put_bool(&b, true);
	mp_put_bool(&b, false);
	mp_put_undefined(&b);
	expect_bytes("nil/bool/undefined", &b, "c0c3c2d40000");
	mp_buf_reset(&b);
	mp_put_timestamp(&b, 1736000000000, 0, "srv", 3);
	expect_bytes("PROTOCOL §1.6 Timestamp", &b,
				 "de0003a66d696c6c6973cb4279431a9d000000a7636f756e74657200a66e6f64654964a3737276");
	mp_buf_free(&b);

	/* the hard cap: failure is reported, sticky, and never aborts */
	mp_buf_init(&b, 4);
	CHECK(mp_put_str(&b, "abc"), "4 bytes fit");
	CHECK(!mp_put_nil(&b), "5th byte refused");
	CHECK(!mp_buf_ok(&b) && !b.oom, "buffer failed (cap, not oom)");
	CHECK(!mp_put_raw(&b, "", 0), "failure is sticky");
	{
		size_t		n;

		CHECK(mp_buf_steal(&b, &n) == NULL && n == 0, "steal of a failed buffer");
	}
	mp_buf_reset(&b);
	CHECK(mp_put_nil(&b) && mp_buf_ok(&b), "reset clears the failure");
	{
		size_t		n;
		uint8_t    *p = mp_buf_steal(&b, &n);

		CHECK(p != NULL && n == 1 && p[0] == 0xc0 && b.len == 0, "steal");
		free(p);
	}
	mp_buf_free(&b);
	mp_buf_init(&b, 0);
	{
		size_t		mark = mp_put_map16_begin(&b);

		CHECK(!mp_put_map16_end(&b, mark, 70000), "map16_end refuses > 65535");
	}
	mp_buf_free(&b);
}

/* ======================================================= hostile input */

static void
expect_decode_fail(const char *what, const uint8_t *p, size_t n, const MpLimits *lim,
				   const char *errpart)
{
	MpArena		a;
	char		err[256];
	MpNode	   *root;

	mp_arena_init(&a);
	root = mp_decode(&a, p, n, lim, err, sizeof(err));
	CHECK(root == NULL, "%s: decoded but should fail", what);
	if (root == NULL)
		CHECK(strstr(err, errpart) != NULL, "%s: error '%s' lacks '%s'", what, err, errpart);
	CHECK(a.allocated < 1024 * 1024 || n > 100000, "%s: allocated %zu bytes", what, a.allocated);
	mp_arena_free(&a);
}

static void
expect_decode_ok(const char *what, const uint8_t *p, size_t n)
{
	MpArena		a;
	char		err[256];
	MpNode	   *root;

	mp_arena_init(&a);
	root = mp_decode(&a, p, n, &big_limits, err, sizeof(err));
	CHECK(root != NULL, "%s: should decode: %s", what, err);
	mp_arena_free(&a);
}

static void
test_hostile_decode(void)
{
	MpLimits	lim = {32, 1000, 1000};
	static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
	static const uint8_t ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x05};
	static const uint8_t arr16[] = {0xdc, 0xff, 0xff, 0xc0, 0xc0};
	static const uint8_t map_half[] = {0x81, 0xc0};
	static const uint8_t c1[] = {0xc1};
	static const uint8_t c1_in_map[] = {0xde, 0x00, 0x01, 0xa1, 'a', 0xc1};
	static const uint8_t trailing[] = {0xc0, 0x00};
	static const uint8_t str8_short[] = {0xd9, 0x05, 'a', 'b'};
	static const uint8_t fixext_short[] = {0xd4, 0x00};
	static const uint8_t f64_short[] = {0xcb, 0x00, 0x00};

	expect_decode_fail("array32 4G elements", arr32, sizeof(arr32), &big_limits, "truncated array");
	expect_decode_fail("map32 4G pairs", map32, sizeof(map32), &big_limits, "truncated map");
	expect_decode_fail("str32 4 GB", str32, sizeof(str32), &big_limits, "exceeds the limit");
	{
		MpLimits	huge = {32, 1000, UINT32_MAX};

		expect_decode_fail("str32 4 GB, no str limit", str32, sizeof(str32), &huge, "truncated string");
		expect_decode_fail("bin32 4 GB", bin32, sizeof(bin32), &huge, "truncated bin");
		expect_decode_fail("ext32 4 GB", ext32, sizeof(ext32), &huge, "truncated ext");
	}
	expect_decode_fail("array16 65535 with 2 bytes", arr16, sizeof(arr16), &big_limits, "truncated array");
	expect_decode_fail("fixmap missing value", map_half, sizeof(map_half), &big_limits, "truncated map");
	expect_decode_fail("0xc1", c1, sizeof(c1), &big_limits, "reserved byte 0xc1 at offset 0");
	expect_decode_fail("0xc1 in a map", c1_in_map, sizeof(c1_in_map), &big_limits, "offset 5");
	expect_decode_fail("trailing byte", trailing, sizeof(trailing), &big_limits, "1 trailing bytes");
	expect_decode_fail("short str8", str8_short, sizeof(str8_short), &big_limits, "truncated string");
	expect_decode_fail("short fixext", fixext_short, sizeof(fixext_short), &big_limits, "truncated ext");
	expect_decode_fail("short float64", f64_short, sizeof(f64_short), &big_limits, "truncated float64");
	expect_decode_fail("empty input", (const uint8_t *) "", 0, &big_limits, "empty");

	/* 10000 levels of nesting, arrays and maps, with generous limits */
	{
		size_t		n = 10000;
		uint8_t    *deep = malloc(2 * n + 2);
		MpLimits	deep_lim = {1000000, 10000000, 1000};

		memset(deep, 0x91, n);
		deep[n] = 0xc0;
		expect_decode_fail("10000 nested arrays", deep, n + 1, &deep_lim, "nesting deeper than 256");
		expect_decode_fail("10000 nested arrays, depth 32", deep, n + 1, &lim, "nesting deeper than 32");
		for (size_t i = 0; i < n; i++)
		{
			deep[2 * i] = 0x81;
			deep[2 * i + 1] = 0x00;
		}
		deep[2 * n] = 0xc0;
		expect_decode_fail("10000 nested maps", deep, 2 * n + 1, &deep_lim, "nesting deeper");
		free(deep);
	}
	/* exactly at the depth limit is fine, one more is not */
	{
		uint8_t		d[33];
		MpArena		a;
		char		err[128];

		memset(d, 0x91, 32);
		d[32] = 0x01;
		mp_arena_init(&a);
		CHECK(mp_decode(&a, d, 33, &lim, err, sizeof(err)) != NULL, "depth 32 accepted: %s", err);
		mp_arena_free(&a);
		expect_decode_fail("depth 32 with limit 31", d, 33, &(MpLimits) {31, 1000, 1000}, "nesting deeper than 31");
	}
	/* node budget */
	{
		uint8_t		arr[] = {0x95, 1, 2, 3, 4, 5};

		expect_decode_fail("node budget", arr, sizeof(arr), &(MpLimits) {32, 5, 100}, "more than 5 values");
		expect_decode_ok("6 nodes", arr, sizeof(arr));
	}

	/* UTF-8: invalid forms */
	{
		struct
		{
			const char *name;
			const char *bytes;
			size_t		n;
		}			bad[] = {
			{"lone continuation", "\x80", 1},
			{"overlong NUL", "\xc0\x80", 2},
			{"overlong slash", "\xc1\xaf", 2},
			{"overlong 3-byte", "\xe0\x80\xaf", 3},
			{"overlong 4-byte", "\xf0\x80\x80\xaf", 4},
			{"WTF-8 lone high surrogate", "\xed\xa0\x80", 3},
			{"WTF-8 lone low surrogate", "\xed\xbf\xbf", 3},
			{"WTF-8 surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", 6},
			{"above U+10FFFF", "\xf4\x90\x80\x80", 4},
			{"F5 lead", "\xf5\x80\x80\x80", 4},
			{"FF byte", "a\xff", 2},
			{"truncated 3-byte", "ab\xe2\x82", 4},
			{"truncated 2-byte at end", "\xc3", 1},
			{"bad continuation", "\xe2\x28\xa1", 3},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			uint8_t		buf[16];

			buf[0] = (uint8_t) (0xa0 | bad[i].n);
			memcpy(buf + 1, bad[i].bytes, bad[i].n);
			expect_decode_fail(bad[i].name, buf, bad[i].n + 1, &big_limits, "invalid UTF-8");
		}
	}
	/* UTF-8: valid edge cases */
	{
		const char *good[] = {"", "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
			"\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf",
		"\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80", "nul\0inside"};
		size_t		lens[] = {0, 1, 2, 3, 4, 3, 3, 3, 4, 2, 3, 4, 10};

		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		{
			uint8_t		buf[16];
			char		what[32];

			buf[0] = (uint8_t) (0xa0 | lens[i]);
			memcpy(buf + 1, good[i], lens[i]);
			snprintf(what, sizeof(what), "valid UTF-8 #%zu", i);
			expect_decode_ok(what, buf, lens[i] + 1);
		}
	}
	/* the bytes of one str in a map key are checked too */
	{
		static const uint8_t badkey[] = {0x81, 0xa2, 0xc3, 0x28, 0x01};

		expect_decode_fail("invalid UTF-8 map key", badkey, sizeof(badkey), &big_limits,
						   "invalid UTF-8 in string at offset 1");
	}
}

/* Scalars and special forms decode to the right node types. */
static void
test_decode_forms(void)
{
	MpArena		a;
	char		err[128];
	struct
	{
		const char *hex;
		MpType		type;
		int64_t		i;
		double		f;
	}			cases[] = {
		{"00", MP_INT, 0, 0}, {"7f", MP_INT, 127, 0}, {"ff", MP_INT, -1, 0}, {"e0", MP_INT, -32, 0},
		{"cc80", MP_INT, 128, 0}, {"cdffff", MP_INT, 65535, 0},
		{"ceffffffff", MP_INT, 4294967295LL, 0},
		{"cf7fffffffffffffff", MP_INT, INT64_MAX, 0},
		{"d080", MP_INT, -128, 0}, {"d18000", MP_INT, -32768, 0},
		{"d280000000", MP_INT, INT32_MIN, 0},
		{"d38000000000000000", MP_INT, INT64_MIN, 0},
		{"d3fffffffffffffffe", MP_INT, -2, 0},
		{"ca3fc00000", MP_FLOAT, 0, 1.5},
		{"cb4279431a9d000000", MP_FLOAT, 0, 1736000000000.0},
		{"c0", MP_NIL, 0, 0},
		{"d40000", MP_UNDEFINED, 0, 0},
		{"d50000ff", MP_UNDEFINED, 0, 0},
		{"c70100aa", MP_UNDEFINED, 0, 0},
		{"d6ff00000000", MP_EXT, 0, 0},
		{"c4020102", MP_BIN, 0, 0},
		{"c70305010203", MP_EXT, 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t		n;
		uint8_t    *p = unhex(cases[i].hex, strlen(cases[i].hex), &n);
		MpNode	   *r;

		mp_arena_init(&a);
		r = mp_decode(&a, p, n, &big_limits, err, sizeof(err));
		CHECK(r != NULL && r->type == cases[i].type, "decode %s: type (%s)", cases[i].hex, err);
		if (r != NULL && r->type == MP_INT)
			CHECK(r->v.i == cases[i].i, "decode %s: value %lld", cases[i].hex, (long long) r->v.i);
		if (r != NULL && r->type == MP_FLOAT)
			CHECK(r->v.f == cases[i].f, "decode %s: value %g", cases[i].hex, r->v.f);
		mp_arena_free(&a);
		free(p);
	}
	/* uint64 above INT64_MAX stays exact as MP_UINT */
	{
		static const uint8_t u[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		MpNode	   *r;
		int64_t		out;

		mp_arena_init(&a);
		r = mp_decode(&a, u, sizeof(u), &big_limits, err, sizeof(err));
		CHECK(r != NULL && r->type == MP_UINT && r->v.u == UINT64_MAX, "uint64 max");
		CHECK(r != NULL && !mp_number_as_int64(r, 0, INT64_MAX, &out), "uint64 max not int64");
		mp_arena_free(&a);
	}
	/* ext type and data */
	{
		static const uint8_t e[] = {0xd6, 0xff, 0x65, 0x43, 0x21, 0x00};
		MpNode	   *r;

		mp_arena_init(&a);
		r = mp_decode(&a, e, sizeof(e), &big_limits, err, sizeof(err));
		CHECK(r != NULL && r->type == MP_EXT && r->v.ext.type == -1 && r->len == 4 &&
			  r->v.ext.data == e + 2, "Date ext");
		mp_arena_free(&a);
	}
	/* map helpers: last duplicate wins, undefined means absent */
	{
		static const uint8_t m[] = {0x84, 0xa1, 'a', 0x01, 0xa1, 'b', 0xd4, 0x00, 0x00,
		0xa1, 'a', 0x02, 0x01, 0xa1, 'x'};
		MpNode	   *r;
		const MpNode *v;
		int64_t		out = 0;

		mp_arena_init(&a);
		r = mp_decode(&a, m, sizeof(m), &big_limits, err, sizeof(err));
		CHECK(r != NULL && r->type == MP_MAP && r->len == 4, "map decoded: %s", err);
		v = mp_map_get(r, "a");
		CHECK(v != NULL && v->type == MP_INT && v->v.i == 2, "duplicate key: last wins");
		CHECK(mp_map_get(r, "b") == NULL, "undefined value reads as absent");
		v = mp_map_get_raw(r, "b");
		CHECK(v != NULL && v->type == MP_UNDEFINED, "mp_map_get_raw sees undefined");
		CHECK(mp_map_get(r, "c") == NULL, "absent key");
		CHECK(mp_map_getn(r, "ab", 1) != NULL, "mp_map_getn uses the length");
		CHECK(mp_str_eq(&r->v.kv[7], "x") && !mp_str_eq(&r->v.kv[7], "xy"), "mp_str_eq");
		CHECK(mp_number_as_int64(mp_map_get(r, "a"), 0, 10, &out) && out == 2, "as_int64");
		CHECK(!mp_number_as_int64(mp_map_get(r, "a"), 3, 10, &out), "as_int64 range");
		mp_arena_free(&a);
	}
	/* mp_number_as_int64 on floats */
	{
		MpNode		f;
		int64_t		out;

		memset(&f, 0, sizeof(f));
		f.type = MP_FLOAT;
		f.v.f = 1736000000000.0;
		CHECK(mp_number_as_int64(&f, 0, INT64_MAX, &out) && out == 1736000000000LL, "float millis");
		f.v.f = 1.5;
		CHECK(!mp_number_as_int64(&f, 0, INT64_MAX, &out), "fraction refused");
		f.v.f = NAN;
		CHECK(!mp_number_as_int64(&f, INT64_MIN, INT64_MAX, &out), "NaN refused");
		f.v.f = 1e300;
		CHECK(!mp_number_as_int64(&f, INT64_MIN, INT64_MAX, &out), "1e300 refused");
		f.v.f = -0.0;
		CHECK(mp_number_as_int64(&f, 0, 5, &out) && out == 0, "-0 is 0");
	}
}

/* ================================================ message validation */

typedef void (*BuildFn) (MpBuf *b, const void *arg);

static TgParseResult
parse_buf(MpBuf *b, TgMessage *msg, char *err, size_t errlen)
{
	MpLimits	lim = {32, (uint32_t) b->len + 1, (uint32_t) b->len};

	return tg_message_parse(b->data, b->len, &lim, msg, err, errlen);
}

static void
expect_invalid(const char *what, MpBuf *b, const char *errpart)
{
	TgMessage	msg;
	char		err[256];
	TgParseResult r = parse_buf(b, &msg, err, sizeof(err));

	CHECK(r == TG_PARSE_INVALID, "%s: result %d, want INVALID (%s)", what, (int) r, err);
	CHECK(strstr(err, errpart) != NULL, "%s: error '%s' lacks '%s'", what, err, errpart);
	tg_message_free(&msg);
}

static void
put_ts(MpBuf *b, double millis, double counter, const char *node)
{
	mp_put_map_header(b, 3);
	mp_put_str(b, "millis");
	mp_put_number(b, millis);
	mp_put_str(b, "counter");
	mp_put_number(b, counter);
	mp_put_str(b, "nodeId");
	mp_put_str(b, node);
}

/* A PUT op; variant picks one defect (0 = valid). */
static void
put_op(MpBuf *b, const char *id, int variant)
{
	int			n = 5;

	if (variant == 5 || variant == 6)
		n = 4;					/* no record / no key */
	mp_put_map_header(b, (uint32_t) n + 2);
	mp_put_str(b, "id");
	mp_put_str(b, id);
	mp_put_str(b, "mapName");
	mp_put_str(b, variant == 9 ? "" : "todos");
	if (variant != 6)
	{
		mp_put_str(b, "key");
		if (variant == 7)
			mp_put_number(b, 7);
		else
			mp_put_str(b, "k1");
	}
	mp_put_str(b, "opType");
	mp_put_str(b, "PUT");
	if (variant != 5)
	{
		mp_put_str(b, "record");
		mp_put_map_header(b, variant == 8 ? 3 : 2);
		mp_put_str(b, "value");
		mp_put_map_header(b, 1);
		mp_put_str(b, "title");
		mp_put_str(b, "x");
		mp_put_str(b, "timestamp");
		switch (variant)
		{
			case 1:
				put_ts(b, NAN, 0, "n1");
				break;
			case 2:
				put_ts(b, 1736000000000.0, -1, "n1");
				break;
			case 3:
				put_ts(b, 1736000000000.0, 0, "a:b");
				break;
			case 4:
				put_ts(b, 1.5, 0, "n1");
				break;
			default:
				put_ts(b, 1736000000000.0, 3, "n1");
				break;
		}
		if (variant == 8)
		{
			mp_put_str(b, "ttlMs");
			mp_put_nil(b);
		}
	}
	mp_put_str(b, "orRecord");
	mp_put_undefined(b);
	mp_put_str(b, "synced");
	mp_put_bool(b, false);
}

static void
test_op_batch_isolation(void)
{
	MpBuf		b;
	TgMessage	msg;
	char		err[256];
	const char *want_err[] = {NULL, "record.timestamp.millis: must be a finite number",
		"record.timestamp.counter: expected an integer in 0..2^31-1",
		"record.timestamp.nodeId: must not contain ':'",
		"record.timestamp.millis: expected an integer in 0..2^53",
		"record: required for opType PUT", "key: required",
		"key: expected a string, got integer", "record.ttlMs: must not be null",
	"mapName: must not be empty"};
	int			nv = (int) (sizeof(want_err) / sizeof(want_err[0]));

	mp_buf_init(&b, 0);
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "type");
	mp_put_str(&b, "OP_BATCH");
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "ops");
	mp_put_array_header(&b, (uint32_t) nv + 2);
	for (int i = 0; i < nv; i++)
	{
		char		id[16];

		snprintf(id, sizeof(id), "%d", i + 1);
		put_op(&b, id, i);
	}
	/* an op that is not even a map, and one with a numeric id */
	mp_put_number(&b, 42);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "id");
	mp_put_number(&b, 5);

	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK, "batch with bad ops parses: %s", err);
	CHECK(msg.type == TG_MSG_OP_BATCH && msg.u.op_batch.n_ops == (uint32_t) nv + 2, "op count");
	CHECK(msg.u.op_batch.n_invalid == (uint32_t) nv + 1, "n_invalid = %u", msg.u.op_batch.n_invalid);
	for (int i = 0; i < nv && i < (int) msg.u.op_batch.n_ops; i++)
	{
		TgOp	   *op = &msg.u.op_batch.ops[i];
		char		id[16];

		snprintf(id, sizeof(id), "%d", i + 1);
		CHECK(op->has_id && tg_str_eq(op->id, id), "op %d keeps its id", i);
		if (want_err[i] == NULL)
		{
			CHECK(op->valid && op->error == NULL, "op %d valid (%s)", i, op->error ? op->error : "");
			CHECK(op->op_type == TG_OP_PUT && op->has_record && !op->has_or_record &&
				  op->record.ts.millis == 1736000000000LL && op->record.ts.counter == 3 &&
				  tg_str_eq(op->record.ts.node_id, "n1") && tg_str_eq(op->key, "k1"),
				  "op %d fields", i);
			{
				MpBuf		j;
				char		jerr[128];

				mp_buf_init(&j, 0);
				CHECK(mp_value_to_json(op->record.value, &j, jerr, sizeof(jerr)) &&
					  strcmp((char *) j.data, "{\"title\":\"x\"}") == 0, "op value JSON");
				mp_buf_free(&j);
			}
		}
		else
		{
			CHECK(!op->valid && op->error != NULL && strcmp(op->error, want_err[i]) == 0,
				  "op %d error '%s', want '%s'", i, op->error ? op->error : "(none)", want_err[i]);
		}
	}
	if (msg.u.op_batch.n_ops == (uint32_t) nv + 2)
	{
		TgOp	   *op = &msg.u.op_batch.ops[nv];

		CHECK(!op->valid && !op->has_id && strstr(op->error, "expected an op map, got integer"),
			  "non-map op: %s", op->error ? op->error : "");
		op = &msg.u.op_batch.ops[nv + 1];
		CHECK(!op->valid && !op->has_id && strcmp(op->error, "id: expected a string, got integer") == 0,
			  "numeric id: %s", op->error ? op->error : "");
	}
	tg_message_free(&msg);
	mp_buf_free(&b);
}

static void
begin_msg(MpBuf *b, const char *type, uint32_t nfields)
{
	mp_buf_reset(b);
	mp_put_map_header(b, nfields + 1);
	mp_put_str(b, "type");
	mp_put_str(b, type);
}

static void
test_invalid_messages(void)
{
	MpBuf		b;
	TgMessage	msg;
	char		err[256];

	mp_buf_init(&b, 0);

	/* not a map / no type / non-string type / unknown type */
	mp_buf_reset(&b);
	mp_put_array_header(&b, 0);
	expect_invalid("array root", &b, "message must be a map, got array");
	mp_buf_reset(&b);
	mp_put_map_header(&b, 0);
	expect_invalid("no type", &b, "type: required");
	mp_buf_reset(&b);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "type");
	mp_put_undefined(&b);
	expect_invalid("undefined type", &b, "type: required");
	mp_buf_reset(&b);
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "type");
	mp_put_number(&b, 3);
	expect_invalid("numeric type", &b, "type: expected a string, got integer");
	begin_msg(&b, "CLUSTER_SUB_REGISTER", 0);
	expect_invalid("unknown type", &b, "unknown message type CLUSTER_SUB_REGISTER");
	begin_msg(&b, "ping", 0);
	expect_invalid("lowercase type", &b, "unknown message type ping");
	begin_msg(&b, "BAD\nTYPE", 0);
	expect_invalid("control chars in type", &b, "unknown message type BAD?TYPE");

	/* AUTH */
	begin_msg(&b, "AUTH", 1);
	mp_put_str(&b, "token");
	mp_put_nil(&b);
	expect_invalid("AUTH token nil", &b, "token: expected a string, got nil");
	begin_msg(&b, "AUTH", 0);
	expect_invalid("AUTH no token", &b, "token: required");

	/* PING */
	begin_msg(&b, "PING", 1);
	mp_put_str(&b, "timestamp");
	mp_put_str(&b, "now");
	expect_invalid("PING string timestamp", &b, "timestamp: expected a number, got string");
	begin_msg(&b, "PING", 1);
	mp_put_str(&b, "timestamp");
	mp_put_number(&b, NAN);
	expect_invalid("PING NaN", &b, "timestamp: must be a finite number");
	begin_msg(&b, "PING", 1);
	mp_put_str(&b, "timestamp");
	mp_put_number(&b, INFINITY);
	expect_invalid("PING Infinity", &b, "timestamp: must be a finite number");
	begin_msg(&b, "PING", 2);
	mp_put_str(&b, "timestamp");
	mp_put_number(&b, 5);
	mp_put_str(&b, "extra");
	mp_put_bin(&b, "x", 1);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && msg.u.ping.timestamp == 5,
		  "PING with extra key: %s", err);
	tg_message_free(&msg);

	/* SYNC_INIT */
	begin_msg(&b, "SYNC_INIT", 1);
	mp_put_str(&b, "mapName");
	mp_put_number(&b, 1);
	expect_invalid("SYNC_INIT int mapName", &b, "mapName: expected a string, got integer");
	begin_msg(&b, "SYNC_INIT", 1);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "");
	expect_invalid("SYNC_INIT empty mapName", &b, "mapName: must not be empty");
	{
		char		longname[300];

		memset(longname, 'm', 257);
		longname[257] = 0;
		begin_msg(&b, "SYNC_INIT", 1);
		mp_put_str(&b, "mapName");
		mp_put_str(&b, longname);
		expect_invalid("SYNC_INIT long mapName", &b, "mapName: must be 1..256 bytes long, got 257");
	}
	begin_msg(&b, "SYNC_INIT", 1);
	mp_put_str(&b, "mapName");
	mp_put_strn(&b, "a\0b", 3);
	expect_invalid("SYNC_INIT NUL in mapName", &b, "mapName: must not contain NUL characters");
	begin_msg(&b, "SYNC_INIT", 2);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "todos");
	mp_put_str(&b, "lastSyncTimestamp");
	mp_put_nil(&b);
	expect_invalid("SYNC_INIT nil lastSync", &b, "lastSyncTimestamp: must not be null");
	begin_msg(&b, "SYNC_INIT", 2);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "todos");
	mp_put_str(&b, "lastSyncTimestamp");
	mp_put_undefined(&b);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK &&
		  !msg.u.sync_init.has_last_sync, "SYNC_INIT undefined lastSync is absent: %s", err);
	tg_message_free(&msg);

	/* MERKLE_REQ_BUCKET paths */
	{
		const char *bad_paths[] = {"A", "abcd", "g", "0x", " "};
		const char *good_paths[] = {"", "0", "af", "fff"};

		for (size_t i = 0; i < 5; i++)
		{
			begin_msg(&b, "MERKLE_REQ_BUCKET", 1);
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "mapName");
			mp_put_str(&b, "m");
			mp_put_str(&b, "path");
			mp_put_str(&b, bad_paths[i]);
			expect_invalid(bad_paths[i], &b, "payload.path: ");
		}
		for (size_t i = 0; i < 4; i++)
		{
			begin_msg(&b, "ORMAP_MERKLE_REQ_BUCKET", 1);
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "mapName");
			mp_put_str(&b, "m");
			mp_put_str(&b, "path");
			mp_put_str(&b, good_paths[i]);
			CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK &&
				  tg_str_eq(msg.u.bucket_req.path, good_paths[i]), "path '%s': %s", good_paths[i], err);
			tg_message_free(&msg);
		}
	}
	begin_msg(&b, "MERKLE_REQ_BUCKET", 1);
	mp_put_str(&b, "payload");
	mp_put_nil(&b);
	expect_invalid("nil payload", &b, "payload: expected a map, got nil");

	/* OP_BATCH envelope */
	begin_msg(&b, "OP_BATCH", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "ops");
	mp_put_map_header(&b, 0);
	expect_invalid("ops not array", &b, "payload.ops: expected an array, got map");
	begin_msg(&b, "OP_BATCH", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "ops");
	mp_put_array_header(&b, 0);
	mp_put_str(&b, "writeConcern");
	mp_put_str(&b, "SOMETIMES");
	expect_invalid("bad writeConcern", &b, "payload.writeConcern: must be one of");
	begin_msg(&b, "OP_BATCH", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "ops");
	mp_put_array_header(&b, 0);
	mp_put_str(&b, "writeConcern");
	mp_put_str(&b, "PERSISTED");
	mp_put_str(&b, "timeout");
	mp_put_number(&b, 5000);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && msg.u.op_batch.n_ops == 0 &&
		  msg.u.op_batch.write_concern == TG_WC_PERSISTED && msg.u.op_batch.has_timeout &&
		  msg.u.op_batch.timeout == 5000, "empty batch with options: %s", err);
	tg_message_free(&msg);

	/* OR ops */
	{
		/* OR_ADD without orRecord, OR_REMOVE with nil orTag, unknown opType needs record */
		const char *types[] = {"OR_ADD", "OR_REMOVE", "MERGE"};
		const char *errs[] = {"orRecord: required for opType OR_ADD",
			"orTag: required for opType OR_REMOVE",
		"record: required for opType MERGE"};

		for (int i = 0; i < 3; i++)
		{
			begin_msg(&b, "OP_BATCH", 1);
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 1);
			mp_put_str(&b, "ops");
			mp_put_array_header(&b, 1);
			mp_put_map_header(&b, 5);
			mp_put_str(&b, "mapName");
			mp_put_str(&b, "tags");
			mp_put_str(&b, "key");
			mp_put_str(&b, "k");
			mp_put_str(&b, "opType");
			mp_put_str(&b, types[i]);
			mp_put_str(&b, "orTag");
			mp_put_nil(&b);
			mp_put_str(&b, "record");
			mp_put_nil(&b);
			CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && msg.u.op_batch.n_ops == 1 &&
				  !msg.u.op_batch.ops[0].valid && !msg.u.op_batch.ops[0].has_id &&
				  strcmp(msg.u.op_batch.ops[0].error, errs[i]) == 0,
				  "%s op: %s / %s", types[i], err,
				  msg.u.op_batch.n_ops == 1 && msg.u.op_batch.ops[0].error ? msg.u.op_batch.ops[0].error : "");
			tg_message_free(&msg);
		}
	}
	/* an OR_ADD with a value that is missing is refused, nil is kept */
	for (int with_value = 0; with_value < 2; with_value++)
	{
		begin_msg(&b, "CLIENT_OP", 1);
		mp_put_str(&b, "payload");
		mp_put_map_header(&b, 5);
		mp_put_str(&b, "id");
		mp_put_str(&b, "9");
		mp_put_str(&b, "mapName");
		mp_put_str(&b, "tags");
		mp_put_str(&b, "key");
		mp_put_str(&b, "");
		mp_put_str(&b, "opType");
		mp_put_str(&b, "OR_ADD");
		mp_put_str(&b, "orRecord");
		mp_put_map_header(&b, with_value ? 4 : 3);
		if (with_value)
		{
			mp_put_str(&b, "value");
			mp_put_nil(&b);
		}
		mp_put_str(&b, "timestamp");
		put_ts(&b, 4294967296.0 * 1000, 2147483647, "peer");
		mp_put_str(&b, "tag");
		mp_put_str(&b, "4294967296000:2147483647:peer");
		mp_put_str(&b, "ttlMs");
		mp_put_number(&b, 1000);
		CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK, "CLIENT_OP parses: %s", err);
		if (with_value)
		{
			TgOp	   *op = &msg.u.client_op.op;

			CHECK(op->valid && op->op_type == TG_OP_OR_ADD && op->has_or_record &&
				  op->or_record.value->type == MP_NIL &&
				  op->or_record.ts.millis == 4294967296000LL &&
				  op->or_record.ts.counter == 2147483647u && op->or_record.has_ttl &&
				  op->or_record.ttl_ms == 1000 && tg_str_eq(op->key, "") && tg_str_eq(op->id, "9"),
				  "CLIENT_OP OR_ADD fields (%s)", op->error ? op->error : "");
		}
		else
			CHECK(!msg.u.client_op.op.valid && msg.u.client_op.op.has_id &&
				  strcmp(msg.u.client_op.op.error, "orRecord.value: required (undefined cannot be stored; use null)") == 0,
				  "CLIENT_OP without value: %s", msg.u.client_op.op.error ? msg.u.client_op.op.error : "");
		tg_message_free(&msg);
	}
	/* ttlMs must be a positive integer */
	{
		double		bad_ttl[] = {0, -5, 1.5, NAN};

		for (int i = 0; i < 4; i++)
		{
			begin_msg(&b, "CLIENT_OP", 1);
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "mapName");
			mp_put_str(&b, "m");
			mp_put_str(&b, "key");
			mp_put_str(&b, "k");
			mp_put_str(&b, "record");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "value");
			mp_put_number(&b, 1);
			mp_put_str(&b, "timestamp");
			put_ts(&b, 1, 0, "n");
			mp_put_str(&b, "ttlMs");
			mp_put_number(&b, bad_ttl[i]);
			CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && !msg.u.client_op.op.valid &&
				  strncmp(msg.u.client_op.op.error, "record.ttlMs: ", 14) == 0,
				  "ttl %g refused: %s", bad_ttl[i], msg.u.client_op.op.error ? msg.u.client_op.op.error : "");
			tg_message_free(&msg);
		}
	}
	/* millis at 2^53 accepted, above refused; int64 encodings accepted */
	{
		struct
		{
			const char *hex;
			bool		ok;
		}			ms[] = {{"cb4340000000000000", true}, {"cb4340000000000001", false},
			{"cf0020000000000000", true}, {"d30020000000000001", false},
		{"d3ffffffffffffffff", false}, {"ca3f800000", true}};

		for (int i = 0; i < 6; i++)
		{
			size_t		n;
			uint8_t    *raw = unhex(ms[i].hex, strlen(ms[i].hex), &n);

			begin_msg(&b, "CLIENT_OP", 1);
			mp_put_str(&b, "payload");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "mapName");
			mp_put_str(&b, "m");
			mp_put_str(&b, "key");
			mp_put_str(&b, "k");
			mp_put_str(&b, "record");
			mp_put_map_header(&b, 2);
			mp_put_str(&b, "value");
			mp_put_nil(&b);
			mp_put_str(&b, "timestamp");
			mp_put_map_header(&b, 3);
			mp_put_str(&b, "millis");
			mp_put_raw(&b, raw, n);
			mp_put_str(&b, "counter");
			mp_put_number(&b, 0);
			mp_put_str(&b, "nodeId");
			mp_put_str(&b, "n");
			free(raw);
			CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK &&
				  msg.u.client_op.op.valid == ms[i].ok, "millis %s valid=%d: %s", ms[i].hex,
				  (int) ms[i].ok, msg.u.client_op.op.error ? msg.u.client_op.op.error : "");
			tg_message_free(&msg);
		}
	}
	/* nodeId length */
	{
		char		node[200];

		memset(node, 'n', 129);
		node[129] = 0;
		begin_msg(&b, "CLIENT_OP", 1);
		mp_put_str(&b, "payload");
		mp_put_map_header(&b, 4);
		mp_put_str(&b, "mapName");
		mp_put_str(&b, "m");
		mp_put_str(&b, "key");
		mp_put_str(&b, "k");
		mp_put_str(&b, "opType");
		mp_put_str(&b, "REMOVE");
		mp_put_str(&b, "record");
		mp_put_map_header(&b, 2);
		mp_put_str(&b, "value");
		mp_put_nil(&b);
		mp_put_str(&b, "timestamp");
		put_ts(&b, 1, 0, node);
		CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && !msg.u.client_op.op.valid &&
			  strcmp(msg.u.client_op.op.error, "record.timestamp.nodeId: must be 1..128 bytes long, got 129") == 0,
			  "long nodeId: %s", msg.u.client_op.op.error ? msg.u.client_op.op.error : "");
		tg_message_free(&msg);
	}
	/* CLIENT_OP without a payload map is invalid as a whole */
	begin_msg(&b, "CLIENT_OP", 1);
	mp_put_str(&b, "payload");
	mp_put_array_header(&b, 0);
	expect_invalid("CLIENT_OP array payload", &b, "payload: expected a map, got array");

	/* QUERY_SUB */
	begin_msg(&b, "QUERY_SUB", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "queryId");
	mp_put_str(&b, "q1");
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "todos");
	mp_put_str(&b, "query");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "predicate");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "op");
	mp_put_str(&b, "and");
	mp_put_str(&b, "children");
	mp_put_array_header(&b, 1);
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "op");
	mp_put_str(&b, "contains");
	mp_put_str(&b, "attribute");
	mp_put_str(&b, "tags");
	expect_invalid("contains predicate", &b,
				   "payload.query.predicate.children[0].op: unsupported predicate operator 'contains'");
	begin_msg(&b, "QUERY_SUB", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "queryId");
	mp_put_str(&b, "q1");
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "todos");
	mp_put_str(&b, "query");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "sort");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "title");
	mp_put_str(&b, "up");
	expect_invalid("bad sort", &b, "payload.query.sort: direction of 'title' must be 'asc' or 'desc'");
	begin_msg(&b, "QUERY_SUB", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "queryId");
	mp_put_str(&b, "q1");
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "todos");
	mp_put_str(&b, "query");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "limit");
	mp_put_str(&b, "10");
	expect_invalid("string limit", &b, "payload.query.limit: expected a number, got string");

	/* COUNTER_SYNC */
	begin_msg(&b, "COUNTER_SYNC", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "name");
	mp_put_str(&b, "likes");
	mp_put_str(&b, "state");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "p");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "a");
	mp_put_number(&b, 3);
	mp_put_str(&b, "n");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "a");
	mp_put_number(&b, -1);
	expect_invalid("negative counter", &b, "payload.state.n.a: expected an integer in 0..2^53");
	begin_msg(&b, "COUNTER_SYNC", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "name");
	mp_put_str(&b, "likes");
	mp_put_str(&b, "state");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "p");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "a");
	mp_put_number(&b, 3);
	mp_put_str(&b, "n");
	mp_put_map_header(&b, 0);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && !msg.u.counter_sync.client_shape &&
		  msg.u.counter_sync.n_p == 1 && msg.u.counter_sync.p[0].value == 3 &&
		  tg_str_eq(msg.u.counter_sync.p[0].node_id, "a") && msg.u.counter_sync.n_n == 0,
		  "COUNTER_SYNC p/n: %s", err);
	tg_message_free(&msg);
	begin_msg(&b, "COUNTER_SYNC", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "name");
	mp_put_str(&b, "likes");
	mp_put_str(&b, "state");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "x");
	mp_put_nil(&b);
	expect_invalid("COUNTER_SYNC bad state", &b, "payload.state: expected {p, n} or {positive, negative}");

	/* ORMAP_PUSH_DIFF / ORMAP_DIFF_REQUEST / ORMAP_SYNC_INIT */
	begin_msg(&b, "ORMAP_PUSH_DIFF", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "tags");
	mp_put_str(&b, "entries");
	mp_put_array_header(&b, 1);
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "key");
	mp_put_str(&b, "k");
	mp_put_str(&b, "records");
	mp_put_array_header(&b, 0);
	mp_put_str(&b, "tombstones");
	mp_put_array_header(&b, 1);
	mp_put_number(&b, 5);
	expect_invalid("numeric tombstone", &b, "payload.entries[0].tombstones[0]: expected a string, got integer");
	begin_msg(&b, "ORMAP_DIFF_REQUEST", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "tags");
	mp_put_str(&b, "keys");
	mp_put_array_header(&b, 2);
	mp_put_str(&b, "a");
	mp_put_nil(&b);
	expect_invalid("nil key", &b, "payload.keys[1]: expected a string, got nil");
	begin_msg(&b, "ORMAP_SYNC_INIT", 3);
	mp_put_str(&b, "mapName");
	mp_put_str(&b, "tags");
	mp_put_str(&b, "rootHash");
	mp_put_number(&b, 1);
	mp_put_str(&b, "bucketHashes");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "f");
	mp_put_str(&b, "1");
	expect_invalid("string bucket hash", &b, "bucketHashes.f: expected a number, got string");

	/* TOPIC_PUB with undefined data, LOCK_* */
	begin_msg(&b, "TOPIC_PUB", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 2);
	mp_put_str(&b, "topic");
	mp_put_str(&b, "news");
	mp_put_str(&b, "data");
	mp_put_undefined(&b);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && msg.u.topic.data == NULL,
		  "TOPIC_PUB undefined data: %s", err);
	tg_message_free(&msg);
	begin_msg(&b, "TOPIC_SUB", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "topic");
	mp_put_str(&b, "");
	expect_invalid("empty topic", &b, "payload.topic: must not be empty");
	begin_msg(&b, "LOCK_REQUEST", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 3);
	mp_put_str(&b, "requestId");
	mp_put_str(&b, "r1");
	mp_put_str(&b, "name");
	mp_put_str(&b, "lock-a");
	mp_put_str(&b, "ttl");
	mp_put_number(&b, 5000);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_OK && msg.type == TG_MSG_LOCK_REQUEST &&
		  msg.u.lock_request.has_ttl && msg.u.lock_request.ttl == 5000 &&
		  tg_str_eq(msg.u.lock_request.name, "lock-a"), "LOCK_REQUEST: %s", err);
	tg_message_free(&msg);
	begin_msg(&b, "LOCK_RELEASE", 1);
	mp_put_str(&b, "payload");
	mp_put_map_header(&b, 1);
	mp_put_str(&b, "name");
	mp_put_str(&b, "lock-a");
	expect_invalid("LOCK_RELEASE without fencingToken", &b, "payload.fencingToken: required");

	/* decode errors are reported as such */
	mp_buf_reset(&b);
	mp_put_raw(&b, "{\"type\":\"PING\"}", 15);
	CHECK(parse_buf(&b, &msg, err, sizeof(err)) == TG_PARSE_DECODE_ERROR &&
		  strstr(err, "trailing bytes") != NULL, "JSON text is a decode error: %s", err);
	tg_message_free(&msg);

	/* a vector followed by one extra byte */
	{
		Vector	   *v = find_vector("c2s_AUTH");
		uint8_t    *p = malloc(v->len + 1);

		memcpy(p, v->bytes, v->len);
		p[v->len] = 0xc0;
		CHECK(tg_message_parse(p, v->len + 1, NULL, &msg, err, sizeof(err)) == TG_PARSE_DECODE_ERROR &&
			  strstr(err, "1 trailing bytes") != NULL, "AUTH + trailing byte: %s", err);
		tg_message_free(&msg);
		free(p);
	}
	mp_buf_free(&b);

	CHECK(strcmp(tg_msg_type_name(TG_MSG_COUNTER_SYNC), "COUNTER_SYNC") == 0, "type name");
	CHECK(strcmp(tg_write_concern_name(TG_WC_MEMORY), "MEMORY") == 0 &&
		  tg_write_concern_name(TG_WC_NONE) == NULL, "write concern names");
	{
		char		small[4];
		TgStr		s = {"abcdef", 6};

		CHECK(strcmp(tg_str_copy(s, small, sizeof(small)), "abc") == 0, "tg_str_copy truncates");
	}
}

/* ================================================== mp_value_to_json */

static void
expect_json_hex(const char *hex, const char *want_json, const char *want_err)
{
	size_t		n;
	uint8_t    *p = unhex(hex, strlen(hex), &n);
	MpArena		a;
	MpBuf		out;
	char		err[256];
	MpNode	   *r;

	mp_arena_init(&a);
	mp_buf_init(&out, 0);
	r = mp_decode(&a, p, n, &big_limits, err, sizeof(err));
	CHECK(r != NULL, "json case %s: decode: %s", hex, err);
	if (r != NULL)
	{
		bool		ok = mp_value_to_json(r, &out, err, sizeof(err));

		if (want_json != NULL)
			CHECK(ok && strlen((char *) out.data) == out.len && strcmp((char *) out.data, want_json) == 0,
				  "json of %s: got '%s' (%s), want '%s'", hex, ok ? (char *) out.data : "", err, want_json);
		else
			CHECK(!ok && strstr(err, want_err) != NULL, "json of %s should fail with '%s', got '%s'",
				  hex, want_err, ok ? (char *) out.data : err);
	}
	mp_buf_free(&out);
	mp_arena_free(&a);
	free(p);
}

static void
expect_json_double(double f, const char *want)
{
	MpBuf		b;

	mp_buf_init(&b, 0);
	mp_put_float64(&b, f);
	{
		char	   *hex = tohex(b.data, b.len);

		expect_json_hex(hex, want, NULL);
		free(hex);
	}
	mp_buf_free(&b);
}

static void
test_json(void)
{
	/* {"a":1,"b":[true,false,null],"c":"x\"\\\n\u0001/"} built by hand */
	expect_json_hex("de0003a16101a16293c3c2c0a163a778225c0a012f2f",
					"{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\\"\\\\\\n\\u0001//\"}", NULL);
	expect_json_hex("de0000", "{}", NULL);
	expect_json_hex("90", "[]", NULL);
	expect_json_hex("80", "{}", NULL);
	expect_json_hex("c0", "null", NULL);
	expect_json_hex("a0", "\"\"", NULL);
	expect_json_hex("a6c3a9f09f9880", "\"\xc3\xa9\xf0\x9f\x98\x80\"", NULL);
	expect_json_hex("a3e280a8", "\"\xe2\x80\xa8\"", NULL);
	expect_json_hex("a4080c0d09", "\"\\b\\f\\r\\t\"", NULL);
	expect_json_hex("a11f", "\"\\u001f\"", NULL);
	expect_json_hex("a17f", "\"\x7f\"", NULL);
	/* integers */
	expect_json_hex("ff", "-1", NULL);
	expect_json_hex("ceffffffff", "4294967295", NULL);
	expect_json_hex("cf0020000000000000", "9007199254740992", NULL);
	expect_json_hex("d3ffe0000000000000", "-9007199254740992", NULL);
	expect_json_hex("cf0020000000000001", NULL, "integer beyond 2^53");
	expect_json_hex("d3ffdfffffffffffff", NULL, "integer beyond 2^53");
	expect_json_hex("cfffffffffffffffff", NULL, "integer beyond 2^53");
	/* doubles: shortest round-trip form */
	expect_json_double(0.1, "0.1");
	expect_json_double(1.5, "1.5");
	expect_json_double(-2.25, "-2.25");
	expect_json_double(1.0 / 3.0, "0.3333333333333333");
	expect_json_double(0.1 + 0.2, "0.30000000000000004");
	expect_json_double(1736000000000.0, "1736000000000");
	expect_json_double(1e21, "1e+21");
	expect_json_double(1.7976931348623157e308, "1.7976931348623157e+308");
	expect_json_double(5e-324, "4.94065645841247e-324");
	expect_json_double(2.2250738585072014e-308, "2.2250738585072014e-308");
	expect_json_double(123456789012345680.0, "1.2345678901234568e+17");
	expect_json_double(-0.0, "0");
	expect_json_double(9007199254740993.0, "9007199254740992");
	expect_json_hex("ca3fc00000", "1.5", NULL);
	expect_json_hex("ca3dcccccd", "0.10000000149011612", NULL);
	expect_json_hex("cb7ff8000000000000", NULL, "NaN");
	expect_json_hex("cb7ff0000000000000", NULL, "Infinity");
	expect_json_hex("cbfff0000000000000", NULL, "Infinity");
	/* rejected types */
	expect_json_hex("c40101", NULL, "binary data (bin)");
	expect_json_hex("d6ff00000000", NULL, "Date values (ext -1)");
	expect_json_hex("d40500", NULL, "extension type 5");
	expect_json_hex("a3610062", NULL, "NUL character");
	expect_json_hex("81a3610062c0", NULL, "NUL character");
	expect_json_hex("d40000", NULL, "undefined");
	expect_json_hex("92c0d40000", NULL, "undefined inside an array");
	expect_json_hex("810102", NULL, "map key of type integer");
	expect_json_hex("81c001", NULL, "map key of type nil");
	/* undefined object properties are omitted */
	expect_json_hex("de0003a161d40000a16201a163d40000", "{\"b\":1}", NULL);
	expect_json_hex("81a161d40000", "{}", NULL);
	/* duplicate keys are passed through; jsonb keeps the last */
	expect_json_hex("82a16101a16102", "{\"a\":1,\"a\":2}", NULL);
	/* a value as the client sends it (OP_BATCH_or_add_ttl) */
	expect_json_hex("de0002a3686578a723303030306666a46e616d65a4626c7565",
					"{\"hex\":\"#0000ff\",\"name\":\"blue\"}", NULL);
	/* depth: 128 levels fine, 129 refused */
	{
		char		hex[2 * 200 + 8];

		for (int depth = 128; depth <= 129; depth++)
		{
			char		want[300];

			for (int i = 0; i < depth; i++)
			{
				memcpy(hex + 2 * i, "91", 2);
				want[i] = '[';
			}
			memcpy(hex + 2 * depth, "01", 3);
			want[depth] = '1';
			for (int i = 0; i < depth; i++)
				want[depth + 1 + i] = ']';
			want[2 * depth + 1] = 0;
			if (depth == 128)
				expect_json_hex(hex, want, NULL);
			else
				expect_json_hex(hex, NULL, "nested deeper than 128");
		}
	}
	/* the output cap is reported, not overrun */
	{
		MpArena		a;
		MpBuf		out;
		char		err[128];
		static const uint8_t s[] = {0xa5, 'h', 'e', 'l', 'l', 'o'};
		MpNode	   *r;

		mp_arena_init(&a);
		r = mp_decode(&a, s, sizeof(s), &big_limits, err, sizeof(err));
		mp_buf_init(&out, 4);
		CHECK(r != NULL && !mp_value_to_json(r, &out, err, sizeof(err)) &&
			  strstr(err, "size limit") != NULL, "JSON cap: %s", err);
		mp_buf_free(&out);
		/* appending to a buffer that already holds text */
		mp_buf_init(&out, 0);
		mp_put_raw(&out, "x=", 2);
		CHECK(mp_value_to_json(r, &out, err, sizeof(err)) && strcmp((char *) out.data, "x=\"hello\"") == 0,
			  "JSON appends");
		mp_buf_free(&out);
		mp_arena_free(&a);
	}
	/* every application value in the c2s vectors converts or fails cleanly */
	{
		int			converted = 0;

		for (int i = 0; i < n_vectors; i++)
		{
			TgMessage	msg;
			char		err[256];
			MpBuf		out;

			if (strncmp(vectors[i].name, "c2s_OP_BATCH", 12) != 0)
				continue;
			if (tg_message_parse(vectors[i].bytes, vectors[i].len, NULL, &msg, err, sizeof(err)) == TG_PARSE_OK)
			{
				for (uint32_t k = 0; k < msg.u.op_batch.n_ops; k++)
				{
					const TgOp *op = &msg.u.op_batch.ops[k];
					const MpNode *val = op->has_record ? op->record.value :
						op->has_or_record ? op->or_record.value : NULL;

					if (val == NULL)
						continue;
					mp_buf_init(&out, 0);
					CHECK(mp_value_to_json(val, &out, err, sizeof(err)), "%s: value to JSON: %s",
						  vectors[i].name, err);
					converted++;
					mp_buf_free(&out);
				}
			}
			tg_message_free(&msg);
		}
		CHECK(converted >= 8, "converted %d vector values", converted);
	}
}

int
main(void)
{
	load_vectors();
	printf("vectors loaded: %d from %s\n", n_vectors, vectors_dir);
	test_c2s_vectors();
	test_all_vectors_roundtrip();
	test_truncations();
	test_encoder_vectors();
	test_encoder_forms();
	test_decode_forms();
	test_hostile_decode();
	test_op_batch_isolation();
	test_invalid_messages();
	test_json();

	for (int i = 0; i < n_vectors; i++)
	{
		free(vectors[i].bytes);
		json_free(vectors[i].json);
	}
	free(vectors);
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail == 0 ? 0 : 1;
}
