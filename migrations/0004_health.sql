-- Switchyard deployment health: the latest circuit-breaker state each proxy announced for each
-- deployment (switchyard.health.<proxy> on NATS). Never edited once landed.

CREATE TABLE provider_health (
    deployment  TEXT        NOT NULL,
    proxy       TEXT        NOT NULL,
    -- `closed`, `half_open` or `open`.
    state       TEXT        NOT NULL,
    -- The kind of failure that opened the breaker.
    error       TEXT,
    changed_at  TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, proxy)
);
