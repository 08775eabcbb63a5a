-- Switchyard request log: a team's policy for its requests (`off`, `metadata` or `full`; a
-- key's own policy wins). NULL: the team sets none (its keys without one get `metadata`).
-- Never edited once landed.

ALTER TABLE teams
    ADD COLUMN log_payloads TEXT CHECK (log_payloads IN ('off', 'metadata', 'full'));
