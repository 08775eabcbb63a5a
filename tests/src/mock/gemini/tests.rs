use serde_json::{json, Value};

use super::super::test_client::TestMock;

#[tokio::test]
async fn gemini_routes_speak_the_gemini_wire_format() {
    const KEY: (&str, &str) = ("x-goog-api-key", "g-key");
    let mock = TestMock::start(Some("g-key")).await;
    let url = |action: &str| format!("/v1beta/models/gem-1:{action}");
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi there you"}]}],
        "generationConfig": {"maxOutputTokens": 2},
    });

    let wrong = mock
        .post(
            &url("generateContent"),
            &[("x-goog-api-key", "nope")],
            &body,
        )
        .await;
    assert_eq!(wrong.status(), 400);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["error"]["details"][0]["reason"], "API_KEY_INVALID");

    let ok = mock.post_json(&url("generateContent"), &[KEY], &body).await;
    assert_eq!(
        ok["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from"
    );
    assert_eq!(ok["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(ok["usageMetadata"]["promptTokenCount"], 5);
    assert_eq!(ok["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(ok["modelVersion"], "gem-1");

    // A script for the model in the path applies; the stream ends after the finish reason.
    mock.script(&json!({"model": "gem-1", "reply": "a b c"}))
        .await;
    let stream = format!("{}?alt=sse", url("streamGenerateContent"));
    let text = mock
        .post(
            &stream,
            &[KEY],
            &json!({"contents": [{"parts": [{"text": "x"}]}]}),
        )
        .await
        .text()
        .await
        .unwrap();
    let events: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let words: Vec<&str> = events
        .iter()
        .map(|e| {
            e["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(words, ["a", " b", " c"]);
    assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
    assert!(events[1]["candidates"][0].get("finishReason").is_none());
    assert_eq!(events[2]["usageMetadata"]["totalTokenCount"], 4);

    let forced = mock
        .post_json(
            &url("generateContent"),
            &[KEY, ("x-mock-status", "429")],
            &body,
        )
        .await;
    assert_eq!(forced["error"]["status"], "RESOURCE_EXHAUSTED");

    let embed = json!({"requests": [
        {"model": "models/gem-1", "content": {"parts": [{"text": "one"}]}, "outputDimensionality": 4},
        {"model": "models/gem-1", "content": {"parts": [{"text": "two"}]}}
    ]});
    let embedded = mock
        .post_json(&url("batchEmbedContents"), &[KEY], &embed)
        .await;
    assert_eq!(
        embedded["embeddings"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        embedded["embeddings"][1]["values"]
            .as_array()
            .unwrap()
            .len(),
        8
    );

    let records = mock.records().await;
    assert_eq!(records[1]["model"], "gem-1");
    assert_eq!(
        records[1]["billed"],
        json!({"prompt_tokens": 5, "completion_tokens": 2})
    );
    assert_eq!(records[2]["stream"], true);
}
