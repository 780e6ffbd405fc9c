-- A table over one of userql's unified views, declared as a source.
{{ config(materialized='table') }}
select channel, count(*) as orders, sum(amount) as revenue
from {{ source('userql', 'orders') }}
group by channel
