//! Switchyard's end-to-end test support: the scripted mock provider (also built as the
//! `mock-provider` binary) and the real-services harness the `e2e` test binary uses.

pub mod mock;
pub mod support;
