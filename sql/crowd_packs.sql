-- Crowd packs (人群包) and event triggers (事件营销) over the demo data: a dbt-style
-- pipeline in plain SQL. Run it, as often as you like (every step replaces what the last
-- run built), with
--   psql -h 127.0.0.1 -p 5433 -U analyst userql -v ON_ERROR_STOP=1 -f sql/crowd_packs.sql
--
-- Layers, as in a dbt project (all in the schema crowd):
--   1. crowd.today           the one "now" every rule is measured from;
--   2. crowd.contacts        each customer's hashed phones and emails (staging);
--   3. crowd.customer_tags   one row per customer: RFM, value class, lifecycle, LTV and
--                            behaviour tags (分群组);
--   4. crowd.aud_*           one table per audience (人群包), rebuilt on every run;
--   5. uploads               COPY ... TO STDOUT: the hashed lists ad platforms take;
--   6. crowd.trigger_*       views a scheduler polls for event marketing;
--   7. crowd.audience_sizes  the summary.

CREATE SCHEMA IF NOT EXISTS crowd;
-- Labels in English whatever the session's default (the audiences filter on them).
SET userql.rfm_language = 'en';

-- 1. Now. The demo data is historical (2024-01-01 to 2025-12-31), so "now" is the latest
-- order or event in the data, not the wall clock: every result below is reproducible.
-- In production a scheduler makes it the wall clock by replacing this view with
--   CREATE OR REPLACE VIEW crowd.today AS SELECT CAST(now() AS timestamp) AS as_of;
-- (now() is UTC; add the offset if the channels' timestamps are local time). The trigger
-- views read crowd.today on every poll; the tables below take it through the psql
-- variables set by \gset, so rerunning this file re-scores them for the new now.
CREATE OR REPLACE VIEW crowd.today AS
SELECT max(ts) AS as_of FROM (
    SELECT max(order_ts) AS ts FROM customer_orders
    UNION ALL
    SELECT max(event_ts) FROM customer_events
) t;

SELECT as_of, as_of - INTERVAL '45 days' AS as_of_45d FROM crowd.today \gset
SELECT :'as_of' AS now, :'as_of_45d' AS now_minus_45_days;

-- 2. Contacts: every phone and email of every record, hashed the way ad platforms take
-- them (SHA-256 of the E.164 phone / the trimmed lower-case email), under the customer
-- (OneID) the record belongs to. identities holds the identifiers per record_id;
-- customer_ids maps each record_id to its customer's one_id. Masked or invalid phones
-- hash to NULL and are left out. The ad channel's phone_sha256 values are that same hash
-- already.
DROP TABLE IF EXISTS crowd.contacts;
CREATE TABLE crowd.contacts AS
SELECT DISTINCT customer_id, id_type, id_hash FROM (
    SELECT c.one_id AS customer_id, 'phone_sha256' AS id_type, hash_id('phone', i.id_value) AS id_hash
    FROM identities i JOIN customer_ids c ON c.record_id = i.record_id
    WHERE i.id_type = 'phone'
    UNION ALL
    SELECT c.one_id, 'phone_sha256', lower(i.id_value)
    FROM identities i JOIN customer_ids c ON c.record_id = i.record_id
    WHERE i.id_type = 'phone_sha256'
    UNION ALL
    SELECT c.one_id, 'email_sha256', hash_id('email', i.id_value)
    FROM identities i JOIN customer_ids c ON c.record_id = i.record_id
    WHERE i.id_type = 'email'
) hashed
WHERE id_hash IS NOT NULL;

-- 3. Customer tags: one row per customer in customer_ids (buyers or not).
--   RFM (rfm): scores, segment and value class (重要价值客户 ...) as of now, and the
--     segment the customer had 45 days ago (rfm as of now − 45 days);
--   lifecycle (lifecycle): stage now and 30 days ago, and reactivated (回流: returned
--     after more than userql.lifecycle_churn_days, 180, without orders);
--   LTV (ltv, 12 months, 1 % a month): P(alive), expected purchases, CLV, and the
--     customer's percentile of CLV among buyers;
--   behaviour (customer_events): first and last seen over orders and events, viewed /
--     carted / paid online, and how far the customer got in view → cart → pay within one
--     day (window_funnel, 0 to 3) in the last 30 days.
DROP TABLE IF EXISTS crowd.customer_tags;
CREATE TABLE crowd.customer_tags AS
WITH r AS (
    SELECT * FROM rfm('customer_orders', :'as_of')
),
r45 AS (
    SELECT customer_id, segment FROM rfm('customer_orders', :'as_of_45d')
),
l AS (
    SELECT * FROM lifecycle('customer_orders', :'as_of')
),
v AS (
    SELECT customer_id, p_alive, expected_purchases, clv,
           percent_rank() OVER (ORDER BY clv) AS clv_percentile
    FROM ltv('customer_orders', 12, 0.01, :'as_of')
),
-- The latest return after a gap of more than 180 days (userql.lifecycle_churn_days).
returns AS (
    SELECT customer_id, max(order_ts) AS last_return_ts
    FROM (SELECT customer_id, order_ts,
                 lag(order_ts) OVER (PARTITION BY customer_id ORDER BY order_ts) AS previous_ts
          FROM customer_orders) o
    WHERE order_ts > previous_ts + INTERVAL '180 days'
    GROUP BY customer_id
),
b AS (
    SELECT e.customer_id,
           min(e.event_ts) AS first_event_ts,
           max(e.event_ts) AS last_event_ts,
           bool_or(e.event IN ('view_product', 'page_view')) AS viewed,
           bool_or(e.event = 'add_to_cart') AS carted,
           bool_or(e.event = 'pay_success') AS paid_online
    FROM customer_events e
    WHERE e.event_ts <= CAST(:'as_of' AS timestamp)
    GROUP BY e.customer_id
),
funnel AS (
    SELECT e.customer_id,
           window_funnel(86400, e.event_ts,
                         e.event IN ('view_product', 'page_view'),
                         e.event = 'add_to_cart',
                         e.event = 'pay_success') AS funnel_30d
    FROM customer_events e
    WHERE e.event_ts > CAST(:'as_of' AS timestamp) - INTERVAL '30 days'
      AND e.event_ts <= CAST(:'as_of' AS timestamp)
    GROUP BY e.customer_id
),
everyone AS (
    SELECT DISTINCT one_id AS customer_id FROM customer_ids
)
SELECT c.customer_id,
       least(r.first_order_ts, b.first_event_ts) AS first_seen_ts,
       greatest(r.last_order_ts, b.last_event_ts) AS last_seen_ts,
       r.first_order_ts, r.last_order_ts,
       r.recency_days, r.frequency, r.monetary, r.rfm_cell, r.segment, r.value_class,
       r45.segment AS segment_45d_ago,
       l.stage, l.previous_stage, coalesce(l.reactivated, false) AS reactivated,
       x.last_return_ts,
       v.p_alive, v.expected_purchases, v.clv, v.clv_percentile,
       coalesce(b.viewed, false) AS viewed,
       coalesce(b.carted, false) AS carted,
       coalesce(b.paid_online, false) AS paid_online,
       coalesce(f.funnel_30d, 0) AS funnel_30d
FROM everyone c
LEFT JOIN r ON r.customer_id = c.customer_id
LEFT JOIN r45 ON r45.customer_id = c.customer_id
LEFT JOIN l ON l.customer_id = c.customer_id
LEFT JOIN v ON v.customer_id = c.customer_id
LEFT JOIN returns x ON x.customer_id = c.customer_id
LEFT JOIN b ON b.customer_id = c.customer_id
LEFT JOIN funnel f ON f.customer_id = c.customer_id;

-- 4. Audiences: one table each, rebuilt from the tags on every run.

-- Champions gone quiet — for a win-back offer before they drift. RFM scores are ranks, so
-- a customer who is a Champion today (R = 5: the most recent fifth of buyers) bought
-- within the last ~6 weeks on the demo, and "Champions today not bought in 45 days" is
-- empty by construction. The rule is therefore: Champions as of 45 days ago (rfm as of
-- now − 45 days) with no order since (recency_days >= 45).
DROP TABLE IF EXISTS crowd.aud_champions_lapsed;
CREATE TABLE crowd.aud_champions_lapsed AS
SELECT customer_id, last_order_ts, recency_days, frequency, monetary
FROM crowd.customer_tags
WHERE segment_45d_ago = 'Champions' AND recency_days >= 45;

-- Important customers slipping away — for the key-account team: value class Important
-- Value or Important Retention (重要价值 / 重要保持: above-average frequency and spend) in
-- the at_risk stage (衰退期: last order 90 to 180 days ago).
DROP TABLE IF EXISTS crowd.aud_important_at_risk;
CREATE TABLE crowd.aud_important_at_risk AS
SELECT customer_id, value_class, stage, recency_days, frequency, monetary
FROM crowd.customer_tags
WHERE value_class IN ('Important Value', 'Important Retention') AND stage = 'at_risk';

-- New visitors who looked but never paid — for a first-order coupon: first seen in any
-- channel within the last 30 days (userql.lifecycle_new_days), viewed a product (app
-- view_product or mini-program page_view), and no order and no pay_success anywhere.
DROP TABLE IF EXISTS crowd.aud_new_viewed_never_paid;
CREATE TABLE crowd.aud_new_viewed_never_paid AS
SELECT t.customer_id, t.first_seen_ts, t.carted
FROM crowd.customer_tags t CROSS JOIN crowd.today d
WHERE t.first_seen_ts > d.as_of - INTERVAL '30 days'
  AND t.viewed AND NOT t.paid_online AND t.frequency IS NULL;

-- Reactivated this month (本月回流) — for a welcome-back series: lifecycle's reactivated
-- flag, with the return (an order after more than 180 days without one) in the calendar
-- month of now.
DROP TABLE IF EXISTS crowd.aud_reactivated_this_month;
CREATE TABLE crowd.aud_reactivated_this_month AS
SELECT t.customer_id, t.last_return_ts, t.stage, t.frequency
FROM crowd.customer_tags t CROSS JOIN crowd.today d
WHERE t.reactivated AND t.last_return_ts >= date_trunc('month', d.as_of);

-- High predicted value, fading — for a retention budget: CLV over the next 12 months in
-- the top fifth of buyers, yet P(alive) below 0.5 (the BG/NBD model thinks they have more
-- likely left than not).
DROP TABLE IF EXISTS crowd.aud_high_value_fading;
CREATE TABLE crowd.aud_high_value_fading AS
SELECT customer_id, clv, p_alive, expected_purchases, frequency, recency_days
FROM crowd.customer_tags
WHERE clv_percentile >= 0.8 AND p_alive < 0.5;

-- 5. Uploads: the hashed phones (and emails) of an audience, in the CSV form ad
-- platforms' custom-audience uploads take. The LIMIT keeps this demo's output short:
-- drop it, and write the file with psql's \copy, for the whole list, e.g.
--   \copy (SELECT k.id_hash AS phone_sha256 FROM crowd.aud_champions_lapsed a JOIN crowd.contacts k ON k.customer_id = a.customer_id WHERE k.id_type = 'phone_sha256') TO 'champions_lapsed_phones.csv' WITH (FORMAT csv, HEADER)
COPY (
    SELECT k.id_hash AS phone_sha256
    FROM crowd.aud_champions_lapsed a
    JOIN crowd.contacts k ON k.customer_id = a.customer_id
    WHERE k.id_type = 'phone_sha256'
    ORDER BY 1 LIMIT 5
) TO STDOUT WITH (FORMAT csv, HEADER);

COPY (
    SELECT k.id_hash AS email_sha256
    FROM crowd.aud_important_at_risk a
    JOIN crowd.contacts k ON k.customer_id = a.customer_id
    WHERE k.id_type = 'email_sha256'
    ORDER BY 1 LIMIT 5
) TO STDOUT WITH (FORMAT csv, HEADER);

-- Or straight from the identifiers, without the contacts table.
COPY (
    SELECT DISTINCT hash_id('phone', i.id_value) AS phone_sha256
    FROM crowd.aud_new_viewed_never_paid a
    JOIN customer_ids c ON c.one_id = a.customer_id
    JOIN identities i ON i.record_id = c.record_id
    WHERE i.id_type = 'phone' AND hash_id('phone', i.id_value) IS NOT NULL
    ORDER BY 1 LIMIT 5
) TO STDOUT WITH (FORMAT csv, HEADER);

-- 6. Triggers: views a scheduler polls (say every hour) and acts on, e.g. sending a
-- message to each customer it returns. They read the live views and crowd.today on every
-- poll, so they need no rerun of this file.

-- First purchase exactly 7 days ago (calendar days): the "how is it going?" follow-up.
CREATE OR REPLACE VIEW crowd.trigger_first_purchase_7d AS
SELECT f.customer_id, f.first_order_ts
FROM (SELECT customer_id, min(order_ts) AS first_order_ts FROM customer_orders GROUP BY customer_id) f
CROSS JOIN crowd.today d
WHERE f.first_order_ts <= d.as_of
  AND CAST(d.as_of AS date) - CAST(f.first_order_ts AS date) = 7;

-- Anniversary of the first order in this calendar week (Monday to Sunday), one year or
-- more on: the anniversary greeting. A 29 February first order has its anniversary in
-- leap years only.
CREATE OR REPLACE VIEW crowd.trigger_anniversary_this_week AS
WITH week AS (
    SELECT unnest(generate_series(CAST(date_trunc('week', as_of) AS date),
                                  CAST(date_trunc('week', as_of) AS date) + INTERVAL '6 days',
                                  INTERVAL '1 day')) AS day
    FROM crowd.today
),
f AS (
    SELECT customer_id, min(order_ts) AS first_order_ts FROM customer_orders GROUP BY customer_id
)
SELECT f.customer_id, f.first_order_ts, w.day AS anniversary,
       date_part('year', w.day) - date_part('year', f.first_order_ts) AS years
FROM f JOIN week w
  ON date_part('month', w.day) = date_part('month', f.first_order_ts)
 AND date_part('day', w.day) = date_part('day', f.first_order_ts)
 AND date_part('year', w.day) > date_part('year', f.first_order_ts);

-- Cart without pay in the last 24 hours: an add_to_cart in (now − 24 h, now] with no
-- pay_success and no order in any channel at or after the customer's latest cart.
CREATE OR REPLACE VIEW crowd.trigger_cart_abandoned_24h AS
WITH recent AS (
    SELECT a.customer_id, a.ts, a.paid
    FROM (SELECT customer_id, event_ts AS ts, event = 'pay_success' AS paid
          FROM customer_events WHERE event IN ('add_to_cart', 'pay_success')
          UNION ALL
          SELECT customer_id, order_ts, true FROM customer_orders) a
    CROSS JOIN crowd.today d
    WHERE a.ts > d.as_of - INTERVAL '24 hours' AND a.ts <= d.as_of
),
last AS (
    SELECT customer_id,
           max(CASE WHEN NOT paid THEN ts END) AS last_cart_ts,
           max(CASE WHEN paid THEN ts END) AS last_paid_ts
    FROM recent GROUP BY customer_id
)
SELECT customer_id, last_cart_ts
FROM last
WHERE last_cart_ts IS NOT NULL AND (last_paid_ts IS NULL OR last_paid_ts < last_cart_ts);

SELECT 'first_purchase_7d' AS trigger, count(*) AS customers FROM crowd.trigger_first_purchase_7d
UNION ALL SELECT 'anniversary_this_week', count(*) FROM crowd.trigger_anniversary_this_week
UNION ALL SELECT 'cart_abandoned_24h', count(*) FROM crowd.trigger_cart_abandoned_24h
ORDER BY 1;

-- 7. Summary: each audience, its size, and how many hashed phones and emails it uploads.
DROP TABLE IF EXISTS crowd.audience_sizes;
CREATE TABLE crowd.audience_sizes AS
WITH members AS (
    SELECT 'champions_lapsed' AS audience, customer_id FROM crowd.aud_champions_lapsed
    UNION ALL SELECT 'important_at_risk', customer_id FROM crowd.aud_important_at_risk
    UNION ALL SELECT 'new_viewed_never_paid', customer_id FROM crowd.aud_new_viewed_never_paid
    UNION ALL SELECT 'reactivated_this_month', customer_id FROM crowd.aud_reactivated_this_month
    UNION ALL SELECT 'high_value_fading', customer_id FROM crowd.aud_high_value_fading
)
SELECT m.audience,
       count(DISTINCT m.customer_id) AS customers,
       count(DISTINCT CASE WHEN k.id_type = 'phone_sha256' THEN k.id_hash END) AS phones,
       count(DISTINCT CASE WHEN k.id_type = 'email_sha256' THEN k.id_hash END) AS emails
FROM members m LEFT JOIN crowd.contacts k ON k.customer_id = m.customer_id
GROUP BY m.audience;

SELECT * FROM crowd.audience_sizes ORDER BY audience;
