//! The outbox relay: whatever is committed to the event log reaches NATS.

pub mod publish;
pub mod relay;
