//! OpenAI embeddings ⇄ Vertex AI `:predict` for text-embedding models (pure).
//!
//! `input` (a string or strings; token ids are refused, as for Gemini) becomes one instance
//! `{"content": text}` per input; `dimensions` becomes `parameters.outputDimensionality`.
//! Each prediction's `embeddings.values` becomes one OpenAI embedding (base64 on request), and
//! the prompt tokens are the sum of `embeddings.statistics.token_count`: Vertex reports them,
//! so they are the provider usage. A response without them is answered with the Gemini
//! adapter's estimate in the body and no provider usage.

use serde_json::{json, Value};

use super::super::gemini::embeddings as gemini;
use crate::providers::translate::Untranslatable;
use crate::providers::{JsonBody, Usage};

/// The `:predict` body and the input texts.
pub fn predict_request(
    body: &JsonBody,
    model: &str,
) -> Result<(Value, Vec<String>), Untranslatable> {
    // The Gemini translation validates `input` the same way; only its texts are kept.
    let (_, texts) = gemini::embeddings_request(body, model)?;
    let instances: Vec<Value> = texts.iter().map(|t| json!({ "content": t })).collect();
    let mut request = json!({ "instances": instances });
    let dimensions: Option<u64> = body
        .get("dimensions")
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    if let (Some(d), Some(r)) = (dimensions, request.as_object_mut()) {
        r.insert("parameters".into(), json!({ "outputDimensionality": d }));
    }
    Ok((request, texts))
}

/// The OpenAI embeddings list and the reported usage; `None` if the response is not a
/// prediction per input.
pub fn predict_response(
    response: &Value,
    texts: &[String],
    model: &str,
    base64: bool,
) -> Option<(Value, Option<Usage>)> {
    let predictions = response.get("predictions")?.as_array()?;
    let embeddings: Vec<&Value> = predictions
        .iter()
        .map(|p| p.get("embeddings"))
        .collect::<Option<_>>()?;
    let as_gemini = json!({
        "embeddings": embeddings
            .iter()
            .map(|e| Some(json!({ "values": e.get("values")? })))
            .collect::<Option<Vec<Value>>>()?,
    });
    let mut out = gemini::embeddings_response(&as_gemini, texts, model, base64)?;
    let counts: Option<Vec<u64>> = embeddings
        .iter()
        .map(|e| e.get("statistics")?.get("token_count")?.as_u64())
        .collect();
    let usage = counts.map(|c| Usage {
        prompt_tokens: c.iter().sum(),
        ..Usage::default()
    });
    if let (Some(u), Some(o)) = (usage, out.as_object_mut()) {
        o.insert(
            "usage".into(),
            json!({ "prompt_tokens": u.prompt_tokens, "total_tokens": u.prompt_tokens }),
        );
    }
    Some((out, usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> JsonBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inputs_become_instances_and_token_counts_become_usage() {
        let (request, texts) = predict_request(
            &body(r#"{"model":"e","input":["one two","three"],"dimensions":4}"#),
            "text-embedding-005",
        )
        .unwrap();
        assert_eq!(
            request,
            json!({"instances": [{"content": "one two"}, {"content": "three"}],
                   "parameters": {"outputDimensionality": 4}})
        );
        let response = json!({"predictions": [
            {"embeddings": {"values": [0.5, 0.5], "statistics": {"token_count": 2, "truncated": false}}},
            {"embeddings": {"values": [1.0, 0.0], "statistics": {"token_count": 1, "truncated": false}}}
        ]});
        let (out, usage) =
            predict_response(&response, &texts, "text-embedding-005", false).unwrap();
        assert_eq!(out["data"][1]["embedding"], json!([1.0, 0.0]));
        assert_eq!(out["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        assert_eq!(usage.unwrap().prompt_tokens, 3);

        let short = json!({"predictions": [response["predictions"][0]]});
        assert!(predict_response(&short, &texts, "m", false).is_none());
        assert!(predict_request(&body(r#"{"input":[[1,2]]}"#), "m").is_err());
    }
}
