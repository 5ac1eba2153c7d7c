-- What waits for the fold of the live campaign counts (read as the CRM owner): how many deltas,
-- and how old the oldest is.
SELECT count(*) AS pending, extract(epoch FROM pg_catalog.now() - min(d.at))::float8 AS oldest_secs
FROM crm_private.campaign_send_deltas d
