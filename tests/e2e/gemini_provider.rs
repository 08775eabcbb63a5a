//! What only the Gemini adapter does, end to end (chat, streams, tools, errors and metering
//! of every family are in the provider matrix, `providers.rs`): the request body in Gemini's
//! `contents` shape, strict tool schemas cleaned to Gemini's subset, `tool_choice` as
//! `functionCallingConfig`, tool results as `functionResponse` parts, and embeddings through
//! `batchEmbedContents`.

use serde_json::{json, Value};
use switchyard_tests::support::{openai_sdk, DataPlaneSpec, TestEnv};

use crate::fixture::{gateway_with, sha256_hex, FULL_KEY, UPSTREAM_KEY};

const CHAT_MODEL: &str = "gemini-2.5-flash";

async fn gemini_gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| {
        format!(
            r#"
providers:
  - {{ id: gemini, kind: gemini, base_url: "{mock}/v1beta", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
  - {{ alias: gemini-chat, deployments: [{{ provider: gemini, model: {CHAT_MODEL} }}] }}
  - {{ alias: gemini-embed, deployments: [{{ provider: gemini, model: gemini-embedding-001 }}] }}
keys:
  - {{ name: full, sha256: "{full}", team: platform, models: ["*"] }}
"#,
            mock = env.mock().base_url(),
            full = sha256_hex(FULL_KEY),
        )
    })
    .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    gateway_with(spec).await
}

async fn sdk(env: &TestEnv, check: &str, extra: &[(&str, &str)]) -> Value {
    let base = env.data_plane().base_url();
    let mut vars = vec![("EMBED_MODEL", "gemini-embed")];
    vars.extend_from_slice(extra);
    openai_sdk(&base, FULL_KEY, "gemini-chat", check, &vars)
        .await
        .unwrap()
}

#[tokio::test]
async fn gemini_wire_format_strict_tools_and_embeddings() {
    let env = gemini_gateway().await;

    let chat = sdk(&env, "chat", &[]).await;
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[0]["body"]["contents"],
        json!([{"role": "user", "parts": [{"text": "say hello to me"}]}])
    );

    let tool = sdk(&env, "tools", &[("STRICT_TOOLS", "1")]).await;
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["arguments"], json!({"query": "weather in Paris"}));
    assert_eq!(tool["id"], "call_0");
    assert_eq!(
        tool["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 1})
    );
    assert_eq!(tool["second"], "Hello from the mock provider.");
    let seen = env.mock().requests().await.unwrap();
    // The plain call, the streamed one, then the second turn.
    let declared = &seen[1]["body"]["tools"][0]["functionDeclarations"][0];
    assert_eq!(declared["name"], "get_weather");
    assert!(
        declared["parameters"].get("additionalProperties").is_none(),
        "{declared}"
    );
    assert_eq!(
        seen[1]["body"]["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        seen[3]["body"]["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"result": "sunny, 21 C"}}}]})
    );

    // The SDK asks for base64 and decodes it; Gemini reports no tokens, the body estimates
    // 4 characters per token ("one two three" → 4, "four" → 1).
    let emb = sdk(&env, "embeddings", &[]).await;
    assert_eq!(emb["count"], 2, "{emb}");
    assert_eq!(emb["dims"], json!([8, 8]));
    assert_eq!(emb["usage"], 5);
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[4]["path"],
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
}
