-- One campaign's statistics, what the app's campaign page reads (covered by
-- idx_email_sends_campaign_stats).
\set c random(1, 500)
SELECT count(*) AS recipients, count(sent_at) AS sent,
       count(*) FILTER (WHERE bounced_at IS NULL AND (opened_at IS NOT NULL OR clicked_at IS NOT NULL)) AS opened,
       count(*) FILTER (WHERE bounced_at IS NULL AND clicked_at IS NOT NULL) AS clicked,
       count(bounced_at) AS bounced
FROM public.crm_email_sends WHERE campaign_id = md5('camp' || :c)::uuid;
