//! The Vertex AI adapter end to end: the official `openai` Python SDK talks to the data plane,
//! which obtains an OAuth token from the mock's Google token endpoint (`POST /token`, JWT
//! signed with the test-only service account) and talks Gemini's wire format to the mock's
//! `/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`.

use serde_json::{json, Value};
use switchyard_tests::support::{openai_sdk, DataPlaneSpec, MockProviderOptions, TestEnv};

use crate::fixture::{
    assert_billed, assert_default_chat, assert_default_stream, sdk_script, sha256_hex, Sdk,
    FULL_KEY,
};
use crate::providers::SERVICE_ACCOUNT;

const CHAT_MODEL: &str = "gemini-2.5-flash";
const PROJECT: &str = "switchyard-test";
const LOCATION: &str = "us-central1";
/// The key file as the data plane gets it: `token_uri` pointing at the mock, and optionally
/// another `client_email` (a key the mock's token endpoint does not accept).
fn key_file(mock: &str, client_email: Option<&str>) -> String {
    let text = std::fs::read_to_string(SERVICE_ACCOUNT).expect("fixture key file");
    let mut file: Value = serde_json::from_str(&text).expect("fixture is JSON");
    file["token_uri"] = json!(format!("{mock}/token"));
    if let Some(email) = client_email {
        file["client_email"] = json!(email);
    }
    file.to_string()
}

/// A mock that trusts the test service account, and a data plane with a good and a refused
/// Vertex provider.
async fn vertex_gateway(token_ttl_secs: u64) -> TestEnv {
    let mock = MockProviderOptions::new()
        .arg("--google-service-account")
        .arg(SERVICE_ACCOUNT)
        .arg("--token-ttl-secs")
        .arg(token_ttl_secs.to_string());
    let mut env = TestEnv::builder()
        .mock_provider_with(mock)
        .build()
        .await
        .expect("mock starts");
    let base = env.mock().base_url();
    let spec = DataPlaneSpec::from_fn(|env| {
        format!(
            r#"
providers:
  - id: vertex
    kind: vertex_ai
    base_url: "{mock}"
    api_key: {{ env: VERTEX_SERVICE_ACCOUNT }}
    settings: {{ project: {PROJECT}, location: {LOCATION} }}
  - id: vertex-refused
    kind: vertex_ai
    base_url: "{mock}"
    api_key: {{ env: VERTEX_OTHER_ACCOUNT }}
    settings: {{ project: {PROJECT}, location: {LOCATION} }}
routes:
  - {{ alias: vertex-chat, deployments: [{{ provider: vertex, model: {CHAT_MODEL} }}] }}
  - {{ alias: vertex-embed, deployments: [{{ provider: vertex, model: text-embedding-005 }}] }}
  - {{ alias: vertex-refused, deployments: [{{ provider: vertex-refused, model: {CHAT_MODEL} }}] }}
keys:
  - {{ name: full, sha256: "{full}", team: platform, models: ["*"] }}
"#,
            mock = env.mock().base_url(),
            full = sha256_hex(FULL_KEY),
        )
    })
    .env("VERTEX_SERVICE_ACCOUNT", key_file(&base, None))
    .env(
        "VERTEX_OTHER_ACCOUNT",
        key_file(
            &base,
            Some("someone-else@other-project.iam.gserviceaccount.com"),
        ),
    );
    env.start_data_plane(spec).await.expect("data plane starts");
    env
}

async fn sdk(env: &TestEnv, model: &str, check: &str) -> Value {
    let base = env.data_plane().base_url();
    openai_sdk(
        &base,
        FULL_KEY,
        model,
        check,
        &[("EMBED_MODEL", "vertex-embed")],
    )
    .await
    .unwrap()
}

async fn python(env: &TestEnv, source: &str) -> Value {
    sdk_script(env, Sdk::OpenAi, source, FULL_KEY, &[]).await
}

/// The mock's records split into token requests and Vertex API requests.
async fn records(env: &TestEnv) -> (Vec<Value>, Vec<Value>) {
    let seen = env.mock().requests().await.unwrap();
    seen.into_iter().partition(|r| r["path"] == "/token")
}

fn model_path(model: &str, action: &str) -> String {
    format!("/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{model}:{action}")
}

#[tokio::test]
async fn vertex_chat_stream_tools_and_embeddings_with_one_cached_token() {
    let env = vertex_gateway(3600).await;

    let chat = sdk(&env, "vertex-chat", "chat").await;
    assert_default_chat(&chat);

    let stream = sdk(&env, "vertex-chat", "stream").await;
    assert_default_stream(&stream);

    let tool = sdk(&env, "vertex-chat", "tools").await;
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["arguments"], json!({"query": "weather in Paris"}));
    assert_eq!(
        tool["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 1})
    );
    assert_eq!(tool["second"], "Hello from the mock provider.");

    // Vertex reports embedding tokens: the usage is the provider's ("one two three" + "four").
    let emb = sdk(&env, "vertex-chat", "embeddings").await;
    assert_eq!(emb["count"], 2, "{emb}");
    assert_eq!(emb["dims"], json!([8, 8]));
    assert_eq!(emb["usage"], 4);

    let (token_requests, api) = records(&env).await;
    assert_eq!(
        token_requests.len(),
        1,
        "one token for all requests: {token_requests:?}"
    );
    assert_eq!(
        token_requests[0]["body"]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    // Chat, stream, the tool round trip (plain, streamed, second turn), embeddings.
    assert_eq!(api.len(), 6, "{api:?}");
    for request in &api {
        assert_eq!(request["headers"]["authorization"], "Bearer ya29.mock-1");
        assert!(request["headers"].get("x-goog-api-key").is_none());
    }
    assert_eq!(api[0]["path"], model_path(CHAT_MODEL, "generateContent"));
    assert_eq!(
        api[0]["body"]["contents"],
        json!([{"role": "user", "parts": [{"text": "say hello to me"}]}])
    );
    assert_billed(&api[0], 4, 5);
    assert_eq!(
        api[1]["path"],
        model_path(CHAT_MODEL, "streamGenerateContent")
    );
    assert_eq!(api[1]["query"], "alt=sse");
    assert_billed(&api[1], 4, 5);
    assert_eq!(
        api[2]["body"]["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_billed(&api[2], 3, 1);
    assert_eq!(api[5]["path"], model_path("text-embedding-005", "predict"));
    assert_eq!(
        api[5]["body"]["instances"],
        json!([{"content": "one two three"}, {"content": "four"}])
    );
    assert_billed(&api[5], 4, 0);

    // Vertex refusing a token (401) drops it from the cache: the next request fetches another.
    env.mock()
        .script(&json!({"model": CHAT_MODEL, "status": 401}))
        .await
        .unwrap();
    let refused = sdk(&env, "vertex-chat", "chat").await;
    assert_eq!(refused["status"], 502, "{refused}");
    let chat = sdk(&env, "vertex-chat", "chat").await;
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    let (token_requests, api) = records(&env).await;
    assert_eq!(token_requests.len(), 2);
    assert_eq!(
        api.last().map(|r| &r["headers"]["authorization"]),
        Some(&json!("Bearer ya29.mock-2"))
    );

    // Neither the key nor a token reaches the data plane's logs.
    let logs = env.data_plane().stderr().unwrap_or_default();
    assert!(!logs.contains("ya29.mock"), "token in logs");
    assert!(!logs.contains("PRIVATE KEY"), "key in logs");
}

/// Two requests back to back (well within the 6 s token's refresh point at 4.5 s), then one
/// after the token has expired.
const AFTER_EXPIRY: &str = r#"
import json, time, openai
client = openai.OpenAI(max_retries=0, timeout=30)
replies = []
for pause in [0, 0, 6.5]:
    time.sleep(pause)
    r = client.chat.completions.create(model="vertex-chat", messages=[{"role": "user", "content": "hi"}])
    replies.append(r.choices[0].message.content)
print(json.dumps({"replies": replies}))
"#;

#[tokio::test]
async fn vertex_tokens_are_refreshed_and_a_refused_key_is_a_credential_error() {
    let env = vertex_gateway(6).await;

    let out = python(&env, AFTER_EXPIRY).await;
    assert_eq!(
        out["replies"],
        json!(["Hello from the mock provider."; 3].to_vec()),
        "{out}"
    );
    let (token_requests, api) = records(&env).await;
    assert_eq!(token_requests.len(), 2, "{token_requests:?}");
    let used: Vec<&Value> = api.iter().map(|r| &r["headers"]["authorization"]).collect();
    assert_eq!(
        used,
        [
            "Bearer ya29.mock-1",
            "Bearer ya29.mock-1",
            "Bearer ya29.mock-2"
        ]
    );

    // The mock's token endpoint refuses the other account: the SDK gets a prompt 5xx that
    // says which credential failed, and no request reaches the Vertex routes.
    let refused = sdk(&env, "vertex-refused", "chat").await;
    assert_eq!(refused["exception"], "InternalServerError", "{refused}");
    assert_eq!(refused["status"], 502);
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("VERTEX_OTHER_ACCOUNT"), "{message}");
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    let (token_requests, api) = records(&env).await;
    assert_eq!(token_requests.len(), 3);
    assert_eq!(api.len(), 3);
}
