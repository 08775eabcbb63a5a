-- Switchyard prompt-cache money: prices for cache writes kept 5 minutes and 1 hour (cache
-- reads keep `cached_input_per_mtok`), and the cache-write token classes on every usage event
-- and ledger row (cache reads keep `cached_input_tokens`). All cache counts are subsets of
-- `prompt_tokens`. Never edited once landed.

ALTER TABLE pricing
    ADD COLUMN cache_write_5m_per_mtok NUMERIC(20, 10),
    ADD COLUMN cache_write_1h_per_mtok NUMERIC(20, 10);

ALTER TABLE price_history
    ADD COLUMN cache_write_5m_per_mtok NUMERIC,
    ADD COLUMN cache_write_1h_per_mtok NUMERIC;

ALTER TABLE usage_events
    ADD COLUMN cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;

ALTER TABLE spend_ledger
    ADD COLUMN cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
