//! Token usage as a provider reports it, normalised to one shape.
//!
//! The shape is OpenAI's: `prompt_tokens` counts every input token, cache reads and writes
//! included, and the cache counts are disjoint subsets of it. Each adapter converts its
//! provider's convention (Anthropic and Bedrock count cache reads and writes apart from
//! `input_tokens`, so they are added back; OpenAI and Gemini include cache reads already).

use serde::Deserialize;
use serde_json::{json, Value};

/// Tokens of one request, as reported by the provider (never estimated here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache (a subset of `prompt_tokens`).
    pub cached_tokens: u64,
    /// Reasoning tokens (a subset of `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Prompt tokens written to the cache for 5 minutes (a subset of `prompt_tokens`).
    pub cache_write_5m_tokens: u64,
    /// Prompt tokens written to the cache for 1 hour (a subset of `prompt_tokens`).
    pub cache_write_1h_tokens: u64,
}

impl Usage {
    /// As OpenAI's `usage` object; `reasoning`: with `completion_tokens_details` (for a
    /// provider that reports reasoning tokens). Cache writes, which OpenAI does not report,
    /// are `prompt_tokens_details.cache_write_tokens` when there are some (as OpenRouter
    /// reports them), so a Messages client gets its `cache_creation_input_tokens` back.
    pub fn openai_json(&self, reasoning: bool) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": self.cached_tokens },
        });
        let written = self.cache_write_5m_tokens + self.cache_write_1h_tokens;
        if written > 0 {
            usage["prompt_tokens_details"]["cache_write_tokens"] = json!(written);
        }
        if reasoning {
            usage["completion_tokens_details"] =
                json!({ "reasoning_tokens": self.reasoning_tokens });
        }
        usage
    }
}

/// OpenAI's `usage` object, including the optional detail objects.
#[derive(Debug, Default, Deserialize)]
pub struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<Details>,
    #[serde(default)]
    completion_tokens_details: Option<Details>,
}

/// The Responses API's `usage` object: OpenAI's counts under other names.
#[derive(Debug, Default, Deserialize)]
pub struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

/// The detail object of either side (input: `cached_tokens`; output: `reasoning_tokens`).
#[derive(Debug, Default, Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl Usage {
    /// OpenAI's convention: the input count includes cache reads, the output count reasoning.
    fn openai(input: u64, output: u64, inp: Option<Details>, out: Option<Details>) -> Self {
        Self {
            prompt_tokens: input,
            completion_tokens: output,
            cached_tokens: inp.and_then(|d| d.cached_tokens).unwrap_or(0),
            reasoning_tokens: out.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            // OpenAI does not charge for writing its cache, and does not report it.
            ..Usage::default()
        }
    }
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Self {
        let details = (u.prompt_tokens_details, u.completion_tokens_details);
        Usage::openai(u.prompt_tokens, u.completion_tokens, details.0, details.1)
    }
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        let details = (u.input_tokens_details, u.output_tokens_details);
        Usage::openai(u.input_tokens, u.output_tokens, details.0, details.1)
    }
}
