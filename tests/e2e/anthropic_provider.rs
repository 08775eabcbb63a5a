//! The official `openai` Python SDK against a data plane whose route is served by an
//! `anthropic` provider (the mock's `/v1/messages`): the gateway translates both ways.

use serde_json::{json, Value};
use switchyard_tests::support::{DataPlaneSpec, TestEnv};

use crate::fixture::{
    assert_billed, config, error_of, gateway_with, post, sdk_check, sse_data, Sdk, FULL_KEY,
    UPSTREAM_KEY,
};

/// The standard config plus an `anthropic` provider at the mock and the `claude` alias.
fn anthropic_config(mock_base: &str) -> String {
    let provider = format!(
        "providers:\n  - {{ id: claude, kind: anthropic, base_url: \"{mock_base}\", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}\n"
    );
    config(
        mock_base,
        "  - { alias: claude, deployments: [{ provider: claude, model: claude-mock-1 }] }",
    )
    .replacen("providers:\n", &provider, 1)
}

/// The standard gateway plus the `claude` alias on an `anthropic` provider (the mock).
pub(crate) async fn gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| anthropic_config(&env.mock().base_url()))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    gateway_with(spec).await
}

const SDK_CHECKS: &str = r#"
import json, os
import openai

client = openai.OpenAI(max_retries=0, timeout=30)
MODEL = "claude"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hello to me"}]

def usage(u):
    return u.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})

def chat():
    r = client.chat.completions.create(model=MODEL, messages=ASK)
    return {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason,
            "usage": usage(r.usage), "cached": r.usage.prompt_tokens_details.cached_tokens}

def stream():
    content, usage_seen, finish, chunks = "", None, None, 0
    with client.chat.completions.create(model=MODEL, messages=ASK, stream=True,
                                        stream_options={"include_usage": True}) as s:
        for chunk in s:
            chunks += 1
            if chunk.choices:
                content += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage_seen = usage(chunk.usage)
    return {"content": content, "finish_reason": finish, "usage": usage_seen, "chunks": chunks}

def stream_without_usage():
    saw_usage = False
    for chunk in client.chat.completions.create(model=MODEL, messages=ASK, stream=True):
        saw_usage = saw_usage or chunk.usage is not None or not chunk.choices
    return {"saw_usage": saw_usage}

def tools():
    messages = [{"role": "user", "content": "weather in Paris please"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=50)
    call = first.choices[0].message.tool_calls[0]
    args = json.loads(call.function.arguments)
    streamed = {}
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = streamed.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] = (tc.function.name if tc.function else None) or entry["name"]
            entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 degrees"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    return {"first_finish": first.choices[0].finish_reason, "name": call.function.name, "args": args,
            "id": call.id, "first_usage": usage(first.usage),
            "streamed": [streamed[k] for k in sorted(streamed)],
            "second_finish": second.choices[0].finish_reason, "second_content": second.choices[0].message.content}

def embeddings():
    client.embeddings.create(model=MODEL, input=["x"])

CHECKS = {"chat": chat, "stream": stream, "stream_without_usage": stream_without_usage, "tools": tools,
          "embeddings": embeddings}
"#;

async fn sdk(env: &TestEnv, check: &str) -> Value {
    sdk_check(env, Sdk::OpenAi, SDK_CHECKS, FULL_KEY, check, &[]).await
}

#[tokio::test]
async fn openai_sdk_chat_and_stream_through_an_anthropic_provider() {
    let env = gateway().await;
    let chat = sdk(&env, "chat").await;
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    assert_eq!(chat["finish_reason"], "stop");
    // "Be brief." (2 words, hoisted into `system`) + "say hello to me" (4 words).
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11})
    );
    assert_eq!(chat["cached"], 0);

    let seen = env.mock().requests().await.unwrap();
    let upstream = &seen[0];
    assert_eq!(upstream["path"], "/v1/messages");
    assert_eq!(upstream["headers"]["x-api-key"], UPSTREAM_KEY);
    assert_eq!(upstream["headers"]["anthropic-version"], "2023-06-01");
    assert!(upstream["headers"].get("authorization").is_none());
    assert_eq!(upstream["body"]["model"], "claude-mock-1");
    assert_eq!(upstream["body"]["system"], "Be brief.");
    assert_eq!(upstream["body"]["max_tokens"], 4096);
    assert_billed(upstream, 6, 5);

    let stream = sdk(&env, "stream").await;
    assert_eq!(
        stream["content"], "Hello from the mock provider.",
        "{stream}"
    );
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(
        stream["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11})
    );
    // Role chunk, five words, finish chunk, usage chunk.
    assert_eq!(stream["chunks"], 8);

    let quiet = sdk(&env, "stream_without_usage").await;
    assert_eq!(quiet["saw_usage"], false, "usage-only chunk shown unasked");
}

#[tokio::test]
async fn openai_sdk_tool_call_round_trip_through_an_anthropic_provider() {
    let env = gateway().await;
    let out = sdk(&env, "tools").await;
    assert_eq!(out["first_finish"], "tool_calls", "{out}");
    assert_eq!(out["name"], "get_weather");
    assert_eq!(out["args"], json!({"location": "mock"}));
    assert_eq!(
        out["streamed"],
        json!([{"id": out["streamed"][0]["id"], "name": "get_weather", "arguments": "{\"location\":\"mock\"}"}])
    );
    assert!(out["streamed"][0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("toolu_")));
    assert_eq!(out["second_finish"], "stop");
    assert_eq!(out["second_content"], "Hello from the mock provider.");

    let seen = env.mock().requests().await.unwrap();
    let second = &seen[2]["body"];
    assert_eq!(second["max_tokens"], 4096);
    assert_eq!(seen[0]["body"]["max_tokens"], 50);
    assert_eq!(second["tools"][0]["name"], "get_weather");
    assert_eq!(second["messages"][1]["role"], "assistant");
    assert_eq!(second["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(
        second["messages"][1]["content"][0]["input"],
        json!({"location": "mock"})
    );
    assert_eq!(second["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(
        second["messages"][2]["content"][0]["tool_use_id"],
        out["id"]
    );
}

#[tokio::test]
async fn anthropic_errors_reach_openai_clients_in_their_dialect() {
    let env = gateway().await;
    let emb = sdk(&env, "embeddings").await;
    assert_eq!(emb["exception"], "BadRequestError", "{emb}");
    assert!(emb["message"]
        .as_str()
        .is_some_and(|m| m.contains("model does not support embeddings")));

    // A 4xx from Anthropic keeps its status and message, re-shaped as an OpenAI error.
    env.mock()
        .script(&json!({"status": 400, "error_message": "messages: roles must alternate"}))
        .await
        .unwrap();
    let body = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post(&env, "/v1/chat/completions", FULL_KEY, &body).await;
    assert_eq!(status, 400, "{text}");
    let (_, kind, message) = error_of(&text);
    assert_eq!(kind, "invalid_request_error");
    assert_eq!(message, "messages: roles must alternate");

    // 529 overloaded is a retryable upstream failure, not passed through as 529.
    env.mock().script(&json!({"status": 529})).await.unwrap();
    let (status, _, text) = post(&env, "/v1/chat/completions", FULL_KEY, &body).await;
    assert!([502, 503].contains(&status), "{status}: {text}");
    assert!(text.contains("overloaded"), "{text}");

    // A stream that ends before `message_delta` is reported, never passed off as complete.
    env.mock()
        .script(&json!({"fault": "truncate_stream"}))
        .await
        .unwrap();
    let stream =
        json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = post(&env, "/v1/chat/completions", FULL_KEY, &stream).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    assert!(data[1].contains("\"content\":\"Hello\""), "{text}");
    assert!(
        data.last()
            .is_some_and(|d| d.contains("upstream_stream_interrupted")),
        "{text}"
    );
}
