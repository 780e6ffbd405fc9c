-- The customer-360 model: resolve identities, then merge each customer's profile across
-- channels. A plain SQL model (dbt-style): run it with
--   psql -h 127.0.0.1 -p 5433 -U analyst userql -f sql/customer_360.sql
--
-- Rules, as the operations team states them:
--   * one customer = one OneID component (customer_ids, cached by the server);
--   * member level = the highest level the customer holds in any channel, on a common
--     ladder (tmall V1..V5; app silver/gold/platinum; POS classic/silver/gold/diamond);
--   * points = the sum over channels after converting each channel's points at its own
--     rate into brand points (tmall 1:1, app 10:1, POS 2:1);
--   * orders, revenue, first/last order and the channels the customer was seen in.

CREATE OR REPLACE VIEW member_profiles AS
SELECT record_id, level_rank, brand_points FROM (
    -- Tmall: level and points repeat on every order row; the latest row is current.
    SELECT 'tmall:' || buyer_nick AS record_id,
           max(CASE member_level WHEN 'V1' THEN 1 WHEN 'V2' THEN 2 WHEN 'V3' THEN 3
                                 WHEN 'V4' THEN 4 WHEN 'V5' THEN 5 END) AS level_rank,
           CAST(max(points) AS DOUBLE) AS brand_points
    FROM channels.tmall GROUP BY buyer_nick
    UNION ALL
    -- The app keeps points at ten times the brand scale.
    SELECT 'app_users:' || CAST(user_id AS VARCHAR),
           max(CASE member_level WHEN 'silver' THEN 2 WHEN 'gold' THEN 3 WHEN 'platinum' THEN 4 END),
           CAST(max(points) AS DOUBLE) / 10
    FROM channels.app_users GROUP BY user_id
    UNION ALL
    -- POS points are worth half a brand point.
    SELECT 'pos:' || CAST(member_no AS VARCHAR),
           max(CASE level WHEN 'classic' THEN 1 WHEN 'silver' THEN 2 WHEN 'gold' THEN 3 WHEN 'diamond' THEN 5 END),
           CAST(max(points) AS DOUBLE) / 2
    FROM channels.pos GROUP BY member_no
) p;

CREATE OR REPLACE VIEW customer_360 AS
WITH membership AS (
    SELECT c.one_id AS customer_id,
           max(m.level_rank) AS level_rank,
           round(sum(m.brand_points)) AS points
    FROM member_profiles m JOIN customer_ids c ON m.record_id = c.record_id
    GROUP BY c.one_id
),
purchases AS (
    SELECT customer_id,
           count(*) AS orders,
           round(sum(amount), 2) AS revenue,
           min(order_ts) AS first_order_ts,
           max(order_ts) AS last_order_ts
    FROM customer_orders
    GROUP BY customer_id
),
reach AS (
    SELECT c.one_id AS customer_id,
           count(*) AS records,
           string_agg(DISTINCT split_part(c.record_id, ':', 1), ',' ORDER BY split_part(c.record_id, ':', 1)) AS channels
    FROM customer_ids c
    GROUP BY c.one_id
)
SELECT r.customer_id,
       r.records,
       r.channels,
       CASE m.level_rank WHEN 1 THEN 'basic' WHEN 2 THEN 'silver' WHEN 3 THEN 'gold'
                         WHEN 4 THEN 'platinum' WHEN 5 THEN 'diamond' END AS member_level,
       coalesce(m.points, 0) AS points,
       coalesce(p.orders, 0) AS orders,
       coalesce(p.revenue, 0) AS revenue,
       p.first_order_ts,
       p.last_order_ts
FROM reach r
LEFT JOIN membership m ON m.customer_id = r.customer_id
LEFT JOIN purchases p ON p.customer_id = r.customer_id;

-- The biggest spenders, with everything the channels know about them.
SELECT * FROM customer_360 ORDER BY revenue DESC LIMIT 10;
