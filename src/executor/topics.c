/*
 * worker_topics.c — topics (TOPIC_SUB / TOPIC_UNSUB / TOPIC_PUB /
 * TOPIC_MESSAGE, PROTOCOL.md §8) with durable per-subscriber queues.
 *
 * Live delivery is in memory: every connection keeps the list of its topics
 * (at most topgun.max_topics_per_connection).  A client whose token has an
 * identity (sub, else userId) is also registered as a durable subscriber of
 * each topic it subscribes to (topgun.topic_subscriptions); messages that
 * arrive while no connection of that identity is subscribed are queued in
 * topgun.topic_queue (bounded by topgun.topic_queue_size, oldest dropped and
 * counted) and delivered in order on its next TOPIC_SUB — also after a
 * worker or server restart, since the queue is a table.
 *
 * Writes to the queue are batched: every publish of one main-loop iteration
 * to a topic with durable subscribers is appended to a pending list that
 * tg_topics_flush() writes in one transaction.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "executor/executor.h"

/* ------------------------------------------------------------ name lists */

bool
tg_namesub_has(TgNameSub *list, const char *name, size_t len)
{
	for (; list; list = list->next)
		if (strlen(list->name) == len && memcmp(list->name, name, len) == 0)
			return true;
	return false;
}

bool
tg_namesub_add(TgNameSub **list, const char *name, size_t len)
{
	TgNameSub  *n;

	if (tg_namesub_has(*list, name, len))
		return false;
	n = malloc(offsetof(TgNameSub, name) + len + 1);
	if (n == NULL)
		return false;
	memcpy(n->name, name, len);
	n->name[len] = '\0';
	n->next = *list;
	*list = n;
	return true;
}

bool
tg_namesub_del(TgNameSub **list, const char *name, size_t len)
{
	while (*list)
	{
		TgNameSub  *n = *list;

		if (strlen(n->name) == len && memcmp(n->name, name, len) == 0)
		{
			*list = n->next;
			free(n);
			return true;
		}
		list = &n->next;
	}
	return false;
}

void
tg_namesub_free(TgNameSub **list)
{
	while (*list)
	{
		TgNameSub  *n = *list;

		*list = n->next;
		free(n);
	}
}

/* ------------------------------------------------------------ durable topics */

typedef struct TopicKey
{
	char		name[TG_WIRE_MAX_ID_BYTES + 1];
} TopicKey;

static HTAB *durable = NULL;	/* topics with durable subscribers */

static void
durable_set(const char *topic, size_t len, bool on)
{
	TopicKey	k;

	if (durable == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(TopicKey);
		ctl.entrysize = sizeof(TopicKey);
		ctl.hcxt = TopMemoryContext;
		durable = hash_create("topgun durable topics", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&k, 0, sizeof(k));
	memcpy(k.name, topic, Min(len, TG_WIRE_MAX_ID_BYTES));
	hash_search(durable, &k, on ? HASH_ENTER : HASH_REMOVE, NULL);
}

static bool
durable_has(const char *topic, size_t len)
{
	TopicKey	k;

	if (durable == NULL || len > TG_WIRE_MAX_ID_BYTES)
		return false;
	memset(&k, 0, sizeof(k));
	memcpy(k.name, topic, len);
	return hash_search(durable, &k, HASH_FIND, NULL) != NULL;
}

static int	plan_load = -1;

void
tg_topics_ready(void)
{
	if (durable)
		hash_destroy(durable);
	durable = NULL;
	if (SPI_execute_plan(tg_live_plan(&plan_load, "SELECT DISTINCT topic FROM topgun.topic_subscriptions",
									  0, NULL), NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "topgun: could not read topgun.topic_subscriptions");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (t)
			durable_set(t, strlen(t), true);
	}
}

/* ------------------------------------------------------------ pending queue writes */

typedef struct PendingPub
{
	struct PendingPub *next;
	char	   *topic;
	char	   *json;			/* NULL: JSON null */
	char	   *publisher;
	double		ts;
	int			nonline;
	char	  **online;
} PendingPub;

static PendingPub *pend_head = NULL;
static PendingPub *pend_tail = NULL;

static void
pending_free(PendingPub *p)
{
	for (int i = 0; i < p->nonline; i++)
		free(p->online[i]);
	free(p->online);
	free(p->topic);
	free(p->json);
	free(p->publisher);
	free(p);
}

static const char *
identity(TgConn *c)
{
	return c->sub[0] ? c->sub : c->user_id;
}

static int	plan_enqueue = -1;

/* Write the pending offline-queue entries (one transaction). */
void
tg_topics_flush(void)
{
	PendingPub *volatile list = pend_head;

	if (list == NULL)
		return;
	pend_head = pend_tail = NULL;
	PG_TRY();
	{
		Oid			types[6] = {TEXTOID, JSONBOID, TEXTOID, FLOAT8OID, TEXTARRAYOID, INT4OID};

		tg_txn_begin();
		for (PendingPub *p = list; p; p = p->next)
		{
			Datum		args[6];
			char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
			Datum	   *on = palloc(sizeof(Datum) * Max(1, p->nonline));
			bool		isnull;

			for (int i = 0; i < p->nonline; i++)
				on[i] = CStringGetTextDatum(p->online[i]);
			args[0] = CStringGetTextDatum(p->topic);
			if (p->json)
				args[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(p->json));
			else
				nulls[1] = 'n';
			args[2] = CStringGetTextDatum(p->publisher);
			args[3] = Float8GetDatum(p->ts);
			args[4] = PointerGetDatum(construct_array(on, p->nonline, TEXTOID, -1, false, TYPALIGN_INT));
			args[5] = Int32GetDatum(tg_topic_queue_size);
			if (SPI_execute_plan(tg_live_plan(&plan_enqueue,
											  "SELECT queued, dropped FROM topgun._topic_enqueue($1, $2, $3, $4, $5, $6)",
											  6, types), args, nulls, false, 0) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "topgun: could not queue a topic message");
			tg_stat_add(TG_STAT_TOPIC_QUEUED,
						DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
			tg_stat_add(TG_STAT_TOPIC_DROPPED,
						DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)));
		}
		tg_txn_end();
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		ereport(LOG,
				(errmsg("topgun: could not queue topic messages for offline subscribers: %s",
						e->message)));
	}
	PG_END_TRY();
	{
		PendingPub *l = list;

		while (l)
		{
			PendingPub *n = l->next;

			pending_free(l);
			l = n;
		}
	}
}

/* ------------------------------------------------------------ delivery */

static bool
valid_topic(const char *t, size_t len)
{
	if (len < 1 || len > 256)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		ch = t[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			  ch == '_' || ch == '-' || ch == '.' || ch == ':' || ch == '/'))
			return false;
	}
	return true;
}

static bool
reserved_topic(const char *t, size_t len)
{
	return len >= 7 && memcmp(t, "topgun:", 7) == 0;
}

static char *
topic_resource(const char *t, size_t len)
{
	return psprintf("topic:%.*s", (int) len, t);
}

static void
send_message(TgConn *c, const char *topic, size_t len, const MpNode *data, Jsonb *jdata,
			 const char *publisher, double ts)
{
	MpBuf	   *b = tg_buf_begin();

	mp_put_map_header(b, 2);
	mp_put_str(b, "type");
	mp_put_str(b, "TOPIC_MESSAGE");
	mp_put_str(b, "payload");
	mp_put_map_header(b, 4);
	mp_put_str(b, "topic");
	mp_put_strn(b, topic, len);
	mp_put_str(b, "data");
	if (data)
		mp_put_node(b, data);
	else if (jdata)
		tg_put_jsonb(b, jdata);
	else
		mp_put_nil(b);
	mp_put_str(b, "publisherId");
	mp_put_str(b, publisher);
	mp_put_str(b, "timestamp");
	mp_put_float64(b, ts);
	tg_buf_send(c, b);
	tg_stat_add(TG_STAT_TOPIC_MESSAGES, 1);
}

/*
 * Deliver a message to the live subscribers (except `from`) and queue it for
 * the durable subscribers that are offline.  data (msgpack) or data_json
 * (JSON text, SQL publishes) carries the payload.
 */
void
tg_topic_publish(TgConn *from, const char *topic, size_t len, const MpNode *data,
				 const char *data_json, int64 ts_ms, const char *publisher)
{
	Jsonb	   *jdata = NULL;
	PendingPub *p = NULL;
	int			cap = 0;

	if (data == NULL && data_json != NULL)
		jdata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(data_json)));
	if (durable_has(topic, len))
	{
		p = calloc(1, sizeof(PendingPub));
		if (p)
		{
			p->topic = strndup(topic, len);
			p->publisher = strdup(publisher);
			p->ts = (double) ts_ms;
			if (data_json)
				p->json = strdup(data_json);
			else if (data && data->type != MP_NIL)
			{
				MpBuf		jb;
				char		err[128];

				mp_buf_init(&jb, (size_t) tg_max_message_bytes * 2 + 1024);
				if (mp_value_to_json(data, &jb, err, sizeof(err)))
					p->json = strndup((const char *) jb.data, jb.len);
				else
				{
					ereport(LOG,
							(errmsg("topgun: topic %.*s message not queued for offline subscribers: %s",
									(int) len, topic, err)));
					free(p->topic);
					free(p->publisher);
					free(p);
					p = NULL;
				}
				mp_buf_free(&jb);
			}
		}
	}
	for (TgConn *c = tg_conns; c; c = c->next)
	{
		if (c->closed || c->closing || !c->authenticated || c->ntopics == 0 ||
			!tg_namesub_has(c->topics, topic, len))
			continue;
		if (p && identity(c)[0])
		{
			/* this identity is online: nothing to queue for it */
			if (p->nonline == cap)
			{
				char	  **o;

				cap = cap ? cap * 2 : 8;
				o = realloc(p->online, sizeof(char *) * cap);
				if (o == NULL)
					continue;
				p->online = o;
			}
			p->online[p->nonline] = strdup(identity(c));
			if (p->online[p->nonline])
				p->nonline++;
		}
		if (c == from)
			continue;
		send_message(c, topic, len, data, jdata, publisher, (double) ts_ms);
	}
	if (p)
	{
		if (pend_tail)
			pend_tail->next = p;
		else
			pend_head = p;
		pend_tail = p;
	}
}

static int	plan_sub = -1;
static int	plan_unsub = -1;

/* Durable TOPIC_SUB: register and deliver the queue (own transaction). */
static void
durable_subscribe(TgConn *c, const char *topic, size_t len)
{
	tg_topics_flush();			/* queued earlier messages first, in order */
	PG_TRY();
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2];

		tg_txn_begin();
		args[0] = CStringGetTextDatum(identity(c));
		args[1] = PointerGetDatum(cstring_to_text_with_len(topic, len));
		if (SPI_execute_plan(tg_live_plan(&plan_sub,
										  "SELECT data, publisher, published_ms FROM topgun._topic_subscribe($1, $2)",
										  2, types), args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "topgun: could not register a topic subscription");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			bool		dnull,
						pnull,
						tnull;
			Datum		d = SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &dnull);
			char	   *pub = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);
			Datum		ts = SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &tnull);

			pnull = pub == NULL;
			send_message(c, topic, len, NULL, dnull ? NULL : DatumGetJsonbP(d),
						 pnull ? "" : pub, tnull ? 0 : DatumGetFloat8(ts));
		}
		tg_txn_end();
		durable_set(topic, len, true);
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		ereport(LOG, (errmsg("topgun: durable topic subscription failed: %s", e->message)));
		tg_send_error(c, 500, "Could not register the topic subscription");
	}
	PG_END_TRY();
}

static void
durable_unsubscribe(TgConn *c, const char *topic, size_t len)
{
	tg_topics_flush();
	PG_TRY();
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2];
		bool		isnull;
		bool		still;

		tg_txn_begin();
		args[0] = CStringGetTextDatum(identity(c));
		args[1] = PointerGetDatum(cstring_to_text_with_len(topic, len));
		if (SPI_execute_plan(tg_live_plan(&plan_unsub, "SELECT topgun._topic_unsubscribe($1, $2)",
										  2, types), args, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "topgun: could not drop a topic subscription");
		still = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		tg_txn_end();
		if (!still)
			durable_set(topic, len, false);
	}
	PG_CATCH();
	{
		ErrorData  *e = tg_txn_recover();

		ereport(LOG, (errmsg("topgun: topic unsubscription failed: %s", e->message)));
	}
	PG_END_TRY();
}

void
tg_topic_handle(TgConn *c, TgMessage *m)
{
	TgStr		t = m->u.topic.topic;

	if (!valid_topic(t.p, t.len))
	{
		tg_send_error(c, 400, "Invalid topic name");
		return;
	}
	if (reserved_topic(t.p, t.len))
	{
		c->denied++;
		tg_stat_add(TG_STAT_ACCESS_DENIED, 1);
		tg_send_error(c, 403, "Access denied: topics starting with topgun: are reserved");
		return;
	}
	switch (m->type)
	{
		case TG_MSG_TOPIC_SUB:
			{
				char	   *res = topic_resource(t.p, t.len);

				if (!tg_acl_check(c, res, strlen(res), TG_ACT_READ))
					return;
				if (tg_namesub_has(c->topics, t.p, t.len))
					return;
				if (c->ntopics >= tg_max_topics_per_connection)
				{
					c->limit_hits++;
					c->slot_dirty = true;
					tg_stat_add(TG_STAT_LIMIT_REACHED, 1);
					tg_send_error(c, 400, "Subscription limit reached");
					return;
				}
				if (!tg_namesub_add(&c->topics, t.p, t.len))
				{
					tg_send_error(c, 500, "Server out of memory");
					return;
				}
				c->ntopics++;
				if (identity(c)[0])
					durable_subscribe(c, t.p, t.len);
				break;
			}
		case TG_MSG_TOPIC_UNSUB:
			if (tg_namesub_del(&c->topics, t.p, t.len))
				c->ntopics--;
			if (identity(c)[0])
				durable_unsubscribe(c, t.p, t.len);
			break;
		case TG_MSG_TOPIC_PUB:
			{
				char	   *res = topic_resource(t.p, t.len);
				char		pub[64];

				if (!tg_acl_check(c, res, strlen(res), TG_ACT_PUT))
					return;
				snprintf(pub, sizeof(pub), "topgun-conn-" UINT64_FORMAT, c->id);
				tg_topic_publish(c, t.p, t.len, m->u.topic.data, NULL, tg_now_ms(), pub);
				break;
			}
		default:
			break;
	}
}

void
tg_topics_conn_gone(TgConn *c)
{
	tg_namesub_free(&c->topics);
	c->ntopics = 0;
}

/*
 * Policies changed: drop the subscriptions of c (topics or counters, whose
 * resource is prefix + name) that lost READ, each with a 403.
 */
void
tg_namesub_recheck(TgConn *c, TgNameSub **list, int *count, const char *prefix)
{
	TgNameSub  *n = *list;

	while (n)
	{
		TgNameSub  *next = n->next;
		char	   *res = psprintf("%s%s", prefix, n->name);

		if (!tg_acl_allowed(c, res, strlen(res), TG_ACT_READ))
		{
			tg_send_error(c, 403, psprintf("Access denied for %s", res));
			tg_namesub_del(list, n->name, strlen(n->name));
			(*count)--;
			c->slot_dirty = true;
		}
		n = next;
	}
}
