//! Usage from every provider dialect lands in the spend ledger exactly: the official `openai`
//! and `anthropic` SDKs send chat, streams (with and without a usage request), a tool call and
//! Messages API requests through one proxy to deployments of each provider kind on the mock;
//! the ledger, grouped by provider, must equal what the mock billed in each dialect × the
//! model's price, to the last decimal, with the request and token counts.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv, SEAL_KEY,
};

use crate::fixture::{python_json, UPSTREAM_KEY};

/// One provider kind under test: its admin-API body, the route alias and upstream model, the
/// model's price (input, output per million tokens), and how to tell its requests in the
/// mock's record (a path prefix).
struct Case {
    provider: Value,
    alias: &'static str,
    model: &'static str,
    price: (&'static str, &'static str),
    path_prefix: &'static str,
}

fn cases(mock: &str) -> Vec<Case> {
    vec![
        Case {
            provider: json!({"id": "anthropic", "kind": "anthropic", "base_url": mock,
                             "api_key": UPSTREAM_KEY}),
            alias: "claude",
            model: "claude-sonnet-4-5",
            price: ("3.07", "15.13"),
            path_prefix: "/v1/messages",
        },
        Case {
            provider: json!({"id": "gemini", "kind": "gemini", "base_url": format!("{mock}/v1beta"),
                             "api_key": UPSTREAM_KEY}),
            alias: "gem",
            model: "gemini-2.5-flash",
            price: ("0.31", "2.57"),
            path_prefix: "/v1beta/",
        },
        Case {
            // The service-account key goes in through the admin API, so it travels sealed.
            provider: json!({"id": "vertex", "kind": "vertex_ai", "base_url": mock,
                             "settings": {"project": "switchyard-test", "location": "us-central1"},
                             "api_key": vertex_key(mock)}),
            alias: "vtx",
            model: "gemini-2.5-pro",
            price: ("1.27", "9.91"),
            path_prefix: "/v1/projects/",
        },
        Case {
            provider: json!({"id": "bedrock", "kind": "bedrock", "base_url": mock,
                             "settings": {"region": "us-east-1"},
                             "api_key": format!("AKIDEXAMPLE:{UPSTREAM_KEY}")}),
            alias: "rock",
            model: "anthropic.claude-3-5-haiku-20241022-v1:0",
            price: ("0.83", "4.07"),
            path_prefix: "/model/",
        },
    ]
}

/// The test-only service account, with its token endpoint on the mock.
fn vertex_key(mock: &str) -> String {
    let text = std::fs::read_to_string(SERVICE_ACCOUNT).expect("fixture key file");
    let mut file: Value = serde_json::from_str(&text).expect("fixture is JSON");
    file["token_uri"] = json!(format!("{mock}/token"));
    file.to_string()
}

const SERVICE_ACCOUNT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/test-only-vertex-service-account.json"
);

/// Per alias: chat, a stream with and without `include_usage`, a forced tool call, and a
/// Messages API call and stream. Prints the number of requests sent.
const TRAFFIC: &str = r#"
import json, os
import anthropic, openai

oa = openai.OpenAI(max_retries=0, timeout=30)
an = anthropic.Anthropic(max_retries=0, timeout=30)
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a word up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
sent = 0
for alias in os.environ["ALIASES"].split(","):
    ask = [{"role": "user", "content": "count these few words for " + alias}]
    r = oa.chat.completions.create(model=alias, messages=ask)
    assert r.usage.prompt_tokens > 0, r
    for include in (True, False):
        opts = {"stream_options": {"include_usage": True}} if include else {}
        text = "".join(c.choices[0].delta.content or "" for c in
                       oa.chat.completions.create(model=alias, messages=ask, stream=True, **opts) if c.choices)
        assert text, alias
    r = oa.chat.completions.create(model=alias, messages=ask, tools=TOOLS, tool_choice="required")
    assert r.choices[0].message.tool_calls, r
    m = an.messages.create(model=alias, max_tokens=64, messages=ask)
    assert m.usage.output_tokens > 0, m
    with an.messages.stream(model=alias, max_tokens=64, messages=ask) as s:
        final = s.get_final_message()
    assert final.usage.output_tokens > 0, final
    sent += 6
print(json.dumps({"sent": sent}))
"#;

fn dec(v: &Value) -> Decimal {
    match v {
        Value::String(s) => Decimal::from_str(s).unwrap(),
        other => Decimal::from_str(&other.to_string()).unwrap(),
    }
}

/// What the ledger should hold for one provider, from the mock's record.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: Decimal,
}

#[tokio::test]
async fn every_dialect_meters_into_the_ledger_exactly() {
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(
            MockProviderOptions::new()
                .api_key(UPSTREAM_KEY)
                .arg("--google-service-account")
                .arg(SERVICE_ACCOUNT),
        )
        .build()
        .await
        .expect("services start");
    let cp = ControlPlane::start(
        env.dir(),
        "control-plane-0",
        &env.postgres().database_url(),
        Some(&env.nats().url()),
        vec![],
    )
    .await
    .expect("control plane starts");
    env.start_data_plane(DataPlaneSpec::nats().env("SWITCHYARD_SEAL_KEY", SEAL_KEY))
        .await
        .expect("data plane starts");

    let cases = cases(&env.mock().base_url());
    let team = cp
        .post("/admin/teams", &json!({"name": "dialects"}))
        .await
        .unwrap();
    for case in &cases {
        cp.post("/admin/providers", &case.provider).await.unwrap();
        let provider = &case.provider["id"];
        cp.post(
            "/admin/routes",
            &json!({"alias": case.alias, "deployments": [{"provider": provider, "model": case.model}]}),
        )
        .await
        .unwrap();
        let answer = cp
            .call(
                reqwest::Method::PUT,
                &format!("/admin/pricing/{}", case.model),
                None,
                Some(&json!({"input_per_mtok": case.price.0, "output_per_mtok": case.price.1})),
            )
            .await
            .unwrap();
        assert!(answer.status < 300, "{answer:?}");
    }
    let key = cp
        .post(
            "/admin/keys",
            &json!({"team_id": team["id"], "name": "svc", "models": ["*"]}),
        )
        .await
        .unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    let base = env.data_plane().base_url();
    let last = cases.last().unwrap().alias;
    eventually(Duration::from_secs(30), || async {
        let status = reqwest::Client::new()
            .get(format!("{base}/v1/models/{last}"))
            .bearer_auth(&secret)
            .send()
            .await?
            .status();
        anyhow::ensure!(status == 200, "{status}");
        Ok(())
    })
    .await
    .unwrap();

    let aliases: Vec<&str> = cases.iter().map(|c| c.alias).collect();
    let out = python_json(
        TRAFFIC,
        &[
            ("OPENAI_BASE_URL", &format!("{base}/v1")),
            ("OPENAI_API_KEY", &secret),
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", &secret),
            ("ALIASES", &aliases.join(",")),
        ],
    )
    .await;
    let sent = out["sent"].as_u64().unwrap_or_else(|| panic!("{out}"));

    // What each provider billed, by the mock's record of its own answers.
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for r in env.mock().requests().await.unwrap() {
        let path = r["path"].as_str().unwrap_or_default();
        let Some(case) = cases.iter().find(|c| path.starts_with(c.path_prefix)) else {
            continue;
        };
        let billed = &r["billed"];
        assert!(!billed.is_null(), "an unbilled answer: {r}");
        let (prompt, completion) = (
            billed["prompt_tokens"].as_u64().unwrap(),
            billed["completion_tokens"].as_u64().unwrap(),
        );
        let e = expected
            .entry(case.provider["id"].as_str().unwrap().to_owned())
            .or_default();
        e.requests += 1;
        e.prompt_tokens += prompt;
        e.completion_tokens += completion;
        e.cost += (Decimal::from(prompt) * dec(&json!(case.price.0))
            + Decimal::from(completion) * dec(&json!(case.price.1)))
            / Decimal::from(1_000_000u64);
    }
    assert_eq!(
        expected.values().map(|e| e.requests).sum::<u64>(),
        sent,
        "{expected:?}"
    );
    for case in &cases {
        assert!(
            expected[case.provider["id"].as_str().unwrap()].cost > Decimal::ZERO,
            "{expected:?}"
        );
    }

    let spend = "/admin/spend?group_by=provider&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let ledger = eventually(Duration::from_secs(60), || async {
        let report = cp.get(spend).await?;
        let folded = report["total"]["requests"].as_u64().unwrap_or(0);
        anyhow::ensure!(folded >= sent, "folded {folded} of {sent}");
        Ok(report)
    })
    .await
    .unwrap();
    let mut got: BTreeMap<String, Expected> = BTreeMap::new();
    for row in ledger["rows"].as_array().unwrap() {
        let t = row;
        got.insert(
            row["provider"]
                .as_str()
                .unwrap_or_else(|| panic!("{ledger}"))
                .to_owned(),
            Expected {
                requests: t["requests"].as_u64().unwrap(),
                prompt_tokens: t["prompt_tokens"].as_u64().unwrap(),
                completion_tokens: t["completion_tokens"].as_u64().unwrap(),
                cost: dec(&t["cost_usd"]),
            },
        );
    }
    assert_eq!(got, expected, "ledger by provider vs the mock's billing");
}
