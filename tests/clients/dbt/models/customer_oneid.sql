-- OneID in a pipeline: every identity record with the customer it resolves to.
{{ config(materialized='table') }}
select record_id, one_id, component_size
from oneid('identities')
