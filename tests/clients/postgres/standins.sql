-- Stand-ins for userql's built-in objects, so that the client tests can be checked against a
-- real PostgreSQL first (`tests/clients/run --pg-dsn ...`): the demo's channel tables, the
-- unified views and the OneID / privacy functions, with the same names, columns, types and
-- \df descriptions as userql's, over a few rows. Safe to run again.

SET client_min_messages = warning;

DROP VIEW IF EXISTS public.customer_events, public.customer_orders, public.customer_ids,
  public.events, public.orders, public.identities CASCADE;
DROP SCHEMA IF EXISTS channels CASCADE;
CREATE SCHEMA channels;

CREATE TABLE channels.tmall (buyer_nick text, mobile text, paid_at timestamp, payment double precision);
INSERT INTO channels.tmall VALUES
  ('nick_a', '13800138000', '2024-01-05 10:00:00', 120.5),
  ('nick_a', '13800138000', '2024-03-09 18:30:00', 80),
  ('nick_b', '13900139000', '2024-02-11 09:15:00', 300),
  ('nick_c', NULL, '2024-04-01 12:00:00', 15.25);
CREATE TABLE channels.pos (member_no text, phone text, txn_time timestamp, amount double precision);
INSERT INTO channels.pos VALUES
  ('M001', '+86 138-0013-8000', '2024-02-01 15:00:00', 45),
  ('M002', '13700137000', '2024-05-20 11:11:00', 60.75);
CREATE TABLE channels.app_events (user_id text, device_id text, event_time timestamp, event text);
INSERT INTO channels.app_events VALUES
  ('u1', 'dev-1', '2024-01-01 08:00:00', 'open'),
  ('u1', 'dev-1', '2024-01-01 08:01:00', 'view'),
  ('u2', 'dev-2', '2024-01-02 09:00:00', 'open');

CREATE OR REPLACE FUNCTION public.normalize_phone(phone text, region text DEFAULT 'CN') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN d ~ '^861[3-9][0-9]{9}$' THEN '+' || d
    WHEN d ~ '^1[3-9][0-9]{9}$' AND region = 'CN' THEN '+86' || d
    ELSE NULL END
  FROM (SELECT regexp_replace(phone, '[^0-9]', '', 'g') AS d) x
$$;
COMMENT ON FUNCTION public.normalize_phone(text, text) IS 'A phone number in E.164 form, or NULL when it cannot be parsed';

CREATE OR REPLACE FUNCTION public.normalize_email(email text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT lower(trim(email)) $$;
COMMENT ON FUNCTION public.normalize_email(text) IS 'An email address trimmed and in lower case';

CREATE OR REPLACE FUNCTION public.hash_id(id_type text, value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT encode(sha256(convert_to(CASE id_type
    WHEN 'phone' THEN public.normalize_phone(value)
    WHEN 'email' THEN public.normalize_email(value)
    ELSE trim(value) END, 'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION public.hash_id(text, text) IS 'Lower-case SHA-256 hex of the normalised identifier';

CREATE OR REPLACE FUNCTION public.mask_phone(phone text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT left(phone, 3) || '****' || right(phone, 4) $$;
COMMENT ON FUNCTION public.mask_phone(text) IS 'A phone number with its middle digits masked';

CREATE OR REPLACE FUNCTION public.mask_email(email text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT left(email, 1) || '***' || substring(email FROM position('@' IN email))
$$;
COMMENT ON FUNCTION public.mask_email(text) IS 'An email address with its local part masked';

-- OneID over a tiny input: connected components of records sharing a normalised value.
CREATE OR REPLACE FUNCTION public.oneid(input text)
RETURNS TABLE(record_id text, one_id bigint, component_size bigint)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE src text := CASE WHEN input ~* '^\s*(select|with)\s' THEN '(' || input || ')' ELSE input END;
BEGIN
  RETURN QUERY EXECUTE format($q$
    WITH RECURSIVE ids AS (
      SELECT DISTINCT s.record_id::text AS r,
        s.id_type || ':' || coalesce(CASE s.id_type WHEN 'phone' THEN public.normalize_phone(s.id_value)
                                                    ELSE lower(trim(s.id_value)) END, s.record_id) AS v
      FROM %s s WHERE s.id_value IS NOT NULL),
    edges AS (SELECT a.r AS a, b.r AS b FROM ids a JOIN ids b ON a.v = b.v),
    reach(a, b) AS (SELECT e.a, e.b FROM edges e
                    UNION SELECT reach.a, e.b FROM reach JOIN edges e ON reach.b = e.a),
    comp AS (SELECT reach.a AS r, min(reach.b) AS root FROM reach GROUP BY reach.a)
    SELECT comp.r, ('x' || substr(md5(comp.root), 1, 15))::bit(60)::bigint,
           count(*) OVER (PARTITION BY comp.root)
    FROM comp ORDER BY 2, 1 $q$, src);
END $fn$;
COMMENT ON FUNCTION public.oneid(text) IS 'OneID: one row per record with the customer (one_id) it resolves to';

CREATE OR REPLACE FUNCTION public.oneid_links(input text)
RETURNS TABLE(record_id text, linked_record_id text, id_type text, id_value text, used boolean, reason text)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE src text := CASE WHEN input ~* '^\s*(select|with)\s' THEN '(' || input || ')' ELSE input END;
BEGIN
  RETURN QUERY EXECUTE format($q$
    WITH raw AS (SELECT DISTINCT s.record_id::text AS r, s.id_type::text AS t, s.id_value::text AS v,
                   coalesce(CASE s.id_type WHEN 'phone' THEN public.normalize_phone(s.id_value)
                                           ELSE lower(trim(s.id_value)) END, s.record_id) AS nv
                 FROM %s s WHERE s.id_value IS NOT NULL),
    ids AS (SELECT raw.*, min(raw.r) OVER (PARTITION BY raw.t, raw.nv) AS first_holder FROM raw)
    SELECT r, first_holder, t, v, true, 'linked'::text FROM ids WHERE r <> first_holder
    ORDER BY 1, 2 $q$, src);
END $fn$;
COMMENT ON FUNCTION public.oneid_links(text) IS 'OneID explained: every link between two records and whether it was used';

CREATE VIEW public.identities AS
  SELECT 'tmall'::text AS channel, 'tmall:' || buyer_nick AS record_id, 'tmall_nick'::text AS id_type, buyer_nick AS id_value FROM channels.tmall
  UNION SELECT 'tmall', 'tmall:' || buyer_nick, 'phone', mobile FROM channels.tmall WHERE mobile IS NOT NULL
  UNION SELECT 'pos', 'pos:' || member_no, 'member_no', member_no FROM channels.pos
  UNION SELECT 'pos', 'pos:' || member_no, 'phone', phone FROM channels.pos WHERE phone IS NOT NULL
  UNION SELECT 'app_events', 'app_events:' || user_id, 'device_id', device_id FROM channels.app_events;
CREATE VIEW public.orders AS
  SELECT 'tmall'::text AS channel, 'tmall:' || buyer_nick AS record_id, paid_at AS order_ts, payment AS amount FROM channels.tmall
  UNION ALL SELECT 'pos', 'pos:' || member_no, txn_time, amount FROM channels.pos;
CREATE VIEW public.events AS
  SELECT 'app_events'::text AS channel, 'app_events:' || user_id AS record_id, event_time AS event_ts, event FROM channels.app_events;
CREATE VIEW public.customer_ids AS
  SELECT o.record_id, o.one_id FROM public.oneid('SELECT record_id, id_type, id_value FROM public.identities') o;
CREATE VIEW public.customer_orders AS
  SELECT c.one_id AS customer_id, o.channel, o.record_id, o.order_ts, o.amount
  FROM public.orders o JOIN public.customer_ids c USING (record_id);
CREATE VIEW public.customer_events AS
  SELECT c.one_id AS customer_id, e.channel, e.record_id, e.event_ts, e.event
  FROM public.events e JOIN public.customer_ids c USING (record_id);
