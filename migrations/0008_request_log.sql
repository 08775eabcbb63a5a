-- Switchyard request log: what each request's key or team asked the log to keep, and the
-- bodies of `full` requests, in daily partitions that retention drops whole (no DELETE, no
-- bloat). The partitions are created by the control plane as entries arrive
-- (`request_payloads_YYYYMMDD`, one UTC day each). Never edited once landed.

-- `off`: metered, not listed in the request log; `metadata`: listed; `full`: listed with
-- bodies in request_payloads.
ALTER TABLE usage_events
    ADD COLUMN log_policy TEXT NOT NULL DEFAULT 'metadata'
        CHECK (log_policy IN ('off', 'metadata', 'full'));

CREATE TABLE request_payloads (
    id                  UUID        NOT NULL,
    -- The request's arrival, as in its usage event: the partition key.
    time                TIMESTAMPTZ NOT NULL,
    team_id             TEXT,
    key_id              TEXT,
    -- Headers that cannot carry a credential, as the client sent them.
    request_headers     JSONB       NOT NULL,
    request_body        BYTEA       NOT NULL,
    -- The body's whole length; the stored bytes are cut at the proxy's cap when truncated.
    request_bytes       BIGINT      NOT NULL,
    request_truncated   BOOLEAN     NOT NULL,
    status              INTEGER     NOT NULL,
    -- What the client received (a stream's bytes in order); NULL when no answer was relayed.
    response_body       BYTEA,
    response_bytes      BIGINT,
    response_truncated  BOOLEAN,
    streamed            BOOLEAN     NOT NULL,
    folded_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (time, id)
) PARTITION BY RANGE (time);

CREATE INDEX request_payloads_id_idx ON request_payloads (id);
