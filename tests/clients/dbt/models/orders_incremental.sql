-- An incremental model keyed on order_id: the first run (max_order_id 3) creates it, the
-- second (max_order_id 5) merges orders 3..5 in (delete+insert), so order 3 is replaced.
{{ config(materialized='incremental', unique_key='order_id') }}
select order_id, customer_id, ordered_at, amount, status
from {{ ref('orders_seed') }}
where order_id <= {{ var('max_order_id', 5) }}
{% if is_incremental() %}
  and order_id >= (select max(order_id) from {{ this }})
{% endif %}
