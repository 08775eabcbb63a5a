-- Switchyard guardrails: policies of PII and secret redaction (the spec as JSON: whom it
-- applies to, the action per class, custom patterns, output checks), and the detections each
-- usage event counted per class. Never edited once landed.

CREATE TABLE guardrails (
    id         UUID PRIMARY KEY,
    team_id    UUID,
    spec       JSONB       NOT NULL,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Detections per class, e.g. {"email": 2, "aws_access_key": 1}; NULL when there were none.
ALTER TABLE usage_events ADD COLUMN guardrail JSONB;
