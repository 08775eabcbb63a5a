//! Prompt-cache money end to end: requests whose provider reports cache reads and cache writes
//! (kept 5 minutes and 1 hour) on an Anthropic deployment, passed through (`/v1/messages`) and
//! translated (`/v1/chat/completions`), streamed and not; cached input on an OpenAI-compatible
//! deployment; cache reads and writes on Bedrock, whose price leaves cache writes to the input
//! price. Each usage event and the ledger must hold every token class, and cost each class at
//! its own rate to the last decimal; `/admin/spend` shows the classes, `/admin/pricing` names
//! the fallbacks.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{decimal, eventually, wait_until_served, MockProviderOptions};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, client, UPSTREAM_KEY};
use crate::providers::families;

/// USD per million tokens: input, output, cache read, 5-minute write, 1-hour write (`None`:
/// not configured, the input price applies).
struct Price {
    input: &'static str,
    output: &'static str,
    read: Option<&'static str>,
    write_5m: Option<&'static str>,
    write_1h: Option<&'static str>,
}

const CLAUDE: Price = Price {
    input: "3.07",
    output: "15.13",
    read: Some("0.307"),
    write_5m: Some("3.8375"),
    write_1h: Some("6.14"),
};
const OPENAI: Price = Price {
    input: "0.15",
    output: "0.60",
    read: Some("0.075"),
    write_5m: None,
    write_1h: None,
};
const BEDROCK: Price = Price {
    input: "0.83",
    output: "4.07",
    read: Some("0.083"),
    write_5m: None,
    write_1h: None,
};

impl Price {
    fn body(&self) -> Value {
        let mut body = json!({"input_per_mtok": self.input, "output_per_mtok": self.output});
        for (field, v) in [
            ("cache_read_per_mtok", self.read),
            ("cache_write_5m_per_mtok", self.write_5m),
            ("cache_write_1h_per_mtok", self.write_1h),
        ] {
            if let Some(v) = v {
                body[field] = json!(v);
            }
        }
        body
    }

    /// Each class × its rate (a class without a price at the input price), per million.
    fn cost(&self, c: &Classes) -> Decimal {
        let d = |s: &str| decimal(&json!(s)).unwrap();
        let input = d(self.input);
        let or_input = |p: Option<&str>| p.map_or(input, d);
        (Decimal::from(c.prompt - c.read - c.write_5m - c.write_1h) * input
            + Decimal::from(c.read) * or_input(self.read)
            + Decimal::from(c.write_5m) * or_input(self.write_5m)
            + Decimal::from(c.write_1h) * or_input(self.write_1h)
            + Decimal::from(c.completion) * d(self.output))
            / Decimal::from(1_000_000u64)
    }
}

/// Cache reads, 5-minute writes, 1-hour writes.
type Cache = (u64, u64, u64);

/// One request: where it goes, and the cache usage its provider is scripted to report.
struct Case {
    alias: &'static str,
    path: &'static str,
    stream: bool,
    /// Scripted.
    script: Cache,
    /// What the gateway must record: Anthropic reports all three; Bedrock reports writes
    /// without their lifetime (5 minutes); OpenAI reports reads only.
    recorded: fn(Cache) -> Cache,
}

/// The token classes of one request.
#[derive(Debug, Default, Clone, PartialEq)]
struct Classes {
    prompt: u64,
    completion: u64,
    read: u64,
    write_5m: u64,
    write_1h: u64,
}

impl Classes {
    fn of(v: &Value) -> Self {
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
        Self {
            prompt: n("prompt_tokens"),
            completion: n("completion_tokens"),
            read: n("cached_input_tokens"),
            write_5m: n("cache_write_5m_tokens"),
            write_1h: n("cache_write_1h_tokens"),
        }
    }

    fn add(&mut self, o: &Classes) {
        self.prompt += o.prompt;
        self.completion += o.completion;
        self.read += o.read;
        self.write_5m += o.write_5m;
        self.write_1h += o.write_1h;
    }
}

fn as_is(c: Cache) -> Cache {
    c
}

const CASES: [Case; 7] = [
    Case {
        alias: "claude",
        path: "/v1/messages",
        stream: false,
        script: (11, 7, 5),
        recorded: as_is,
    },
    Case {
        alias: "claude",
        path: "/v1/messages",
        stream: true,
        script: (3, 0, 13),
        recorded: as_is,
    },
    Case {
        alias: "claude",
        path: "/v1/chat/completions",
        stream: false,
        script: (17, 9, 0),
        recorded: as_is,
    },
    Case {
        alias: "claude",
        path: "/v1/chat/completions",
        stream: true,
        script: (2, 4, 6),
        recorded: as_is,
    },
    Case {
        alias: "oai",
        path: "/v1/chat/completions",
        stream: false,
        script: (19, 5, 5),
        recorded: |(r, _, _)| (r, 0, 0),
    },
    Case {
        alias: "oai",
        path: "/v1/chat/completions",
        stream: true,
        script: (23, 0, 0),
        recorded: |(r, _, _)| (r, 0, 0),
    },
    Case {
        alias: "rock",
        path: "/v1/chat/completions",
        stream: false,
        script: (8, 6, 4),
        recorded: |(r, a, b)| (r, a + b, 0),
    },
];

/// A prompt of 40 words (40 tokens by the mock's rule).
fn prompt() -> String {
    (1..=40)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn send(base: &str, key: &str, case: &Case) {
    let mut body = json!({"model": case.alias, "max_tokens": 50, "stream": case.stream,
                          "messages": [{"role": "user", "content": prompt()}]});
    if case.stream && case.path == "/v1/chat/completions" {
        body["stream_options"] = json!({"include_usage": true});
    }
    let response = client()
        .post(format!("{base}{}", case.path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{} {}: {text}", case.alias, case.path);
}

#[tokio::test]
async fn every_cache_class_is_costed_at_its_own_rate_to_the_last_decimal() {
    let Stack { cp, env } = stack_with([MockProviderOptions::new().api_key(UPSTREAM_KEY)], 1).await;
    let mock = env.mock().base_url();
    let families: Vec<_> = families(&mock)
        .into_iter()
        .filter(|f| ["claude", "oai", "rock"].contains(&f.alias))
        .collect();
    let price_of = |alias: &str| match alias {
        "claude" => &CLAUDE,
        "oai" => &OPENAI,
        _ => &BEDROCK,
    };
    // Prices first, so the snapshot that serves the last route carries them all.
    for f in &families {
        let path = format!("/admin/pricing/{}", f.model);
        let answer = cp
            .call(Method::PUT, &path, None, Some(&price_of(f.alias).body()))
            .await
            .unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let team = cp
        .post("/admin/teams", &json!({"name": "cache"}))
        .await
        .unwrap();
    for f in &families {
        f.create_in(&cp).await;
    }
    let key = all_models_key(&cp, &team).await;
    let base = env.data_plane().base_url();
    for f in &families {
        wait_until_served(&base, &key, f.alias).await.unwrap();
    }

    // The pricing table shows which classes fall back to the input price.
    let prices = cp.get("/admin/pricing?limit=1000").await.unwrap();
    let row = |model: &str| {
        prices["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == model)
            .cloned()
            .unwrap_or_else(|| panic!("{model} in {prices}"))
    };
    let claude = row("claude-sonnet-4-5");
    assert_eq!(claude["cache_write_1h_per_mtok"], "6.14", "{claude}");
    assert_eq!(claude["input_price_fallbacks"], json!([]), "{claude}");
    assert_eq!(
        row("mock-chat")["input_price_fallbacks"],
        json!(["cache_write_5m", "cache_write_1h"])
    );

    let mut expected: Vec<(String, &str, bool, Classes, Decimal)> = Vec::new();
    for case in &CASES {
        let family = families.iter().find(|f| f.alias == case.alias).unwrap();
        let (read, write_5m, write_1h) = case.script;
        let script = json!({"model": family.model, "cache_read_tokens": read,
                            "cache_write_5m_tokens": write_5m, "cache_write_1h_tokens": write_1h});
        env.mock().script(&script).await.unwrap();
        send(&base, &key, case).await;
        let seen = env.mock().requests().await.unwrap();
        let billed = &seen.last().unwrap()["billed"];
        let (read, write_5m, write_1h) = (case.recorded)(case.script);
        let classes = Classes {
            prompt: billed["prompt_tokens"].as_u64().unwrap(),
            completion: billed["completion_tokens"].as_u64().unwrap(),
            read,
            write_5m,
            write_1h,
        };
        assert_eq!(classes.prompt, 40, "{billed}");
        let cost = price_of(case.alias).cost(&classes);
        let endpoint = if case.path == "/v1/messages" {
            "messages"
        } else {
            "chat"
        };
        expected.push((case.alias.to_owned(), endpoint, case.stream, classes, cost));
    }

    // Every event: its classes, the ledger's cost and the proxy's own estimate.
    let events = eventually(Duration::from_secs(60), || async {
        let list = cp.get("/admin/usage?limit=100").await?;
        let data = list["data"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(
            data.len() >= CASES.len(),
            "folded {} of {}",
            data.len(),
            CASES.len()
        );
        Ok(data)
    })
    .await
    .unwrap();
    assert_eq!(events.len(), CASES.len());
    for (alias, endpoint, streamed, classes, cost) in &expected {
        let e = events
            .iter()
            .find(|e| {
                e["alias"] == *alias && e["endpoint"] == *endpoint && e["streamed"] == *streamed
            })
            .unwrap_or_else(|| panic!("no event for {alias} {endpoint} {streamed}: {events:?}"));
        assert_eq!(&Classes::of(e), classes, "{e}");
        assert_eq!(decimal(&e["cost_usd"]).unwrap(), *cost, "{e}");
        assert_eq!(decimal(&e["proxy_cost_usd"]).unwrap(), *cost, "{e}");
        assert!(*cost > Decimal::ZERO);
    }

    // The ledger by model: every class summed, cost to the last decimal.
    let spend = cp
        .get("/admin/spend?group_by=model&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
        .await
        .unwrap();
    let mut total = Decimal::ZERO;
    for f in &families {
        let mut want = Classes::default();
        let mut cost = Decimal::ZERO;
        for (alias, _, _, c, d) in &expected {
            if alias == f.alias {
                want.add(c);
                cost += d;
            }
        }
        let row = spend["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == f.model)
            .unwrap_or_else(|| panic!("{} in {spend}", f.model));
        assert_eq!(Classes::of(row), want, "{row}");
        assert_eq!(decimal(&row["cost_usd"]).unwrap(), cost, "{row}");
        total += cost;
    }
    assert_eq!(
        decimal(&spend["total"]["cost_usd"]).unwrap(),
        total,
        "{spend}"
    );
    // The writes Anthropic reported, by lifetime, reached the ledger apart.
    assert_eq!(
        spend["total"]["cache_write_1h_tokens"],
        5 + 13 + 6,
        "{spend}"
    );
    assert_eq!(
        spend["total"]["cache_write_5m_tokens"],
        7 + 9 + 4 + 10,
        "{spend}"
    );
}
