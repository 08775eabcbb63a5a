use serde_json::{json, Value};

use super::super::test_client::TestMock;

/// Status, headers and body text of a `POST /v1/messages`.
async fn post(
    mock: &TestMock,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = mock.post("/v1/messages", headers, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

const AUTH: &[(&str, &str)] = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

fn body(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 3, "stream": stream, "system": "be brief",
           "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there you"}]}]})
}

#[tokio::test]
async fn checks_key_version_and_required_fields_in_anthropic_error_shape() {
    let mock = TestMock::start(Some("k")).await;
    let (status, _, text) = post(&mock, &[("anthropic-version", "2023-06-01")], &body(false)).await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let (status, _, text) = post(&mock, &[("x-api-key", "k")], &body(false)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("anthropic-version"));
    let mut no_max = body(false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (status, _, text) = post(&mock, AUTH, &no_max).await;
    assert_eq!(status, 400);
    assert!(text.contains("max_tokens"), "{text}");
    let (status, _, text) = post(&mock, AUTH, &json!({"model": "m", "max_tokens": 5})).await;
    assert_eq!(status, 400);
    assert!(text.contains("messages"), "{text}");
}

#[tokio::test]
async fn answers_a_message_cut_at_max_tokens_and_bills_it() {
    let mock = TestMock::start(None).await;
    let (status, _, text) = post(&mock, AUTH, &body(false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello from the"}])
    );
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 3);
    let records = mock.records().await;
    assert_eq!(
        records[0]["billed"],
        json!({"prompt_tokens": 5, "completion_tokens": 3})
    );
}

#[tokio::test]
async fn streams_the_full_event_sequence() {
    let mock = TestMock::start(None).await;
    let (status, headers, text) = post(&mock, AUTH, &body(true)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let names: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("event: "))
        .map(|e| e.split('\n').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(text.contains(r#""stop_reason":"max_tokens""#), "{text}");
}

#[tokio::test]
async fn tools_get_a_tool_use_until_a_result_comes_back() {
    let mock = TestMock::start(None).await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object", "required": ["location"]}}]);
    let ask = json!({"model": "m", "max_tokens": 100, "tools": tools,
                     "messages": [{"role": "user", "content": "weather?"}]});
    let (_, _, text) = post(&mock, AUTH, &ask).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({"location": "mock"}));
    let answered = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [v["content"][0].clone()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": v["content"][0]["id"], "content": "sunny"}]}]});
    let (_, _, text) = post(&mock, AUTH, &answered).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
}

#[tokio::test]
async fn scripted_overload_uses_anthropic_error_types() {
    let mock = TestMock::start(None).await;
    let mut headers = AUTH.to_vec();
    headers.push(("x-mock-status", "529"));
    let (status, _, text) = post(&mock, &headers, &body(false)).await;
    assert_eq!(status, 529);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}
