-- A view: paid orders only.
select order_id, customer_id, ordered_at, amount
from {{ ref('orders_seed') }}
where status = 'paid'
