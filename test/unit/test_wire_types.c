/*
 * test_wire_types.c — unit tests of the optional-feature client messages
 * (src/wire/message_search.c, message_logic.c, message_journal.c): SEARCH*,
 * HYBRID_QUERY_*, ENTRY_PROCESS*, *_RESOLVER*, JOURNAL_*,
 * PARTITION_MAP_REQUEST.  Each frame is written as JSON (single quotes for
 * double quotes; {'$undefined':1} for undefined, {'$nan':1} for NaN) and
 * packed by json_put_msgpack (wire_json.h) the way msgpackr does.  Prints "N passed, M failed".
 */
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

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			n_pass++; \
		else \
		{ \
			n_fail++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* Parse a frame given as JSON with ' for "; the caller frees msg and buf. */
static TgParseResult
parse_json(const char *json, MpBuf *b, TgMessage *msg, char *err, size_t errlen)
{
	size_t		n = strlen(json);
	char	   *t = malloc(n + 1);
	JNode	   *j;
	MpLimits	lim;

	for (size_t i = 0; i <= n; i++)
		t[i] = json[i] == '\'' ? '"' : json[i];
	j = json_parse(t, n);
	free(t);
	if (j == NULL)
	{
		fprintf(stderr, "bad test JSON: %s\n", json);
		exit(2);
	}
	mp_buf_init(b, 0);
	json_put_msgpack(b, j);
	json_free(j);
	lim.max_depth = 32;
	lim.max_nodes = (uint32_t) b->len + 1;
	lim.max_str = (uint32_t) b->len;
	return tg_message_parse(b->data, b->len, &lim, msg, err, errlen);
}

/*
 * One case: want_ok, or INVALID with err containing errpart; want_id: the
 * request_id the parse result must expose (NULL: none).
 */
static void
expect(const char *json, bool want_ok, const char *errpart, const char *want_id)
{
	MpBuf		b;
	TgMessage	msg;
	char		err[256];
	TgParseResult r = parse_json(json, &b, &msg, err, sizeof(err));

	if (want_ok)
		CHECK(r == TG_PARSE_OK, "%s: result %d (%s), want OK", json, (int) r, err);
	else
	{
		CHECK(r == TG_PARSE_INVALID, "%s: result %d, want INVALID", json, (int) r);
		CHECK(strstr(err, errpart) != NULL, "%s: error '%s' lacks '%s'", json, err, errpart);
	}
	CHECK(msg.known_type == (errpart == NULL || strstr(errpart, "unknown message type") == NULL),
		  "%s: known_type %d", json, (int) msg.known_type);
	if (want_id == NULL)
		CHECK(!msg.has_request_id, "%s: unexpected request_id", json);
	else
		CHECK(msg.has_request_id && tg_str_eq(msg.request_id, want_id),
			  "%s: request_id %.*s, want %s", json,
			  msg.has_request_id ? (int) msg.request_id.len : 0,
			  msg.has_request_id ? msg.request_id.p : "", want_id);
	tg_message_free(&msg);
	mp_buf_free(&b);
}

#define OK(json, id) expect(json, true, NULL, id)
#define BAD(json, part, id) expect(json, false, part, id)

/* A JSON string literal body of n copies of s (static buffer, one at a time). */
static const char *
rep(const char *s, int n)
{
	static char buf[2][200000];
	static int	which = 0;
	char	   *o = buf[which ^= 1];
	size_t		l = strlen(s);

	for (int i = 0; i < n; i++)
		memcpy(o + i * l, s, l);
	o[n * l] = '\0';
	return o;
}

static char jbuf[400000];

static const char *
fmt(const char *f,...) __attribute__((format(printf, 1, 2)));

static const char *
fmt(const char *f,...)
{
	va_list		ap;

	va_start(ap, f);
	vsnprintf(jbuf, sizeof(jbuf), f, ap);
	va_end(ap);
	return jbuf;
}

static void
test_names(void)
{
	static const char *const names[] = {
		"SEARCH", "SEARCH_SUB", "SEARCH_UNSUB", "ENTRY_PROCESS", "ENTRY_PROCESS_BATCH",
		"REGISTER_RESOLVER", "UNREGISTER_RESOLVER", "LIST_RESOLVERS", "JOURNAL_READ",
		"JOURNAL_SUBSCRIBE", "JOURNAL_UNSUBSCRIBE", "PARTITION_MAP_REQUEST",
		"HYBRID_QUERY_SUBSCRIBE", "HYBRID_QUERY_UNSUBSCRIBE"
	};

	CHECK(TG_MSG_LOCK_RELEASE == 18 && TG_MSG_SEARCH == 19, "existing values kept");
	for (int t = TG_MSG_SEARCH; t < TG_MSG_COUNT_; t++)
		CHECK(strcmp(tg_msg_type_name((TgMsgType) t), names[t - TG_MSG_SEARCH]) == 0,
			  "name of %d: %s", t, tg_msg_type_name((TgMsgType) t));
	CHECK(TG_MSG_COUNT_ - TG_MSG_SEARCH == 14, "14 new types");
	BAD("{'type':'CLUSTER_SUB_REGISTER','payload':{}}", "unknown message type CLUSTER_SUB_REGISTER", NULL);
}

static void
test_search(void)
{
	MpBuf		b;
	TgMessage	m;
	char		err[256];

	/* what client.search() sends: options undefined */
	OK("{'type':'SEARCH','payload':{'requestId':'r1','mapName':'docs','query':'hello world','options':{'$undefined':1}}}", "r1");
	OK("{'type':'SEARCH','payload':{'requestId':'r1','mapName':'docs','query':'x','options':{}}}", "r1");
	OK("{'type':'SEARCH','payload':{'requestId':'','mapName':'docs','query':''}}", "");
	CHECK(parse_json("{'type':'SEARCH','payload':{'requestId':'r2','mapName':'docs','query':'q',"
					 "'options':{'limit':10,'minScore':0.5,'boost':{'title':2,'body':1.5,'x':{'$undefined':1}}}}}",
					 &b, &m, err, sizeof(err)) == TG_PARSE_OK, "search with options: %s", err);
	CHECK(m.type == TG_MSG_SEARCH && tg_str_eq(m.u.search.id, "r2") &&
		  tg_str_eq(m.u.search.map_name, "docs") && tg_str_eq(m.u.search.query, "q"),
		  "search fields");
	CHECK(m.u.search.options.has_limit && m.u.search.options.limit == 10 &&
		  m.u.search.options.has_min_score && m.u.search.options.min_score == 0.5 &&
		  m.u.search.options.boost != NULL && m.u.search.options.boost->len == 3,
		  "search options");
	tg_message_free(&m);
	mp_buf_free(&b);

	BAD("{'type':'SEARCH'}", "payload: required", NULL);
	BAD("{'type':'SEARCH','payload':{'mapName':'docs','query':'q'}}", "payload.requestId: required", NULL);
	BAD("{'type':'SEARCH','payload':{'requestId':5,'mapName':'docs','query':'q'}}", "payload.requestId: expected a string", NULL);
	BAD("{'type':'SEARCH','payload':{'requestId':'r','query':'q'}}", "payload.mapName: required", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'','query':'q'}}", "payload.mapName: must not be empty", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'docs'}}", "payload.query: required", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'docs','query':7}}", "payload.query: expected a string", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'docs','query':'a\\u0000b'}}", "payload.query: must not contain NUL", "r");
	OK(fmt("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'%s'}}", rep("a", 4096)), "r");
	BAD(fmt("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'%s'}}", rep("a", 4097)),
		"payload.query: must be 0..4096 bytes long, got 4097", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':null}}", "payload.options: expected a map, got nil", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'limit':'5'}}}", "payload.options.limit: expected a number", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'limit':{'$nan':1}}}}", "payload.options.limit: must be a finite number", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'minScore':null}}}", "payload.options.minScore: must not be null", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'boost':[]}}}", "payload.options.boost: expected a map, got array", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'boost':{'title':'2'}}}}", "payload.options.boost.title: expected a number", "r");
	BAD("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'boost':{'t\\u0000':2}}}}", "payload.options.boost: must not contain NUL", "r");
	{
		char		boost[2000];
		size_t		o = 0;

		for (int i = 0; i < 65; i++)
			o += (size_t) snprintf(boost + o, sizeof(boost) - o, "%s'f%d':1", i ? "," : "", i);
		BAD(fmt("{'type':'SEARCH','payload':{'requestId':'r','mapName':'m','query':'q','options':{'boost':{%s}}}}", boost),
			"payload.options.boost: at most 64 entries, got 65", "r");
	}
	/* an id that cannot be echoed is not exposed */
	BAD(fmt("{'type':'SEARCH','payload':{'requestId':'%s','mapName':'m','query':'q'}}", rep("i", 257)),
		"payload.requestId: must be 0..256 bytes long", NULL);
	BAD("{'type':'SEARCH','payload':{'requestId':'a\\u0000','mapName':'m'}}", "payload.requestId: must not contain NUL", NULL);

	/* SEARCH_SUB: subscriptionId is the reply's requestId */
	OK("{'type':'SEARCH_SUB','payload':{'subscriptionId':'s1','mapName':'docs','query':'q','options':{'limit':5}}}", "s1");
	BAD("{'type':'SEARCH_SUB','payload':{'requestId':'s1','mapName':'docs','query':'q'}}", "payload.subscriptionId: required", NULL);
	BAD("{'type':'SEARCH_SUB','payload':{'subscriptionId':'s1','mapName':'docs','query':['q']}}", "payload.query: expected a string", "s1");

	OK("{'type':'SEARCH_UNSUB','payload':{'subscriptionId':'s1'}}", NULL);
	BAD("{'type':'SEARCH_UNSUB','payload':{}}", "payload.subscriptionId: required", NULL);
	BAD("{'type':'SEARCH_UNSUB','subscriptionId':'s1'}", "payload: required", NULL);
}

static void
test_hybrid(void)
{
	/* what HybridQueryHandle sends, FTS predicate and undefined parts */
	OK("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1','mapName':'docs',"
	   "'predicate':{'op':'match','attribute':'body','query':'x'},'where':{'$undefined':1},"
	   "'sort':{'_score':'desc'},'limit':10,'cursor':{'$undefined':1}}}", NULL);
	OK("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1','mapName':'docs','where':null,'limit':null}}", NULL);
	BAD("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'mapName':'docs'}}", "payload.subscriptionId: required", NULL);
	BAD("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1'}}", "payload.mapName: required", NULL);
	BAD("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1','mapName':'d','predicate':'x'}}", "payload.predicate: expected a map", NULL);
	BAD("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1','mapName':'d','limit':'x'}}", "payload.limit: expected a number", NULL);
	BAD("{'type':'HYBRID_QUERY_SUBSCRIBE','payload':{'subscriptionId':'h1','mapName':'d','cursor':3}}", "payload.cursor: expected a string", NULL);
	OK("{'type':'HYBRID_QUERY_UNSUBSCRIBE','payload':{'subscriptionId':'h1'}}", NULL);
	BAD("{'type':'HYBRID_QUERY_UNSUBSCRIBE'}", "payload: required", NULL);
}

static void
test_entry_process(void)
{
	MpBuf		b;
	TgMessage	m;
	char		err[256];

	CHECK(parse_json("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'stock','key':'sku1',"
					 "'processor':{'name':'builtin:increment','code':'return x','args':{'delta':2}}}",
					 &b, &m, err, sizeof(err)) == TG_PARSE_OK, "entry process: %s", err);
	CHECK(tg_str_eq(m.u.entry_process.request_id, "e1") && tg_str_eq(m.u.entry_process.map_name, "stock") &&
		  tg_str_eq(m.u.entry_process.key, "sku1") && m.u.entry_process.n_keys == 0 &&
		  tg_str_eq(m.u.entry_process.processor.name, "builtin:increment") &&
		  tg_str_eq(m.u.entry_process.processor.code, "return x") &&
		  m.u.entry_process.processor.args != NULL &&
		  m.u.entry_process.processor.args->type == MP_MAP, "entry process fields");
	tg_message_free(&m);
	mp_buf_free(&b);
	OK("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'','processor':{'name':'n','code':'c','args':null}}", "e1");
	OK("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'n','code':'c','args':{'$undefined':1}}}", "e1");

	BAD("{'type':'ENTRY_PROCESS','mapName':'m','key':'k','processor':{'name':'n','code':'c'}}", "requestId: required", NULL);
	BAD("{'type':'ENTRY_PROCESS','payload':{'requestId':'e1'}}", "requestId: required", NULL);
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','key':'k','processor':{'name':'n','code':'c'}}", "mapName: required", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','processor':{'name':'n','code':'c'}}", "key: required", "e1");
	BAD(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'%s','processor':{'name':'n','code':'c'}}", rep("k", 1025)),
		"key: must be 0..1024 bytes long", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k'}", "processor: required", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':'builtin:increment'}", "processor: expected a map", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'code':'c'}}", "processor.name: required", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'','code':'c'}}", "processor.name: must not be empty", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'n'}}", "processor.code: required", "e1");
	BAD("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'n','code':''}}", "processor.code: must not be empty", "e1");
	/* name 100 UTF-16 units: 100 'é' (200 bytes) pass, 51 emoji (102 units) fail */
	OK(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'%s','code':'c'}}", rep("é", 100)), "e1");
	BAD(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'%s','code':'c'}}", rep("n", 101)),
		"processor.name: must be 1..100 characters long, got 101", "e1");
	BAD(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'%s','code':'c'}}", rep("😀", 51)),
		"processor.name: must be 1..100 characters long, got 102", "e1");
	OK(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'n','code':'%s'}}", rep("c", 10000)), "e1");
	BAD(fmt("{'type':'ENTRY_PROCESS','requestId':'e1','mapName':'m','key':'k','processor':{'name':'n','code':'%s'}}", rep("c", 10001)),
		"processor.code: must be 1..10000 characters long, got 10001", "e1");

	/* batch */
	CHECK(parse_json("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':['a','b','a'],"
					 "'processor':{'name':'builtin:delete','code':'c'}}", &b, &m, err, sizeof(err)) == TG_PARSE_OK,
		  "batch: %s", err);
	CHECK(m.u.entry_process.n_keys == 3 && tg_str_eq(m.u.entry_process.keys[2], "a") &&
		  m.u.entry_process.processor.args == NULL, "batch keys");
	tg_message_free(&m);
	mp_buf_free(&b);
	OK("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':[],'processor':{'name':'n','code':'c'}}", "b1");
	BAD("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','processor':{'name':'n','code':'c'}}", "keys: required", "b1");
	BAD("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':'a','processor':{'name':'n','code':'c'}}", "keys: expected an array", "b1");
	BAD("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':['a',1],'processor':{'name':'n','code':'c'}}", "keys[1]: expected a string", "b1");
	OK(fmt("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':[%s'k'],'processor':{'name':'n','code':'c'}}", rep("'k',", 999)), "b1");
	BAD(fmt("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':[%s'k'],'processor':{'name':'n','code':'c'}}", rep("'k',", 1000)),
		"keys: at most 1000 items, got 1001", "b1");
	BAD("{'type':'ENTRY_PROCESS_BATCH','requestId':'b1','mapName':'m','keys':['a']}", "processor: required", "b1");
}

static void
test_resolvers(void)
{
	MpBuf		b;
	TgMessage	m;
	char		err[256];

	CHECK(parse_json("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'stock',"
					 "'resolver':{'name':'non-negative','code':'','priority':80,'keyPattern':'sku:*'}}",
					 &b, &m, err, sizeof(err)) == TG_PARSE_OK, "register: %s", err);
	CHECK(tg_str_eq(m.u.register_resolver.request_id, "q1") &&
		  tg_str_eq(m.u.register_resolver.map_name, "stock") &&
		  tg_str_eq(m.u.register_resolver.name, "non-negative") &&
		  m.u.register_resolver.code.len == 0 &&
		  m.u.register_resolver.has_priority && m.u.register_resolver.priority == 80 &&
		  m.u.register_resolver.has_key_pattern &&
		  tg_str_eq(m.u.register_resolver.key_pattern, "sku:*"), "register fields");
	tg_message_free(&m);
	mp_buf_free(&b);
	OK("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'x','priority':0}}", "q1");
	OK("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'x','priority':100.0}}", "q1");
	BAD("{'type':'REGISTER_RESOLVER','mapName':'m','resolver':{'name':'r','code':''}}", "requestId: required", NULL);
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','resolver':{'name':'r','code':''}}", "mapName: required", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m'}", "resolver: required", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'code':''}}", "resolver.name: required", "q1");
	BAD(fmt("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'%s','code':''}}", rep("r", 101)),
		"resolver.name: must be 1..100 characters long", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r'}}", "resolver.code: required", "q1");
	OK(fmt("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'%s'}}", rep("c", 50000)), "q1");
	BAD(fmt("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'%s'}}", rep("c", 50001)),
		"resolver.code: must be 0..50000 characters long", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','priority':101}}", "resolver.priority: expected an integer in 0..100", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','priority':-1}}", "resolver.priority: expected an integer in 0..100", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','priority':1.5}}", "resolver.priority: expected an integer in 0..100", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','priority':null}}", "resolver.priority: must not be null", "q1");
	BAD("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','keyPattern':5}}", "resolver.keyPattern: expected a string", "q1");
	BAD(fmt("{'type':'REGISTER_RESOLVER','requestId':'q1','mapName':'m','resolver':{'name':'r','code':'','keyPattern':'%s'}}", rep("p", 1025)),
		"resolver.keyPattern: must be 0..1024 bytes long", "q1");

	OK("{'type':'UNREGISTER_RESOLVER','requestId':'u1','mapName':'m','resolverName':'r'}", "u1");
	BAD("{'type':'UNREGISTER_RESOLVER','requestId':'u1','mapName':'m'}", "resolverName: required", "u1");
	BAD("{'type':'UNREGISTER_RESOLVER','requestId':'u1','resolverName':'r'}", "mapName: required", "u1");
	BAD("{'type':'UNREGISTER_RESOLVER','mapName':'m','resolverName':'r'}", "requestId: required", NULL);

	OK("{'type':'LIST_RESOLVERS','requestId':'l1'}", "l1");
	OK("{'type':'LIST_RESOLVERS','requestId':'l1','mapName':{'$undefined':1}}", "l1");
	CHECK(parse_json("{'type':'LIST_RESOLVERS','requestId':'l1','mapName':'stock'}", &b, &m, err, sizeof(err)) == TG_PARSE_OK &&
		  m.u.list_resolvers.has_map_name && tg_str_eq(m.u.list_resolvers.map_name, "stock"), "list with map");
	tg_message_free(&m);
	mp_buf_free(&b);
	BAD("{'type':'LIST_RESOLVERS','requestId':'l1','mapName':null}", "mapName: must not be null", "l1");
	BAD("{'type':'LIST_RESOLVERS','requestId':'l1','mapName':''}", "mapName: must not be empty", "l1");
	BAD("{'type':'LIST_RESOLVERS'}", "requestId: required", NULL);
}

static void
test_journal(void)
{
	MpBuf		b;
	TgMessage	m;
	char		err[256];

	CHECK(parse_json("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'9223372036854775807','limit':50,'mapName':'orders'}",
					 &b, &m, err, sizeof(err)) == TG_PARSE_OK, "read: %s", err);
	CHECK(tg_str_eq(m.u.journal.request_id, "j1") && m.u.journal.has_from_sequence &&
		  m.u.journal.from_sequence == INT64_MAX && m.u.journal.has_limit && m.u.journal.limit == 50 &&
		  m.u.journal.has_map_name && tg_str_eq(m.u.journal.map_name, "orders") &&
		  !m.u.journal.has_types, "read fields");
	tg_message_free(&m);
	mp_buf_free(&b);
	OK("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'0'}", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1'}", "fromSequence: required", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':0}", "fromSequence: expected a string", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':''}", "fromSequence: must not be empty", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'-1'}", "fromSequence: must be a decimal integer", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'1e3'}", "fromSequence: must be a decimal integer", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'9223372036854775808'}", "fromSequence: must be a decimal integer", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'12345678901234567890'}", "fromSequence: must be 1..19 bytes long", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'1','limit':'10'}", "limit: expected a number", "j1");
	BAD("{'type':'JOURNAL_READ','requestId':'j1','fromSequence':'1','mapName':7}", "mapName: expected a string", "j1");
	BAD("{'type':'JOURNAL_READ','fromSequence':'1'}", "requestId: required", NULL);

	CHECK(parse_json("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','fromSequence':'42','mapName':'m','types':['PUT','DELETE','PUT']}",
					 &b, &m, err, sizeof(err)) == TG_PARSE_OK, "subscribe: %s", err);
	CHECK(m.u.journal.has_from_sequence && m.u.journal.from_sequence == 42 && m.u.journal.has_types &&
		  m.u.journal.types_mask == (TG_JOURNAL_PUT | TG_JOURNAL_DELETE), "subscribe fields");
	tg_message_free(&m);
	mp_buf_free(&b);
	OK("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','fromSequence':{'$undefined':1},'mapName':{'$undefined':1},'types':{'$undefined':1}}", "s1");
	OK("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','types':[]}", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','types':['INSERT']}", "types[0]: must be one of PUT, UPDATE, DELETE", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','types':'PUT'}", "types: expected an array", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','types':null}", "types: expected an array, got nil", "s1");
	BAD(fmt("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','types':[%s'PUT']}", rep("'PUT',", 16)), "types: at most 16 items, got 17", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','fromSequence':'x'}", "fromSequence: must be a decimal integer", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE','requestId':'s1','fromSequence':null}", "fromSequence: must not be null", "s1");
	BAD("{'type':'JOURNAL_SUBSCRIBE'}", "requestId: required", NULL);

	OK("{'type':'JOURNAL_UNSUBSCRIBE','subscriptionId':'s1'}", NULL);
	BAD("{'type':'JOURNAL_UNSUBSCRIBE','payload':{'subscriptionId':'s1'}}", "subscriptionId: required", NULL);
	BAD("{'type':'JOURNAL_UNSUBSCRIBE','subscriptionId':1}", "subscriptionId: expected a string", NULL);
}

static void
test_partition_map(void)
{
	MpBuf		b;
	TgMessage	m;
	char		err[256];

	OK("{'type':'PARTITION_MAP_REQUEST'}", NULL);
	OK("{'type':'PARTITION_MAP_REQUEST','payload':{'$undefined':1}}", NULL);
	OK("{'type':'PARTITION_MAP_REQUEST','payload':{}}", NULL);
	CHECK(parse_json("{'type':'PARTITION_MAP_REQUEST','payload':{'currentVersion':3}}", &b, &m, err, sizeof(err)) == TG_PARSE_OK &&
		  m.u.partition_map_request.has_current_version &&
		  m.u.partition_map_request.current_version == 3, "partition map version");
	tg_message_free(&m);
	mp_buf_free(&b);
	BAD("{'type':'PARTITION_MAP_REQUEST','payload':null}", "payload: expected a map, got nil", NULL);
	BAD("{'type':'PARTITION_MAP_REQUEST','payload':[]}", "payload: expected a map, got array", NULL);
	BAD("{'type':'PARTITION_MAP_REQUEST','payload':{'currentVersion':'1'}}", "payload.currentVersion: expected a number", NULL);
}

/* Existing types now expose their reply id too. */
static void
test_lock_ids(void)
{
	OK("{'type':'LOCK_REQUEST','payload':{'requestId':'k1','name':'n','ttl':10000}}", "k1");
	BAD("{'type':'LOCK_REQUEST','payload':{'requestId':'k1','name':''}}", "payload.name: must not be empty", "k1");
	OK("{'type':'LOCK_RELEASE','payload':{'name':'n','fencingToken':3}}", NULL);
	BAD("{'type':'LOCK_RELEASE','payload':{'requestId':'k2','name':'n'}}", "payload.fencingToken: required", "k2");
	OK("{'type':'QUERY_UNSUB','payload':{'queryId':'q'}}", NULL);
}

int
main(void)
{
	test_names();
	test_search();
	test_hybrid();
	test_entry_process();
	test_resolvers();
	test_journal();
	test_partition_map();
	test_lock_ids();
	printf("test_wire_types: %d passed, %d failed\n", n_pass, n_fail);
	return n_fail == 0 ? 0 : 1;
}
