//! The exact response cache through real proxies sharing one NATS: an answer one proxy got
//! from the provider is served by another (`x-switchyard-cache: hit`, the mock saw one
//! request); streamed hits replay as well-formed streams in each dialect, read by the official
//! SDKs; the client's `Cache-Control` and `x-switchyard-cache: off`, a team's isolation, the
//! TTL and a purge are honoured; a hit is metered with no cost and the cost it saved, and
//! `/admin/spend` adds the savings up.

use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{decimal, eventually, wait_until_served, ControlPlane, DataPlane};

use crate::control_plane::{stack, Stack};
use crate::fixture::{add_mock_provider, all_models_key, client, python_json};

/// Two proxies, the mock as `chat` (priced, so a hit saves something), a short-lived `short`
/// route, a global cache policy and a 1-second one for `short`; teams `a` and `b` with a key
/// each (secrets returned).
async fn cached_stack() -> (Stack, String, String) {
    let s = stack(2).await;
    add_mock_provider(&s.cp, &s.env).await;
    for alias in ["chat", "short"] {
        let route =
            json!({"alias": alias, "deployments": [{"provider": "mock", "model": "mock-chat"}]});
        s.cp.post("/admin/routes", &route).await.unwrap();
    }
    // Anthropic itself: Messages requests pass through.
    let anthropic = json!({"id": "anthropic", "kind": "anthropic", "base_url": s.env.mock().base_url(),
                           "api_key": crate::fixture::UPSTREAM_KEY});
    s.cp.post("/admin/providers", &anthropic).await.unwrap();
    let claude = json!({"alias": "claude", "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]});
    s.cp.post("/admin/routes", &claude).await.unwrap();
    // OpenAI itself: Responses requests pass through.
    let openai = json!({"id": "openai", "kind": "openai", "base_url": format!("{}/v1", s.env.mock().base_url()),
                        "api_key": crate::fixture::UPSTREAM_KEY});
    s.cp.post("/admin/providers", &openai).await.unwrap();
    let gpt = json!({"alias": "gpt", "deployments": [{"provider": "openai", "model": "gpt-5"}]});
    s.cp.post("/admin/routes", &gpt).await.unwrap();
    let price = json!({"input_per_mtok": "1000", "output_per_mtok": "2000"});
    let put =
        s.cp.call(Method::PUT, "/admin/pricing/mock-chat", None, Some(&price))
            .await
            .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    s.cp.post(
        "/admin/cache-policies",
        &json!({"id": "default", "ttl_secs": 600}),
    )
    .await
    .unwrap();
    s.cp.post(
        "/admin/cache-policies",
        &json!({"id": "short", "ttl_secs": 1, "applies_to": {"routes": ["short"]}}),
    )
    .await
    .unwrap();
    let a =
        s.cp.post("/admin/teams", &json!({"name": "a"}))
            .await
            .unwrap();
    let b =
        s.cp.post("/admin/teams", &json!({"name": "b"}))
            .await
            .unwrap();
    let key_a = all_models_key(&s.cp, &a).await;
    let key_b = all_models_key(&s.cp, &b).await;
    for proxy in s.env.data_planes() {
        wait_until_served(&proxy.base_url(), &key_b, "chat")
            .await
            .unwrap();
    }
    (s, key_a, key_b)
}

/// How many entries `proxy` has written to the cache.
async fn writes(proxy: &DataPlane) -> u64 {
    let text = proxy.metrics().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"switchyard_cache_writes_total{result="ok"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The snapshot version `proxy` serves.
async fn snapshot_version(proxy: &DataPlane) -> u64 {
    let text = proxy.metrics().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("switchyard_snapshot_version "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits until `proxy` has written `n` entries.
async fn wait_writes(proxy: &DataPlane, n: u64) {
    eventually(Duration::from_secs(10), || async {
        let w = writes(proxy).await;
        anyhow::ensure!(w >= n, "{w} cache writes, want {n}");
        Ok(())
    })
    .await
    .unwrap();
}

/// Chat and Messages requests the mock has seen.
async fn upstream_calls(s: &Stack) -> usize {
    let seen = s.env.mock().requests().await.unwrap();
    seen.iter()
        .filter(|r| {
            ["/v1/chat/completions", "/v1/messages", "/v1/responses"]
                .contains(&r["path"].as_str().unwrap_or(""))
        })
        .count()
}

/// A non-streamed chat through `proxy`: the cache header and the answer's text.
async fn ask(
    proxy: &DataPlane,
    key: &str,
    model: &str,
    prompt: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": prompt}],
                      "temperature": 0, "user": format!("u-{}", headers.len())});
    let mut request = client()
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cache = response
        .headers()
        .get("x-switchyard-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("absent")
        .to_owned();
    let answer: Value = response.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (cache, text)
}

async fn delete(cp: &ControlPlane, path: &str) -> Value {
    let answer = cp.call(Method::DELETE, path, None, None).await.unwrap();
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.body
}

#[tokio::test]
async fn cache_hits_cross_proxies_and_honour_control_isolation_ttl_and_purge() {
    let (s, key_a, key_b) = cached_stack().await;
    let [one, two] = [s.env.data_plane_at(0), s.env.data_plane_at(1)];

    // A miss on one proxy, then a hit on the other: the provider was asked once.
    let (cache, first) = ask(one, &key_a, "chat", "What is a gateway?", &[]).await;
    assert_eq!(
        (cache.as_str(), first.as_str()),
        ("miss", "Hello from the mock provider.")
    );
    wait_writes(one, 1).await;
    let (cache, second) = ask(two, &key_a, "chat", "What is a gateway?", &[]).await;
    assert_eq!(cache, "hit");
    assert_eq!(second, first);
    assert_eq!(upstream_calls(&s).await, 1);
    // Fields that do not change the answer (here `user`) do not change the key.
    let (cache, _) = ask(
        one,
        &key_a,
        "chat",
        "What is a gateway?",
        &[("x-unrelated", "1")],
    )
    .await;
    assert_eq!(cache, "hit");

    // Client control: no-store and off bypass; no-cache asks the provider and stores again.
    let (cache, _) = ask(
        two,
        &key_a,
        "chat",
        "What is a gateway?",
        &[("cache-control", "no-store")],
    )
    .await;
    assert_eq!(cache, "bypass");
    let (cache, _) = ask(
        two,
        &key_a,
        "chat",
        "What is a gateway?",
        &[("x-switchyard-cache", "off")],
    )
    .await;
    assert_eq!(cache, "bypass");
    assert_eq!(upstream_calls(&s).await, 3);
    let before = writes(two).await;
    let (cache, _) = ask(
        two,
        &key_a,
        "chat",
        "What is a gateway?",
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(cache, "miss");
    assert_eq!(upstream_calls(&s).await, 4);
    wait_writes(two, before + 1).await;
    // A no-store request stores nothing: a new prompt asked with it is still a miss after.
    ask(
        one,
        &key_a,
        "chat",
        "never kept",
        &[("cache-control", "no-store")],
    )
    .await;
    let (cache, _) = ask(one, &key_a, "chat", "never kept", &[]).await;
    assert_eq!(cache, "miss");
    assert_eq!(upstream_calls(&s).await, 6);

    // Another team's identical request never gets team a's entry.
    let (cache, _) = ask(two, &key_b, "chat", "What is a gateway?", &[]).await;
    assert_eq!(cache, "miss");
    assert_eq!(upstream_calls(&s).await, 7);

    // The TTL: the `short` route's entries answer for one second.
    let w = writes(one).await;
    let (cache, _) = ask(one, &key_a, "short", "brief", &[]).await;
    assert_eq!(cache, "miss");
    wait_writes(one, w + 1).await;
    let (cache, _) = ask(two, &key_a, "short", "brief", &[]).await;
    assert_eq!(cache, "hit");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (cache, _) = ask(two, &key_a, "short", "brief", &[]).await;
    assert_eq!(cache, "miss", "expired");
    assert_eq!(upstream_calls(&s).await, 9);

    // A purge: once the snapshot arrives, the old entry answers no more, on either proxy.
    let versions = [snapshot_version(one).await, snapshot_version(two).await];
    let purged = delete(&s.cp, "/admin/cache-policies/default/entries").await;
    assert_eq!(purged["epoch"], 1, "{purged}");
    for (proxy, before) in [one, two].into_iter().zip(versions) {
        eventually(Duration::from_secs(20), || async {
            let now = snapshot_version(proxy).await;
            anyhow::ensure!(now > before, "snapshot {now}, not past {before}");
            Ok(())
        })
        .await
        .unwrap();
    }
    let w = writes(two).await;
    let (cache, _) = ask(two, &key_a, "chat", "What is a gateway?", &[]).await;
    assert_eq!(cache, "miss", "purged");
    wait_writes(two, w + 1).await;
    let (cache, _) = ask(one, &key_a, "chat", "What is a gateway?", &[]).await;
    assert_eq!(cache, "hit", "stored again after the purge");
    assert_eq!(upstream_calls(&s).await, 10);

    // Metering: each hit is one event, flagged, with no cost and the cost it saved; the spend
    // report adds the savings up.
    let hits = 4;
    let events = eventually(Duration::from_secs(30), || async {
        let list = s.cp.get("/admin/usage?limit=100").await?;
        let data: Vec<Value> = list["data"].as_array().cloned().unwrap_or_default();
        let hits_folded = data.iter().filter(|e| e["cache_hit"] == true).count();
        anyhow::ensure!(
            hits_folded == hits,
            "{hits_folded} hits folded, want {hits}"
        );
        Ok(data)
    })
    .await
    .unwrap();
    let mut saved = Decimal::ZERO;
    for e in events.iter().filter(|e| e["cache_hit"] == true) {
        assert_eq!(decimal(&e["cost_usd"]).unwrap(), Decimal::ZERO, "{e}");
        assert_eq!(e["attempts"], 0, "{e}");
        // What the provider charged for the same answer when it made it.
        let same = |o: &&Value| {
            o["cache_hit"] == false
                && ["alias", "prompt_tokens", "completion_tokens"]
                    .iter()
                    .all(|f| o[*f] == e[*f])
        };
        let made = events.iter().find(same).unwrap_or_else(|| panic!("{e}"));
        let cost = decimal(&made["cost_usd"]).unwrap();
        assert!(cost > Decimal::ZERO, "{made}");
        assert_eq!(decimal(&e["saved_usd"]).unwrap(), cost, "{e}");
        saved += cost;
    }
    let spend =
        s.cp.get("/admin/spend?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
            .await
            .unwrap();
    assert_eq!(spend["total"]["cache_hits"], hits, "{spend}");
    assert_eq!(
        decimal(&spend["total"]["saved_usd"]).unwrap(),
        saved,
        "{spend}"
    );
}

const STREAMS: &str = r#"
import json, os, time, urllib.request
import openai, anthropic

key = os.environ["KEY"]
one, two = os.environ["ONE"], os.environ["TWO"]
oa = [openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0, timeout=30) for u in (one, two)]
an = [anthropic.Anthropic(base_url=u, api_key=key, max_retries=0, timeout=30) for u in (one, two)]

def writes():
    text = urllib.request.urlopen(os.environ["OPS_ONE"] + "/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith('switchyard_cache_writes_total{result="ok"} '):
            return float(line.split()[-1])
    return 0.0

def wait_writes(n):
    for _ in range(200):
        if writes() >= n:
            return
        time.sleep(0.05)
    raise RuntimeError("no cache write")

def chat(c, prompt, stream):
    if not stream:
        raw = c.chat.completions.with_raw_response.create(model="chat", messages=[{"role": "user", "content": prompt}])
        r = raw.parse()
        return {"cache": raw.headers.get("x-switchyard-cache"), "text": r.choices[0].message.content,
                "finish": r.choices[0].finish_reason}
    s = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": prompt}],
                                  stream=True, stream_options={"include_usage": True})
    text, finish, usage = "", None, None
    for ch in s:
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            finish = ch.choices[0].finish_reason or finish
        if ch.usage:
            usage = ch.usage.total_tokens
    return {"cache": s.response.headers.get("x-switchyard-cache"), "text": text, "finish": finish,
            "usage": usage}

def responses(c, prompt, stream, model="chat"):
    if not stream:
        raw = c.responses.with_raw_response.create(model=model, input=prompt, store=False)
        r = raw.parse()
        return {"cache": raw.headers.get("x-switchyard-cache"), "text": r.output_text, "status": r.status}
    s = c.responses.create(model=model, input=prompt, stream=True, store=False)
    text, final, types = "", None, []
    for e in s:
        types.append(e.type)
        if e.type == "response.output_text.delta":
            text += e.delta
        if e.type == "response.completed":
            final = e.response.output_text
    return {"cache": s.response.headers.get("x-switchyard-cache"), "text": text, "final": final,
            "first": types[0], "last": types[-1]}

def messages(c, prompt, stream, model="chat"):
    if not stream:
        raw = c.messages.with_raw_response.create(model=model, max_tokens=100,
                                                  messages=[{"role": "user", "content": prompt}])
        m = raw.parse()
        return {"cache": raw.headers.get("x-switchyard-cache"), "text": m.content[0].text, "stop": m.stop_reason}
    with c.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": prompt}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
        return {"cache": s.response.headers.get("x-switchyard-cache"), "text": text, "stop": final.stop_reason,
                "final": final.content[0].text}

def native(c, prompt, stream):
    return messages(c, prompt, stream, model="claude")

def native_responses(c, prompt, stream):
    return responses(c, prompt, stream, model="gpt")

out = {}
n = 0
for name, ask, clients in (("chat", chat, oa), ("responses", responses, oa), ("messages", messages, an),
                           ("native", native, an), ("native_responses", native_responses, oa)):
    # Streamed miss on one proxy; a streamed and a non-streamed hit on the other.
    miss = ask(clients[0], "tell me about " + name, True)
    n += 1
    wait_writes(n)
    out[name] = {"miss": miss, "stream_hit": ask(clients[1], "tell me about " + name, True),
                 "json_hit": ask(clients[1], "tell me about " + name, False)}
# One entry answers every dialect: a chat asking what a Messages request asked.
cross = oa[1].chat.completions.with_raw_response.create(
    model="chat", max_tokens=100, messages=[{"role": "user", "content": "tell me about messages"}])
out["cross"] = {"cache": cross.headers.get("x-switchyard-cache"), "text": cross.parse().choices[0].message.content}
print(json.dumps(out))
"#;

#[tokio::test]
async fn cached_streams_replay_in_every_dialect() {
    let (s, key_a, _) = cached_stack().await;
    let [one, two] = [s.env.data_plane_at(0), s.env.data_plane_at(1)];
    let out = python_json(
        STREAMS,
        &[
            ("KEY", &key_a),
            ("ONE", &one.base_url()),
            ("TWO", &two.base_url()),
            ("OPS_ONE", &one.ops_url()),
        ],
    )
    .await;
    let text = "Hello from the mock provider.";
    for dialect in [
        "chat",
        "responses",
        "messages",
        "native",
        "native_responses",
    ] {
        let d = &out[dialect];
        assert_eq!(d["miss"]["cache"], "miss", "{out}");
        assert_eq!(d["stream_hit"]["cache"], "hit", "{out}");
        assert_eq!(d["json_hit"]["cache"], "hit", "{out}");
        for case in ["miss", "stream_hit", "json_hit"] {
            assert_eq!(d[case]["text"], text, "{dialect} {case}: {out}");
        }
    }
    assert_eq!(out["chat"]["stream_hit"]["finish"], "stop");
    assert_eq!(
        out["chat"]["stream_hit"]["usage"], out["chat"]["miss"]["usage"],
        "{out}"
    );
    assert!(
        out["chat"]["stream_hit"]["usage"].as_u64() > Some(0),
        "{out}"
    );
    assert_eq!(out["responses"]["stream_hit"]["final"], text);
    assert_eq!(out["responses"]["stream_hit"]["first"], "response.created");
    assert_eq!(out["responses"]["stream_hit"]["last"], "response.completed");
    assert_eq!(out["messages"]["stream_hit"]["stop"], "end_turn");
    assert_eq!(out["messages"]["stream_hit"]["final"], text);
    // A Responses answer OpenAI gave (passed through) replays as a Responses stream.
    assert_eq!(out["native_responses"]["stream_hit"]["final"], text);
    assert_eq!(
        out["native_responses"]["stream_hit"]["last"],
        "response.completed"
    );
    assert_eq!(out["native_responses"]["json_hit"]["status"], "completed");
    assert_eq!(out["cross"]["cache"], "hit", "{out}");
    assert_eq!(out["cross"]["text"], text);
    // Five misses reached the provider; the eleven hits did not.
    assert_eq!(upstream_calls(&s).await, 5);
}

/// Cache policies in a declarative file: team names resolve to ids, applying the same file
/// again records nothing, and a purge's epoch survives a re-apply (a file never un-purges).
#[tokio::test]
async fn declarative_cache_policies_resolve_teams_and_keep_their_purge_epoch() {
    let s = stack(0).await;
    let team =
        s.cp.post("/admin/teams", &json!({"name": "a"}))
            .await
            .unwrap();
    let yaml = "cache_policies:\n  - {id: declared, ttl_secs: 120, finish_reasons: [stop], applies_to: {teams: [a]}}\n";
    let put = || async {
        let r = client()
            .put(format!("{}/admin/config?prune=false", s.cp.base_url()))
            .bearer_auth(switchyard_tests::support::ADMIN_TOKEN)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, first) = put().await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cache_policies"]["created"], 1, "{first}");
    let policy = s.cp.get("/admin/cache-policies/declared").await.unwrap();
    assert_eq!(
        policy["applies_to"]["teams"],
        json!([team["id"]]),
        "{policy}"
    );
    assert_eq!(policy["ttl_secs"], 120);
    let purged = delete(&s.cp, "/admin/cache-policies/declared/entries").await;
    assert_eq!(purged["epoch"], 1);
    let (status, again) = put().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["events"], 0, "{again}");
    let policy = s.cp.get("/admin/cache-policies/declared").await.unwrap();
    assert_eq!(policy["epoch"], 1, "{policy}");
    // The published snapshot carries it, with its team's id.
    let listed = s.cp.get("/admin/cache-policies").await.unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
}

/// A semantic policy that embeds prompts through a route (`semantic.embedding_route`), on
/// proxies with no in-process model: the same question asked differently on the other proxy is
/// a semantic hit, the mock answered one chat, and every embedding was a metered request of
/// the caller's key (`endpoint: embeddings` in the usage events).
#[tokio::test]
async fn a_routed_embedding_model_serves_semantic_hits_and_is_metered() {
    let (s, key_a, _) = cached_stack().await;
    let [one, two] = [s.env.data_plane_at(0), s.env.data_plane_at(1)];
    for (alias, model) in [("emb", "mock-embed"), ("sem-chat", "mock-chat")] {
        let route = json!({"alias": alias, "deployments": [{"provider": "mock", "model": model}]});
        s.cp.post("/admin/routes", &route).await.unwrap();
    }
    let policy = json!({"id": "routed", "ttl_secs": 600, "applies_to": {"routes": ["sem-chat"]},
                        "semantic": {"enabled": true, "embedding_route": "emb", "threshold": "0.95"}});
    let created = s.cp.post("/admin/cache-policies", &policy).await.unwrap();
    assert_eq!(created["semantic"]["embedding_route"], "emb", "{created}");
    // A blank route name is refused in the admin API's dialect.
    let bad = json!({"id": "bad", "semantic": {"enabled": true, "embedding_route": " "}});
    let refused =
        s.cp.call(Method::POST, "/admin/cache-policies", None, Some(&bad))
            .await
            .unwrap();
    assert_eq!(refused.status, 422, "{}", refused.body);
    for proxy in [one, two] {
        wait_until_served(&proxy.base_url(), &key_a, "sem-chat")
            .await
            .unwrap();
    }

    let (cache, first) = ask(one, &key_a, "sem-chat", "What is Rust?", &[]).await;
    assert_eq!(cache, "miss");
    wait_writes(one, 1).await;
    // The record travels on the stream; the other proxy's index takes it.
    eventually(Duration::from_secs(20), || async {
        let text = two.metrics().await?;
        let n: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("switchyard_cache_semantic_index_entries "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        anyhow::ensure!(n >= 1.0, "index holds {n}");
        Ok(())
    })
    .await
    .unwrap();
    let r = client()
        .post(two.url("/v1/chat/completions"))
        .bearer_auth(&key_a)
        .json(&json!({"model": "sem-chat",
                      "messages": [{"role": "user", "content": "what is rust"}], "temperature": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let cache = header("x-switchyard-cache");
    let matched = header("x-switchyard-cache-match");
    assert_eq!(cache, "hit", "{matched}");
    assert_eq!(matched, "semantic; similarity=1.000");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], first.as_str());
    let (cache, _) = ask(two, &key_a, "sem-chat", "Why is Rust fast?", &[]).await;
    assert_eq!(cache, "miss", "a different question");
    assert_eq!(upstream_calls(&s).await, 2);

    // Every embedding went to the mock and was metered for the key, like any request.
    let embedded = s.env.mock().requests().await.unwrap();
    let embedded = embedded
        .iter()
        .filter(|r| r["path"] == "/v1/embeddings")
        .count();
    assert!(embedded >= 3, "{embedded} embedding calls");
    eventually(Duration::from_secs(30), || async {
        let usage = s.cp.get("/admin/usage?limit=100").await?;
        let data = usage["data"].as_array().cloned().unwrap_or_default();
        let embeddings: Vec<_> = data
            .iter()
            .filter(|e| e["endpoint"] == "embeddings")
            .collect();
        anyhow::ensure!(
            embeddings.len() == embedded,
            "{} embedding events, the mock saw {embedded}",
            embeddings.len()
        );
        for e in embeddings {
            anyhow::ensure!(e["alias"] == "emb" && e["model"] == "mock-embed", "{e}");
            anyhow::ensure!(e["key_name"] == "svc" && e["status"] == 200, "{e}");
        }
        Ok(())
    })
    .await
    .unwrap();
}
