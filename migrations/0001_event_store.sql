-- Switchyard control plane: the event log, the outbox position, and the projections.
-- Applied once by `control-plane migrate` (and at start). Never edited once landed.

-- The event log: the audit trail and the source every projection can be rebuilt from.
CREATE TABLE events (
    position     BIGSERIAL PRIMARY KEY,
    stream_id    TEXT        NOT NULL,
    version      INTEGER     NOT NULL CHECK (version >= 1),
    event_type   TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    actor        TEXT        NOT NULL,
    team_id      UUID,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX events_type_idx ON events (event_type, position);
CREATE INDEX events_actor_idx ON events (actor, position);
CREATE INDEX events_team_idx ON events (team_id, position);
CREATE INDEX events_time_idx ON events (recorded_at);

-- Append-only, enforced by the database itself.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the events table is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Outbox: the last event position whose snapshot reached NATS. The relay publishes whenever
-- the log is ahead of it, so a commit is published even if the process died right after it.
CREATE TABLE outbox_state (
    id                 SMALLINT PRIMARY KEY CHECK (id = 1),
    published_position BIGINT      NOT NULL,
    published_at       TIMESTAMPTZ
);
INSERT INTO outbox_state (id, published_position) VALUES (1, 0);

-- Projections. Each row is the current state of one stream, written in the same transaction
-- as the events that produced it; `version` is that stream's version.
CREATE TABLE teams (
    id         UUID PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    spec       JSONB       NOT NULL,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE virtual_keys (
    id         UUID PRIMARY KEY,
    team_id    UUID        NOT NULL,
    name       TEXT        NOT NULL,
    spec       JSONB       NOT NULL,
    revoked_at TIMESTAMPTZ,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
-- A name is unique among a team's live keys; a revoked key's name can be used again.
CREATE UNIQUE INDEX virtual_keys_live_name ON virtual_keys (team_id, name) WHERE revoked_at IS NULL;

-- Secrets of a key: the current one, and during a rotation's grace period the previous one.
CREATE TABLE key_secrets (
    sha256      TEXT PRIMARY KEY,
    key_id      UUID NOT NULL,
    prefix      TEXT NOT NULL,
    valid_until TIMESTAMPTZ
);
CREATE INDEX key_secrets_key_idx ON key_secrets (key_id);

CREATE TABLE providers (
    id         TEXT PRIMARY KEY,
    team_id    UUID,
    spec       JSONB       NOT NULL,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE routes (
    alias      TEXT PRIMARY KEY,
    team_id    UUID,
    spec       JSONB       NOT NULL,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE budgets (
    id         UUID PRIMARY KEY,
    team_id    UUID,
    name       TEXT          NOT NULL,
    amount_usd NUMERIC(20, 10) NOT NULL,
    spec       JSONB         NOT NULL,
    version    INTEGER       NOT NULL,
    created_at TIMESTAMPTZ   NOT NULL,
    updated_at TIMESTAMPTZ   NOT NULL
);

-- Price overrides per upstream model (the built-in table lives in code).
CREATE TABLE pricing (
    model                  TEXT PRIMARY KEY,
    input_per_mtok         NUMERIC(20, 10) NOT NULL,
    output_per_mtok        NUMERIC(20, 10) NOT NULL,
    cached_input_per_mtok  NUMERIC(20, 10),
    version                INTEGER     NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);

CREATE TABLE admin_tokens (
    id         UUID PRIMARY KEY,
    team_id    UUID,
    name       TEXT        NOT NULL,
    sha256     TEXT        NOT NULL UNIQUE,
    prefix     TEXT        NOT NULL,
    revoked_at TIMESTAMPTZ,
    version    INTEGER     NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
