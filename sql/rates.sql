-- The one definition of each count and rate of an email campaign (README "Rates"). Every view
-- that counts sends (crm_campaign_stats, crm_campaigns_analytics_mv) is written with these, and
-- nothing else defines them. Counts come from the *_at timestamps, since webhooks overwrite
-- status: a clicked send counts as opened, a bounced one as neither.
--
--   sent       sent_at is set
--   delivered  sent, not bounced, not failed
--   opened     not bounced, and opened_at or clicked_at set (a click implies an open)
--   clicked    not bounced, and clicked_at set
--   bounced    bounced_at set
--   failed     status 'failed'
--   open_rate = opened / delivered, click_rate = clicked / delivered,
--   bounce_rate = bounced / sent, delivery_rate = delivered / sent; in percent, 2 decimals,
--   NULL when the divisor is 0.
--
-- SQL functions with a plain RETURN body, IMMUTABLE, no SET clause: the planner inlines them, so
-- an aggregate over 10M sends costs what the bare expressions cost.
CREATE FUNCTION @extschema@.send_is_sent(sent_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN sent_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_delivered(sent_at timestamptz, bounced_at timestamptz, status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN sent_at IS NOT NULL AND bounced_at IS NULL AND status <> 'failed';
CREATE FUNCTION @extschema@.send_is_opened(opened_at timestamptz, clicked_at timestamptz, bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NULL AND (opened_at IS NOT NULL OR clicked_at IS NOT NULL);
CREATE FUNCTION @extschema@.send_is_clicked(clicked_at timestamptz, bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NULL AND clicked_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_bounced(bounced_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN bounced_at IS NOT NULL;
CREATE FUNCTION @extschema@.send_is_failed(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN status = 'failed';

CREATE FUNCTION @extschema@.percent_of(part bigint, whole bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN round(100.0 * part / nullif(whole, 0), 2);
CREATE FUNCTION @extschema@.open_rate(opened bigint, delivered bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(opened, delivered);
CREATE FUNCTION @extschema@.click_rate(clicked bigint, delivered bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(clicked, delivered);
CREATE FUNCTION @extschema@.bounce_rate(bounced bigint, sent bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(bounced, sent);
CREATE FUNCTION @extschema@.delivery_rate(delivered bigint, sent bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN @extschema@.percent_of(delivered, sent);
-- Pure arithmetic on the caller's own values: for everyone (the views' readers call them),
-- granted here explicitly rather than left to the default.
GRANT EXECUTE ON FUNCTION @extschema@.send_is_sent(timestamptz), @extschema@.send_is_delivered(timestamptz, timestamptz, text),
    @extschema@.send_is_opened(timestamptz, timestamptz, timestamptz), @extschema@.send_is_clicked(timestamptz, timestamptz),
    @extschema@.send_is_bounced(timestamptz), @extschema@.send_is_failed(text), @extschema@.percent_of(bigint, bigint),
    @extschema@.open_rate(bigint, bigint), @extschema@.click_rate(bigint, bigint), @extschema@.bounce_rate(bigint, bigint),
    @extschema@.delivery_rate(bigint, bigint) TO PUBLIC;
