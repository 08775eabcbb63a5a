//! The mock's token endpoint and its Vertex routes, end to end over HTTP.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use super::token::percent_decode;
use crate::mock::record::now_ms;
use crate::mock::test_client::TestMock;
use crate::mock::MockOptions;

fn key_file() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/test-only-vertex-service-account.json"
    );
    std::fs::read_to_string(path).unwrap()
}

/// A JWT signed with the fixture key.
fn jwt(claims: &Value) -> String {
    let file: Value = serde_json::from_str(&key_file()).unwrap();
    let pem = file["private_key"].as_str().unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn form_values_are_percent_decoded() {
    assert_eq!(
        percent_decode("urn%3Aietf%3Aparams+x%2"),
        "urn:ietf:params x%2"
    );
}

#[tokio::test]
async fn token_endpoint_checks_the_jwt_and_vertex_routes_need_a_live_token() {
    let mock = TestMock::start_with(MockOptions {
        google_service_account: Some(key_file()),
        google_token_ttl_secs: 1,
        ..MockOptions::default()
    })
    .await;
    let token_url = mock.url("/token");
    let now = now_ms() / 1000;
    let good = json!({
        "iss": "switchyard-test@switchyard-test.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": token_url,
        "iat": now,
        "exp": now + 3600,
    });
    let ask = |grant: &str, assertion: String| {
        mock.client
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type={grant}&assertion={assertion}"))
            .send()
    };
    let bearer = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        jwt(&c)
    };
    let tampered = {
        let signed = jwt(&good);
        let parts: Vec<&str> = signed.split('.').collect();
        let claims = with("iss", json!("x"));
        let claims = claims.split('.').nth(1).unwrap();
        format!("{}.{claims}.{}", parts[0], parts[2])
    };
    let refused = [
        (ask("password", jwt(&good)), "unsupported_grant_type"),
        (ask(bearer, tampered), "Invalid JWT Signature."),
        (
            ask(
                bearer,
                with("iss", json!("other@x.iam.gserviceaccount.com")),
            ),
            "account not found",
        ),
        (
            ask(
                bearer,
                with("aud", json!("https://oauth2.googleapis.com/token")),
            ),
            "aud",
        ),
        (ask(bearer, with("scope", json!("openid"))), "scope"),
        (ask(bearer, with("exp", json!(now + 7200))), "short-lived"),
        (ask(bearer, with("exp", json!(now - 10))), "short-lived"),
    ];
    for (response, expected) in refused {
        let response = response.await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        let text = body.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(body["error"].is_string(), "{text}");
    }

    let issued: Value = ask(bearer, jwt(&good)).await.unwrap().json().await.unwrap();
    assert_eq!(
        issued,
        json!({"access_token": "ya29.mock-1", "expires_in": 1, "token_type": "Bearer"})
    );

    let chat = json!({"contents": [{"role": "user", "parts": [{"text": "a b c"}]}]});
    let send = |action: &str, token: &str, body: &Value| {
        let path =
            format!("/v1/projects/p/locations/us-central1/publishers/google/models/m:{action}");
        mock.client
            .post(mock.url(&path))
            .header("authorization", format!("Bearer {token}"))
            .json(body)
            .send()
    };
    let anonymous = send("generateContent", "ya29.forged", &chat).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous: Value = anonymous.json().await.unwrap();
    assert_eq!(anonymous["error"]["status"], "UNAUTHENTICATED");

    let ok: Value = send("generateContent", "ya29.mock-1", &chat)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["usageMetadata"]["promptTokenCount"], 3);
    let predicted: Value = send(
        "predict",
        "ya29.mock-1",
        &json!({"instances": [{"content": "one two"}], "parameters": {"outputDimensionality": 4}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let embeddings = &predicted["predictions"][0]["embeddings"];
    assert_eq!(embeddings["values"].as_array().unwrap().len(), 4);
    assert_eq!(embeddings["statistics"]["token_count"], 2);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = send("generateContent", "ya29.mock-1", &chat).await.unwrap();
    assert_eq!(expired.status(), 401);

    let records = mock.records().await;
    assert_eq!(records[0]["path"], "/token");
    assert_eq!(records[0]["body"]["grant_type"], "password");
    let last = records.last().unwrap();
    assert_eq!(last["headers"]["authorization"], "Bearer ya29.mock-1");
    assert_eq!(last["model"], "m");
    assert_eq!(
        records[records.len() - 2]["billed"],
        json!({"prompt_tokens": 2, "completion_tokens": 0})
    );
}

/// A mock trusting the fixture key, and a live token it issued.
async fn mock_with_token() -> (TestMock, String) {
    let mock = TestMock::start_with(MockOptions {
        google_service_account: Some(key_file()),
        ..MockOptions::default()
    })
    .await;
    let now = now_ms() / 1000;
    let assertion = jwt(&json!({
        "iss": "switchyard-test@switchyard-test.iam.gserviceaccount.com",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": mock.url("/token"),
        "iat": now,
        "exp": now + 3600,
    }));
    let issued: Value = mock
        .client
        .post(mock.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["access_token"].as_str().unwrap().to_owned();
    (mock, token)
}

#[tokio::test]
async fn claude_routes_check_the_token_and_the_vertex_body_then_answer_as_messages() {
    let (mock, token) = mock_with_token().await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    let path = |target: &str| {
        format!("/v1/projects/p/locations/us-east5/publishers/anthropic/models/{target}")
    };
    let claude = "claude-sonnet-4-5@20250929";
    let ask = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 50,
                     "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
                     "messages": [{"role": "user", "content": "hi there you"}]});

    let anonymous = mock
        .post(&path(&format!("{claude}:rawPredict")), &[], &ask)
        .await;
    assert_eq!(anonymous.status(), 401);
    let with_model = json!({"model": claude, "anthropic_version": "vertex-2023-10-16",
                            "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let no_version = json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    for (body, expected) in [(&with_model, "model"), (&no_version, "anthropic_version")] {
        let refused = mock
            .post(&path(&format!("{claude}:rawPredict")), &auth, body)
            .await;
        assert_eq!(refused.status(), 400);
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["error"]["type"], "invalid_request_error");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message}");
    }

    let message = mock
        .post_json(&path(&format!("{claude}:rawPredict")), &auth, &ask)
        .await;
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["model"], claude);
    assert_eq!(
        message["usage"]["input_tokens"].as_u64(),
        Some(5),
        "{message}"
    );

    // The action streams, whatever the body says.
    let streamed = mock
        .post(&path(&format!("{claude}:streamRawPredict")), &auth, &ask)
        .await;
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("event: message_stop"), "{text}");

    let count = json!({"model": claude, "anthropic_version": "vertex-2023-10-16",
                       "messages": [{"role": "user", "content": "one two three"}]});
    let counted = mock
        .post_json(&path("count-tokens:rawPredict"), &auth, &count)
        .await;
    assert_eq!(counted, json!({"input_tokens": 3}));
    let uncounted = mock
        .post(&path("count-tokens:rawPredict"), &auth, &no_version)
        .await;
    assert_eq!(uncounted.status(), 400);

    // Scripts address the URL's model; Anthropic's error shape.
    mock.script(&json!({"model": claude, "status": 529})).await;
    let overloaded = mock
        .post(&path(&format!("{claude}:rawPredict")), &auth, &ask)
        .await;
    assert_eq!(overloaded.status(), 529);
    let overloaded: Value = overloaded.json().await.unwrap();
    assert_eq!(overloaded["error"]["type"], "overloaded_error");

    let records: Vec<Value> = mock
        .records()
        .await
        .into_iter()
        .filter(|r| r["path"] != "/token")
        .collect();
    let summary: Vec<(&Value, &Value)> = records
        .iter()
        .map(|r| (&r["model"], &r["stream"]))
        .collect();
    assert_eq!(summary.len(), 8, "{records:?}");
    assert_eq!(summary[3], (&json!(claude), &json!(false)));
    assert_eq!(summary[4], (&json!(claude), &json!(true)));
    assert_eq!(records[3]["billed"]["prompt_tokens"], 5);
    assert_eq!(records[4]["billed"], records[3]["billed"]);
    assert_eq!(records[5]["model"], claude);
    assert!(records[5]["billed"].is_null());
}
