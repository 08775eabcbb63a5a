-- Switchyard response cache: the cache-policy projection, and what cache hits saved. A hit's
-- usage event costs nothing (`cost_usd` 0) and records the cost its stored answer had
-- (`saved_usd`); the ledger counts hits and adds up what they saved. Never edited once landed.

CREATE TABLE cache_policies (
    id         TEXT PRIMARY KEY,
    team_id    UUID,
    spec       JSONB       NOT NULL,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

ALTER TABLE usage_events
    ADD COLUMN saved_usd NUMERIC NOT NULL DEFAULT 0;

ALTER TABLE spend_ledger
    ADD COLUMN cache_hits BIGINT  NOT NULL DEFAULT 0,
    ADD COLUMN saved_usd  NUMERIC NOT NULL DEFAULT 0;
