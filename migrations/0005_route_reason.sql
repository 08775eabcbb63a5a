-- Switchyard routing: why the deployment that answered a request was chosen (its route's
-- strategy, `explore`, `all_open`, `rule`, `preference` or `fallback`). Never edited once
-- landed.

ALTER TABLE usage_events ADD COLUMN route_reason TEXT;
