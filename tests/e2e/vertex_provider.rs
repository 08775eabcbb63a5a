//! The Vertex AI adapter end to end: the official `openai` Python SDK talks to the data plane,
//! which obtains an OAuth token from the mock's Google token endpoint (`POST /token`, JWT
//! signed with the test-only service account) and talks Gemini's wire format to the mock's
//! `/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`.
//! Claude on Vertex (`vertex-claude`): the `openai` SDK translated to Anthropic's Messages,
//! the `anthropic` SDK passed through, both to the mock's
//! `…/publishers/anthropic/models/{model}:rawPredict` / `:streamRawPredict`.

use serde_json::{json, Value};
use switchyard_tests::support::{openai_sdk, DataPlaneSpec, MockProviderOptions, TestEnv};

use crate::fixture::{
    assert_billed, assert_default_chat, assert_default_stream, client, sdk_script, sha256_hex, Sdk,
    FULL_KEY,
};
use crate::providers::SERVICE_ACCOUNT;
use crate::usage_events::spooled_events;

const CHAT_MODEL: &str = "gemini-2.5-flash";
const CLAUDE_MODEL: &str = "claude-sonnet-4-5@20250929";
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
  - {{ alias: vertex-claude, deployments: [{{ provider: vertex, model: "{CLAUDE_MODEL}" }}] }}
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

/// The Claude publisher's path of `model` (or `count-tokens`) and `action`.
fn claude_path(model: &str, action: &str) -> String {
    format!(
        "/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/anthropic/models/{model}:{action}"
    )
}

/// Checks a request sent to the Claude publisher: `action`, the token, Vertex's body (no
/// `model`, `anthropic_version`) and no Anthropic API key or version header.
fn assert_vertex_claude(request: &Value, action: &str) {
    assert_eq!(
        request["path"],
        claude_path(CLAUDE_MODEL, action),
        "{request}"
    );
    let headers = &request["headers"];
    let bearer = headers["authorization"].as_str().unwrap_or_default();
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{request}");
    assert!(headers.get("x-api-key").is_none(), "{request}");
    assert!(headers.get("anthropic-version").is_none(), "{request}");
    assert!(request["body"].get("model").is_none(), "{request}");
    assert_eq!(request["body"]["anthropic_version"], "vertex-2023-10-16");
}

/// Waits for the data plane's usage events of `records` (the mock's billed answers) and
/// checks that each event's tokens are what the mock billed, measured, not estimated.
async fn assert_events_billed(env: &TestEnv, records: &[&Value]) {
    let spool = env.data_plane().spool_dir().to_owned();
    switchyard_tests::support::eventually(std::time::Duration::from_secs(20), || async {
        spooled_events(&spool).len() == records.len()
    })
    .await
    .unwrap();
    let mut billed: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            let b = &r["billed"];
            (
                b["prompt_tokens"].as_u64().unwrap_or(0),
                b["completion_tokens"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut metered: Vec<(u64, u64)> = spooled_events(&spool)
        .iter()
        .map(|e| {
            assert!(!e.usage_estimated, "{e:?}");
            assert_eq!(
                e.deployment.as_deref(),
                Some("vertex/claude-sonnet-4-5@20250929")
            );
            (e.usage.prompt_tokens, e.usage.completion_tokens)
        })
        .collect();
    billed.sort_unstable();
    metered.sort_unstable();
    assert_eq!(metered, billed);
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

/// An OpenAI client's system prompt with a cache breakpoint (as OpenAI-compatible clients of
/// Claude send it).
const OPENAI_CACHE_MARK: &str = r#"
import json, openai
client = openai.OpenAI(max_retries=0, timeout=30)
r = client.chat.completions.create(model="vertex-claude", messages=[
    {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
    {"role": "user", "content": "say hello to me"}])
print(json.dumps({"content": r.choices[0].message.content, "prompt": r.usage.prompt_tokens}))
"#;

#[tokio::test]
async fn vertex_claude_serves_openai_clients_through_the_anthropic_translation() {
    let env = vertex_gateway(3600).await;

    assert_default_chat(&sdk(&env, "vertex-claude", "chat").await);
    assert_default_stream(&sdk(&env, "vertex-claude", "stream").await);
    let tool = sdk(&env, "vertex-claude", "tools").await;
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["arguments"], json!({"query": "mock"}));
    assert!(
        tool["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("toolu_")),
        "{tool}"
    );
    assert_eq!(tool["streamed"]["name"], "get_weather", "{tool}");
    assert_eq!(tool["streamed"]["finish"], "tool_calls", "{tool}");
    assert_eq!(tool["second"], "Hello from the mock provider.");
    let cached = python(&env, OPENAI_CACHE_MARK).await;
    assert_eq!(
        cached,
        json!({"content": "Hello from the mock provider.", "prompt": 6})
    );

    let (_, api) = records(&env).await;
    // Chat, stream, the tool round trip (plain, streamed, second turn), the cache mark.
    assert_eq!(api.len(), 6, "{api:?}");
    for (request, action) in api.iter().zip([
        "rawPredict",
        "streamRawPredict",
        "rawPredict",
        "streamRawPredict",
        "rawPredict",
        "rawPredict",
    ]) {
        assert_vertex_claude(request, action);
    }
    assert_eq!(
        api[0]["body"]["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "say hello to me"}]}])
    );
    assert_billed(&api[0], 4, 5);
    assert_eq!(api[1]["body"]["stream"], true);
    assert_billed(&api[1], 4, 5);
    assert_eq!(api[2]["body"]["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        api[5]["body"]["system"],
        json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]),
        "the breakpoint reaches Vertex"
    );
    assert_billed(&api[5], 6, 5);
    assert_events_billed(&env, &api.iter().collect::<Vec<_>>()).await;
}

/// Claude Code's way: a system block with a breakpoint, a beta header, a stream, a count.
const ANTHROPIC_CLIENT: &str = r#"
import json, anthropic
client = anthropic.Anthropic(max_retries=0, timeout=30)
ASK = [{"role": "user", "content": "say hello to me"}]
SYSTEM = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
m = client.messages.create(model="vertex-claude", max_tokens=100, system=SYSTEM, messages=ASK,
                           extra_headers={"anthropic-beta": "test-beta-1"})
with client.messages.stream(model="vertex-claude", max_tokens=3, messages=ASK) as s:
    events = [event.type for event in s]
    final = s.get_final_message()
count = client.messages.count_tokens(model="vertex-claude", system=SYSTEM, messages=ASK)
def text_of(m):
    return "".join(b.text for b in m.content if b.type == "text")
print(json.dumps({"model": m.model, "text": text_of(m),
                  "usage": {"input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens},
                  "stream_text": text_of(final), "stream_stop": final.stop_reason, "events": events,
                  "stream_usage": {"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens},
                  "count": count.input_tokens}))
"#;

/// A Messages body in an unusual but valid layout, with a field the gateway does not know.
const ODD_LAYOUT: &str = r#"{ "max_tokens" : 100 , "model":"vertex-claude",  "messages":[{"role":"user","content":"caf\u00e9 hello"}], "x_future": [1.50, -0.0] }"#;
/// [`ODD_LAYOUT`] as Vertex must get it: `model` gone, the version first, the rest as sent.
const ODD_LAYOUT_UPSTREAM: &str = r#"{"anthropic_version":"vertex-2023-10-16", "max_tokens" : 100,  "messages":[{"role":"user","content":"caf\u00e9 hello"}], "x_future": [1.50, -0.0] }"#;

#[tokio::test]
async fn vertex_claude_passes_anthropic_clients_through() {
    let env = vertex_gateway(3600).await;
    let out = sdk_script(&env, Sdk::Anthropic, ANTHROPIC_CLIENT, FULL_KEY, &[]).await;
    // The provider's own answer: the model Vertex names, not the alias.
    assert_eq!(out["model"], CLAUDE_MODEL, "{out}");
    assert_eq!(out["text"], "Hello from the mock provider.");
    assert_eq!(out["usage"], json!({"input_tokens": 6, "output_tokens": 5}));
    assert_eq!(out["stream_text"], "Hello from the");
    assert_eq!(out["stream_stop"], "max_tokens");
    assert_eq!(
        out["stream_usage"],
        json!({"input_tokens": 4, "output_tokens": 3})
    );
    let events = out["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.first(), Some(&json!("message_start")), "{out}");
    assert_eq!(events.last(), Some(&json!("message_stop")), "{out}");
    // Vertex's count, not the gateway's estimate: "Be brief." + "say hello to me".
    assert_eq!(out["count"], 6);

    let (_, api) = records(&env).await;
    assert_eq!(api.len(), 3, "{api:?}");
    assert_vertex_claude(&api[0], "rawPredict");
    assert_eq!(api[0]["headers"]["anthropic-beta"], "test-beta-1");
    assert_eq!(
        api[0]["body"]["system"],
        json!([{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
    );
    assert_billed(&api[0], 6, 5);
    assert_vertex_claude(&api[1], "streamRawPredict");
    assert_eq!(api[1]["body"]["stream"], true);
    assert!(api[1]["headers"].get("anthropic-beta").is_none());
    assert_billed(&api[1], 4, 3);
    // The token count names the model in its body, as Vertex's count-tokens wants.
    assert_eq!(api[2]["path"], claude_path("count-tokens", "rawPredict"));
    assert_eq!(api[2]["body"]["model"], CLAUDE_MODEL);
    assert_eq!(api[2]["body"]["anthropic_version"], "vertex-2023-10-16");
    assert!(api[2]["billed"].is_null());

    // Top-level values go byte for byte: only `model` and the version differ.
    let answer = client()
        .post(env.data_plane().url("/v1/messages"))
        .header("x-api-key", FULL_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(ODD_LAYOUT)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["model"], CLAUDE_MODEL, "{answer}");
    let (_, api) = records(&env).await;
    let last = api.last().unwrap();
    assert_eq!(
        last["body_sha256"],
        sha256_hex(ODD_LAYOUT_UPSTREAM),
        "{}",
        last["body"]
    );
    assert_eq!(last["body"]["x_future"], json!([1.5, -0.0]));

    let answers: Vec<&Value> = api.iter().filter(|r| !r["billed"].is_null()).collect();
    assert_eq!(answers.len(), 3);
    assert_events_billed(&env, &answers).await;
}
