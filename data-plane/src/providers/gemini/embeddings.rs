//! OpenAI embeddings ⇄ Gemini `batchEmbedContents` (pure).
//!
//! `input` (a string or an array of strings) becomes one `EmbedContentRequest` per input;
//! `dimensions` becomes `outputDimensionality`. Token-id inputs have no Gemini equivalent and
//! are refused. Gemini reports no token counts for embeddings: the `usage` in the OpenAI body is
//! an estimate (one token per 4 characters, rounded up, per input) so SDKs find the field, and
//! the adapter reports no provider usage, leaving metering to the gateway's own estimate.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::providers::translate::{bad, Untranslatable};
use crate::providers::JsonBody;

/// The inputs, in order, as texts.
fn inputs(body: &JsonBody) -> Result<Vec<String>, Untranslatable> {
    let input: Value = body
        .get("input")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or_else(|| bad("`input` is required"))?;
    let texts = match input {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(bad(
                    "Gemini embeddings accept text inputs only, not token ids",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("`input` must be a string or an array of strings")),
    };
    if texts.is_empty() {
        return Err(bad("`input` must not be empty"));
    }
    Ok(texts)
}

/// The `batchEmbedContents` body for `model` and the input texts (kept for the usage estimate).
pub fn embeddings_request(
    body: &JsonBody,
    model: &str,
) -> Result<(Value, Vec<String>), Untranslatable> {
    let texts = inputs(body)?;
    let dimensions: Option<u64> = body
        .get("dimensions")
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let model = format!("models/{model}");
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut request = json!({ "model": model, "content": { "parts": [{ "text": text }] } });
            if let (Some(d), Some(r)) = (dimensions, request.as_object_mut()) {
                r.insert("outputDimensionality".into(), json!(d));
            }
            request
        })
        .collect();
    Ok((json!({ "requests": requests }), texts))
}

/// Whether the client asked for base64 vectors.
pub fn wants_base64(body: &JsonBody) -> bool {
    body.get("encoding_format")
        .is_some_and(|raw| raw.get() == "\"base64\"")
}

/// The OpenAI embeddings list for a `batchEmbedContents` response; `None` if it is not one or
/// its count does not match the inputs.
pub fn embeddings_response(
    response: &Value,
    texts: &[String],
    model: &str,
    base64: bool,
) -> Option<Value> {
    let embeddings = response.get("embeddings")?.as_array()?;
    if embeddings.len() != texts.len() {
        return None;
    }
    let data = embeddings
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let values = e.get("values")?.as_array()?;
            let embedding = if base64 {
                let mut bytes = Vec::with_capacity(values.len() * 4);
                for v in values {
                    #[allow(clippy::cast_possible_truncation)]
                    let f = v.as_f64()? as f32;
                    bytes.extend_from_slice(&f.to_le_bytes());
                }
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::Array(values.clone())
            };
            Some(json!({ "object": "embedding", "index": index, "embedding": embedding }))
        })
        .collect::<Option<Vec<Value>>>()?;
    let estimate: usize = texts.iter().map(|t| t.chars().count().div_ceil(4)).sum();
    Some(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": estimate, "total_tokens": estimate },
    }))
}
