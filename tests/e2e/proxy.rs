//! The data plane's OpenAI-compatible API against the scripted mock: what goes upstream, what
//! comes back, and the whole error table.

use serde_json::{json, Value};

use crate::fixture::{
    chat_body, client, error_of, gateway, json_of, post, sse_data, FULL_KEY, LIMITED_KEY,
    UPSTREAM_KEY,
};

#[tokio::test]
async fn chat_is_proxied_with_the_upstream_model_and_credentials() {
    let env = gateway(&[]).await;
    let (status, headers, body) =
        post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from the mock provider."
    );
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9})
    );

    assert_eq!(headers["x-switchyard-provider"], "mock");
    assert_eq!(headers["x-switchyard-deployment"], "mock/mock-chat");
    let gateway_us: u64 = headers["x-switchyard-gateway-us"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(gateway_us < 5_000_000, "gateway time {gateway_us}us");
    assert!(headers["server-timing"]
        .to_str()
        .unwrap()
        .starts_with("gateway;dur="));
    assert_eq!(headers["x-request-id"].len(), 36);

    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen.len(), 1);
    let upstream = &seen[0];
    assert_eq!(upstream["path"], "/v1/chat/completions");
    assert_eq!(
        upstream["body"]["model"], "mock-chat",
        "the alias is replaced by the upstream model"
    );
    assert_eq!(upstream["body"]["messages"], chat_body("chat")["messages"]);
    assert_eq!(
        upstream["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let all_headers = upstream["headers"].to_string();
    assert!(
        !all_headers.contains(FULL_KEY),
        "the caller's key must not reach the provider: {all_headers}"
    );
}

#[tokio::test]
async fn every_key_header_form_authenticates() {
    let env = gateway(&[]).await;
    let url = env.data_plane().url("/v1/chat/completions");
    for (name, value) in [
        ("authorization", format!("Bearer {FULL_KEY}")),
        ("x-api-key", FULL_KEY.to_owned()),
        ("api-key", FULL_KEY.to_owned()),
    ] {
        let r = client()
            .post(&url)
            .header(name, value)
            .json(&chat_body("chat"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn streams_are_relayed_and_usage_is_always_requested_upstream() {
    let env = gateway(&[]).await;
    let mut body = chat_body("chat");
    body["stream"] = json!(true);
    let (status, headers, text) = post(&env, "/v1/chat/completions", FULL_KEY, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello from the mock provider.");
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage chunk unless the client asked"
    );

    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen[0]["body"]["stream_options"],
        json!({"include_usage": true})
    );

    // A client that asks for usage gets the usage chunk.
    body["stream_options"] = json!({"include_usage": true});
    let (_, _, text) = post(&env, "/v1/chat/completions", FULL_KEY, &body).await;
    let data = sse_data(&text);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(usage["usage"]["prompt_tokens"], 4);
}

#[tokio::test]
async fn embeddings_and_azure_deployments() {
    let env = gateway(&[]).await;
    let (status, _, body) = post(
        &env,
        "/v1/embeddings",
        FULL_KEY,
        &json!({"model": "embed", "input": ["one two", "three"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["usage"]["prompt_tokens"], 3);

    let (status, headers, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("azure-chat"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-switchyard-provider"], "azure");
    let seen = env.mock().requests().await.unwrap();
    let azure = seen.last().unwrap();
    assert_eq!(
        azure["path"],
        "/openai/deployments/my-gpt-deployment/chat/completions"
    );
    assert_eq!(azure["query"], "api-version=2024-10-21");
    assert_eq!(azure["headers"]["api-key"], UPSTREAM_KEY);
    assert!(azure["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use() {
    let env = gateway(&[]).await;
    let list = |key: &'static str| {
        let url = env.data_plane().url("/v1/models");
        async move {
            let v = json_of(client().get(url).bearer_auth(key)).await;
            assert_eq!(v["object"], "list");
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(LIMITED_KEY).await, ["chat"]);
    let all = list(FULL_KEY).await;
    assert!(
        all.len() >= 7 && all.contains(&"embed".to_owned()),
        "{all:?}"
    );
    let r = client()
        .get(env.data_plane().url("/v1/models/embed"))
        .bearer_auth(LIMITED_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn client_errors_get_the_openai_error_table() {
    let env = gateway(&["--max-body-bytes", "4096"]).await;
    let url = env.data_plane().url("/v1/chat/completions");

    let r = client()
        .post(&url)
        .json(&chat_body("chat"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_of(&r.text().await.unwrap()).0, "missing_api_key");

    let (status, _, body) =
        post(&env, "/v1/chat/completions", "sk-wrong", &chat_body("chat")).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (401, "invalid_api_key")
    );

    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        LIMITED_KEY,
        &chat_body("embed"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (403, "model_not_allowed")
    );

    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("no-such-model"),
    )
    .await;
    let (code, kind, message) = error_of(&body);
    assert_eq!(
        (status, code.as_str(), kind.as_str()),
        (404, "model_not_found", "invalid_request_error")
    );
    assert!(message.contains("no-such-model"));

    let r = client()
        .post(&url)
        .bearer_auth(FULL_KEY)
        .body("{\"model\": \"chat\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, _, message) = error_of(&r.text().await.unwrap());
    assert!(
        message.contains("could not parse the JSON body"),
        "{message}"
    );

    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &json!({"model": "chat"}),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["param"], "messages");

    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &json!({"model": "chat", "messages": [{"role": "user"}], "stream": "yes"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&body).2.contains("'stream'"), "{body}");

    let big = json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let (status, _, body) = post(&env, "/v1/chat/completions", FULL_KEY, &big).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (413, "request_too_large")
    );

    let r = client()
        .post(env.data_plane().url("/v1/nope"))
        .bearer_auth(FULL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_of(&r.text().await.unwrap()).0, "unknown_url");
    let r = client()
        .get(&url)
        .bearer_auth(FULL_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        env.mock().requests().await.unwrap().len(),
        0,
        "no bad request reached the provider"
    );
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_statuses() {
    let env = gateway(&[]).await;
    let mock = env.mock();

    mock.script(&json!({"status": 400, "error_message": "temperature is out of range"}))
        .await
        .unwrap();
    let (status, _, body) = post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(status, 400, "upstream 4xx passes through");
    assert_eq!(error_of(&body).2, "temperature is out of range");

    mock.script(&json!({"status": 429, "retry_after": 7}))
        .await
        .unwrap();
    let (status, headers, _) =
        post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");

    mock.script(&json!({"status": 503, "retry_after": 2, "error_message": "overloaded"}))
        .await
        .unwrap();
    let (status, headers, body) =
        post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (502, "upstream_error")
    );
    assert_eq!(headers["retry-after"], "2");

    mock.script(&json!({"fault": "malformed"})).await.unwrap();
    let (status, _, body) = post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (502, "bad_upstream_response")
    );

    mock.script(&json!({"fault": "reset"})).await.unwrap();
    let (status, _, body) = post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    assert_eq!(status, 502, "{body}");

    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("dead-chat"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (502, "upstream_unreachable")
    );

    mock.script(&json!({"latency_ms": 3000})).await.unwrap();
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("slow-chat"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (504, "upstream_timeout")
    );

    // The provider refusing the gateway's own credential is the gateway's problem, not the
    // caller's: 502, never a 401 that would blame the caller's key.
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("wrongkey-chat"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (502, "upstream_error")
    );
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("nokey-chat"),
    )
    .await;
    assert_eq!(
        (status, error_of(&body).0.as_str()),
        (502, "upstream_credentials")
    );
    assert!(error_of(&body).2.contains("SWITCHYARD_TEST_UNSET_VARIABLE"));
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let env = gateway(&[]).await;
    let mut body = chat_body("chat");
    body["stream"] = json!(true);
    for fault in ["reset_mid_stream", "truncate_stream", "malformed"] {
        env.mock().script(&json!({"fault": fault})).await.unwrap();
        let (status, _, text) = post(&env, "/v1/chat/completions", FULL_KEY, &body).await;
        assert_eq!(status, 200, "the stream had started");
        let data = sse_data(&text);
        let last: Value = serde_json::from_str(data.last().unwrap())
            .unwrap_or_else(|_| panic!("{fault}: {text}"));
        assert_eq!(last["error"]["type"], "upstream_error", "{fault}: {text}");
        assert!(
            !data.iter().any(|d| d == "[DONE]"),
            "{fault}: a broken stream must not look complete"
        );
    }
}

#[tokio::test]
async fn an_abandoned_stream_is_still_read_to_the_end() {
    let env = gateway(&[]).await;
    env.mock()
        .script(&json!({"chunk_delay_ms": 150}))
        .await
        .unwrap();
    let mut body = chat_body("chat");
    body["stream"] = json!(true);
    let mut response = client()
        .post(env.data_plane().url("/v1/chat/completions"))
        .bearer_auth(FULL_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data:"));
    drop(response);
    switchyard_tests::assert_eventually!(
        async {
            let seen = env.mock().requests().await?;
            anyhow::ensure!(
                seen[0]["completed_at_ms"].is_number(),
                "the upstream stream has not finished: {}",
                seen[0]
            );
            Ok::<_, anyhow::Error>(())
        }
        .await
    );
    let seen = env.mock().requests().await.unwrap();
    // role chunk + 5 words + finish chunk + usage chunk + [DONE]
    assert!(
        seen[0]["chunk_sent_at_ms"].as_array().unwrap().len() >= 8,
        "{}",
        seen[0]
    );
    let metrics = env.data_plane().metrics().await.unwrap();
    assert!(
        metrics.contains("switchyard_streams_abandoned_total{route=\"chat\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_input_makes_the_proxy_answer_5xx() {
    let env = gateway(&[]).await;
    let url = env.data_plane().url("/v1/chat/completions");
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"chat\"".to_vec(),
        b"{\"model\":null}".to_vec(),
        b"{\"model\":\"chat\",\"messages\":null}".to_vec(),
        b"{\"model\":\"chat\",\"messages\":[null]}".to_vec(),
        b"{\"model\":\"chat\",\"messages\":[{\"role\":5}]}".to_vec(),
        b"{\"model\":\"chat\",\"messages\":[{\"role\":\"user\"}],\"stream_options\":7}".to_vec(),
        b"{\"model\":\"chat\",\"messages\":[{\"role\":\"user\"}],\"n\":1.5}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"model\":\"\\ud800\"}".to_vec(),
        "{\"model\":\"ch\u{e4}t\",\"messages\":[{\"role\":\"user\"}]}"
            .as_bytes()
            .to_vec(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
    ];
    for body in bodies {
        for path in ["/v1/chat/completions", "/v1/embeddings"] {
            let url = url.replace("/v1/chat/completions", path);
            let r = client()
                .post(&url)
                .bearer_auth(FULL_KEY)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(
                (400..500).contains(&status),
                "{path} {:?} -> {status} {text}",
                String::from_utf8_lossy(&body)
            );
            error_of(&text);
        }
    }
    let ready = client()
        .get(format!("{}/readyz", env.data_plane().ops_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "still serving");
}
