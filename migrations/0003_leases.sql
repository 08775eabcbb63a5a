-- Leases: the control plane's half of budgets and rate limits across many proxies, plus the
-- team limits they need. Never edited once landed.
--
-- Every pool row is the lock its grants are made under (`SELECT ... FOR UPDATE`), so several
-- control-plane replicas answering the same queue group never grant the same money or the
-- same requests twice. Amounts are unconstrained NUMERIC: a grant is never rounded up.

-- Team limits live in the team projection (the JSON `spec` column holds the metadata only).
ALTER TABLE teams ADD COLUMN rpm BIGINT, ADD COLUMN tpm BIGINT;

-- One hard budget for one scope value (team id, key id or tag value) in one period.
CREATE TABLE budget_pools (
    budget_id    UUID        NOT NULL,
    scope_value  TEXT        NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    -- Start of the next period (NULL for `total`): pools are dropped a day after it.
    period_end   TIMESTAMPTZ,
    -- Spend already in spend_ledger for this scope and period when the pool was created
    -- (spent before the budget was hard, or before it existed). Later spend is in leases.
    baseline     NUMERIC     NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (budget_id, scope_value, period_start)
);
CREATE INDEX budget_pools_end_idx ON budget_pools (period_end);

-- One proxy's slice of a budget pool. While unreleased it commits max(granted, used); once
-- released it commits only `used`, and the rest is back in the pool.
CREATE TABLE budget_leases (
    budget_id    UUID        NOT NULL,
    scope_value  TEXT        NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    proxy        TEXT        NOT NULL,
    granted      NUMERIC     NOT NULL DEFAULT 0 CHECK (granted >= 0),
    used         NUMERIC     NOT NULL DEFAULT 0 CHECK (used >= 0),
    released     BOOLEAN     NOT NULL DEFAULT false,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (budget_id, scope_value, period_start, proxy),
    FOREIGN KEY (budget_id, scope_value, period_start)
        REFERENCES budget_pools (budget_id, scope_value, period_start) ON DELETE CASCADE
);

-- One rate limit (`key:<id>`, `team:<id>`, `deployment:<provider>/<model>`) in one minute.
CREATE TABLE rate_pools (
    scope        TEXT        NOT NULL,
    unit         TEXT        NOT NULL CHECK (unit IN ('requests', 'tokens')),
    window_start TIMESTAMPTZ NOT NULL,
    -- The lowest limit any proxy has sent for this window (a raised limit applies from the
    -- next window; a lowered one at once).
    lim          BIGINT      NOT NULL CHECK (lim >= 0),
    -- Committed across leases: unreleased max(granted, used), released `used`.
    granted      BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, unit, window_start)
);
CREATE INDEX rate_pools_window_idx ON rate_pools (window_start);

CREATE TABLE rate_leases (
    scope        TEXT        NOT NULL,
    unit         TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    proxy        TEXT        NOT NULL,
    granted      BIGINT      NOT NULL DEFAULT 0 CHECK (granted >= 0),
    used         BIGINT      NOT NULL DEFAULT 0 CHECK (used >= 0),
    released     BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (scope, unit, window_start, proxy),
    FOREIGN KEY (scope, unit, window_start)
        REFERENCES rate_pools (scope, unit, window_start) ON DELETE CASCADE
);
