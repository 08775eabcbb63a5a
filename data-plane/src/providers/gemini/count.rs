//! `POST {base}/models/{model}:countTokens`: Gemini's own count of a chat request's input
//! tokens. The internal body is translated as for `generateContent` and sent whole as
//! `generateContentRequest` (so the system instruction and tools count too); the answer's
//! `totalTokens` is the count. Nothing is billed for it.

use serde_json::{json, Value};

use super::{exchange, request, Gemini, Google};
use crate::providers::{Call, JsonBody, UpstreamError};

impl Gemini {
    /// Gemini's count of the input tokens of an internal (OpenAI-shaped) chat body.
    pub async fn count_tokens(
        &self,
        call: &Call<'_>,
        body: &JsonBody,
    ) -> Result<u64, UpstreamError> {
        let mut generate =
            request::chat_request(body).map_err(|e| e.upstream(self.id(), Self::PRODUCT))?;
        if let Some(fields) = generate.as_object_mut() {
            let model = format!("models/{}", call.deployment.model);
            fields.insert("model".into(), Value::String(model));
        }
        let body = json!({ "generateContentRequest": generate });
        let url = count_url(&call.deployment.endpoints.chat);
        let answer = exchange(self, call, url, &body).await?;
        answer
            .get("totalTokens")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.upstream.bad("the token count has no totalTokens"))
    }
}

/// `…:generateContent` → `…:countTokens`.
fn count_url(chat: &reqwest::Url) -> reqwest::Url {
    let mut url = chat.clone();
    url.set_path(&chat.path().replace(":generateContent", ":countTokens"));
    url
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_count_url_is_the_models_count_action() {
        let url = reqwest::Url::parse("http://h/v1beta/models/gemini-2.5-flash:generateContent")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            super::count_url(&url).as_str(),
            "http://h/v1beta/models/gemini-2.5-flash:countTokens"
        );
    }
}
