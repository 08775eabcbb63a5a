//! The Gemini adapter end to end: the official `openai` Python SDK talks to the data plane,
//! which talks Gemini's wire format to the mock's `/v1beta/models/{model}:{action}` routes.

use serde_json::{json, Value};
use switchyard_tests::support::{
    py_script, run_python, run_python_source, DataPlaneSpec, MockProviderOptions, TestEnv,
};

use crate::fixture::{sha256_hex, FULL_KEY, UPSTREAM_KEY};

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
    TestEnv::builder()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .data_plane_spec(spec)
        .build()
        .await
        .expect("gateway starts")
}

fn sdk_env(env: &TestEnv) -> Vec<(&'static str, String)> {
    vec![
        (
            "OPENAI_BASE_URL",
            format!("{}/v1", env.data_plane().base_url()),
        ),
        ("OPENAI_API_KEY", FULL_KEY.to_owned()),
        ("MODEL", "gemini-chat".to_owned()),
        ("EMBED_MODEL", "gemini-embed".to_owned()),
    ]
}

fn last_json(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad output ({e}): {stdout}\n{stderr}"))
}

async fn sdk(env: &TestEnv, check: &str) -> Value {
    let mut vars = sdk_env(env);
    vars.push(("CHECK", check.to_owned()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_python(&py_script("openai_sdk.py"), &vars)
        .await
        .unwrap();
    out.ensure_success().unwrap();
    last_json(&out.stdout, &out.stderr)
}

/// A forced tool call, then the tool's answer sent back in a second turn.
const TOOL_ROUND_TRIP: &str = r#"
import json, openai
client = openai.OpenAI(max_retries=0, timeout=30)
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "strict": True, "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
          "required": ["query"], "additionalProperties": False}}}]
messages = [{"role": "user", "content": "weather in Paris"}]
r = client.chat.completions.create(model="gemini-chat", messages=messages, tools=tools, tool_choice="required")
call = r.choices[0].message.tool_calls[0]
messages.append(r.choices[0].message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
r2 = client.chat.completions.create(model="gemini-chat", messages=messages, tools=tools)
print(json.dumps({"finish_reason": r.choices[0].finish_reason, "name": call.function.name,
                  "arguments": json.loads(call.function.arguments), "id": call.id,
                  "usage": r.usage.model_dump(include={"prompt_tokens", "completion_tokens"}),
                  "second": r2.choices[0].message.content, "second_finish": r2.choices[0].finish_reason}))
"#;

#[tokio::test]
async fn gemini_chat_stream_tools_and_embeddings_through_the_openai_sdk() {
    let env = gemini_gateway().await;

    let chat = sdk(&env, "chat").await;
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9})
    );

    let seen = env.mock().requests().await.unwrap();
    let first = &seen[0];
    assert_eq!(
        first["path"],
        format!("/v1beta/models/{CHAT_MODEL}:generateContent")
    );
    assert_eq!(first["headers"]["x-goog-api-key"], UPSTREAM_KEY);
    assert!(first["headers"].get("authorization").is_none());
    assert_eq!(
        first["body"]["contents"],
        json!([{"role": "user", "parts": [{"text": "say hello to me"}]}])
    );

    let stream = sdk(&env, "stream").await;
    assert_eq!(
        stream["content"], "Hello from the mock provider.",
        "{stream}"
    );
    assert_eq!(
        stream["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5})
    );
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[1]["path"],
        format!("/v1beta/models/{CHAT_MODEL}:streamGenerateContent")
    );
    assert_eq!(seen[1]["query"], "alt=sse");
    assert_eq!(
        seen[1]["billed"],
        json!({"prompt_tokens": 4, "completion_tokens": 5})
    );

    let vars = sdk_env(&env);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_python_source(TOOL_ROUND_TRIP, &vars).await.unwrap();
    out.ensure_success().unwrap();
    let tool = last_json(&out.stdout, &out.stderr);
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(tool["arguments"], json!({"query": "weather in Paris"}));
    assert_eq!(tool["id"], "call_0");
    assert_eq!(
        tool["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 1})
    );
    assert_eq!(tool["second"], "Hello from the mock provider.");
    assert_eq!(tool["second_finish"], "stop");
    let seen = env.mock().requests().await.unwrap();
    let declared = &seen[2]["body"]["tools"][0]["functionDeclarations"][0];
    assert!(
        declared["parameters"].get("additionalProperties").is_none(),
        "{declared}"
    );
    assert_eq!(
        seen[2]["body"]["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    assert_eq!(
        seen[3]["body"]["contents"][2],
        json!({"role": "user", "parts": [{"functionResponse": {
            "name": "get_weather", "response": {"result": "sunny, 21 C"}}}]})
    );

    // The SDK asks for base64 and decodes it; Gemini reports no tokens, the body estimates
    // 4 characters per token ("one two three" → 4, "four" → 1).
    let emb = sdk(&env, "embeddings").await;
    assert_eq!(emb["count"], 2, "{emb}");
    assert_eq!(emb["dims"], json!([8, 8]));
    assert_eq!(emb["usage"], 5);
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[4]["path"],
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
}

#[tokio::test]
async fn gemini_errors_reach_the_sdk_in_the_openai_dialect() {
    let env = gemini_gateway().await;
    env.mock()
        .script(&json!({"model": CHAT_MODEL, "status": 400, "error_message": "Invalid value at 'contents'"}))
        .await
        .unwrap();
    let rejected = sdk(&env, "chat").await;
    assert_eq!(rejected["exception"], "BadRequestError", "{rejected}");
    assert_eq!(rejected["status"], 400);
    assert!(
        rejected["message"]
            .as_str()
            .unwrap()
            .contains("Invalid value at 'contents'"),
        "{rejected}"
    );

    // A stream that ends before Gemini's finish reason is not presented as complete.
    env.mock()
        .script(&json!({"model": CHAT_MODEL, "fault": "truncate_stream"}))
        .await
        .unwrap();
    let cut = sdk(&env, "stream").await;
    assert!(cut["exception"].is_string(), "{cut}");
}
