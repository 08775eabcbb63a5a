//! Embeddings: input forms, deterministic vectors and the response body.
//!
//! A vector depends only on its input item and `dimensions`: the item is hashed (FNV-1a over
//! the text's words, lowercased, or over the little-endian `u64` of each token id), the hash
//! seeds a SplitMix64 sequence mapped to `[-1, 1)`, and the result is L2-normalised. The same
//! text always gives the same vector, on every run and machine; texts that differ only in case,
//! spacing or punctuation ("What is Rust?" and "what is rust") give the same vector, the mock's
//! stand-in for a paraphrase; any other two texts are unrelated.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::tokens::count_words;

/// Vector length when the request has no `dimensions`.
pub const DEFAULT_DIMENSIONS: u32 = 8;
/// Largest accepted `dimensions`.
pub const MAX_DIMENSIONS: u32 = 16_384;

/// The embeddings request fields the mock uses.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsRequest {
    pub model: Option<String>,
    pub input: EmbeddingInput,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<u32>,
}

/// `input`: a string, strings, token ids, or batches of token ids.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenBatches(Vec<Vec<u64>>),
}

/// One item to embed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item<'a> {
    Text(&'a str),
    Tokens(&'a [u64]),
}

impl EmbeddingInput {
    pub(crate) fn items(&self) -> Vec<Item<'_>> {
        match self {
            Self::Text(t) => vec![Item::Text(t)],
            Self::Texts(ts) => ts.iter().map(|t| Item::Text(t)).collect(),
            Self::Tokens(ids) => vec![Item::Tokens(ids)],
            Self::TokenBatches(batches) => batches.iter().map(|b| Item::Tokens(b)).collect(),
        }
    }
}

impl Item<'_> {
    /// Words of a text item, or the number of token ids.
    pub(crate) fn tokens(self) -> u64 {
        match self {
            Self::Text(t) => count_words(t),
            Self::Tokens(ids) => ids.len() as u64,
        }
    }

    fn seed(self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let fnv = |hash: u64, bytes: &[u8]| {
            bytes
                .iter()
                .fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
        };
        match self {
            Self::Text(t) => t
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .fold(OFFSET, |h, w| {
                    fnv(fnv(h, w.to_lowercase().as_bytes()), b" ")
                }),
            Self::Tokens(ids) => ids.iter().fold(OFFSET, |h, id| fnv(h, &id.to_le_bytes())),
        }
    }
}

/// The deterministic, L2-normalised vector of `item`.
pub(crate) fn vector(item: Item<'_>, dimensions: u32) -> Vec<f32> {
    let mut state = item.seed();
    let mut values: Vec<f32> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Top 24 bits are exact in an f32 mantissa.
            (z >> 40) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
    values
}

/// Base64 of the little-endian `f32` bytes, as `encoding_format: "base64"` returns.
pub fn to_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Encoded {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingObject {
    object: &'static str,
    index: usize,
    embedding: Encoded,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The full embeddings response body and its prompt tokens.
pub(crate) fn response_json(
    items: &[Item<'_>],
    dimensions: u32,
    base64: bool,
    model: &str,
) -> Result<(Vec<u8>, u64), serde_json::Error> {
    let prompt_tokens = items.iter().map(|i| i.tokens()).sum();
    let data = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let values = vector(*item, dimensions);
            EmbeddingObject {
                object: "embedding",
                index,
                embedding: if base64 {
                    Encoded::Base64(to_base64(&values))
                } else {
                    Encoded::Float(values)
                },
            }
        })
        .collect();
    let body = serde_json::to_vec(&EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })?;
    Ok((body, prompt_tokens))
}

/// The vector [`to_base64`] encoded (the mock's own tests read base64 replies with it).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn from_base64(text: &str) -> Vec<f32> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(to_base64(&[1.0]), "AACAPw==");
        let values = vector(Item::Text("hello world"), 8);
        assert_eq!(from_base64(&to_base64(&values)), values);
    }

    #[test]
    fn vectors_are_deterministic_and_normalised() {
        let a = vector(Item::Text("same text"), 16);
        assert_eq!(a, vector(Item::Text("same text"), 16));
        assert_ne!(a, vector(Item::Text("other text"), 16));
        assert_ne!(
            vector(Item::Tokens(&[1, 2]), 4),
            vector(Item::Tokens(&[2, 1]), 4)
        );
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }

    #[test]
    fn input_forms_and_tokens() {
        let parse = |json: &str| serde_json::from_str::<EmbeddingInput>(json).unwrap();
        let total = |input: &EmbeddingInput| input.items().iter().map(|i| i.tokens()).sum::<u64>();
        assert_eq!(total(&parse(r#""a b c""#)), 3);
        assert_eq!(total(&parse(r#"["a b", "c"]"#)), 3);
        assert_eq!(total(&parse("[1, 2, 3, 4]")), 4);
        assert_eq!(total(&parse("[[1, 2], [3]]")), 3);
        assert_eq!(parse("[[1, 2], [3]]").items().len(), 2);
        let (body, tokens) = response_json(&parse(r#"["x y"]"#).items(), 3, false, "e").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(tokens, 2);
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["usage"],
            serde_json::json!({"prompt_tokens":2,"total_tokens":2})
        );
    }
}
