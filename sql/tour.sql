-- A tour of userql on the demo data. Run it with
--   psql -h 127.0.0.1 -p 5433 -U analyst userql -f sql/tour.sql

-- 1. The channels: one table per source, as exported.
\dt channels.*
SELECT buyer_nick, mobile, paid_at, payment, member_level FROM channels.tmall LIMIT 5;

-- 2. The unified record-level views built from the column mappings in userql.toml.
SELECT id_type, count(*) AS identifiers FROM identities GROUP BY id_type ORDER BY 2 DESC;
SELECT channel, count(*) AS orders, round(sum(amount)) AS revenue
FROM orders GROUP BY channel ORDER BY revenue DESC;
SELECT event, count(*) FROM events GROUP BY event ORDER BY 2 DESC;

-- 3. Normalisation and privacy scalars.
SELECT normalize_phone('+86 138-0013-8000') AS e164,
       normalize_phone('(415) 555-2671', 'US') AS us,
       normalize_email('  Zhang.San@Example.COM ') AS email,
       hash_id('phone', '13800138000') AS phone_sha256,
       mask_phone('13800138000') AS masked_phone,
       mask_email('zhangsan@example.com') AS masked_email;

-- 4. OneID: records that share a phone, email, device or platform id become one customer.
SELECT count(*) AS records, count(DISTINCT one_id) AS customers, max(component_size) AS largest
FROM oneid('identities');

-- How big are customers, in records?
SELECT component_size, count(*) AS records
FROM oneid('identities') GROUP BY component_size ORDER BY component_size;

-- Why are these records one customer? (the links of the largest customer)
SELECT l.record_id, l.linked_record_id, l.id_type, l.id_value, l.used, l.reason
FROM oneid_links('identities') l
JOIN (SELECT record_id FROM oneid('identities') ORDER BY component_size DESC, record_id LIMIT 1) big
  ON l.record_id = big.record_id OR l.linked_record_id = big.record_id;

-- What the junk guard refused.
SELECT reason, id_type, id_value, count(*) AS records
FROM oneid_links('identities') WHERE NOT used
GROUP BY reason, id_type, id_value ORDER BY records DESC LIMIT 10;

-- Merge protection: a customer never holds more than one member number or three phones.
SET userql.oneid_type_limits = 'member_no:1,phone:3';
SELECT count(DISTINCT one_id) AS customers FROM oneid('identities');
RESET userql.oneid_type_limits;

-- 5. The resolved customer, kept by the server: no glue SQL needed.
SELECT customer_id, count(*) AS orders, round(sum(amount), 2) AS revenue,
       count(DISTINCT channel) AS channels
FROM customer_orders GROUP BY customer_id ORDER BY revenue DESC LIMIT 10;

-- 6. Settings are per session.
SHOW userql.default_region;
SHOW ALL;
