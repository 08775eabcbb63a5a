//! The official `openai` Python SDK against the data plane.

use serde_json::{json, Value};
use switchyard_tests::support::{openai_sdk, TestEnv};

use crate::fixture::{assert_default_chat, assert_default_stream, gateway, FULL_KEY};

async fn sdk(env: &TestEnv, check: &str, key: &str) -> Value {
    let base = env.data_plane().base_url();
    openai_sdk(&base, key, "chat", check, &[]).await.unwrap()
}

#[tokio::test]
async fn chat_embeddings_and_models_through_the_sdk() {
    let env = gateway(&[]).await;
    let chat = sdk(&env, "chat", FULL_KEY).await;
    assert_default_chat(&chat);

    // The SDK asks for base64 embeddings by default and decodes them.
    let emb = sdk(&env, "embeddings", FULL_KEY).await;
    assert_eq!(emb["count"], 2);
    assert_eq!(emb["dims"], json!([8, 8]));
    assert_eq!(emb["usage"], 4);
    assert!(emb["first"][0].as_f64().is_some());

    let models = sdk(&env, "models", FULL_KEY).await;
    assert!(models["ids"].as_array().unwrap().contains(&json!("chat")));
}

#[tokio::test]
async fn sdk_errors_are_the_right_exceptions() {
    let env = gateway(&[]).await;
    let bad_key = sdk(&env, "chat", "sk-not-a-key").await;
    assert_eq!(bad_key["exception"], "AuthenticationError");
    assert_eq!(bad_key["status"], 401);
    let bad_request = sdk(&env, "bad_request", FULL_KEY).await;
    assert_eq!(bad_request["exception"], "BadRequestError");
    assert_eq!(bad_request["status"], 400);
    assert!(
        bad_request["message"]
            .as_str()
            .unwrap()
            .contains("messages"),
        "{bad_request}"
    );
}

#[tokio::test]
async fn stream_chunks_reach_the_sdk_before_the_provider_sends_the_last() {
    let env = gateway(&[]).await;
    env.mock()
        .script(&json!({"chunk_delay_ms": 200}))
        .await
        .unwrap();
    let out = sdk(&env, "stream", FULL_KEY).await;
    assert_default_stream(&out);

    let seen = env.mock().requests().await.unwrap();
    let sent: Vec<f64> = seen[0]["chunk_sent_at_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    let arrivals: Vec<f64> = out["arrivals_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    let last_sent = sent.last().copied().unwrap();
    assert!(
        arrivals[0] < last_sent - 500.0,
        "first chunk arrived at {} but the provider sent its last at {last_sent}: the proxy buffered",
        arrivals[0]
    );
}
