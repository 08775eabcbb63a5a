//! The provider matrix: every cross-provider check runs over every provider family from one
//! table ([`families`]): the OpenAI-compatible family, Anthropic, Gemini, Vertex AI (Gemini
//! and Claude) and Bedrock, each configured through the admin API on one mock that speaks all
//! their wire formats (checking each one's auth: upstream key, `x-api-key`, `x-goog-api-key`,
//! an OAuth token, a SigV4 signature). Checks: chat and stream through the official `openai` SDK (the
//! upstream path, auth and billing of each), a tool round trip (plain and streamed), errors in
//! the OpenAI dialect (400 with the provider's message, 429, a cut stream), and usage from
//! every dialect landing in the spend ledger exactly. What only one provider does (Vertex token
//! refresh, Bedrock session tokens, Anthropic's 529) stays in that provider's own file.

use std::collections::BTreeMap;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{
    decimal, eventually, openai_sdk, wait_until_served, ControlPlane, MockProviderOptions, TestEnv,
};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, assert_billed, python_json, UPSTREAM_KEY};

/// The test-only service account (a key generated for this suite; it grants nothing).
pub const SERVICE_ACCOUNT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/test-only-vertex-service-account.json"
);

/// One provider family: its admin-API provider body, route alias, upstream model and price;
/// where its chat and stream requests go upstream; how its auth looks in the mock's record;
/// and what its tool calls look like.
pub(crate) struct Family {
    pub(crate) provider: Value,
    pub(crate) alias: &'static str,
    pub(crate) model: &'static str,
    /// Input and output USD per million tokens.
    pub(crate) price: (&'static str, &'static str),
    /// Upstream path of a chat and of a stream (and the stream's query, if any).
    chat_path: String,
    stream_path: String,
    stream_query: Option<&'static str>,
    /// Checks the upstream request's auth headers.
    auth: fn(&Value),
    /// The prefix of the ids its tool calls get; `None`: the family's mock answers no tools.
    tool_ids: Option<&'static str>,
}

impl Family {
    /// Creates the family's provider, and its route to the family's model, through `cp`.
    pub(crate) async fn create_in(&self, cp: &ControlPlane) {
        cp.post("/admin/providers", &self.provider).await.unwrap();
        let route = json!({"alias": self.alias,
                           "deployments": [{"provider": self.provider["id"], "model": self.model}]});
        cp.post("/admin/routes", &route).await.unwrap();
    }
}

pub(crate) fn families(mock: &str) -> Vec<Family> {
    let vertex = |model: &str, action: &str| {
        format!("/v1/projects/switchyard-test/locations/us-central1/publishers/google/models/{model}:{action}")
    };
    let vertex_claude = |action: &str| {
        format!("/v1/projects/switchyard-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:{action}")
    };
    vec![
        Family {
            provider: json!({"id": "openai", "kind": "openai_compatible",
                             "base_url": format!("{mock}/v1"), "api_key": UPSTREAM_KEY}),
            alias: "oai",
            model: "mock-chat",
            price: ("0.15", "0.60"),
            chat_path: "/v1/chat/completions".into(),
            stream_path: "/v1/chat/completions".into(),
            stream_query: None,
            auth: |h| assert_eq!(h["authorization"], format!("Bearer {UPSTREAM_KEY}")),
            tool_ids: None,
        },
        Family {
            provider: json!({"id": "anthropic", "kind": "anthropic", "base_url": mock,
                             "api_key": UPSTREAM_KEY}),
            alias: "claude",
            model: "claude-sonnet-4-5",
            price: ("3.07", "15.13"),
            chat_path: "/v1/messages".into(),
            stream_path: "/v1/messages".into(),
            stream_query: None,
            auth: |h| {
                assert_eq!(h["x-api-key"], UPSTREAM_KEY);
                assert_eq!(h["anthropic-version"], "2023-06-01");
                assert!(h.get("authorization").is_none());
            },
            tool_ids: Some("toolu_"),
        },
        Family {
            provider: json!({"id": "gemini", "kind": "gemini", "base_url": format!("{mock}/v1beta"),
                             "api_key": UPSTREAM_KEY}),
            alias: "gem",
            model: "gemini-2.5-flash",
            price: ("0.31", "2.57"),
            chat_path: "/v1beta/models/gemini-2.5-flash:generateContent".into(),
            stream_path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent".into(),
            stream_query: Some("alt=sse"),
            auth: |h| {
                assert_eq!(h["x-goog-api-key"], UPSTREAM_KEY);
                assert!(h.get("authorization").is_none());
            },
            tool_ids: Some("call_"),
        },
        Family {
            // The service-account key goes in through the admin API, so it travels sealed.
            provider: json!({"id": "vertex", "kind": "vertex_ai", "base_url": mock,
                             "settings": {"project": "switchyard-test", "location": "us-central1"},
                             "api_key": vertex_key(mock)}),
            alias: "vtx",
            model: "gemini-2.5-pro",
            price: ("1.27", "9.91"),
            chat_path: vertex("gemini-2.5-pro", "generateContent"),
            stream_path: vertex("gemini-2.5-pro", "streamGenerateContent"),
            stream_query: Some("alt=sse"),
            auth: |h| {
                let bearer = h["authorization"].as_str().unwrap_or_default();
                assert!(bearer.starts_with("Bearer ya29.mock-"), "{h}");
                assert!(h.get("x-goog-api-key").is_none());
            },
            tool_ids: Some("call_"),
        },
        Family {
            // Claude on Vertex: Anthropic's wire, Vertex's URLs and token.
            provider: json!({"id": "vertex-claude", "kind": "vertex_ai", "base_url": mock,
                             "settings": {"project": "switchyard-test", "location": "us-east5"},
                             "api_key": vertex_key(mock)}),
            alias: "vtx-claude",
            model: "claude-sonnet-4-5@20250929",
            price: ("2.93", "14.71"),
            chat_path: vertex_claude("rawPredict"),
            stream_path: vertex_claude("streamRawPredict"),
            stream_query: None,
            auth: |h| {
                let bearer = h["authorization"].as_str().unwrap_or_default();
                assert!(bearer.starts_with("Bearer ya29.mock-"), "{h}");
                assert!(h.get("x-api-key").is_none());
                assert!(h.get("anthropic-version").is_none());
            },
            tool_ids: Some("toolu_"),
        },
        Family {
            provider: json!({"id": "bedrock", "kind": "bedrock", "base_url": mock,
                             "settings": {"region": "us-east-1"},
                             "api_key": format!("AKIDEXAMPLE:{UPSTREAM_KEY}")}),
            alias: "rock",
            model: "anthropic.claude-3-5-haiku-20241022-v1:0",
            price: ("0.83", "4.07"),
            chat_path: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse".into(),
            stream_path: "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream".into(),
            stream_query: None,
            auth: |h| {
                let auth = h["authorization"].as_str().unwrap_or_default();
                assert!(
                    auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
                    "{auth}"
                );
                assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
                assert!(!auth.contains(UPSTREAM_KEY));
            },
            tool_ids: Some("tooluse_"),
        },
    ]
}

/// An `openai` provider on the mock (alias `gpt`): chat goes to the mock's chat completions,
/// and a Responses client's request passes through to the mock's own `/v1/responses`. Not in
/// [`families`]: only the tests that need a native Responses upstream add it.
pub(crate) fn openai_family(mock: &str) -> Family {
    Family {
        provider: json!({"id": "openai-native", "kind": "openai", "base_url": format!("{mock}/v1"),
                         "api_key": UPSTREAM_KEY}),
        alias: "gpt",
        model: "gpt-mock",
        price: ("1.25", "10.00"),
        chat_path: "/v1/chat/completions".into(),
        stream_path: "/v1/chat/completions".into(),
        stream_query: None,
        auth: |h| assert_eq!(h["authorization"], format!("Bearer {UPSTREAM_KEY}")),
        tool_ids: None,
    }
}

/// The test-only service account, with its token endpoint on the mock.
pub fn vertex_key(mock: &str) -> String {
    let text = std::fs::read_to_string(SERVICE_ACCOUNT).expect("fixture key file");
    let mut file: Value = serde_json::from_str(&text).expect("fixture is JSON");
    file["token_uri"] = json!(format!("{mock}/token"));
    file.to_string()
}

/// Postgres, NATS, the mock (trusting the test service account), a control plane with every
/// family configured and priced through the admin API, and a data plane fed by it.
pub(crate) struct Matrix {
    pub(crate) env: TestEnv,
    pub(crate) cp: ControlPlane,
    pub(crate) families: Vec<Family>,
    /// A key of team `matrix` allowed every alias.
    pub(crate) key: String,
}

async fn matrix() -> Matrix {
    matrix_of(families).await
}

/// A [`Matrix`] of the families `of` names for the mock's base URL.
pub(crate) async fn matrix_of(of: fn(&str) -> Vec<Family>) -> Matrix {
    let mock = MockProviderOptions::new()
        .api_key(UPSTREAM_KEY)
        .arg("--google-service-account")
        .arg(SERVICE_ACCOUNT);
    let Stack { cp, env } = stack_with([mock], 1).await;
    let families = of(&env.mock().base_url());
    let team = cp
        .post("/admin/teams", &json!({"name": "matrix"}))
        .await
        .unwrap();
    for f in &families {
        f.create_in(&cp).await;
        let price = json!({"input_per_mtok": f.price.0, "output_per_mtok": f.price.1});
        let path = format!("/admin/pricing/{}", f.model);
        let answer = cp
            .call(reqwest::Method::PUT, &path, None, Some(&price))
            .await
            .unwrap();
        assert!(answer.status < 300, "{answer:?}");
    }
    let key = all_models_key(&cp, &team).await;
    let base = env.data_plane().base_url();
    let last = families.last().unwrap().alias;
    wait_until_served(&base, &key, last).await.unwrap();
    Matrix {
        env,
        cp,
        families,
        key,
    }
}

impl Matrix {
    async fn sdk(&self, family: &Family, check: &str) -> Value {
        let base = self.env.data_plane().base_url();
        openai_sdk(&base, &self.key, family.alias, check, &[])
            .await
            .unwrap()
    }

    /// The mock's record of API requests (token requests left out).
    pub(crate) async fn upstream(&self) -> Vec<Value> {
        let seen = self.env.mock().requests().await.unwrap();
        seen.into_iter().filter(|r| r["path"] != "/token").collect()
    }

    /// Checks the last API request the mock received for `family`: its path (and `query`, if
    /// given), its auth, and that it was billed 4 prompt and 5 completion tokens.
    async fn check_last_upstream(&self, family: &Family, path: &str, query: Option<&str>) {
        let seen = self.upstream().await;
        let sent = seen.last().unwrap();
        assert_eq!(sent["path"], path, "{}", family.alias);
        if let Some(query) = query {
            assert_eq!(sent["query"], query, "{}", family.alias);
        }
        (family.auth)(&sent["headers"]);
        assert_billed(sent, 4, 5);
    }

    /// Queues a mock script for this family's model only.
    async fn script(&self, family: &Family, script: Value) {
        let mut script = script;
        script["model"] = json!(family.model);
        self.env.mock().script(&script).await.unwrap();
    }
}

#[tokio::test]
async fn provider_matrix_chat_and_stream_through_the_openai_sdk() {
    let m = matrix().await;
    for f in &m.families {
        let chat = m.sdk(f, "chat").await;
        assert_eq!(
            chat["content"], "Hello from the mock provider.",
            "{}: {chat}",
            f.alias
        );
        assert_eq!(chat["finish_reason"], "stop", "{}", f.alias);
        assert_eq!(
            chat["usage"],
            json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}),
            "{}",
            f.alias
        );
        m.check_last_upstream(f, &f.chat_path, None).await;

        let stream = m.sdk(f, "stream").await;
        assert_eq!(
            stream["content"], "Hello from the mock provider.",
            "{}: {stream}",
            f.alias
        );
        assert_eq!(
            stream["usage"],
            json!({"prompt_tokens": 4, "completion_tokens": 5}),
            "{}",
            f.alias
        );
        // One chunk per upstream event reached the SDK (role, five words, finish, usage),
        // not one lump at the end.
        let arrivals = stream["arrivals_ms"].as_array().map_or(0, Vec::len);
        assert!(arrivals >= 7, "{}: {stream}", f.alias);
        m.check_last_upstream(f, &f.stream_path, f.stream_query)
            .await;
    }
}

#[tokio::test]
async fn provider_matrix_tool_round_trip_plain_and_streamed() {
    let m = matrix().await;
    for f in &m.families {
        let Some(prefix) = f.tool_ids else { continue };
        let tool = m.sdk(f, "tools").await;
        assert_eq!(tool["finish_reason"], "tool_calls", "{}: {tool}", f.alias);
        assert_eq!(tool["name"], "get_weather", "{}", f.alias);
        let id = tool["id"].as_str().unwrap_or_default();
        assert!(id.starts_with(prefix), "{}: {tool}", f.alias);
        assert!(tool["arguments"].is_object(), "{}: {tool}", f.alias);
        let streamed = &tool["streamed"];
        assert_eq!(streamed["name"], "get_weather", "{}: {tool}", f.alias);
        assert_eq!(
            streamed["arguments"], tool["arguments"],
            "{}: the streamed arguments are the plain call's",
            f.alias
        );
        assert_eq!(streamed["finish"], "tool_calls", "{}", f.alias);
        assert!(
            streamed["id"]
                .as_str()
                .is_some_and(|s| s.starts_with(prefix)),
            "{}: {tool}",
            f.alias
        );
        assert_eq!(
            tool["second"], "Hello from the mock provider.",
            "{}",
            f.alias
        );
        assert_eq!(tool["second_finish"], "stop", "{}", f.alias);
        assert!(tool["usage"]["prompt_tokens"].as_u64() > Some(0), "{tool}");
    }
}

#[tokio::test]
async fn provider_matrix_errors_reach_the_sdk_in_the_openai_dialect() {
    let m = matrix().await;
    for f in &m.families {
        let said = format!("{} says no to this request", f.alias);
        m.script(f, json!({"status": 400, "error_message": said}))
            .await;
        let rejected = m.sdk(f, "chat").await;
        assert_eq!(
            rejected["exception"], "BadRequestError",
            "{}: {rejected}",
            f.alias
        );
        assert_eq!(rejected["status"], 400);
        let message = rejected["message"].as_str().unwrap_or_default();
        assert!(message.contains(&said), "{}: {rejected}", f.alias);

        m.script(f, json!({"status": 429})).await;
        let throttled = m.sdk(f, "chat").await;
        assert_eq!(
            throttled["exception"], "RateLimitError",
            "{}: {throttled}",
            f.alias
        );

        // A stream that ends before the provider's own end is not presented as complete.
        m.script(f, json!({"fault": "truncate_stream"})).await;
        let cut = m.sdk(f, "stream").await;
        assert!(cut["exception"].is_string(), "{}: {cut}", f.alias);
    }
}

/// Per alias: chat, a stream with and without `include_usage`, a forced tool call (where the
/// family answers tools), and a Messages API call and stream. Prints the requests sent.
const TRAFFIC: &str = r#"
import json, os
import anthropic, openai

oa = openai.OpenAI(max_retries=0, timeout=30)
an = anthropic.Anthropic(max_retries=0, timeout=30)
TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Look a word up",
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
no_tools = set(os.environ["NO_TOOLS"].split(","))
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
    if alias not in no_tools:
        r = oa.chat.completions.create(model=alias, messages=ask, tools=TOOLS, tool_choice="required")
        assert r.choices[0].message.tool_calls, r
        sent += 1
    m = an.messages.create(model=alias, max_tokens=64, messages=ask)
    assert m.usage.output_tokens > 0, m
    with an.messages.stream(model=alias, max_tokens=64, messages=ask) as s:
        final = s.get_final_message()
    assert final.usage.output_tokens > 0, final
    sent += 5
print(json.dumps({"sent": sent}))
"#;

/// What the ledger should hold for one provider, from the mock's record.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Expected {
    pub(crate) requests: u64,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cost: Decimal,
}

impl Expected {
    /// Adds one billed answer at `price` (input and output USD per million tokens).
    pub(crate) fn add(&mut self, prompt: u64, completion: u64, price: (&str, &str)) {
        self.requests += 1;
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.cost += (Decimal::from(prompt) * decimal(&json!(price.0)).unwrap()
            + Decimal::from(completion) * decimal(&json!(price.1)).unwrap())
            / Decimal::from(1_000_000u64);
    }
}

#[tokio::test]
async fn provider_matrix_every_dialect_meters_into_the_ledger_exactly() {
    let m = matrix().await;
    let base = m.env.data_plane().base_url();
    let aliases: Vec<&str> = m.families.iter().map(|f| f.alias).collect();
    let no_tools: Vec<&str> = m
        .families
        .iter()
        .filter(|f| f.tool_ids.is_none())
        .map(|f| f.alias)
        .collect();
    let out = python_json(
        TRAFFIC,
        &[
            ("OPENAI_BASE_URL", &format!("{base}/v1")),
            ("OPENAI_API_KEY", &m.key),
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", &m.key),
            ("ALIASES", &aliases.join(",")),
            ("NO_TOOLS", &no_tools.join(",")),
        ],
    )
    .await;
    let sent = out["sent"].as_u64().unwrap_or_else(|| panic!("{out}"));

    // What each provider billed, by the mock's record of its own answers.
    let expected = billed_by_provider(&m.upstream().await, &m.families);
    assert_eq!(
        expected.values().map(|e| e.requests).sum::<u64>(),
        sent,
        "{expected:?}"
    );
    for f in &m.families {
        let id = f.provider["id"].as_str().unwrap();
        assert!(expected[id].cost > Decimal::ZERO, "{expected:?}");
    }

    assert_ledger_by_provider(&m.cp, &expected).await;
}

/// What each family's provider billed (by provider id), from the mock's records of its answers
/// (`upstream`, token requests left out); a record is the family's whose upstream model it
/// names.
pub(crate) fn billed_by_provider(
    upstream: &[Value],
    families: &[Family],
) -> BTreeMap<String, Expected> {
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for r in upstream {
        let Some(f) = families.iter().find(|f| r["model"] == f.model) else {
            panic!("a request no family sent: {r}")
        };
        let billed = &r["billed"];
        assert!(!billed.is_null(), "an unbilled answer: {r}");
        let (prompt, completion) = (
            billed["prompt_tokens"].as_u64().unwrap(),
            billed["completion_tokens"].as_u64().unwrap(),
        );
        expected
            .entry(f.provider["id"].as_str().unwrap().to_owned())
            .or_default()
            .add(prompt, completion, f.price);
    }
    expected
}

/// Waits for the spend ledger to hold every request of `expected` and checks it, by
/// provider, to the last decimal.
pub(crate) async fn assert_ledger_by_provider(
    cp: &ControlPlane,
    expected: &BTreeMap<String, Expected>,
) {
    let sent: u64 = expected.values().map(|e| e.requests).sum();
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
        let provider = row["provider"].as_str();
        got.insert(
            provider.unwrap_or_else(|| panic!("{ledger}")).to_owned(),
            Expected {
                requests: row["requests"].as_u64().unwrap(),
                prompt_tokens: row["prompt_tokens"].as_u64().unwrap(),
                completion_tokens: row["completion_tokens"].as_u64().unwrap(),
                cost: decimal(&row["cost_usd"]).unwrap(),
            },
        );
    }
    assert_eq!(&got, expected, "ledger by provider vs the mock's billing");
}
