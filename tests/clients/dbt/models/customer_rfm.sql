-- PLACEHOLDER, disabled until userql has rfm() (SQL_API.md, "RFM"). To enable it: remove
-- `enabled=false`, uncomment the query, and uncomment its tests in schema.yml.
{{ config(materialized='table', enabled=false) }}
{# select * from rfm('customer_orders') #}
