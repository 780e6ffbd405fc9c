-- PLACEHOLDER, disabled until userql has ltv() (SQL_API.md, "LTV"). To enable it: remove
-- `enabled=false`, uncomment the query, and uncomment its tests in schema.yml.
{{ config(materialized='table', enabled=false) }}
{# select * from ltv('customer_orders') #}
