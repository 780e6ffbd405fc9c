-- A table, rebuilt on every run (dbt's create __dbt_tmp, rename, drop __dbt_backup swap).
{{ config(materialized='table') }}
select c.customer_id, c.name, c.tier,
       count(o.order_id) as orders,
       coalesce(sum(o.amount), 0) as revenue
from {{ ref('customers_seed') }} c
left join {{ ref('stg_orders') }} o on o.customer_id = c.customer_id
group by c.customer_id, c.name, c.tier
