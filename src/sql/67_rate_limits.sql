------------------------------------------------------------------------------
-- Per-role rate limits of the sync server (docs/access-control.md, "Rate
-- limits").  A row overrides the topgun.rate_limit_* settings for clients
-- whose JWT roles claim holds the role (USER for a token without roles):
-- NULL = the setting, 0 = no limit.  A client with several rows gets, per
-- limit, the most permissive of them.  The session executor caches the
-- table and drops the cache when a change commits (relcache invalidation
-- sent by the statement trigger, as for topgun.resolvers): new connections
-- get the table as of their AUTH, live ones within a second.
------------------------------------------------------------------------------
CREATE TABLE topgun.rate_limits (
  role                    text PRIMARY KEY CHECK (length(role) BETWEEN 1 AND 256),
  ops_per_s               bigint CHECK (ops_per_s >= 0),
  messages_per_s          bigint CHECK (messages_per_s >= 0),
  bytes_per_s             bigint CHECK (bytes_per_s >= 0),
  identity_ops_per_s      bigint CHECK (identity_ops_per_s >= 0),
  identity_messages_per_s bigint CHECK (identity_messages_per_s >= 0),
  identity_bytes_per_s    bigint CHECK (identity_bytes_per_s >= 0)
);
COMMENT ON TABLE topgun.rate_limits IS
  'Per-role overrides of the topgun.rate_limit_* settings (per connection and per identity; NULL = the setting, 0 = unlimited)';
SELECT pg_catalog.pg_extension_config_dump('topgun.rate_limits', '');
CREATE TRIGGER rate_limits_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topgun.rate_limits
  FOR EACH STATEMENT EXECUTE FUNCTION topgun._invalidate_cache();
