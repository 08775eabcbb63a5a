//! The control plane end to end: admin API → event log → snapshot over NATS → data planes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv, ADMIN_TOKEN,
};

use crate::fixture::{
    add_mock_provider, chat_body, client, control_plane_cli, rebuild_changes_nothing, UPSTREAM_KEY,
};

/// Postgres, NATS, one mock (demanding UPSTREAM_KEY), a control plane and `n` data planes on NATS.
pub struct Stack {
    pub cp: ControlPlane,
    pub env: TestEnv,
}

pub async fn stack(data_planes: usize) -> Stack {
    stack_with(
        [MockProviderOptions::new().api_key(UPSTREAM_KEY)],
        data_planes,
    )
    .await
}

/// Postgres, NATS, a mock for each of `mocks`, the control plane `control-plane-0` and
/// `data_planes` data planes on NATS that open its sealed credentials.
pub async fn stack_with(
    mocks: impl IntoIterator<Item = MockProviderOptions>,
    data_planes: usize,
) -> Stack {
    let mut builder = TestEnv::builder().postgres().nats();
    for mock in mocks {
        builder = builder.mock_provider_with(mock);
    }
    let mut env = builder.build().await.expect("services start");
    let cp = env
        .control_plane("control-plane-0")
        .await
        .expect("control plane starts");
    for _ in 0..data_planes {
        env.start_data_plane(DataPlaneSpec::nats_sealed().env("SWITCHYARD_LOG", "info"))
            .await
            .expect("data plane starts");
    }
    Stack { cp, env }
}

/// Creates a team, the mock as a provider (credential sealed), a `chat` route and a key;
/// returns (team id, key id, key secret).
pub async fn demo(s: &Stack) -> (String, String, String) {
    let team =
        s.cp.post("/admin/teams", &json!({"name": "payments"}))
            .await
            .unwrap();
    let team_id = team["id"].as_str().unwrap().to_owned();
    add_mock_provider(&s.cp, &s.env).await;
    s.cp.post(
        "/admin/routes",
        &json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]}),
    )
    .await
    .unwrap();
    let key =
        s.cp.post(
            "/admin/keys",
            &json!({"team_id": team_id, "name": "svc", "models": ["chat"]}),
        )
        .await
        .unwrap();
    (
        team_id,
        key["key"]["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    )
}

async fn status_on(url: &str, key: &str) -> u16 {
    match client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body("chat"))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Waits until every data plane answers `want` for `key`, within `limit`.
async fn all_answer(s: &Stack, key: &str, want: u16, limit: Duration) -> Duration {
    let start = Instant::now();
    let urls: Vec<String> = s.env.data_planes().iter().map(|d| d.base_url()).collect();
    eventually(limit, || {
        let urls = urls.clone();
        async move {
            for url in &urls {
                let got = status_on(url, key).await;
                anyhow::ensure!(got == want, "{url} answered {got}, want {want}");
            }
            Ok(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("not on all data planes within {limit:?}: {e}"));
    start.elapsed()
}

#[tokio::test]
/// Every change reaches all three proxies. How fast is the benchmark's business
/// (`bench-control-plane`, README "Snapshot distribution": well under a second); the bounds
/// here are generous so a loaded CI machine cannot fail them, and the times are printed.
async fn changes_reach_three_proxies() {
    let limit = Duration::from_secs(10);
    let s = stack(3).await;
    let (_, key_id, secret) = demo(&s).await;
    // The key was created after the route: from its creation to live on all three.
    let created = all_answer(&s, &secret, 200, limit).await;
    let seen = s.env.mock().requests().await.unwrap();
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}"),
        "the sealed credential was opened by the proxy"
    );

    // Revocation: refused on all three.
    s.cp.post(&format!("/admin/keys/{key_id}/revoke"), &json!({}))
        .await
        .unwrap();
    let revoked = all_answer(&s, &secret, 401, limit).await;
    eprintln!("key live on 3 proxies after {created:?}, revoked after {revoked:?}");

    // A route change: the next request goes to the new upstream model everywhere.
    let key = s.cp.post("/admin/keys", &json!({"team_id": s.cp.get("/admin/teams").await.unwrap()["data"][0]["id"], "name": "svc2"})).await.unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    all_answer(&s, &secret, 200, limit).await;
    s.cp.patch(
        "/admin/routes/chat",
        &json!({"deployments": [{"provider": "mock", "model": "mock-chat-v2"}]}),
    )
    .await
    .unwrap();
    let urls: Vec<String> = s.env.data_planes().iter().map(|d| d.base_url()).collect();
    let mock = s.env.mock();
    eventually(limit, || {
        let urls = urls.clone();
        let secret = secret.clone();
        async move {
            mock.clear().await?;
            for url in &urls {
                anyhow::ensure!(status_on(url, &secret).await == 200);
            }
            let seen = mock.requests().await?;
            anyhow::ensure!(
                seen.iter().all(|r| r["body"]["model"] == "mock-chat-v2"),
                "some proxy still routes to the old model"
            );
            Ok(())
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn proxies_start_from_the_bucket_or_their_disk_copy_and_ride_out_nats_outages() {
    let mut s = stack(1).await;
    let (_, _, secret) = demo(&s).await;
    all_answer(&s, &secret, 200, Duration::from_secs(2)).await;

    // Control plane down: a new proxy cold-starts from the key-value bucket.
    s.cp.kill().unwrap();
    s.env
        .start_data_plane(DataPlaneSpec::nats_sealed())
        .await
        .unwrap();
    all_answer(&s, &secret, 200, Duration::from_secs(5)).await;

    // NATS killed under load: serving continues.
    let url = s.env.data_plane().base_url();
    let load = {
        let (url, secret) = (url.clone(), secret.clone());
        tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..200 {
                if status_on(&url, &secret).await != 200 {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.env.nats_mut().kill().unwrap();
    assert_eq!(
        load.await.unwrap(),
        0,
        "no request failed while NATS went away"
    );

    // NATS still down: a restarted proxy serves from its disk copy.
    s.env.data_plane_mut(0).restart().await.unwrap();
    all_answer(&s, &secret, 200, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_change_committed_while_nothing_publishes_is_published_after_restart() {
    // A control plane without NATS commits changes but cannot publish them: exactly the state
    // a crash between commit and publish leaves behind.
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    let mut quiet = ControlPlane::start(
        env.dir(),
        "cp-no-nats",
        &env.postgres().database_url(),
        None,
        vec![],
    )
    .await
    .unwrap();
    add_mock_provider(&quiet, &env).await;
    quiet
        .post(
            "/admin/routes",
            &json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "m"}]}),
        )
        .await
        .unwrap();
    let team = quiet
        .post("/admin/teams", &json!({"name": "t"}))
        .await
        .unwrap();
    let mut secrets = Vec::new();
    for i in 0..20 {
        let key = quiet
            .post(
                "/admin/keys",
                &json!({"team_id": team["id"], "name": format!("k{i}")}),
            )
            .await
            .unwrap();
        secrets.push(key["secret"].as_str().unwrap().to_owned());
    }
    quiet.kill().unwrap();

    env.start_data_plane(DataPlaneSpec::nats_sealed())
        .await
        .unwrap();
    let _cp = env.control_plane("cp-with-nats").await.unwrap();
    let url = env.data_plane().base_url();
    // What is asserted is that the change is published at all, not how fast: the limit covers
    // a control-plane start (migrations, relay election) on a loaded 2-core CI machine.
    for secret in &secrets {
        eventually(Duration::from_secs(30), || async {
            status_on(&url, secret).await == 200
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn projections_rebuilt_from_events_equal_the_live_ones() {
    let s = stack(0).await;
    let (team_id, key_id, _) = demo(&s).await;
    s.cp.post(
        &format!("/admin/keys/{key_id}/rotate"),
        &json!({"grace_seconds": 600}),
    )
    .await
    .unwrap();
    s.cp.patch(
        &format!("/admin/keys/{key_id}"),
        &json!({"rpm": 60, "tags": {"env": "prod"}}),
    )
    .await
    .unwrap();
    s.cp.post("/admin/budgets", &json!({"name": "team cap", "scope": "team", "target": team_id, "amount_usd": "12.50", "period": "monthly", "hard": true})).await.unwrap();
    s.cp.call(
        Method::PUT,
        "/admin/pricing/my-model",
        None,
        Some(&json!({"input_per_mtok": "1.25", "output_per_mtok": "5"})),
    )
    .await
    .unwrap();
    let other =
        s.cp.post("/admin/teams", &json!({"name": "gone"}))
            .await
            .unwrap();
    s.cp.call(
        Method::DELETE,
        &format!("/admin/teams/{}", other["id"].as_str().unwrap()),
        None,
        None,
    )
    .await
    .unwrap();
    s.cp.post("/admin/tokens", &json!({"name": "ci", "team_id": team_id}))
        .await
        .unwrap();

    let projections = rebuild_changes_nothing(&s.env).await;
    assert!(
        projections["key_secrets"].as_array().unwrap().len() == 2,
        "rotation grace keeps two secrets: {projections}"
    );
    let pg = s.env.postgres().client().await.unwrap();
    // And the log really is append-only.
    let err = pg.execute("DELETE FROM events", &[]).await.unwrap_err();
    assert!(
        err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_concurrent_conflicting_update_gets_409() {
    let s = stack(0).await;
    let (_, key_id, _) = demo(&s).await;
    let path = format!("/admin/keys/{key_id}");
    let current = s.cp.call(Method::GET, &path, None, None).await.unwrap();
    let etag = current.etag.clone().unwrap();
    let a = json!({"rpm": 10});
    let b = json!({"rpm": 20});
    let send = |body: Value| {
        let client = client();
        let url = format!("{}{path}", s.cp.base_url());
        let etag = etag.clone();
        async move {
            client
                .patch(url)
                .bearer_auth(ADMIN_TOKEN)
                .header("if-match", etag)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let (x, y) = tokio::join!(send(a), send(b));
    let mut statuses = [x, y];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 409],
        "exactly one of two writers at the same version wins"
    );
    // Creating a second team with a taken name is a conflict too; an empty name is invalid.
    for (name, status) in [("payments", 409), ("", 422)] {
        let body = json!({ "name": name });
        let answer =
            s.cp.call(Method::POST, "/admin/teams", None, Some(&body))
                .await
                .unwrap();
        assert_eq!(answer.status, status, "{name:?}: {}", answer.body);
        if status == 422 {
            assert_eq!(answer.body["error"]["details"][0]["path"], "name");
        }
    }
}

#[tokio::test]
async fn applying_the_same_config_twice_records_nothing_the_second_time() {
    let s = stack(1).await;
    let yaml = format!(
        r#"
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{}/v1", api_key: {{ env: MOCK_KEY }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
keys:
  - {{ name: declared, team: platform, sha256: "{}", models: ["*"], budget: declared-monthly }}
budgets:
  - {{ id: b1, name: declared-monthly, scope: team, target: platform, amount_usd: "250.50", period: monthly, hard: true }}
  - {{ id: b2, name: per-workflow, scope: tag, target: workflow, amount_usd: "2", period: total, hard: true }}
pricing:
  - {{ model: mock-chat, input_per_mtok: "0.37", output_per_mtok: "1.13" }}
  - {{ model: gpt-4o-mini, input_per_mtok: "0.15", output_per_mtok: "0.60", cached_input_per_mtok: "0.075" }}
"#,
        s.env.mock().base_url(),
        crate::fixture::sha256_hex("sk-declared-key-123456")
    );
    // PUT /admin/config with `query` (empty or `?...`); status and JSON answer.
    let put = |query: &str, body: String| {
        let url = format!("{}/admin/config{query}", s.cp.base_url());
        async move {
            let r = client()
                .put(url)
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/yaml")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = put("", yaml.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["events"].as_u64().unwrap() >= 4, "{first}");
    // Budgets by name with their targets resolved; the key spends from its named budget; a
    // price equal to the built-in one is not an override.
    assert_eq!(first["budgets"]["created"], 2, "{first}");
    assert_eq!(first["prices"]["created"], 1, "{first}");
    // The item of the admin list at `path` with this name.
    let cp = &s.cp;
    let named = |path: &'static str, name: &'static str| async move {
        let list = cp.get(path).await.unwrap();
        let found = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name);
        found
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    let audited = || async {
        let audit = cp.get("/admin/audit?limit=1000").await.unwrap();
        audit["data"].as_array().unwrap().len()
    };
    let monthly = named("/admin/budgets", "declared-monthly").await;
    let team = named("/admin/teams", "platform").await;
    assert_eq!(monthly["target"], team["id"], "{monthly}");
    let key = named("/admin/keys", "declared").await;
    assert_eq!(key["budget_id"], monthly["id"], "{key}");
    let head = audited().await;
    let (status, second) = put("", yaml.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(second["events"], 0, "{second}");
    assert_eq!(audited().await, head);

    // The same file through the CLI records nothing either.
    let file = s.env.dir().join("config.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (ok, stderr) = control_plane_cli(&s.env, &["apply", "-f", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(audited().await, head);

    // A refused file names each bad field on the command line too.
    let bad = s.env.dir().join("bad.yaml");
    std::fs::write(
        &bad,
        yaml.replace("target: platform", "target: no-such-team"),
    )
    .unwrap();
    let (ok, stderr) = control_plane_cli(&s.env, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("budgets[0].target"), "{stderr}");

    // Something added through the API stays with ?prune=false, and goes with the default.
    s.cp.post(
        "/admin/routes",
        &json!({"alias": "extra", "deployments": [{"provider": "mock", "model": "x"}]}),
    )
    .await
    .unwrap();
    let (status, kept) = put("?prune=false", yaml.clone()).await;
    assert_eq!(status, 200, "{kept}");
    let extra_route = || async {
        let answer = cp.call(Method::GET, "/admin/routes/extra", None, None);
        answer.await.unwrap().status
    };
    assert_eq!(extra_route().await, 200);
    let (status, pruned) = put("", yaml.clone()).await;
    assert_eq!(
        (status, pruned["routes"]["deleted"].as_u64()),
        (200, Some(1)),
        "{pruned}"
    );
    assert_eq!(extra_route().await, 404);

    // Unknown fields are refused with their path.
    let (status, refused) = put("", yaml.replace("models:", "modles:")).await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("modles"), "{refused}");
}

#[tokio::test]
async fn a_rotated_key_keeps_working_for_its_grace_period_only() {
    let s = stack(1).await;
    let (_, key_id, old) = demo(&s).await;
    all_answer(&s, &old, 200, Duration::from_secs(2)).await;
    let rotated =
        s.cp.post(
            &format!("/admin/keys/{key_id}/rotate"),
            &json!({"grace_seconds": 3600}),
        )
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        rotated["key"]["prefixes"].as_array().unwrap().len(),
        2,
        "{rotated}"
    );
    all_answer(&s, &new, 200, Duration::from_secs(1)).await;
    all_answer(&s, &old, 200, Duration::from_secs(1)).await;
    // Rotating again without grace retires both earlier secrets at once.
    let again =
        s.cp.post(&format!("/admin/keys/{key_id}/rotate"), &json!({}))
            .await
            .unwrap();
    let newest = again["secret"].as_str().unwrap().to_owned();
    all_answer(&s, &newest, 200, Duration::from_secs(1)).await;
    all_answer(&s, &new, 401, Duration::from_secs(1)).await;
    all_answer(&s, &old, 401, Duration::from_secs(1)).await;
    let listed = s.cp.get(&format!("/admin/keys/{key_id}")).await.unwrap();
    assert!(
        !listed.to_string().contains(&newest),
        "the secret is shown only once"
    );
}

/// The snapshot the relay would publish now.
async fn built_snapshot(env: &TestEnv) -> proto::Snapshot {
    let pool = control_plane::serve::pool(&env.postgres().database_url()).unwrap();
    let store = control_plane::store::Store::new(pool);
    control_plane::snapshot::build(&store).await.unwrap()
}

#[tokio::test]
async fn log_policies_reach_the_snapshot_and_survive_the_declarative_round_trip() {
    use proto::LogPayloads::{Full, Metadata, Off};
    let s = stack(0).await;
    let (team_id, key_id, secret) = demo(&s).await;
    let cp = &s.cp;
    let key_path = format!("/admin/keys/{key_id}");
    let team_path = format!("/admin/teams/{team_id}");

    // A team token sets its key's policy like any key setting; the team's own settings stay
    // with global tokens.
    let token = crate::fixture::created(
        cp,
        "/admin/tokens",
        &json!({"name": "payments-admin", "team_id": team_id}),
        "/secret",
    )
    .await;
    let patch = |path: &str, body: Value| {
        let (path, token) = (path.to_owned(), token.clone());
        async move {
            let answer = cp.call(Method::PATCH, &path, Some(&token), Some(&body));
            let answer = answer.await.unwrap();
            (answer.status, answer.body)
        }
    };
    let (status, key) = patch(&key_path, json!({"log_payloads": "full"})).await;
    assert_eq!(
        (status, &key["log_payloads"]),
        (200, &json!("full")),
        "{key}"
    );
    let (status, refused) = patch(&team_path, json!({"log_payloads": "off"})).await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = patch(&key_path, json!({"log_payloads": "everything"})).await;
    assert_eq!(status, 422, "{refused}");
    let team = cp
        .patch(&team_path, &json!({"log_payloads": "off"}))
        .await
        .unwrap();
    assert_eq!(team["log_payloads"], "off", "{team}");

    // The snapshot carries both; the team is listed for its policy alone (it has no limits).
    let snapshot = built_snapshot(&s.env).await;
    let key = snapshot
        .keys
        .iter()
        .find(|k| k.id.as_deref() == Some(&key_id));
    assert_eq!(key.unwrap().log_payloads, Some(Full));
    assert_eq!(
        snapshot.teams,
        vec![proto::TeamPolicy {
            id: team_id.clone(),
            rpm: None,
            tpm: None,
            log_payloads: Some(Off),
        }]
    );

    // PUT /admin/config: the same policies record nothing; changed ones are applied.
    let sha256 = crate::fixture::sha256_hex(&secret);
    let file = |key: &str, team: &str| {
        format!(
            "keys:\n  - {{ name: svc, team: payments, sha256: \"{sha256}\", models: [chat], log_payloads: {key} }}\n\
             teams:\n  - {{ id: payments, log_payloads: {team} }}\n"
        )
    };
    let apply = |body: String| async move {
        let r = client()
            .put(format!("{}/admin/config?prune=false", cp.base_url()))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/yaml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let same = apply(file("full", "off")).await;
    assert_eq!(same["events"], 0, "{same}");
    let changed = apply(file("metadata", "full")).await;
    assert_eq!(
        (
            &changed["events"],
            &changed["keys"]["updated"],
            &changed["teams_updated"]
        ),
        (&json!(2), &json!(1), &json!(1)),
        "{changed}"
    );
    let snapshot = built_snapshot(&s.env).await;
    assert_eq!(snapshot.keys[0].log_payloads, Some(Metadata));
    assert_eq!(snapshot.teams[0].log_payloads, Some(Full));
    assert_eq!(apply(file("metadata", "full")).await["events"], 0);
    assert_eq!(cp.get(&team_path).await.unwrap()["log_payloads"], "full");

    // And the projections, the new column included, rebuild from the log as they are.
    rebuild_changes_nothing(&s.env).await;
}
