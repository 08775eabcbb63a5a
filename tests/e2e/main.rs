//! The one end-to-end test binary. Each module is a suite that runs the real binaries and
//! services through `switchyard_tests::support::TestEnv`; nextest runs every test in its own
//! process, and each `TestEnv` has its own ports and temp dir, so tests run in parallel.
//!
//! Build the workspace binaries first: `cargo build --workspace --bins` (deploy/local/test.sh
//! does). Tests should fail by panicking (`unwrap`, `expect`, `assert!`): a panic makes every
//! component print its log tail as the environment drops, which a returned `Err` does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_isolation;
mod admission;
mod agents;
mod anthropic_provider;
mod bedrock_provider;
mod cache_money;
mod calls_and_reasoning;
mod chaos;
mod console;
mod control_plane;
mod dashboards;
mod deploy_files;
mod deploy_retention;
mod fixture;
mod gemini_provider;
mod guardrails;
mod health;
mod leases;
mod messages_inbound;
mod metering_fold;
mod metering_proofs;
mod models_and_addressing;
mod openapi;
mod providers;
mod proxy;
mod reload;
mod request_log;
mod response_cache;
mod responses_inbound;
mod responses_stored;
mod routing;
mod scale;
mod sdk;
mod semantic_cache;
mod smoke;
mod snapshot_nats;
mod traces;
mod usage_events;
mod vertex_provider;
