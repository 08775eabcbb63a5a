//! Scripted prompt-cache usage: how many of a request's prompt tokens the mock reports as read
//! from the provider's cache or written to it (kept 5 minutes or 1 hour), each in its wire's
//! own convention. The prompt's word count stays the whole prompt; the scripted counts are
//! parts of it, cut in the order reads, 5-minute writes, 1-hour writes so they never add up to
//! more than the prompt.

use serde_json::{json, Value};

use super::Behaviour;

/// The cache parts of one request's prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheTokens {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
}

impl CacheTokens {
    /// The behaviour's scripted counts, within a prompt of `prompt` tokens.
    pub(crate) fn of(behaviour: &Behaviour, prompt: u64) -> Self {
        let mut left = prompt;
        let mut take = |n: Option<u64>| {
            let n = n.unwrap_or(0).min(left);
            left -= n;
            n
        };
        Self {
            read: take(behaviour.cache_read_tokens),
            write_5m: take(behaviour.cache_write_5m_tokens),
            write_1h: take(behaviour.cache_write_1h_tokens),
        }
    }

    fn written(&self) -> u64 {
        self.write_5m + self.write_1h
    }

    /// Anthropic's `usage`: `input_tokens` leaves the cache reads and writes out, which come
    /// apart, with the writes split by lifetime in `cache_creation`.
    pub(crate) fn anthropic_usage(&self, prompt: u64, output: u64) -> Value {
        json!({
            "input_tokens": prompt - self.read - self.written(),
            "cache_creation_input_tokens": self.written(),
            "cache_read_input_tokens": self.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.write_5m,
                "ephemeral_1h_input_tokens": self.write_1h,
            },
            "output_tokens": output,
        })
    }

    /// Bedrock Converse's `usage`: `inputTokens` leaves the cache out, `totalTokens` adds it;
    /// writes carry no lifetime. The cache fields appear only when the cache was used.
    pub(crate) fn bedrock_usage(&self, prompt: u64, output: u64) -> Value {
        let mut usage = json!({
            "inputTokens": prompt - self.read - self.written(),
            "outputTokens": output,
            "totalTokens": prompt + output,
        });
        if *self != Self::default() {
            usage["cacheReadInputTokens"] = json!(self.read);
            usage["cacheWriteInputTokens"] = json!(self.written());
        }
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripted(read: u64, w5: u64, w1: u64) -> Behaviour {
        Behaviour {
            cache_read_tokens: Some(read),
            cache_write_5m_tokens: Some(w5),
            cache_write_1h_tokens: Some(w1),
            ..Behaviour::default()
        }
    }

    #[test]
    fn the_parts_never_exceed_the_prompt() {
        let c = CacheTokens::of(&scripted(3, 4, 5), 10);
        assert_eq!((c.read, c.write_5m, c.write_1h), (3, 4, 3));
        let u = c.anthropic_usage(10, 2);
        assert_eq!(u["input_tokens"], 0);
        assert_eq!(u["cache_creation_input_tokens"], 7);
        assert_eq!(u["cache_creation"]["ephemeral_1h_input_tokens"], 3);
        let none = CacheTokens::of(&Behaviour::default(), 10);
        assert_eq!(
            none.bedrock_usage(10, 2),
            json!({"inputTokens": 10, "outputTokens": 2, "totalTokens": 12})
        );
        assert_eq!(
            CacheTokens::of(&scripted(1, 2, 0), 10).bedrock_usage(10, 2),
            json!({"inputTokens": 7, "outputTokens": 2, "totalTokens": 12,
                   "cacheReadInputTokens": 1, "cacheWriteInputTokens": 2})
        );
    }
}
