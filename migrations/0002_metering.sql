-- Switchyard metering: raw usage events, the daily spend ledger, the price history events are
-- costed with, and soft-budget alerts already sent. Never edited once landed.

-- One row per metered request, keyed by the event id the data plane chose (UUIDv7): folding
-- the same event twice inserts nothing the second time, so nothing is counted twice.
CREATE TABLE usage_events (
    id                   UUID PRIMARY KEY,
    time                 TIMESTAMPTZ NOT NULL,
    proxy                TEXT        NOT NULL,
    key_id               TEXT,
    key_name             TEXT,
    team_id              TEXT,
    tags                 JSONB       NOT NULL DEFAULT '{}'::jsonb,
    endpoint             TEXT        NOT NULL,
    alias                TEXT        NOT NULL,
    provider             TEXT,
    deployment           TEXT,
    model                TEXT,
    prompt_tokens        BIGINT      NOT NULL,
    completion_tokens    BIGINT      NOT NULL,
    cached_input_tokens  BIGINT      NOT NULL,
    reasoning_tokens     BIGINT      NOT NULL,
    usage_estimated      BOOLEAN     NOT NULL,
    -- What the ledger charged: the price valid at `time` (see price_history).
    cost_usd             NUMERIC     NOT NULL,
    -- What the proxy computed from its snapshot, kept for comparison.
    proxy_cost_usd       NUMERIC     NOT NULL,
    latency_ms           BIGINT      NOT NULL,
    ttft_ms              BIGINT,
    status               INTEGER     NOT NULL,
    outcome              TEXT        NOT NULL,
    refused_code         TEXT,
    refused_limit        TEXT,
    streamed             BOOLEAN     NOT NULL,
    abandoned            BOOLEAN     NOT NULL,
    attempts             INTEGER     NOT NULL,
    fallbacks            INTEGER     NOT NULL,
    cache_hit            BOOLEAN     NOT NULL,
    folded_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Listing newest first (the (time, id) pair is the pagination cursor), overall and per filter.
CREATE INDEX usage_events_time_idx ON usage_events (time DESC, id DESC);
CREATE INDEX usage_events_team_time_idx ON usage_events (team_id, time DESC, id DESC);
CREATE INDEX usage_events_key_time_idx ON usage_events (key_id, time DESC, id DESC);
CREATE INDEX usage_events_model_time_idx ON usage_events (model, time DESC, id DESC);

-- Spend per UTC day × team × key × model × provider × tag. Text dimensions use '' for none.
-- Every event adds to its tag = '' row; each of its tags `k=v` ALSO adds to a row of its own.
-- So sums over tag = '' rows count each event once, and sums over tag <> '' rows count each
-- event once per tag (once per value of any one tag key): never mix the two.
CREATE TABLE spend_ledger (
    day                  DATE    NOT NULL,
    team_id              TEXT    NOT NULL,
    key_id               TEXT    NOT NULL,
    model                TEXT    NOT NULL,
    provider             TEXT    NOT NULL,
    tag                  TEXT    NOT NULL,
    -- Every event, refused ones included.
    requests             BIGINT  NOT NULL,
    -- Events refused by admission (a subset of requests).
    refused              BIGINT  NOT NULL,
    prompt_tokens        BIGINT  NOT NULL,
    completion_tokens    BIGINT  NOT NULL,
    cached_input_tokens  BIGINT  NOT NULL,
    reasoning_tokens     BIGINT  NOT NULL,
    cost_usd             NUMERIC NOT NULL,
    PRIMARY KEY (day, team_id, key_id, model, provider, tag)
) WITH (fillfactor = 50);
-- Rows are updated in place all day long and their indexed columns never change: the free
-- space the fill factor leaves lets those updates be HOT (no index writes, no index bloat).
CREATE INDEX spend_ledger_team_idx ON spend_ledger (team_id, day);
CREATE INDEX spend_ledger_key_idx ON spend_ledger (key_id, day);
CREATE INDEX spend_ledger_tag_idx ON spend_ledger (tag, day) WHERE tag <> '';

-- Every price override a model ever had, from the `price-<model>` event streams: an event is
-- costed at the newest row with valid_from <= its time. A row with NULL prices records a
-- removed override (the built-in price applies again from then on). A projection: rebuilt
-- from the event log like the others.
CREATE TABLE price_history (
    position               BIGINT PRIMARY KEY,
    model                  TEXT        NOT NULL,
    valid_from             TIMESTAMPTZ NOT NULL,
    input_per_mtok         NUMERIC,
    output_per_mtok        NUMERIC,
    cached_input_per_mtok  NUMERIC
);
CREATE INDEX price_history_model_idx ON price_history (model, valid_from, position);

-- Soft budgets whose spend reached their amount: one row per budget, scope value and period,
-- so each crossing is announced once, whichever replica folds it.
CREATE TABLE budget_alerts (
    budget_id     UUID        NOT NULL,
    scope_value   TEXT        NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,
    amount_usd    NUMERIC     NOT NULL,
    spent_usd     NUMERIC     NOT NULL,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (budget_id, scope_value, period_start)
);
