//! Model discovery, `provider/model` addressing and token counting, driven by the official
//! `anthropic` and `openai` Python SDKs against the mock behind an OpenAI-compatible, an
//! Anthropic and a Gemini provider:
//! - `GET /v1/models` in Anthropic's shape (with `anthropic-version`, `x-api-key` auth) and in
//!   OpenAI's (without), listing aliases and the `provider/model` names a key may address;
//! - `provider/model` names served without a route, priced or unpriced, with the key's
//!   allow-list deciding and a slash-bearing alias winning over the interpretation;
//! - `count_tokens` answered by Anthropic's and Gemini's own count endpoints, or estimated,
//!   with `x-switchyard-token-count` saying which, and never metered.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::support::{eventually, DataPlaneSpec, TestEnv};

use crate::fixture::{
    client, config, gateway_with, json_of, sdk_check, sha256_hex, Sdk, FULL_KEY, LIMITED_KEY,
    UPSTREAM_KEY,
};
use crate::usage_events::spooled_events;

/// Allowed only `provider/model` names of the `mock` and `claude` providers.
const AGENT_KEY: &str = "sk-sy-test-agent-0123456789";

/// The standard config plus an Anthropic and a Gemini provider at the mock, a price table,
/// an alias that reads like `provider/model` and a key limited to two providers.
fn addressing_config(mock: &str) -> String {
    let providers = format!(
        "providers:
  - {{ id: claude, kind: anthropic, base_url: \"{mock}\", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
  - {{ id: gemini, kind: gemini, base_url: \"{mock}/v1beta\", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
"
    );
    let routes = "  - { alias: claude, deployments: [{ provider: claude, model: claude-mock-1 }] }
  - { alias: gemini-chat, deployments: [{ provider: gemini, model: gemini-2.5-flash }] }
  - { alias: claude/claude-mock-1, deployments: [{ provider: mock, model: mock-chat }] }
pricing:
  - { model: mock-chat, input_per_mtok: \"1\", output_per_mtok: \"2\" }
  - { model: claude-sonnet-4-5, input_per_mtok: \"3\", output_per_mtok: \"15\" }
  - { model: gemini-2.5-flash, input_per_mtok: \"0.3\", output_per_mtok: \"2.5\" }";
    let agent = format!(
        "keys:\n  - {{ name: agent, sha256: \"{}\", models: [\"mock/*\", \"claude/*\"] }}\n",
        sha256_hex(AGENT_KEY)
    );
    config(mock, routes)
        .replacen("providers:\n", &providers, 1)
        .replacen("keys:\n", &agent, 1)
}

async fn gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| addressing_config(&env.mock().base_url()))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    gateway_with(spec).await
}

const ANTHROPIC_CHECKS: &str = r#"
import json, os
import anthropic

client = anthropic.Anthropic(max_retries=0, timeout=30)
ASK = [{"role": "user", "content": "say hello to me"}]

def models():
    page = client.models.list(limit=2)
    first = [m.id for m in page.data]
    every = [m.model_dump(mode="json") for m in client.models.list(limit=2)]
    one = client.models.retrieve(os.environ["MODEL"])
    return {"first_page": first, "has_more": page.has_more, "all": every,
            "retrieved": one.model_dump(mode="json")}

def retrieve():
    return client.models.retrieve(os.environ["MODEL"]).model_dump(mode="json")

def count():
    raw = client.messages.with_raw_response.count_tokens(
        model=os.environ["MODEL"], system="Be brief.", messages=ASK)
    return {"input_tokens": raw.parse().input_tokens, "source": raw.headers.get("x-switchyard-token-count"),
            "deployment": raw.headers.get("x-switchyard-deployment")}

def message():
    m = client.messages.create(model=os.environ["MODEL"], max_tokens=50, messages=ASK)
    return {"model": m.model, "text": "".join(b.text for b in m.content if b.type == "text")}

"#;

const OPENAI_CHECKS: &str = r#"
import json, os
import openai

client = openai.OpenAI(max_retries=0, timeout=30)

def models():
    return {"ids": [m.id for m in client.models.list()]}

def chat():
    r = client.chat.completions.create(model=os.environ["MODEL"],
                                       messages=[{"role": "user", "content": "say hello to me"}])
    return {"content": r.choices[0].message.content, "model": r.model}

"#;

async fn anthropic_sdk(env: &TestEnv, check: &str, key: &str, model: &str) -> Value {
    sdk_check(
        env,
        Sdk::Anthropic,
        ANTHROPIC_CHECKS,
        key,
        check,
        &[("MODEL", model)],
    )
    .await
}

async fn openai_sdk(env: &TestEnv, check: &str, key: &str, model: &str) -> Value {
    sdk_check(
        env,
        Sdk::OpenAi,
        OPENAI_CHECKS,
        key,
        check,
        &[("MODEL", model)],
    )
    .await
}

fn ids(models: &Value) -> Vec<&str> {
    models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn models_are_listed_in_anthropics_shape_with_the_anthropic_version_header() {
    let env = gateway().await;
    let out = anthropic_sdk(&env, "models", AGENT_KEY, "claude/claude-sonnet-4-5").await;
    // The agent key may use `mock/*` and `claude/*`: the priced model deployed on `mock`,
    // the priced Anthropic model (by family), and the alias that reads `claude/...`; never
    // a Gemini model, an unpriced one, or an alias outside its list.
    let every = ids(&out["all"]);
    assert_eq!(
        every,
        [
            "claude/claude-mock-1",
            "claude/claude-sonnet-4-5",
            "mock/mock-chat"
        ],
        "{out}"
    );
    assert_eq!(out["first_page"], json!(every[..2]), "{out}");
    assert_eq!(out["has_more"], true);
    for m in out["all"].as_array().unwrap() {
        assert_eq!(m["type"], "model", "{m}");
        assert_eq!(m["display_name"], m["id"]);
        assert_eq!(m["created_at"], "1970-01-01T00:00:00Z");
    }
    assert_eq!(out["retrieved"]["id"], "claude/claude-sonnet-4-5", "{out}");
    assert_eq!(out["retrieved"]["type"], "model");

    // A name the key may not use, and one that does not exist: Anthropic's error shape.
    let denied = anthropic_sdk(&env, "retrieve", AGENT_KEY, "gemini/gemini-2.5-flash").await;
    assert_eq!(denied["status"], 403, "{denied}");
    assert_eq!(denied["body"]["type"], "error");
    assert_eq!(denied["body"]["error"]["type"], "permission_error");
    let missing = anthropic_sdk(&env, "retrieve", FULL_KEY, "nope/model").await;
    assert_eq!(missing["exception"], "NotFoundError", "{missing}");
    assert_eq!(missing["body"]["error"]["type"], "not_found_error");

    // A bad page size is the client's 400, in Anthropic's shape.
    let bad = client()
        .get(env.data_plane().url("/v1/models?limit=0"))
        .header("x-api-key", FULL_KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn openai_listing_is_unchanged_in_shape_and_shows_provider_model_names() {
    let env = gateway().await;
    let limited = openai_sdk(&env, "models", LIMITED_KEY, "").await;
    assert_eq!(limited["ids"], json!(["chat"]), "{limited}");
    let full = openai_sdk(&env, "models", FULL_KEY, "").await;
    let names: Vec<&str> = full["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "chat",
        "claude",
        "mock/mock-chat",
        "claude/claude-sonnet-4-5",
        "gemini/gemini-2.5-flash",
        "claude/claude-mock-1",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    // Priced models of another family are not offered under a provider.
    assert!(!names.contains(&"gemini/claude-sonnet-4-5"), "{names:?}");
    assert!(!names.contains(&"claude/mock-chat"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let models = client().get(env.data_plane().url("/v1/models"));
    let raw = json_of(models.bearer_auth(FULL_KEY)).await;
    assert_eq!(raw["object"], "list", "{raw}");
    assert_eq!(raw["data"][0]["object"], "model");
}

#[tokio::test]
async fn provider_model_names_reach_the_provider_without_a_route() {
    let env = gateway().await;
    let chat = openai_sdk(&env, "chat", AGENT_KEY, "mock/mock-chat").await;
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    let unpriced = openai_sdk(&env, "chat", FULL_KEY, "mock/mock-unpriced").await;
    assert_eq!(
        unpriced["content"], "Hello from the mock provider.",
        "{unpriced}"
    );
    // Anthropic SDK, `provider/model` of an Anthropic provider: passed through natively.
    let native = anthropic_sdk(&env, "message", AGENT_KEY, "claude/claude-sonnet-4-5").await;
    assert_eq!(native["model"], "claude-sonnet-4-5", "{native}");
    // The alias that reads `claude/claude-mock-1` wins: it is served by the OpenAI mock.
    let alias = anthropic_sdk(&env, "message", AGENT_KEY, "claude/claude-mock-1").await;
    assert_eq!(alias["text"], "Hello from the mock provider.", "{alias}");

    let seen = env.mock().requests().await.unwrap();
    let paths_models: Vec<(&str, &str)> = seen
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["body"]["model"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        paths_models,
        [
            ("/v1/chat/completions", "mock-chat"),
            ("/v1/chat/completions", "mock-unpriced"),
            ("/v1/messages", "claude-sonnet-4-5"),
            ("/v1/chat/completions", "mock-chat"),
        ]
    );

    // Refusals in each client's dialect, before any provider is called.
    let denied = openai_sdk(&env, "chat", AGENT_KEY, "gemini/gemini-2.5-flash").await;
    assert_eq!(denied["status"], 403, "{denied}");
    assert_eq!(denied["body"]["code"], "model_not_allowed");
    let unknown = openai_sdk(&env, "chat", FULL_KEY, "nope/gpt-4o").await;
    assert_eq!(unknown["status"], 404, "{unknown}");
    let limited = anthropic_sdk(&env, "message", LIMITED_KEY, "mock/mock-chat").await;
    assert_eq!(limited["status"], 403, "{limited}");
    assert_eq!(limited["body"]["error"]["type"], "permission_error");
    assert_eq!(env.mock().requests().await.unwrap().len(), 4);

    // Metered like any request: named as the caller wrote it, priced by the upstream model
    // from the snapshot's table, or unpriced (cost zero) when the table lacks it.
    let spool = env.data_plane().spool_dir().to_owned();
    eventually(Duration::from_secs(20), || async {
        spooled_events(&spool).len() == 4
    })
    .await
    .unwrap();
    let mut events = spooled_events(&spool);
    events.sort_by_key(|e| e.time_ms);
    let named: Vec<(&str, Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.alias.as_str(),
                e.deployment.as_deref(),
                e.model.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("mock/mock-chat", Some("mock/mock-chat"), Some("mock-chat")),
            (
                "mock/mock-unpriced",
                Some("mock/mock-unpriced"),
                Some("mock-unpriced")
            ),
            (
                "claude/claude-sonnet-4-5",
                Some("claude/claude-sonnet-4-5"),
                Some("claude-sonnet-4-5")
            ),
            (
                "claude/claude-mock-1",
                Some("mock/mock-chat"),
                Some("mock-chat")
            ),
        ]
    );
    // 4 prompt and 5 completion tokens at $1 and $2 per million.
    assert_eq!(events[0].cost_usd.to_string(), "0.000014");
    assert!(events[1].cost_usd.is_zero(), "{:?}", events[1]);
    assert!(events.iter().all(|e| e.fallbacks == 0));
}

#[tokio::test]
async fn count_tokens_asks_anthropic_and_gemini_and_estimates_elsewhere() {
    let env = gateway().await;
    // "Be brief." (2 words) + "say hello to me" (4 words), by the mock's word rule.
    let claude = anthropic_sdk(&env, "count", FULL_KEY, "claude").await;
    assert_eq!(
        claude,
        json!({"input_tokens": 6, "source": "provider", "deployment": "claude/claude-mock-1"})
    );
    let direct = anthropic_sdk(&env, "count", AGENT_KEY, "claude/claude-sonnet-4-5").await;
    assert_eq!(direct["input_tokens"], 6, "{direct}");
    assert_eq!(direct["source"], "provider");
    let gemini = anthropic_sdk(&env, "count", FULL_KEY, "gemini-chat").await;
    assert_eq!(
        gemini,
        json!({"input_tokens": 6, "source": "provider", "deployment": "gemini/gemini-2.5-flash"})
    );
    // The OpenAI family has no count endpoint: the gateway's estimate, which errs high.
    let openai = anthropic_sdk(&env, "count", FULL_KEY, "chat").await;
    assert_eq!(openai["source"], "estimate", "{openai}");
    assert!(openai["input_tokens"].as_u64().unwrap() >= 6, "{openai}");

    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let anthropic = &seen[0];
    assert_eq!(anthropic["path"], "/v1/messages/count_tokens");
    assert_eq!(anthropic["body"]["model"], "claude-mock-1");
    assert_eq!(anthropic["body"]["system"], "Be brief.");
    assert_eq!(anthropic["headers"]["x-api-key"], UPSTREAM_KEY);
    assert!(anthropic["headers"]["anthropic-version"].is_string());
    assert_eq!(seen[1]["body"]["model"], "claude-sonnet-4-5");
    let google = &seen[2];
    assert_eq!(
        google["path"],
        "/v1beta/models/gemini-2.5-flash:countTokens"
    );
    assert_eq!(
        google["body"]["generateContentRequest"]["model"],
        "models/gemini-2.5-flash"
    );
    assert!(seen.iter().all(|r| r["billed"].is_null()), "{seen:?}");

    // A provider count that fails falls back to the estimate.
    env.mock()
        .script(&json!({"model": "claude-mock-1", "status": 500}))
        .await
        .unwrap();
    let fallback = anthropic_sdk(&env, "count", FULL_KEY, "claude").await;
    assert_eq!(fallback["source"], "estimate", "{fallback}");
    assert!(fallback["input_tokens"].as_u64().unwrap() >= 6);

    // Nothing is metered: the one chat sent afterwards is the only usage event.
    let chat = openai_sdk(&env, "chat", FULL_KEY, "chat").await;
    assert_eq!(chat["content"], "Hello from the mock provider.");
    let spool = env.data_plane().spool_dir().to_owned();
    eventually(Duration::from_secs(20), || async {
        !spooled_events(&spool).is_empty()
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = spooled_events(&spool);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].endpoint, "chat");
}
