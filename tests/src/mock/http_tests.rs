//! In-process HTTP tests of the mock: a real server on `127.0.0.1:0`, driven with reqwest.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{json, Value};

use super::test_client::TestMock;

const CHAT: &str = "/v1/chat/completions";

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "mock-chat",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hi there you"}]}],
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

/// Splits an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect()
}

#[tokio::test]
async fn stream_has_role_words_finish_usage_and_done() {
    let mock = TestMock::start(None).await;
    let response = mock.post(CHAT, &[], &chat_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.len(), 1 + 5 + 1 + 1 + 1, "{body}");
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..6]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, super::DEFAULT_REPLY);
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..7]
        .iter()
        .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    assert_eq!(chunks[7]["choices"], json!([]));
    assert_eq!(
        chunks[7]["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
    );
    assert!(chunks
        .iter()
        .all(|c| c["model"] == "mock-chat" && c["id"] == chunks[0]["id"]));

    let recorded = mock.records().await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["stream"], true);
    assert_eq!(recorded[0]["prompt_tokens"], 5);
    assert_eq!(recorded[0]["chunk_sent_at_ms"].as_array().unwrap().len(), 9);
    assert!(recorded[0]["completed_at_ms"].is_u64());
    assert_eq!(recorded[0]["headers"]["content-type"], "application/json");
}

#[tokio::test]
async fn chunks_are_flushed_one_by_one() {
    let mock = TestMock::start(None).await;
    let started = Instant::now();
    let response = mock
        .post(CHAT, &[("x-mock-chunk-delay-ms", "60")], &chat_body(true))
        .await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(first.starts_with(b"data: {"));
    while let Some(piece) = body.next().await {
        piece.unwrap();
    }
    // 8 gaps of 60 ms between 9 events: the first must arrive long before the end.
    assert!(started.elapsed() >= first_at + Duration::from_millis(400));
}

#[tokio::test]
async fn non_stream_completion_truncates_to_max_tokens() {
    let mock = TestMock::start(None).await;
    let mut body = chat_body(false);
    body["max_tokens"] = json!(2);
    let v = mock.post_json(CHAT, &[], &body).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    );
}

#[tokio::test]
async fn scripts_are_consumed_in_order_and_headers_win() {
    let mock = TestMock::start(None).await;
    let script = json!({"model": "mock-chat", "times": 2, "status": 429, "retry_after": 7});
    assert_eq!(mock.script(&script).await.status(), 200);
    mock.script(&json!({"model": "other", "status": 500})).await;
    for _ in 0..2 {
        let response = mock.post(CHAT, &[], &chat_body(false)).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_exceeded");
        assert!(v["error"]["message"].is_string() && v["error"]["param"].is_null());
    }
    let ok = mock.post(CHAT, &[], &chat_body(false)).await;
    assert_eq!(ok.status(), 200);
    // The script for "other" is still pending; a header overrides its reply only.
    mock.script(&json!({"reply": "a b c"})).await;
    let overridden = mock
        .post_json(CHAT, &[("x-mock-reply", "x y")], &chat_body(false))
        .await;
    assert_eq!(overridden["choices"][0]["message"]["content"], "x y");
    let pending: Vec<Value> = mock.get_json("/__mock/script").await;
    assert_eq!(
        pending,
        vec![json!({"model": "other", "times": 1, "status": 500})]
    );
    let cleared = mock.delete_json("/__mock/script").await;
    assert_eq!(cleared, json!({"cleared": 1}));
}

#[tokio::test]
async fn auth_azure_and_bad_json() {
    let mock = TestMock::start(Some("sk-test")).await;
    let denied = mock.post(CHAT, &[], &chat_body(false)).await;
    assert_eq!(denied.status(), 401);
    let v: Value = denied.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let bad = mock
        .client
        .post(mock.url(CHAT))
        .bearer_auth("sk-test")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let azure = "/openai/deployments/dep1/chat/completions";
    let versioned = format!("{azure}?api-version=2024-10-21");
    let body = json!({"messages": [{"role": "user", "content": "hello"}]});
    let no_version = mock.post(azure, &[("api-key", "sk-test")], &body).await;
    assert_eq!(no_version.status(), 400);
    let bearer = mock
        .post(&versioned, &[("authorization", "Bearer sk-test")], &body)
        .await;
    assert_eq!(bearer.status(), 401);
    let ok = mock
        .post(&versioned, &[("api-key", "sk-test")], &body)
        .await;
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["model"], "dep1");
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    let recorded = mock.records().await;
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[1]["body"], "{nope");
    assert_eq!(recorded[4]["query"], "api-version=2024-10-21");
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let mock = TestMock::start(None).await;
    let url = "/v1/embeddings";
    let body = json!({"model": "e", "input": ["a b", "c"], "dimensions": 4});
    let float = mock.post_json(url, &[], &body).await;
    assert_eq!(
        float["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let first: Vec<f32> = serde_json::from_value(float["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(first.len(), 4);
    let body = json!({"model": "e", "input": "a b", "dimensions": 4, "encoding_format": "base64"});
    let b64 = mock.post_json(url, &[], &body).await;
    let decoded = super::embedding::from_base64(b64["data"][0]["embedding"].as_str().unwrap());
    assert_eq!(decoded, first);
}

#[tokio::test]
async fn faults() {
    let mock = TestMock::start(None).await;
    let send = |fault: &'static str, stream: bool| {
        mock.client
            .post(mock.url(CHAT))
            .header("x-mock-fault", fault)
            .json(&chat_body(stream))
            .send()
    };
    assert!(send("reset", false).await.is_err());

    let truncated = send("truncate_stream", true)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(sse_data(&truncated).len(), 3, "{truncated}");
    assert!(!truncated.contains("[DONE]"));

    let mid = send("reset_mid_stream", true).await.unwrap();
    let mut body = mid.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(piece) = body.next().await {
        match piece {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => failed = true,
        }
    }
    assert!(failed, "the client must see a broken body");
    assert_eq!(sse_data(std::str::from_utf8(&received).unwrap()).len(), 3);

    let malformed = send("malformed", false).await.unwrap();
    assert_eq!(malformed.status(), 200);
    assert!(malformed.json::<Value>().await.is_err());
    let malformed_stream = send("malformed", true).await.unwrap().text().await.unwrap();
    let events = sse_data(&malformed_stream);
    assert!(serde_json::from_str::<Value>(events[1]).is_err());
    assert_eq!(events.last(), Some(&"[DONE]"));
}

#[tokio::test]
async fn compaction_keeps_the_user_messages_and_seals_the_rest() {
    let mock = TestMock::start(Some("k")).await;
    let body = json!({"model": "gpt-up", "instructions": "be brief", "input": [
        {"role": "user", "content": "fix the bug"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed it."}]},
        {"type": "function_call_output", "call_id": "c", "output": "ok"},
    ]});
    let auth = [("authorization", "Bearer k")];
    let r = mock.post_json("/v1/responses/compact", &auth, &body).await;
    assert_eq!(r["object"], "response.compaction", "{r}");
    let output = r["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{r}");
    assert_eq!(output[0], body["input"][0]);
    assert_eq!(output[1]["type"], "compaction");
    assert!(output[1]["encrypted_content"]
        .as_str()
        .is_some_and(|c| !c.contains(' ')));
    // be brief (2) + fix the bug (3) + Fixed it. (2) + ok (1); the reply's 5 words.
    assert_eq!(r["usage"]["input_tokens"], 8);
    assert_eq!(r["usage"]["output_tokens"], 5);
    let recorded = mock.records().await;
    assert_eq!(recorded[0]["path"], "/v1/responses/compact");
    assert_eq!(recorded[0]["model"], "gpt-up");
    assert_eq!(recorded[0]["billed"]["completion_tokens"], 5);

    let stored_only = json!({"model": "gpt-up", "previous_response_id": "resp_1"});
    let r = mock
        .post_json("/v1/responses/compact", &auth, &stored_only)
        .await;
    assert_eq!(r["output"].as_array().map(Vec::len), Some(1), "{r}");
    let bad = mock.post("/v1/responses/compact", &[], &body).await;
    assert_eq!(bad.status(), 401);
}
