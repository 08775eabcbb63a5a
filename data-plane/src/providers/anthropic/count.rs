//! `POST {base}/v1/messages/count_tokens`: the provider's own count of a Messages request's
//! input tokens. The client's body goes upstream as it came but for the value of `model` (as
//! in [`super::forward`]), with the client's `anthropic-version` / `anthropic-beta` headers;
//! the answer's `input_tokens` is the count ([`input_tokens`], which Claude on Vertex AI reads
//! the same way). Nothing is billed for it.

use std::time::Instant;

use serde::Deserialize;

use super::forward::forwarded_headers;
use super::{error, Anthropic};
use crate::providers::common::Upstream;
use crate::providers::forward::Edit;
use crate::providers::{Call, NativeRequest, UpstreamError};

#[derive(Deserialize)]
struct Count {
    input_tokens: u64,
}

impl Anthropic {
    /// The provider's count of the input tokens of the client's Messages body.
    pub async fn count_tokens(
        &self,
        call: &Call<'_>,
        request: &NativeRequest<'_>,
    ) -> Result<u64, UpstreamError> {
        let start = Instant::now();
        let up = &self.upstream;
        let body = Edit::default()
            .apply(&request.body, call.deployment.model_json.get())
            .ok_or_else(|| up.bad("request could not be encoded"))?;
        let url = count_url(&call.deployment.endpoints.chat);
        let headers = forwarded_headers(request.headers);
        let response = up
            .post_with(call, url, body, &headers, error::adapt)
            .await?;
        input_tokens(up, call, start, response).await
    }
}

/// The count of a token-count answer, `{"input_tokens": N}`; `start`: when the call began.
pub(in crate::providers) async fn input_tokens(
    up: &Upstream,
    call: &Call<'_>,
    start: Instant,
    response: reqwest::Response,
) -> Result<u64, UpstreamError> {
    let body = up.read_body(call, start, response).await?;
    serde_json::from_slice::<Count>(&body)
        .map(|c| c.input_tokens)
        .map_err(|_| up.bad("the token count is not {\"input_tokens\": N}"))
}

/// `…/v1/messages` → `…/v1/messages/count_tokens`.
fn count_url(messages: &reqwest::Url) -> reqwest::Url {
    let mut url = messages.clone();
    let path = format!("{}/count_tokens", messages.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_count_url_sits_under_messages() {
        let url =
            reqwest::Url::parse("http://127.0.0.1:9/v1/messages").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            super::count_url(&url).as_str(),
            "http://127.0.0.1:9/v1/messages/count_tokens"
        );
    }
}
