//! Team isolation and write-only credentials, resource by resource.

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_tests::support::ControlPlane;

use crate::control_plane::stack;
use crate::fixture::created;

async fn call(
    cp: &ControlPlane,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let a = cp
        .call(method, path, Some(token), body.as_ref())
        .await
        .unwrap();
    (a.status, a.body)
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_team_token_cannot_touch_another_team() {
    let s = stack(0).await;
    let cp = &s.cp;
    let a = created(cp, "/admin/teams", &json!({"name": "alpha"}), "/id").await;
    let b = created(cp, "/admin/teams", &json!({"name": "bravo"}), "/id").await;
    let token_a = created(
        cp,
        "/admin/tokens",
        &json!({"name": "alpha-admin", "team_id": a}),
        "/secret",
    )
    .await;
    let mock = format!("{}/v1", s.env.mock().base_url());

    // Team B's resources, made with the bootstrap token.
    let key_b = created(
        cp,
        "/admin/keys",
        &json!({"team_id": b, "name": "b-key"}),
        "/key/id",
    )
    .await;
    cp.post(
        "/admin/providers",
        &json!({"id": "prov-b", "kind": "openai_compatible", "base_url": mock, "team_id": b}),
    )
    .await
    .unwrap();
    cp.post("/admin/routes", &json!({"alias": "route-b", "team_id": b, "deployments": [{"provider": "prov-b", "model": "m"}]})).await.unwrap();
    let budget = json!({"name": "b cap", "scope": "team", "target": b, "amount_usd": "5",
                        "period": "daily", "hard": true, "team_id": b});
    let budget_b = created(cp, "/admin/budgets", &budget, "/id").await;
    let token_b = created(
        cp,
        "/admin/tokens",
        &json!({"name": "bravo-admin", "team_id": b}),
        "/token/id",
    )
    .await;

    // Reads, updates and deletes of B's things by A are 404: they do not exist for A.
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/admin/teams/{b}"), None),
        (
            Method::PATCH,
            format!("/admin/teams/{b}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/admin/teams/{b}"), None),
        (Method::GET, format!("/admin/keys/{key_b}"), None),
        (
            Method::PATCH,
            format!("/admin/keys/{key_b}"),
            Some(json!({"rpm": 1})),
        ),
        (
            Method::POST,
            format!("/admin/keys/{key_b}/revoke"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/admin/keys/{key_b}/rotate"),
            Some(json!({})),
        ),
        (Method::GET, "/admin/providers/prov-b".into(), None),
        (
            Method::PATCH,
            "/admin/providers/prov-b".into(),
            Some(json!({"timeout_ms": 5})),
        ),
        (Method::DELETE, "/admin/providers/prov-b".into(), None),
        (Method::GET, "/admin/routes/route-b".into(), None),
        (
            Method::PATCH,
            "/admin/routes/route-b".into(),
            Some(json!({"timeout_ms": 5})),
        ),
        (Method::DELETE, "/admin/routes/route-b".into(), None),
        (Method::GET, format!("/admin/budgets/{budget_b}"), None),
        (
            Method::PATCH,
            format!("/admin/budgets/{budget_b}"),
            Some(json!({"amount_usd": "1"})),
        ),
        (Method::DELETE, format!("/admin/budgets/{budget_b}"), None),
        (Method::DELETE, format!("/admin/tokens/{token_b}"), None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = call(cp, method.clone(), &path, &token_a, body).await;
        assert_eq!(status, 404, "{method} {path} by team A: {answer}");
    }

    // Lists show only A's things.
    let (_, teams) = call(cp, Method::GET, "/admin/teams", &token_a, None).await;
    assert_eq!(ids(&teams, "id"), vec![a.clone()]);
    for (path, field) in [
        ("/admin/keys", "id"),
        ("/admin/providers", "id"),
        ("/admin/routes", "alias"),
        ("/admin/budgets", "id"),
        ("/admin/tokens", "id"),
    ] {
        let (status, list) = call(cp, Method::GET, path, &token_a, None).await;
        assert_eq!(status, 200, "{path}: {list}");
        for id in ids(&list, field) {
            assert!(
                ![
                    key_b.as_str(),
                    "prov-b",
                    "route-b",
                    budget_b.as_str(),
                    token_b.as_str()
                ]
                .contains(&id.as_str()),
                "{path} leaks {id}"
            );
        }
    }
    let (_, audit) = call(cp, Method::GET, "/admin/audit?limit=1000", &token_a, None).await;
    for event in audit["data"].as_array().unwrap() {
        assert_ne!(
            event["team_id"].as_str(),
            Some(b.as_str()),
            "audit leaks team B's event {event}"
        );
    }

    // Creating in B, or global things, is refused.
    let creates: Vec<(&str, Value)> = vec![
        ("/admin/keys", json!({"team_id": b, "name": "sneaky"})),
        (
            "/admin/providers",
            json!({"id": "sneaky", "kind": "openai_compatible", "base_url": mock, "team_id": b}),
        ),
        (
            "/admin/routes",
            json!({"alias": "sneaky", "team_id": b, "deployments": [{"provider": "prov-b", "model": "m"}]}),
        ),
        (
            "/admin/budgets",
            json!({"name": "x", "scope": "team", "target": b, "amount_usd": "1", "period": "daily", "hard": true, "team_id": b}),
        ),
        ("/admin/tokens", json!({"name": "x", "team_id": b})),
        ("/admin/teams", json!({"name": "charlie"})),
    ];
    for (path, body) in creates {
        let (status, answer) = call(cp, Method::POST, path, &token_a, Some(body)).await;
        assert_eq!(status, 403, "POST {path} by team A: {answer}");
    }
    let (status, _) = call(
        cp,
        Method::PUT,
        "/admin/pricing/gpt-4o",
        &token_a,
        Some(json!({"input_per_mtok": "0", "output_per_mtok": "0"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        cp,
        Method::PUT,
        "/admin/config",
        &token_a,
        Some(json!({"providers": []})),
    )
    .await;
    assert_eq!(
        status, 403,
        "declarative config replaces everything: global tokens only"
    );
    // A route of A's may not deploy to B's provider.
    let (status, answer) = call(
        cp,
        Method::POST,
        "/admin/routes",
        &token_a,
        Some(json!({"alias": "mine", "deployments": [{"provider": "prov-b", "model": "m"}]})),
    )
    .await;
    assert_eq!(status, 422, "{answer}");

    // And A can manage its own.
    let (status, answer) = call(
        cp,
        Method::POST,
        "/admin/keys",
        &token_a,
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["key"]["team_id"], a);
}

#[tokio::test]
async fn provider_credentials_are_write_only() {
    let s = stack(0).await;
    let secret = "sk-live-very-secret-credential-42";
    let mock = format!("{}/v1", s.env.mock().base_url());
    let created =
        s.cp.post(
            "/admin/providers",
            &json!({"id": "p", "kind": "openai", "base_url": mock, "api_key": secret}),
        )
        .await
        .unwrap();
    let read = s.cp.get("/admin/providers/p").await.unwrap();
    let list = s.cp.get("/admin/providers").await.unwrap();
    s.cp.patch(
        "/admin/providers/p",
        &json!({"api_key": format!("{secret}-rotated")}),
    )
    .await
    .unwrap();
    let audit = s.cp.get("/admin/audit?limit=1000").await.unwrap();
    s.cp.post(
        "/admin/routes",
        &json!({"alias": "r", "deployments": [{"provider": "p", "model": "m"}]}),
    )
    .await
    .unwrap();
    for (what, v) in [
        ("create response", &created),
        ("read", &read),
        ("list", &list),
        ("audit", &audit),
    ] {
        assert!(
            !v.to_string().contains(secret),
            "{what} shows the credential: {v}"
        );
    }
    assert_eq!(read["credential"], "sealed");

    let pg = s.env.postgres().client().await.unwrap();
    let events: String = pg
        .query_one("SELECT string_agg(payload::text, ' ') FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !events.contains(secret),
        "the event log holds the credential in plaintext"
    );
    let spec: String = pg
        .query_one("SELECT spec::text FROM providers WHERE id = 'p'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !spec.contains(secret) && spec.contains("v1:"),
        "stored sealed: {spec}"
    );

    // The published snapshot carries it sealed.
    let snapshot =
        switchyard_tests::support::eventually(std::time::Duration::from_secs(5), || async {
            let text = crate::fixture::published_snapshot(&s.env).await?;
            anyhow::ensure!(text.contains("\"alias\":\"r\""), "route not published yet");
            Ok(text)
        })
        .await
        .unwrap();
    assert!(
        !snapshot.contains(secret) && snapshot.contains("\"sealed\":\"v1:"),
        "{snapshot}"
    );
    let log = s.cp.stderr().unwrap();
    assert!(
        !log.contains(secret),
        "the control plane logged the credential"
    );
}
