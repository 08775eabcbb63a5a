//! The mock's own tests' client: one recording server on `127.0.0.1:0`, requests to it with
//! extra headers, and its record of what it received (`GET /__mock/requests`).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{spawn, MockOptions, MockServer};

/// A running mock and a client for it.
pub(super) struct TestMock {
    pub server: MockServer,
    pub client: reqwest::Client,
}

impl TestMock {
    /// A recording mock with the default options, demanding `api_key` when one is given.
    pub async fn start(api_key: Option<&str>) -> Self {
        Self::start_with(MockOptions {
            api_key: api_key.map(str::to_owned),
            ..MockOptions::default()
        })
        .await
    }

    /// A mock with `options`.
    pub async fn start_with(options: MockOptions) -> Self {
        Self {
            server: spawn(options).await.unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// The absolute URL of `path` (which may carry a query).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// POSTs `body` as JSON to `path` with `headers`.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// [`Self::post`], answered with JSON.
    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Value {
        self.post(path, headers, body).await.json().await.unwrap()
    }

    /// GETs `path`, answered with JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> T {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// DELETEs `path`, answered with JSON.
    pub async fn delete_json(&self, path: &str) -> Value {
        let response = self.client.delete(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Queues a script (`POST /__mock/script`).
    pub async fn script(&self, script: &Value) -> reqwest::Response {
        self.post("/__mock/script", &[], script).await
    }

    /// What the mock recorded, oldest first.
    pub async fn records(&self) -> Vec<Value> {
        self.get_json("/__mock/requests").await
    }
}
