//! The official `anthropic` Python SDK against the data plane's `/v1/messages`: requests are
//! translated into the internal OpenAI dialect, served by the OpenAI mock (alias `chat`) or,
//! for tool use, by the Anthropic mock behind an `anthropic` provider (alias `claude`), and
//! answered in Anthropic's format. Requests for an Anthropic deployment are passed through
//! (the client's body, only `model` replaced) and relayed as the provider answered.

use serde_json::{json, Value};
use switchyard_tests::support::TestEnv;

use crate::anthropic_provider::gateway;
use crate::fixture::{client, sdk_check, Sdk, FULL_KEY, UPSTREAM_KEY};
use crate::usage_events::spooled_events;

const SDK_CHECKS: &str = r#"
import json, os
import anthropic

client = anthropic.Anthropic(max_retries=0, timeout=30)
ASK = [{"role": "user", "content": "say hello to me"}]
TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]

def usage(u):
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}

def text_of(m):
    return "".join(b.text for b in m.content if b.type == "text")

def message():
    m = client.messages.create(model="chat", max_tokens=100, system="Be brief.", messages=ASK)
    return {"id": m.id, "model": m.model, "text": text_of(m), "stop_reason": m.stop_reason, "usage": usage(m.usage)}

def stream():
    events = []
    with client.messages.stream(model="chat", max_tokens=100, messages=ASK) as s:
        for event in s:
            events.append(event.type)
        final = s.get_final_message()
    return {"text": text_of(final), "stop_reason": final.stop_reason, "usage": usage(final.usage),
            "events": events}

def tools():
    messages = [{"role": "user", "content": "weather in Paris please"}]
    first = client.messages.create(model="claude", max_tokens=50, messages=messages, tools=TOOLS)
    call = next(b for b in first.content if b.type == "tool_use")
    with client.messages.stream(model="claude", max_tokens=50, messages=messages, tools=TOOLS) as s:
        streamed = s.get_final_message()
    scall = next(b for b in streamed.content if b.type == "tool_use")
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 degrees"}]})
    second = client.messages.create(model="claude", max_tokens=50, messages=messages, tools=TOOLS)
    # The same history through the OpenAI mock, to see what the gateway sent.
    via_openai = client.messages.create(model="chat", max_tokens=50, messages=messages, tools=TOOLS,
                                        tool_choice={"type": "tool", "name": "get_weather"})
    return {"first_stop": first.stop_reason, "name": call.name, "input": call.input, "id": call.id,
            "streamed": {"name": scall.name, "input": scall.input, "stop": streamed.stop_reason},
            "second_stop": second.stop_reason, "second_text": text_of(second),
            "via_openai": text_of(via_openai)}

def native():
    m = client.messages.create(model="claude", max_tokens=100, system="Be brief.", messages=ASK, extra_body={"top_k": 3},
                               extra_headers={"anthropic-beta": "test-beta-1"})
    events = []
    with client.messages.stream(model="claude", max_tokens=100, messages=ASK) as s:
        for event in s:
            events.append(event.type)
        final = s.get_final_message()
    return {"id": m.id, "model": m.model, "text": text_of(m), "usage": usage(m.usage),
            "stream_text": text_of(final), "stream_usage": usage(final.usage), "events": events}

def count():
    return {"input_tokens": client.messages.count_tokens(model="chat", messages=ASK).input_tokens}

def unknown_model():
    client.messages.create(model="no-such-model", max_tokens=10, messages=ASK)

def tool_loop():
    """Two user turns on the OpenAI-family route, each a tool round trip the (scripted)
    model drives: the call, the result sent back, the answer; the second streamed."""
    messages, turns = [], []
    for ask, stream in (("weather in Paris please", False), ("and in Rome?", True)):
        messages.append({"role": "user", "content": ask})
        first = client.messages.create(model="chat", max_tokens=50, messages=messages, tools=TOOLS)
        call = next(b for b in first.content if b.type == "tool_use")
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]})
        if stream:
            with client.messages.stream(model="chat", max_tokens=50, messages=messages, tools=TOOLS) as s:
                answer = s.get_final_message()
        else:
            answer = client.messages.create(model="chat", max_tokens=50, messages=messages, tools=TOOLS)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in answer.content]})
        turns.append({"stop": first.stop_reason, "name": call.name, "input": call.input,
                      "answer_stop": answer.stop_reason, "answer": text_of(answer)})
    return {"turns": turns}

CHECKS = {"native": native, "message": message, "stream": stream, "tools": tools, "count": count,
          "unknown_model": unknown_model, "tool_loop": tool_loop}
"#;

async fn sdk(env: &TestEnv, check: &str, key: &str) -> Value {
    sdk_check(env, Sdk::Anthropic, SDK_CHECKS, key, check, &[]).await
}

#[tokio::test]
async fn anthropic_sdk_messages_and_stream_through_the_openai_mock() {
    let env = gateway().await;
    let m = sdk(&env, "message", FULL_KEY).await;
    assert_eq!(m["text"], "Hello from the mock provider.", "{m}");
    assert_eq!(m["model"], "chat");
    assert_eq!(m["stop_reason"], "end_turn");
    // "Be brief." (2 words) + "say hello to me" (4 words); the reply is 5 words.
    assert_eq!(m["usage"], json!({"input_tokens": 6, "output_tokens": 5}));
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(
        seen[0]["body"]["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(seen[0]["body"]["max_tokens"], 100);

    let s = sdk(&env, "stream", FULL_KEY).await;
    assert_eq!(s["text"], "Hello from the mock provider.", "{s}");
    assert_eq!(s["stop_reason"], "end_turn");
    // From the provider's final usage report (message_delta).
    assert_eq!(
        s["usage"],
        json!({"input_tokens": 4, "output_tokens": 5}),
        "{s}"
    );
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{s}");
    assert_eq!(events.last(), Some(&"message_stop"), "{s}");
    assert!(events.contains(&"content_block_stop"), "{s}");

    let c = sdk(&env, "count", FULL_KEY).await;
    assert!(c["input_tokens"].as_u64().is_some_and(|n| n > 0), "{c}");
}

#[tokio::test]
async fn anthropic_sdk_tool_use_round_trip() {
    let env = gateway().await;
    let out = sdk(&env, "tools", FULL_KEY).await;
    assert_eq!(out["first_stop"], "tool_use", "{out}");
    assert_eq!(out["name"], "get_weather");
    assert_eq!(out["input"], json!({"location": "mock"}));
    assert_eq!(
        out["streamed"],
        json!({"name": "get_weather", "input": {"location": "mock"}, "stop": "tool_use"})
    );
    assert_eq!(out["second_stop"], "end_turn");
    assert_eq!(out["second_text"], "Hello from the mock provider.");
    assert_eq!(out["via_openai"], "Hello from the mock provider.");

    let seen = env.mock().requests().await.unwrap();
    let openai = seen
        .iter()
        .find(|r| r["path"] == "/v1/chat/completions")
        .unwrap();
    let body = &openai["body"];
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    let call = &body["messages"][1]["tool_calls"][0];
    assert_eq!(call["id"], out["id"]);
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"location": "mock"})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "tool", "tool_call_id": out["id"], "content": "sunny, 21 degrees"})
    );
}

#[tokio::test]
async fn anthropic_sdk_errors_are_the_right_exceptions() {
    let env = gateway().await;
    let unknown = sdk(&env, "unknown_model", FULL_KEY).await;
    assert_eq!(unknown["exception"], "NotFoundError", "{unknown}");
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["body"]["type"], "error");
    assert_eq!(unknown["body"]["error"]["type"], "not_found_error");

    let bad_key = sdk(&env, "message", "sk-not-a-key").await;
    assert_eq!(bad_key["exception"], "AuthenticationError", "{bad_key}");
    assert_eq!(bad_key["status"], 401);
    assert_eq!(bad_key["body"]["error"]["type"], "authentication_error");

    // Bad input is a 400 in Anthropic's shape, naming the field.
    let resp = client()
        .post(format!("{}/v1/messages", env.data_plane().base_url()))
        .header("x-api-key", FULL_KEY)
        .json(&json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages[0].role"));
}

/// The Anthropic SDK drives a multi-turn tool loop through an OpenAI-family deployment: the
/// mock (OpenAI wire) is scripted to call `get_weather` until the result comes back.
#[tokio::test]
async fn anthropic_sdk_multi_turn_tool_loop_on_an_openai_route() {
    let env = gateway().await;
    let calls = json!({"times": 4, "tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]});
    env.mock().script(&calls).await.unwrap();
    let out = sdk(&env, "tool_loop", FULL_KEY).await;
    let turns = out["turns"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(turns.len(), 2, "{out}");
    for turn in turns {
        assert_eq!(turn["stop"], "tool_use", "{out}");
        assert_eq!(turn["name"], "get_weather");
        assert_eq!(turn["input"], json!({"location": "Paris"}));
        assert_eq!(turn["answer_stop"], "end_turn");
        assert_eq!(turn["answer"], "Hello from the mock provider.");
    }
    // The last request carried the whole conversation to the OpenAI wire: two tool rounds.
    let seen = env.mock().requests().await.unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last["path"], "/v1/chat/completions");
    let messages = last["body"]["messages"].as_array().unwrap();
    let tool_results = messages.iter().filter(|m| m["role"] == "tool").count();
    assert_eq!(tool_results, 2, "{messages:?}");
}

/// What Claude Code 2.1 sends (system blocks with cache control, `role: "system"` messages in
/// the conversation, adaptive thinking, context management, output config, betas and
/// `?beta=true`) reaches an OpenAI-family upstream translated; the fields it cannot carry are
/// named, and a stream's `message_start` already reports a nonzero input count.
#[tokio::test]
async fn claude_code_shaped_requests_reach_an_openai_upstream() {
    let env = gateway().await;
    let body = json!({
        "model": "chat", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "say hello to me", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "<system-reminder>cwd is /tmp</system-reminder>"},
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "user_x_account__session_y"},
    });
    let resp = client()
        .post(format!(
            "{}/v1/messages?beta=true",
            env.data_plane().base_url()
        ))
        .header("x-api-key", FULL_KEY)
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-switchyard-dropped-fields"],
        "thinking, context_management, output_config"
    );
    let text = resp.text().await.unwrap();
    let start: Value = text
        .split("\n\n")
        .find(|f| f.starts_with("event: message_start"))
        .and_then(|f| f.lines().nth(1))
        .and_then(|l| serde_json::from_str(l.trim_start_matches("data: ")).ok())
        .unwrap_or_default();
    assert!(
        start["message"]["usage"]["input_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{text}"
    );
    assert!(text.contains("message_stop"), "{text}");
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[0]["body"]["messages"],
        json!([
            {"role": "system", "content": [{"type": "text", "text": "You are Claude Code."}]},
            {"role": "user", "content": [{"type": "text", "text": "say hello to me"}]},
            {"role": "system", "content": "<system-reminder>cwd is /tmp</system-reminder>"},
        ])
    );
    assert_eq!(seen[0]["body"]["user"], "user_x_account__session_y");
    assert!(seen[0]["body"].get("thinking").is_none());
    let sent = seen[0]["body"].to_string();
    assert!(
        !sent.contains("cache_control"),
        "breakpoints reach no OpenAI-family upstream: {sent}"
    );
}

#[tokio::test]
async fn messages_are_metered_like_chat_and_streams_are_anthropic_sse() {
    let env = gateway().await;
    let url = format!("{}/v1/messages", env.data_plane().base_url());
    let ask = json!({"model": "chat", "max_tokens": 50, "messages": [{"role": "user", "content": "say hello to me"}]});
    let resp = client()
        .post(&url)
        .bearer_auth(FULL_KEY)
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let resp = client()
        .post(&url)
        .header("x-api-key", FULL_KEY)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = resp.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names[..2], ["message_start", "ping"], "{text}");
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_delta"));
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(!text.contains("[DONE]"), "{text}");

    let spool = env.data_plane().spool_dir().to_owned();
    switchyard_tests::support::eventually(std::time::Duration::from_secs(20), || async {
        spooled_events(&spool).len() == 2
    })
    .await
    .unwrap();
    for e in spooled_events(&spool) {
        assert_eq!(e.endpoint, "messages");
        assert_eq!(e.alias, "chat");
        assert_eq!(
            (e.usage.prompt_tokens, e.usage.completion_tokens),
            (4, 5),
            "{e:?}"
        );
        assert!(!e.usage_estimated);
    }
}

#[tokio::test]
async fn anthropic_deployments_get_the_clients_body_and_answer_as_is() {
    let env = gateway().await;
    let out = sdk(&env, "native", FULL_KEY).await;
    assert_eq!(out["text"], "Hello from the mock provider.", "{out}");
    // The provider's own answer: its model name, not the alias.
    assert_eq!(out["model"], "claude-mock-1");
    assert_eq!(out["usage"], json!({"input_tokens": 6, "output_tokens": 5}));
    assert_eq!(out["stream_text"], "Hello from the mock provider.");
    assert_eq!(
        out["stream_usage"],
        json!({"input_tokens": 4, "output_tokens": 5})
    );

    let seen = env.mock().requests().await.unwrap();
    assert!(seen.iter().all(|r| r["path"] == "/v1/messages"), "{seen:?}");
    let first = &seen[0];
    assert_eq!(first["headers"]["anthropic-beta"], "test-beta-1");
    assert_eq!(first["headers"]["x-api-key"], UPSTREAM_KEY);
    // Untranslated: `system` stays a string, `top_k` (no OpenAI counterpart) is kept.
    assert_eq!(first["body"]["model"], "claude-mock-1");
    assert_eq!(first["body"]["system"], "Be brief.");
    assert_eq!(first["body"]["top_k"], 3);

    let spool = env.data_plane().spool_dir().to_owned();
    switchyard_tests::support::eventually(std::time::Duration::from_secs(20), || async {
        spooled_events(&spool).len() == 2
    })
    .await
    .unwrap();
    let mut tokens: Vec<_> = spooled_events(&spool)
        .iter()
        .map(|e| {
            (
                e.usage.prompt_tokens,
                e.usage.completion_tokens,
                e.usage_estimated,
            )
        })
        .collect();
    tokens.sort_unstable();
    assert_eq!(tokens, [(4, 5, false), (6, 5, false)]);
}

/// A Messages request full of fields the gateway does not model, in an unusual but valid
/// layout (key order, whitespace, escapes, number forms). `MODEL` marks the `model` value.
const UNKNOWN_FIELDS: &str = r#"{
  "system" : [ {"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}} ],
  "thinking": {"type": "enabled", "budget_tokens": 1.024e3},
  "messages":[{"role":"user","content":[
      {"type":"document","source":{"type":"text","media_type":"text/plain","data":"caf\u00e9 \ud83d\ude00"},"citations":{"enabled":true}},
      {"type":"text","text":"say hello to me"}]},
    {"role":"assistant","content":[{"type":"thinking","thinking":"Hmm.","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
      {"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"},
      {"type":"text","text":"Hello."}]},
    {"role":"user","content":"again"}],
  "model":MODEL,   "max_tokens" : 100,
  "x_future_field": {"nested": [null, true, -0.0]},
  "container": "ctr_abc", "mcp_servers": []STREAM
}"#;

#[tokio::test]
async fn unknown_fields_reach_the_anthropic_deployment_byte_for_byte_and_back() {
    use sha2::{Digest, Sha256};
    let env = gateway().await;
    let url = format!("{}/v1/messages", env.data_plane().base_url());
    for stream in [false, true] {
        let tail = if stream { r#", "stream": true"# } else { "" };
        let sent = UNKNOWN_FIELDS
            .replace("MODEL", r#""claude""#)
            .replace("STREAM", tail);
        let upstream = UNKNOWN_FIELDS
            .replace("MODEL", r#""claude-mock-1""#)
            .replace("STREAM", tail);
        let answer = client()
            .post(&url)
            .header("x-api-key", FULL_KEY)
            .header("anthropic-version", "2023-06-01")
            .header(
                "anthropic-beta",
                "interleaved-thinking-2025-05-14,files-api-2025-04-14",
            )
            .header("content-type", "application/json")
            .body(sent)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let received = answer.bytes().await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&received));

        let seen = env.mock().requests().await.unwrap();
        let last = seen.last().unwrap();
        assert_eq!(
            last["body_sha256"],
            hex::encode(Sha256::digest(upstream.as_bytes())),
            "the upstream body differs from the client's beyond `model`: {}",
            last["body"]
        );
        assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
        assert_eq!(
            last["headers"]["anthropic-beta"],
            "interleaved-thinking-2025-05-14,files-api-2025-04-14"
        );
        assert_eq!(last["headers"]["x-api-key"], UPSTREAM_KEY);
        if stream {
            assert!(
                received.starts_with(b"event: message_start"),
                "{received:?}"
            );
            assert_eq!(
                last["response_sha256"],
                hex::encode(Sha256::digest(&received)),
                "the stream reached the client changed"
            );
        } else {
            let message: Value = serde_json::from_slice(&received).unwrap();
            assert_eq!(message["model"], "claude-mock-1", "{message}");
        }
    }

    // The same body for a deployment of another dialect cannot be translated: the client's
    // 400, in Anthropic's format, and nothing sent upstream.
    let before = env.mock().requests().await.unwrap().len();
    let refused = client()
        .post(&url)
        .header("x-api-key", FULL_KEY)
        .header("anthropic-version", "2023-06-01")
        .body(
            UNKNOWN_FIELDS
                .replace("MODEL", r#""chat""#)
                .replace("STREAM", ""),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("document"));
    assert_eq!(env.mock().requests().await.unwrap().len(), before);
}
