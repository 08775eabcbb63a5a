//! Google Vertex AI adapter (stub: being built).

use std::time::Duration;

use super::common::{Auth, Upstream};
use super::{
    Call, ChatReply, ChatRequest, Endpoints, JsonBody, JsonReply, Provider, UpstreamError,
};
use crate::seal::SealKey;

/// A Google Vertex AI provider.
#[derive(Debug)]
pub struct Vertex {
    upstream: Upstream,
}

impl Vertex {
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        Self {
            upstream: Upstream::new(p, seal_key, &[], Auth::Bearer),
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    pub fn endpoints(&self, _model: &str) -> Result<Endpoints, String> {
        Err("not implemented yet".to_owned())
    }
}

impl Provider for Vertex {
    async fn chat(
        &self,
        _call: &Call<'_>,
        _request: ChatRequest,
    ) -> Result<ChatReply, UpstreamError> {
        Err(self.upstream.bad("not implemented yet"))
    }

    async fn embeddings(
        &self,
        _call: &Call<'_>,
        _body: JsonBody,
    ) -> Result<JsonReply, UpstreamError> {
        Err(self.upstream.bad("not implemented yet"))
    }
}
