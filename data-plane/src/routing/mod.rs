//! Routing: which deployment serves an attempt, and what this proxy knows of each deployment's
//! health (circuit breaker, in-flight count, time to first token).
//!
//! The pieces are pure and clocked by the caller, so they are tested without sleeping:
//! [`breaker`] is one deployment's circuit breaker, [`select`] picks a candidate by the
//! route's strategy within the best available priority tier, [`rng`] is the lock-free random
//! source weighted picks use.

pub mod breaker;
pub mod rng;
pub mod select;
