//! Inbound dialects other than the internal one (OpenAI chat): pure translations between what a
//! client sends and receives and the OpenAI-shaped bodies the pipeline and adapters work on.
//! No I/O here; the handlers in `server/` call these.

pub mod anthropic;
