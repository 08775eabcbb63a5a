//! Wire types shared by both Switchyard planes.
//!
//! This crate holds serde types and names only: no I/O, no async, no clients. Wire changes are
//! additive (new optional fields with defaults), so an older proxy keeps reading a newer
//! control plane's messages; fixture tests lock the JSON shape.

mod batch;
mod cache;
mod distribution;
mod guardrail;
mod health;
mod keycodec;
mod lease;
mod price;
mod replicas;
mod requestlog;
mod snapshot;
mod usage;
mod validate;

pub use batch::{batch_id, batch_items};
pub use cache::{
    default_finish_reasons, CachePolicy, CacheTargets, SemanticSettings, CACHE_KV_BUCKET,
    CACHE_MAX_ENTRY_BYTES, CACHE_MAX_TTL_SECS,
};
pub use distribution::{
    part_bits_for, part_of, split_keys, split_keys_with_bits, EncodedParts, KeyParts, PartRef,
    SnapshotPointer, MAX_PART_BITS, MAX_PART_BYTES, RESPONSES_KV_BUCKET, SNAPSHOT_KV_BUCKET,
    SNAPSHOT_KV_KEY, SNAPSHOT_OBJECT_BUCKET, SNAPSHOT_PARTS_BUCKET, SNAPSHOT_SUBJECT,
};

pub use guardrail::{
    valid_custom_name, CustomPattern, GuardAction, GuardClass, GuardScope, GuardrailPolicy,
};
pub use health::{
    health_subject, BreakerState, HealthEvent, HEALTH_QUERY_QUEUE, HEALTH_QUERY_SUBJECT,
    HEALTH_SUBJECTS, HEALTH_SUBJECT_PREFIX,
};
pub use keycodec::{
    decode_keys, encode_keys, is_binary_key_part, read_keys, KeyPartError, KeyView, KEY_PART_MAGIC,
};
pub use lease::{
    period_bounds, rate_window, LeaseReply, LeaseRequest, PoolKey, RateUnit, LEASE_QUEUE,
    LEASE_SUBJECT,
};
pub use price::{ModelPrice, Rates};
pub use replicas::{
    process_replicas, replicas, set_replicas_setting, MAX_REPLICAS, NATS_REPLICAS_ENV,
};
pub use requestlog::{
    loggable_header, requests_subject, LogPayloads, LoggedBody, RequestPayload,
    REQUESTS_FOLD_CONSUMER, REQUESTS_STREAM, REQUESTS_SUBJECTS,
};
pub use snapshot::{
    Budget, BudgetPeriod, BudgetScope, Credential, Deployment, Provider, ProviderKind, RetryPolicy,
    Route, RouteRule, Snapshot, Strategy, TeamPolicy, Trigger, VirtualKey, SCHEMA_VERSION,
};
pub use usage::{
    usage_subject, BudgetAlert, Outcome, Refusal, TokenClasses, TokenUsage, UsageEvent,
    BUDGET_ALERT_SUBJECT, USAGE_FOLD_CONSUMER, USAGE_REPLAYED_HEADER, USAGE_STREAM, USAGE_SUBJECTS,
};
pub use validate::ValidationError;
