//! Anthropic's Claude models on Vertex AI (publisher `anthropic`), with the adapter's OAuth
//! token: `POST {base}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/
//! {model}:rawPredict`, streams `…:streamRawPredict`. The body is Anthropic's Messages body
//! without `model` (the URL names it) and with `"anthropic_version": "vertex-2023-10-16"`
//! unless the client set one ([`EDIT`]); the answer is Anthropic's message, or its SSE stream.
//!
//! - Translated (OpenAI chat and Responses clients): the Anthropic adapter's translation
//!   (`anthropic::request`, which keeps `cache_control` marks) edited by [`EDIT`]; answers,
//!   streams and errors are decoded by the Anthropic adapter's code.
//! - Pass-through (Messages clients): the client's body with only [`EDIT`] applied (its other
//!   top-level values as sent), its `anthropic-beta` header, the answer relayed as it came;
//!   usage is read by the Anthropic wire (`anthropic::forward::Messages`).
//! - count_tokens: `…/publishers/anthropic/models/count-tokens:rawPredict`, with the client's
//!   body, the deployment's model in it (this endpoint reads the model from the body) and
//!   `anthropic_version`; the answer is Anthropic's `{"input_tokens": N}`.
//!
//! Errors come in Anthropic's shape from the model and in Google's from the platform (quota,
//! permission, unknown model); the Anthropic adapter's mapping reads the message of both.

use std::time::Instant;

use http::header::AUTHORIZATION;
use reqwest::Url;

use super::Vertex;
use crate::providers::anthropic::count::input_tokens;
use crate::providers::anthropic::forward::{client_headers, Messages, BETA};
use crate::providers::anthropic::{self, error, request::messages_body};
use crate::providers::forward::{pass_through, Edit, Target};
use crate::providers::translate::rejected;
use crate::providers::{Call, ChatRequest, ChatResult, NativeRequest, UpstreamError};

/// The body edit of a Claude request on Vertex: `model` goes, the API version comes.
const EDIT: Edit = Edit {
    drop_model: true,
    default: Some(("anthropic_version", r#""vertex-2023-10-16""#)),
};

/// Whether `model` is one of Anthropic's Claude models (Vertex names them `claude-…@date`).
pub fn is_claude(model: &str) -> bool {
    model.starts_with("claude-")
}

impl Vertex {
    /// A chat in the OpenAI dialect, translated to Anthropic's Messages and back.
    pub(super) async fn claude_chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        let start = Instant::now();
        let up = &self.upstream;
        let stream = request.stream;
        let body = messages_body(&request.body, &call.deployment.model, stream)
            .map_err(|e| rejected(&e.to_string()))?;
        let body = serde_json::to_vec(&body)
            .ok()
            .and_then(|body| EDIT.apply(&body, ""))
            .ok_or_else(|| up.bad("request could not be encoded"))?;
        let url = predict_url(&call.deployment.endpoints.chat, stream);
        let response = self.send(call, url, body, &[], error::adapt).await?;
        anthropic::answer(up, call, start, response, stream).await
    }

    /// Sends the client's own Messages request (pass-through), edited by [`EDIT`].
    pub async fn forward(&self, call: &Call<'_>, request: NativeRequest<'_>) -> ChatResult {
        let authorization = self.authorization(call).await?;
        let mut headers = client_headers(request.headers, &[BETA]);
        headers.push((AUTHORIZATION, authorization.clone()));
        let url = predict_url(&call.deployment.endpoints.chat, request.stream);
        let to = Target::new(url, &headers, error::adapt).edit(EDIT);
        let result = pass_through::<Messages>(&self.upstream, call, request, to).await;
        self.forget_refused(&authorization, &result);
        result
    }

    /// Vertex's count of the input tokens of the client's Messages body.
    pub async fn count_tokens(
        &self,
        call: &Call<'_>,
        request: &NativeRequest<'_>,
    ) -> Result<u64, UpstreamError> {
        let start = Instant::now();
        let up = &self.upstream;
        let keep_model = Edit {
            drop_model: false,
            ..EDIT
        };
        let body = keep_model
            .apply(&request.body, call.deployment.model_json.get())
            .ok_or_else(|| up.bad("request could not be encoded"))?;
        let url = count_url(&call.deployment.endpoints.chat);
        let headers = client_headers(request.headers, &[BETA]);
        let response = self.send(call, url, body, &headers, error::adapt).await?;
        input_tokens(up, call, start, response).await
    }
}

/// `…/models/{model}:rawPredict`, or for a stream `…/models/{model}:streamRawPredict`.
fn predict_url(raw_predict: &Url, stream: bool) -> Url {
    let mut url = raw_predict.clone();
    if let Some(model) = raw_predict.path().strip_suffix(":rawPredict") {
        if stream {
            url.set_path(&format!("{model}:streamRawPredict"));
        }
    }
    url
}

/// `…/models/{model}:rawPredict` → `…/models/count-tokens:rawPredict`.
fn count_url(raw_predict: &Url) -> Url {
    let mut url = raw_predict.clone();
    if let Some((models, _)) = raw_predict.path().rsplit_once('/') {
        url.set_path(&format!("{models}/count-tokens:rawPredict"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;

    #[test]
    fn claude_models_go_to_the_anthropic_publisher() {
        let v = Vertex::new(
            &provider("{id: v, kind: vertex_ai, settings: {project: my-proj, location: us-east5}}"),
            None,
        );
        let e = v.endpoints("claude-sonnet-4-5@20250929").unwrap();
        let base = "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models";
        assert_eq!(
            e.chat.as_str(),
            format!("{base}/claude-sonnet-4-5@20250929:rawPredict")
        );
        assert_eq!(predict_url(&e.chat, false), e.chat);
        assert_eq!(
            predict_url(&e.chat, true).as_str(),
            format!("{base}/claude-sonnet-4-5@20250929:streamRawPredict")
        );
        assert_eq!(
            count_url(&e.chat).as_str(),
            format!("{base}/count-tokens:rawPredict")
        );
        assert!(is_claude("claude-3-5-haiku@20241022"));
        assert!(!is_claude("gemini-2.5-flash"));
        assert!(!is_claude("anthropic.claude-3-5-haiku-20241022-v1:0"));
    }

    #[test]
    fn the_body_loses_its_model_and_gains_the_vertex_version() {
        let client = br#"{"model":"claude-x","max_tokens":10,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"messages":[]}"#;
        let sent = EDIT.apply(client, "").unwrap();
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            r#"{"anthropic_version":"vertex-2023-10-16","max_tokens":10,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"messages":[]}"#
        );
        let own = br#"{"anthropic_version":"vertex-2099-01-01","model":"claude-x"}"#;
        assert_eq!(
            EDIT.apply(own, "").unwrap(),
            br#"{"anthropic_version":"vertex-2099-01-01"}"#
        );
    }
}
