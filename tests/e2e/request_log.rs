//! The request log end to end: keys whose policy is `full`, `metadata` or `off` send chat and
//! Messages requests, streamed and not, through a proxy on NATS; `GET /admin/requests[/{id}]`
//! returns what was sent and received byte for byte, only to the right team, and no stored
//! row holds a credential. Retention drops whole daily partitions, and NATS going away
//! mid-run loses no entry.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_tests::support::{eventually, ControlPlane, DataPlaneSpec, TestEnv};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{add_mock_provider, client, created, UPSTREAM_KEY};
use switchyard_tests::support::MockProviderOptions;

/// A key of `team` allowed every alias with `policy` (`None`: the default); returns its secret.
async fn key(cp: &ControlPlane, team: &str, name: &str, policy: Option<&str>) -> String {
    let mut body = json!({"team_id": team, "name": name, "models": ["*"]});
    if let Some(p) = policy {
        body["log_payloads"] = json!(p);
    }
    created(cp, "/admin/keys", &body, "/secret").await
}

/// The stack: a team with a `full`, a `metadata` and an `off` key, the mock as provider and a
/// `chat` route; returns (team id, [full, metadata, off] secrets).
async fn logged_stack() -> (Stack, String, [String; 3]) {
    let s = stack_with([MockProviderOptions::new().api_key(UPSTREAM_KEY)], 1).await;
    let team = created(&s.cp, "/admin/teams", &json!({"name": "payments"}), "/id").await;
    add_mock_provider(&s.cp, &s.env).await;
    s.cp.post(
        "/admin/routes",
        &json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]}),
    )
    .await
    .unwrap();
    let keys = [
        key(&s.cp, &team, "full", Some("full")).await,
        key(&s.cp, &team, "meta", None).await,
        key(&s.cp, &team, "off", Some("off")).await,
    ];
    (s, team, keys)
}

/// One request as the client saw it.
struct Sent {
    id: String,
    body: String,
    received: String,
}

/// Sends `body` (as these exact bytes) to `path` with `secret`; waits until the proxy knows
/// the key.
async fn send(env: &TestEnv, path: &str, secret: &str, body: &str) -> Sent {
    let url = format!("{}{path}", env.data_plane().base_url());
    let response = eventually(Duration::from_secs(5), || {
        let (url, body) = (url.clone(), body.to_owned());
        async move {
            let r = client()
                .post(&url)
                .header("authorization", format!("Bearer {secret}"))
                .header("x-api-key", secret)
                .header("anthropic-version", "2023-06-01")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "status {}", r.status());
            Ok(r)
        }
    })
    .await
    .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let received = response.text().await.unwrap();
    Sent {
        id,
        body: body.to_owned(),
        received,
    }
}

/// `GET /admin/requests/{id}` once the request's usage event and (for `full`) its bodies
/// were stored.
async fn detail(cp: &ControlPlane, id: &str, token: Option<&str>, bodies: bool) -> Value {
    eventually(Duration::from_secs(10), || async move {
        let a = cp
            .call(Method::GET, &format!("/admin/requests/{id}"), token, None)
            .await?;
        anyhow::ensure!(a.status == 200, "{}: {}", a.status, a.body);
        anyhow::ensure!(!bodies || !a.body["payload"].is_null(), "no payload yet");
        Ok(a.body)
    })
    .await
    .unwrap()
}

const CHAT: &str = r#"{"model":"chat",  "messages":[{"role":"user","content":"say hello to me"}] , "metadata":{"k":"v"}}"#;
const CHAT_STREAM: &str =
    r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"say hello to me"}]}"#;
const MESSAGES: &str =
    r#"{"model":"chat","max_tokens":50,"messages":[{"role":"user","content":"say hello to me"}]}"#;
const MESSAGES_STREAM: &str = r#"{"model":"chat","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"say hello to me"}]}"#;

#[tokio::test]
async fn request_log_full_bodies_come_back_exactly_and_metadata_and_off_keep_none() {
    let (s, team, [full, meta, off]) = logged_stack().await;
    let env = &s.env;
    let mut sent = Vec::new();
    for (path, body) in [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", CHAT_STREAM),
        ("/v1/messages", MESSAGES),
        ("/v1/messages", MESSAGES_STREAM),
    ] {
        sent.push(send(env, path, &full, body).await);
    }
    for one in &sent {
        let d = detail(&s.cp, &one.id, None, true).await;
        assert_eq!(d["log_payloads"], "full");
        assert_eq!(d["team_id"], team);
        let p = &d["payload"];
        assert_eq!(p["request"]["body"], one.body, "{d}");
        assert_eq!(p["request"]["truncated"], false);
        assert_eq!(p["response"]["body"], one.received, "{d}");
        assert_eq!(p["response"]["bytes"], one.received.len());
        let headers = p["request_headers"].as_object().unwrap();
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("authorization").is_none() && headers.get("x-api-key").is_none());
    }
    assert!(sent[1].received.contains("data: [DONE]"));
    assert!(sent[3].received.contains("event: message_stop"));
    assert_eq!(
        detail(&s.cp, &sent[1].id, None, true).await["payload"]["streamed"],
        true
    );

    // `metadata`: listed, no bodies; `off`: metered, never listed.
    let m = send(env, "/v1/chat/completions", &meta, CHAT).await;
    let o = send(env, "/v1/chat/completions", &off, CHAT).await;
    let d = detail(&s.cp, &m.id, None, false).await;
    assert_eq!(d["log_payloads"], "metadata");
    assert!(d["payload"].is_null());
    eventually(Duration::from_secs(10), || async {
        let usage = s.cp.get("/admin/usage").await?;
        let ids: Vec<&str> = usage["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        anyhow::ensure!(
            ids.contains(&o.id.as_str()),
            "the off request is not metered yet"
        );
        Ok(())
    })
    .await
    .unwrap();
    let a =
        s.cp.call(
            Method::GET,
            &format!("/admin/requests/{}", o.id),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 404, "{}", a.body);
    let list = s.cp.get("/admin/requests?limit=100").await.unwrap();
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(listed.contains(&m.id.as_str()) && !listed.contains(&o.id.as_str()));
    assert_eq!(
        listed.len(),
        5,
        "four full and one metadata request: {list}"
    );

    // Filters.
    let only = |q: &str| {
        let cp = &s.cp;
        let q = q.to_owned();
        async move {
            cp.get(&format!("/admin/requests?{q}")).await.unwrap()["data"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(only("provider=mock&status=200&model=mock-chat").await, 5);
    assert_eq!(
        only("tag=k=v").await,
        2,
        "the full and the metadata chat carry it"
    );
    assert_eq!(only("provider=nobody").await, 0);
    let bad =
        s.cp.call(Method::GET, "/admin/requests?status=abc", None, None)
            .await
            .unwrap();
    assert_eq!(bad.status, 422);

    // Only `full` requests have rows, and no stored byte holds a credential.
    let pg = env.postgres().client().await.unwrap();
    let rows = pg
        .query("SELECT id::text, request_headers::text, encode(request_body, 'escape'), encode(coalesce(response_body, ''), 'escape') FROM request_payloads", &[])
        .await
        .unwrap();
    let mut ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort();
    let mut want: Vec<String> = sent.iter().map(|x| x.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    for r in &rows {
        for col in 1..4 {
            let text: String = r.get(col);
            for secret in [full.as_str(), UPSTREAM_KEY] {
                assert!(!text.contains(secret), "a credential was stored: {text}");
            }
        }
    }
}

#[tokio::test]
async fn request_log_a_team_token_sees_only_its_team() {
    let (s, _, [full, ..]) = logged_stack().await;
    let other = created(&s.cp, "/admin/teams", &json!({"name": "other"}), "/id").await;
    let token = created(
        &s.cp,
        "/admin/tokens",
        &json!({"name": "other-admin", "team_id": other}),
        "/secret",
    )
    .await;
    let one = send(&s.env, "/v1/chat/completions", &full, CHAT).await;
    detail(&s.cp, &one.id, None, true).await;
    let a =
        s.cp.call(
            Method::GET,
            &format!("/admin/requests/{}", one.id),
            Some(&token),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.status, 404, "{}", a.body);
    let list =
        s.cp.call(Method::GET, "/admin/requests", Some(&token), None)
            .await
            .unwrap();
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"], json!([]));
    // Its own team's requests it does see.
    let own = key(&s.cp, &other, "mine", Some("full")).await;
    let mine = send(&s.env, "/v1/chat/completions", &own, CHAT).await;
    let d = detail(&s.cp, &mine.id, Some(&token), true).await;
    assert_eq!(d["payload"]["request"]["body"], CHAT);
}

#[tokio::test]
async fn request_log_nats_going_away_mid_run_loses_no_entry_and_retention_drops_old_days() {
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    let cp = env
        .control_plane_with(
            "control-plane-0",
            vec![
                ("SWITCHYARD_REQUEST_LOG_RETENTION_DAYS".into(), "30".into()),
                ("SWITCHYARD_REQUEST_LOG_SWEEP_SECS".into(), "1".into()),
            ],
        )
        .await
        .unwrap();
    env.start_data_plane(DataPlaneSpec::nats_sealed())
        .await
        .unwrap();
    let team = created(&cp, "/admin/teams", &json!({"name": "payments"}), "/id").await;
    add_mock_provider(&cp, &env).await;
    cp.post(
        "/admin/routes",
        &json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]}),
    )
    .await
    .unwrap();
    let full = key(&cp, &team, "full", Some("full")).await;

    // An old day's partition and row, as if stored 40 days ago.
    let pg = env.postgres().client().await.unwrap();
    pg.batch_execute(
        "CREATE TABLE request_payloads_20000101 PARTITION OF request_payloads
             FOR VALUES FROM ('2000-01-01') TO ('2000-01-02');
         INSERT INTO request_payloads (id, time, request_headers, request_body, request_bytes,
             request_truncated, status, streamed)
         VALUES (gen_random_uuid(), '2000-01-01T12:00:00Z', '{}', '\\x00', 1, false, 200, false)",
    )
    .await
    .unwrap();

    let mut ids = Vec::new();
    for i in 0..20 {
        if i == 8 {
            env.nats_mut().kill().unwrap();
        }
        if i == 14 {
            env.nats_mut().restart().await.unwrap();
        }
        ids.push(send(&env, "/v1/chat/completions", &full, CHAT).await.id);
    }
    let stored = eventually(Duration::from_secs(30), || async {
        let rows = pg.query("SELECT id::text FROM request_payloads", &[]).await;
        let rows = rows?;
        let stored: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing = ids.iter().filter(|id| !stored.contains(id)).count();
        anyhow::ensure!(
            missing == 0,
            "{missing} of {} entries not stored yet",
            ids.len()
        );
        anyhow::ensure!(stored.len() == ids.len(), "the old day is still there");
        Ok(())
    })
    .await;
    if let Err(e) = stored {
        let dp = env.data_plane().stderr().unwrap_or_default();
        let cp_log = cp.stderr().unwrap_or_default();
        let tail = |s: &str| {
            s.lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{e}\n--- data plane\n{}\n--- control plane\n{}",
            tail(&dp),
            tail(&cp_log)
        );
    }
    let partitions: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = 'request_payloads'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (1..=2).contains(&partitions),
        "only today's (and at midnight yesterday's) partition is left: {partitions}"
    );
}
