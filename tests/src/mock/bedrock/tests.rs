use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, Uri};
use ring::digest;
use serde_json::{json, Value};

use super::frames::decode_all;
use super::sigv4::{signature, Signing};
use crate::mock::test_client::TestMock;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const MODEL_PATH: &str = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0";

fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let z = i64::try_from(secs / 86_400).unwrap() + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// POSTs `body` to `path`, signed with `secret` for `service` at `at` (`None`: unsigned).
async fn post(
    mock: &TestMock,
    path: &str,
    body: &Value,
    signing: Option<(&str, &str, SystemTime)>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let body = body.to_string().into_bytes();
    let mut request = mock.client.post(mock.url(path));
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    if let Some((secret, service, at)) = signing {
        let date = amz_date(at);
        let hash = hex::encode(digest::digest(&digest::SHA256, &body));
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_str(&mock.server.addr().to_string()).unwrap(),
        );
        headers.insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&hash).unwrap(),
        );
        headers.insert("x-amz-security-token", HeaderValue::from_static("TOKEN"));
        let uri: Uri = path.parse().unwrap();
        let signed = [
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-security-token",
        ];
        let sig = signature(
            secret,
            Signing {
                method: "POST",
                uri: &uri,
                headers: &headers,
                signed_headers: &signed,
                body_hash: &hash,
                amz_date: &date,
                scope: [&date[..8], "us-east-1", service],
            },
        )
        .unwrap();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
            &date[..8],
            signed.join(";")
        );
        headers.remove("host");
        headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        request = request.headers(headers);
    }
    request.body(body).send().await.unwrap()
}

fn error_type(response: &reqwest::Response) -> String {
    response.headers()["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_owned()
}

fn body() -> Value {
    json!({
        "system": [{"text": "be brief"}],
        "messages": [{"role": "user", "content": [{"text": "hi there you"}]}],
        "inferenceConfig": {"maxTokens": 2},
    })
}

#[tokio::test]
async fn signatures_are_verified_like_bedrock() {
    let mock = TestMock::start(Some(SECRET)).await;
    let converse = format!("{MODEL_PATH}/converse");
    let now = SystemTime::now();

    // (signing, error type, how the message starts): each is refused with 403.
    let refused = [
        (None, "UnrecognizedClientException", ""),
        (
            Some(("nope", "bedrock", now)),
            "InvalidSignatureException",
            "The request signature we calculated does not match",
        ),
        (
            Some((SECRET, "bedrock", now - Duration::from_secs(600))),
            "InvalidSignatureException",
            "Signature expired",
        ),
        (Some((SECRET, "s3", now)), "InvalidSignatureException", ""),
    ];
    for (signing, kind, message_start) in refused {
        let response = post(&mock, &converse, &body(), signing, &[]).await;
        assert_eq!(response.status(), 403, "{kind}");
        assert_eq!(error_type(&response), kind);
        let message: Value = response.json().await.unwrap();
        let message = message["message"].as_str().unwrap();
        assert!(message.starts_with(message_start), "{kind}: {message}");
    }

    let ok = post(
        &mock,
        &converse,
        &body(),
        Some((SECRET, "bedrock", now)),
        &[],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(
        ok["output"]["message"],
        json!({"role": "assistant", "content": [{"text": "Hello from"}]})
    );
    assert_eq!(ok["stopReason"], "max_tokens");
    assert_eq!(
        ok["usage"],
        json!({"inputTokens": 5, "outputTokens": 2, "totalTokens": 7})
    );

    let records = mock.records().await;
    let last = records.last().unwrap();
    assert_eq!(last["model"], "anthropic.claude-3-5-haiku-20241022-v1:0");
    assert_eq!(last["path"], converse);
    assert_eq!(
        last["billed"],
        json!({"prompt_tokens": 5, "completion_tokens": 2})
    );
}

#[tokio::test]
async fn streams_are_event_stream_frames_with_usage_in_metadata() {
    let mock = TestMock::start(None).await;
    let stream = format!("{MODEL_PATH}/converse-stream");
    let response = post(
        &mock,
        &stream,
        &json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}),
        None,
        &[("x-mock-reply", "a b c")],
    )
    .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let bytes = response.bytes().await.unwrap();
    let frames = decode_all(&bytes).unwrap();
    let kinds: Vec<&str> = frames
        .iter()
        .map(|(h, _)| {
            h.iter()
                .find(|(n, _)| n == ":event-type")
                .unwrap()
                .1
                .as_str()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let payload = |i: usize| serde_json::from_slice::<Value>(&frames[i].1).unwrap();
    assert_eq!(payload(2)["delta"]["text"], " b");
    assert_eq!(payload(5)["stopReason"], "end_turn");
    assert_eq!(
        payload(6)["usage"],
        json!({"inputTokens": 1, "outputTokens": 3, "totalTokens": 4})
    );

    // A forced tool: a toolUse block whose input arrives in two halves.
    let forced = json!({
        "messages": [{"role": "user", "content": [{"text": "weather in Paris"}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {}}}}], "toolChoice": {"any": {}}},
    });
    let bytes = post(&mock, &stream, &forced, None, &[])
        .await
        .bytes()
        .await
        .unwrap();
    let frames = decode_all(&bytes).unwrap();
    let payloads: Vec<Value> = frames
        .iter()
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(payloads[1]["start"]["toolUse"]["name"], "get_weather");
    let input = format!(
        "{}{}",
        payloads[2]["delta"]["toolUse"]["input"].as_str().unwrap(),
        payloads[3]["delta"]["toolUse"]["input"].as_str().unwrap()
    );
    assert_eq!(input, r#"{"query":"weather in Paris"}"#);
    assert_eq!(payloads[5]["stopReason"], "tool_use");

    // The malformed fault sends a frame with a bad CRC.
    let bad = post(
        &mock,
        &stream,
        &forced,
        None,
        &[("x-mock-fault", "malformed")],
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert!(decode_all(&bad).is_none());
}

#[tokio::test]
async fn bedrock_rules_and_scripted_errors_use_bedrock_error_types() {
    let mock = TestMock::start(None).await;
    let converse = format!("{MODEL_PATH}/converse");
    let without_config = json!({"messages": [
        {"role": "user", "content": [{"text": "hi"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "ok"}]}}]},
    ]});
    let refused = post(&mock, &converse, &without_config, None, &[]).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(error_type(&refused), "ValidationException");

    let throttled = post(&mock, &converse, &body(), None, &[("x-mock-status", "429")]).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(error_type(&throttled), "ThrottlingException");
    let message: Value = throttled.json().await.unwrap();
    assert!(message["message"]
        .as_str()
        .unwrap()
        .contains("Too many requests"));
}
