//! The Bedrock adapter end to end: the official `openai` and `anthropic` Python SDKs talk to
//! the data plane, which signs with SigV4 and speaks the Converse wire format (JSON and binary
//! event streams) to the mock's `/model/{modelId}/converse[-stream]` routes. The mock checks
//! every signature against the secret access key it was started with.

use serde_json::{json, Value};
use switchyard_tests::support::{openai_sdk, DataPlaneSpec, TestEnv};

use crate::fixture::{
    assert_billed, assert_default_chat, assert_default_stream, gateway_requiring, sdk_script,
    sha256_hex, Sdk, FULL_KEY,
};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const MODEL_PATH: &str = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0";
const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

async fn bedrock_gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| {
        format!(
            r#"
providers:
  - {{ id: bedrock, kind: bedrock, settings: {{ region: us-east-1 }}, base_url: "{mock}", api_key: {{ env: BEDROCK_KEYS }} }}
  - {{ id: bedrock-wrong, kind: bedrock, settings: {{ region: us-east-1 }}, base_url: "{mock}", api_key: {{ env: BEDROCK_WRONG_KEYS }} }}
routes:
  - {{ alias: bedrock-chat, deployments: [{{ provider: bedrock, model: "{MODEL}" }}] }}
  - {{ alias: bedrock-wrong, deployments: [{{ provider: bedrock-wrong, model: "{MODEL}" }}] }}
keys:
  - {{ name: full, sha256: "{full}", team: platform, models: ["*"] }}
"#,
            mock = env.mock().base_url(),
            full = sha256_hex(FULL_KEY),
        )
    })
    .env(
        "BEDROCK_KEYS",
        format!("{ACCESS_KEY_ID}:{SECRET}:{SESSION_TOKEN}"),
    )
    .env(
        "BEDROCK_WRONG_KEYS",
        format!(r#"{{"access_key_id": "{ACCESS_KEY_ID}", "secret_access_key": "not-the-secret"}}"#),
    );
    gateway_requiring(SECRET, spec).await
}

async fn sdk(env: &TestEnv, model: &str, check: &str) -> Value {
    let base = env.data_plane().base_url();
    openai_sdk(&base, FULL_KEY, model, check, &[("EMBED_MODEL", model)])
        .await
        .unwrap()
}

/// The upstream request was signed for Bedrock in us-east-1 with the session token.
fn assert_signed(record: &Value) {
    let headers = &record["headers"];
    let auth = headers["authorization"].as_str().unwrap_or_default();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="), "{auth}");
    assert_eq!(headers["x-amz-security-token"], SESSION_TOKEN);
    assert!(headers["x-amz-date"]
        .as_str()
        .is_some_and(|d| d.len() == 16));
    assert!(!auth.contains(SECRET));
}

#[tokio::test]
async fn bedrock_chat_stream_and_tools_through_the_openai_sdk() {
    let env = bedrock_gateway().await;

    let chat = sdk(&env, "bedrock-chat", "chat").await;
    assert_default_chat(&chat);
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen[0]["path"], format!("{MODEL_PATH}/converse"));
    assert_eq!(seen[0]["model"], MODEL);
    assert_signed(&seen[0]);
    assert_eq!(
        seen[0]["body"]["messages"],
        json!([{"role": "user", "content": [{"text": "say hello to me"}]}])
    );
    assert_billed(&seen[0], 4, 5);

    let stream = sdk(&env, "bedrock-chat", "stream").await;
    assert_default_stream(&stream);
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen[1]["path"], format!("{MODEL_PATH}/converse-stream"));
    assert_signed(&seen[1]);
    assert_billed(&seen[1], 4, 5);
    // One chunk per event reached the SDK (role, five words, finish, usage), not one lump.
    assert!(
        stream["arrivals_ms"].as_array().map_or(0, Vec::len) >= 7,
        "{stream}"
    );

    let tool = sdk(&env, "bedrock-chat", "tools").await;
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["arguments"], json!({"query": "weather in Paris"}));
    assert_eq!(tool["id"], "tooluse_mock00000003");
    assert_eq!(
        tool["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 1})
    );
    assert_eq!(
        tool["streamed"],
        json!({"id": "tooluse_mock00000004", "name": "get_weather",
               "arguments": {"query": "weather in Paris"}, "finish": "tool_calls"})
    );
    assert_eq!(tool["second"], "Hello from the mock provider.");
    assert_eq!(tool["second_finish"], "stop");
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[2]["body"]["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city",
            "inputSchema": {"json": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}}],
            "toolChoice": {"any": {}}})
    );
    assert_eq!(
        seen[3]["body"]["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
    assert_eq!(
        seen[4]["body"]["messages"][1],
        json!({"role": "assistant", "content": [{"toolUse": {
            "toolUseId": "tooluse_mock00000003", "name": "get_weather", "input": {"query": "weather in Paris"}}}]})
    );
    assert_eq!(
        seen[4]["body"]["messages"][2],
        json!({"role": "user", "content": [{"toolResult": {
            "toolUseId": "tooluse_mock00000003", "content": [{"text": "sunny, 21 C"}]}}]})
    );
}

#[tokio::test]
async fn bedrock_credential_failures_and_unsupported_embeddings() {
    let env = bedrock_gateway().await;

    // The mock refuses the signature made with the wrong secret: the gateway's credential
    // failure, a 502 that names the AWS error, never the client's fault.
    let refused = sdk(&env, "bedrock-wrong", "chat").await;
    assert_eq!(refused["exception"], "InternalServerError", "{refused}");
    assert_eq!(refused["status"], 502);
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused the gateway's AWS credentials (InvalidSignatureException)"),
        "{refused}"
    );
    assert!(!message.contains("not-the-secret"));

    // (A provider's 400, a 429 and a cut stream are checked for every family in
    // `providers.rs`.)
    // Embeddings are not offered for Bedrock and never reach the provider.
    let before = env.mock().requests().await.unwrap().len();
    let emb = sdk(&env, "bedrock-chat", "embeddings").await;
    assert_eq!(emb["status"], 400, "{emb}");
    assert!(emb["message"]
        .as_str()
        .unwrap_or_default()
        .contains("embeddings are not supported for bedrock providers"));
    assert_eq!(env.mock().requests().await.unwrap().len(), before);
}

const ANTHROPIC_SDK: &str = r#"
import json, anthropic
client = anthropic.Anthropic(max_retries=0, timeout=30)
ASK = [{"role": "user", "content": "say hello to me"}]
m = client.messages.create(model="bedrock-chat", max_tokens=100, system="Be brief.", messages=ASK)
with client.messages.stream(model="bedrock-chat", max_tokens=3, messages=ASK) as s:
    final = s.get_final_message()
def text_of(m):
    return "".join(b.text for b in m.content if b.type == "text")
print(json.dumps({"text": text_of(m), "stop_reason": m.stop_reason,
                  "usage": {"input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens},
                  "stream_text": text_of(final), "stream_stop": final.stop_reason,
                  "stream_usage": {"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens}}))
"#;

/// Claude Code's breakpoints: on system blocks (one with a 1-hour lifetime), a user block, a
/// tool.
const ANTHROPIC_SDK_CACHED: &str = r#"
import json, anthropic
client = anthropic.Anthropic(max_retries=0, timeout=30)
cached = client.messages.create(
    model="bedrock-chat", max_tokens=100,
    system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Be brief."}],
    messages=[{"role": "user", "content": [{"type": "text", "text": "say hello to me", "cache_control": {"type": "ephemeral"}}]}],
    tools=[{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
print(json.dumps({"input": cached.usage.input_tokens, "read": cached.usage.cache_read_input_tokens,
                  "written": cached.usage.cache_creation_input_tokens}))
"#;

#[tokio::test]
async fn anthropic_sdk_messages_reach_bedrock_translated_both_ways() {
    let env = bedrock_gateway().await;
    let out = sdk_script(&env, Sdk::Anthropic, ANTHROPIC_SDK, FULL_KEY, &[]).await;
    assert_eq!(out["text"], "Hello from the mock provider.", "{out}");
    assert_eq!(out["stop_reason"], "end_turn");
    // "Be brief." (2 words) + "say hello to me" (4 words); the reply is 5 words.
    assert_eq!(out["usage"], json!({"input_tokens": 6, "output_tokens": 5}));
    assert_eq!(out["stream_text"], "Hello from the");
    assert_eq!(out["stream_stop"], "max_tokens");
    assert_eq!(
        out["stream_usage"],
        json!({"input_tokens": 4, "output_tokens": 3})
    );
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen[0]["path"], format!("{MODEL_PATH}/converse"));
    assert_eq!(seen[0]["body"]["system"], json!([{"text": "Be brief."}]));
    assert_eq!(seen[0]["body"]["inferenceConfig"]["maxTokens"], 100);
    assert_signed(&seen[0]);
    assert_eq!(seen[1]["path"], format!("{MODEL_PATH}/converse-stream"));
    assert_billed(&seen[1], 4, 3);
    // The breakpoints reach Bedrock as cachePoint blocks after what they mark, and what
    // Bedrock reports read and written comes back in Anthropic's usage fields.
    let cache = json!({"cache_read_tokens": 2, "cache_write_5m_tokens": 3});
    env.mock().script(&cache).await.unwrap();
    let out = sdk_script(&env, Sdk::Anthropic, ANTHROPIC_SDK_CACHED, FULL_KEY, &[]).await;
    let seen = env.mock().requests().await.unwrap();
    let body = &seen[2]["body"];
    assert_eq!(
        body["system"],
        json!([{"text": "You are Claude Code."}, {"cachePoint": {"type": "default", "ttl": "1h"}}, {"text": "Be brief."}])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"text": "say hello to me"}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        body["toolConfig"]["tools"][1],
        json!({"cachePoint": {"type": "default", "ttl": "1h"}})
    );
    // "You are Claude Code." (4) + "Be brief." (2) + "say hello to me" (4): 10 in all.
    assert_eq!(out, json!({"input": 5, "read": 2, "written": 3}));
}
