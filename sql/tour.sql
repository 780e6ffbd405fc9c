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

-- 6. RFM: recency, frequency and monetary value per customer, scored 1..5 against the
-- other customers (as of the latest order), with the segment and the value class.
SELECT customer_id, recency_days, frequency, round(monetary, 2) AS monetary, rfm_cell, segment, value_class
FROM rfm('customer_orders') ORDER BY monetary DESC LIMIT 5;

SELECT segment, count(*) AS customers, round(avg(recency_days)) AS avg_recency_days,
       round(avg(frequency), 1) AS avg_orders
FROM rfm('customer_orders') GROUP BY segment ORDER BY customers DESC;

-- The grid and the eight value classes are also plain functions.
SELECT rfm_segment(5, 5) AS r5_f5, rfm_segment(1, 5) AS r1_f5,
       rfm_value_class(10, 6, 2400.0, 120.0, 2.5, 600.0) AS value_class;

-- Labels in Chinese for the operations team, then back.
SET userql.rfm_language = 'zh';
SELECT value_class, count(*) AS customers FROM rfm('customer_orders') GROUP BY value_class ORDER BY customers DESC;
RESET userql.rfm_language;

-- 7. Lifecycle: new, growing, mature, at_risk, churned (引入期, 成长期, 成熟期, 衰退期, 流失期).
SELECT lifecycle_stage(TIMESTAMP '2025-12-20', TIMESTAMP '2025-12-20', 1, TIMESTAMP '2025-12-31') AS just_joined,
       lifecycle_stage(TIMESTAMP '2024-03-01', TIMESTAMP '2025-12-01', 7, TIMESTAMP '2025-12-31') AS regular,
       lifecycle_stage(TIMESTAMP '2024-03-01', TIMESTAMP '2025-05-01', 2, TIMESTAMP '2025-12-31') AS gone;

-- Every customer's stage now and 30 days ago, and how many came back after churning (回流).
SELECT stage, count(*) AS customers,
       sum(CASE WHEN previous_stage IS DISTINCT FROM stage THEN 1 ELSE 0 END) AS changed_in_30_days,
       sum(CASE WHEN reactivated THEN 1 ELSE 0 END) AS reactivated
FROM lifecycle('customer_orders') GROUP BY stage ORDER BY customers DESC;

-- Growth accounting per month: active = new + retained + reactivated.
SELECT * FROM lifecycle_flow('customer_orders', '1 month', TIMESTAMP '2025-07-01', TIMESTAMP '2026-01-01');

-- 8. Funnels and retention (ClickHouse's windowFunnel and retention).
-- How far each app user got from app_open to pay_success within an hour; with
-- 'strict_order' any other event in between (a search, say) ends the chain.
SELECT level, count(*) AS customers FROM (
    SELECT customer_id,
           window_funnel(3600, event_ts, event = 'app_open', event = 'view_product',
                         event = 'add_to_cart', event = 'checkout', event = 'pay_success') AS level
    FROM customer_events WHERE channel = 'app_events' GROUP BY customer_id
) f GROUP BY level ORDER BY level;

SELECT level, count(*) AS customers FROM (
    SELECT customer_id,
           window_funnel(3600, 'strict_order', event_ts, event = 'app_open', event = 'view_product',
                         event = 'add_to_cart', event = 'checkout', event = 'pay_success') AS level
    FROM customer_events WHERE channel = 'app_events' GROUP BY customer_id
) f GROUP BY level ORDER BY level;

-- Of the customers active in January 2025 (any channel's events), how many came back in
-- February and in March.
SELECT sum(r[1]) AS january, sum(r[2]) AS also_february, sum(r[3]) AS also_march FROM (
    SELECT customer_id,
           retention(date_trunc('month', event_ts) = TIMESTAMP '2025-01-01',
                     date_trunc('month', event_ts) = TIMESTAMP '2025-02-01',
                     date_trunc('month', event_ts) = TIMESTAMP '2025-03-01') AS r
    FROM customer_events GROUP BY customer_id
) t;

-- 9. LTV: BG/NBD and Gamma-Gamma, as the Python package lifetimes.
-- The per-customer summary the models read (in days).
SELECT * FROM clv_summary('customer_orders') ORDER BY frequency DESC, customer_id LIMIT 5;

-- Fit both models, then predict with the scalars: P(alive), purchases in the next 90
-- days, expected order value, and 12-month CLV at 1 % a month.
WITH s AS (SELECT * FROM clv_summary('customer_orders')),
     m AS (SELECT bgnbd_fit(frequency, recency, t) AS bg,
                  gamma_gamma_fit(frequency, monetary_value) AS gg FROM s)
SELECT s.customer_id, s.frequency, s.recency, s.t,
       round(bgnbd_p_alive(m.bg, s.frequency, s.recency, s.t), 3) AS p_alive,
       round(bgnbd_expected_purchases(m.bg, 90, s.frequency, s.recency, s.t), 2) AS purchases_90d,
       round(gamma_gamma_expected_value(m.gg, s.frequency, s.monetary_value), 2) AS order_value,
       round(clv(m.bg, m.gg, s.frequency, s.recency, s.t, s.monetary_value, 12, 0.01, 'day'), 2) AS clv_12m
FROM s CROSS JOIN m
ORDER BY clv_12m DESC LIMIT 5;

-- The whole pipeline in one call (the fitted parameters come as a NOTICE), and the
-- parameters as a row.
SELECT customer_id, round(p_alive, 3) AS p_alive, round(expected_purchases, 2) AS purchases_12m,
       round(clv, 2) AS clv_12m
FROM ltv('customer_orders') ORDER BY clv DESC LIMIT 5;
SELECT round(r, 3) AS r, round(alpha, 2) AS alpha, round(a, 3) AS a, round(b, 3) AS b,
       round(p, 3) AS p, round(q, 3) AS q, round(v, 2) AS v, bgnbd_customers, gamma_gamma_customers
FROM ltv_params('customer_orders');

-- 10. Settings are per session.
SHOW userql.default_region;
SHOW ALL;
