//! Stored Responses through the official `openai` SDK: a turn stored by one proxy is continued
//! (`previous_response_id`), read, listed and deleted through another, because the store is
//! NATS key-value shared by every proxy; another team's key sees none of it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use switchyard_tests::support::{wait_until_served, MockProviderOptions};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, python_json, sha256_hex, UPSTREAM_KEY};
use crate::providers::{assert_ledger_by_provider, Expected};

const SDK_CHECKS: &str = r#"
import json, os
import openai

one = openai.OpenAI(base_url=os.environ["PROXY_ONE"], api_key=os.environ["KEY"], max_retries=0, timeout=30)
two = openai.OpenAI(base_url=os.environ["PROXY_TWO"], api_key=os.environ["KEY"], max_retries=0, timeout=30)
other = openai.OpenAI(base_url=os.environ["PROXY_TWO"], api_key=os.environ["OTHER_KEY"], max_retries=0, timeout=30)

def status_of(call):
    try:
        call()
        return None
    except openai.APIStatusError as e:
        return {"status": e.status_code, "code": (e.body or {}).get("code"), "message": (e.body or {}).get("message")}

first = one.responses.create(model="chat", input="say hello to me")
# The next turn goes to the other proxy, streamed.
with two.responses.stream(model="chat", input="and once more", previous_response_id=first.id) as s:
    second = s.get_final_response()
third = one.responses.create(model="chat", input="last one", previous_response_id=second.id)
got = two.responses.retrieve(first.id)
items = two.responses.input_items.list(third.id, order="asc")
unstored = one.responses.create(model="chat", input="forget me", store=False)
out = {
    "first": first.id, "second": second.id, "third_text": third.output_text,
    "retrieved": {"id": got.id, "text": got.output_text},
    "items": [i.model_dump(exclude_none=True) for i in items.data],
    "other_retrieve": status_of(lambda: other.responses.retrieve(first.id)),
    "other_continue": status_of(lambda: other.responses.create(model="chat", input="x", previous_response_id=first.id)),
    "unknown": status_of(lambda: two.responses.create(model="chat", input="x", previous_response_id="resp_0123abc")),
    "unstored": status_of(lambda: two.responses.retrieve(unstored.id)),
}
deleted = two.responses.delete(first.id)
out["after_delete"] = status_of(lambda: one.responses.retrieve(first.id))
print(json.dumps(out))
"#;

/// A control plane and `proxies` data planes routing `chat` to the mock's `mock-chat`, and a
/// team `a` (its JSON) to hold keys.
async fn chat_stack(proxies: usize) -> (Stack, Value) {
    let mock = MockProviderOptions::new().api_key(UPSTREAM_KEY);
    let Stack { cp, env } = stack_with([mock], proxies).await;
    let base = env.mock().base_url();
    let provider = json!({"id": "mock", "kind": "openai_compatible",
                          "base_url": format!("{base}/v1"), "api_key": UPSTREAM_KEY});
    cp.post("/admin/providers", &provider).await.unwrap();
    let route =
        json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]});
    cp.post("/admin/routes", &route).await.unwrap();
    let team = cp
        .post("/admin/teams", &json!({"name": "a"}))
        .await
        .unwrap();
    (Stack { cp, env }, team)
}

#[tokio::test]
async fn stored_responses_continue_across_proxies_and_stay_in_their_team() {
    let (Stack { cp, env }, team) = chat_stack(2).await;
    let other_team = cp
        .post("/admin/teams", &json!({"name": "b"}))
        .await
        .unwrap();
    let key = all_models_key(&cp, &team).await;
    let other_key = all_models_key(&cp, &other_team).await;
    let proxies: Vec<String> = env.data_planes().iter().map(|d| d.base_url()).collect();
    for proxy in &proxies {
        wait_until_served(proxy, &other_key, "chat").await.unwrap();
    }
    let out = python_json(
        SDK_CHECKS,
        &[
            ("PROXY_ONE", &format!("{}/v1", proxies[0])),
            ("PROXY_TWO", &format!("{}/v1", proxies[1])),
            ("KEY", &key),
            ("OTHER_KEY", &other_key),
        ],
    )
    .await;
    assert_eq!(out["third_text"], "Hello from the mock provider.", "{out}");
    assert_eq!(out["retrieved"]["id"], out["first"], "{out}");
    assert_eq!(out["retrieved"]["text"], "Hello from the mock provider.");

    // The third turn reached the provider as the whole conversation, in order.
    let seen = env.mock().requests().await.unwrap();
    let chats: Vec<&Value> = seen
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .collect();
    let third = &chats[2]["body"]["messages"];
    let turns: Vec<(&str, &str)> = third
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = m["content"]
                .as_str()
                .or_else(|| m["content"][0]["text"].as_str())
                .unwrap_or_default();
            (m["role"].as_str().unwrap_or_default(), text)
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("user", "say hello to me"),
            ("assistant", "Hello from the mock provider."),
            ("user", "and once more"),
            ("assistant", "Hello from the mock provider."),
            ("user", "last one"),
        ],
        "{third}"
    );
    // Input items of the third response: the conversation before its answer.
    let items = out["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{out}");
    assert_eq!(items[0]["role"], "user");
    assert_eq!(items[1]["type"], "message");
    assert_eq!(items[1]["role"], "assistant");

    // Another team's key: not found, exactly like an unknown id.
    assert_eq!(out["other_retrieve"]["status"], 404, "{out}");
    assert_eq!(out["other_continue"]["status"], 400, "{out}");
    assert_eq!(out["other_continue"]["code"], "previous_response_not_found");
    assert_eq!(out["unknown"]["code"], "previous_response_not_found");
    assert_eq!(out["unstored"]["status"], 404, "store: false is not stored");
    assert_eq!(out["after_delete"]["status"], 404, "{out}");
}

/// `POST /v1/responses/compact` on a chat-only upstream: the stored conversation and the new
/// input are summarised by the routed model (a metered call), and the compacted output (user
/// messages, then the summary) is a valid input for the next turn.
#[tokio::test]
async fn a_conversation_compacts_into_user_messages_and_a_summary() {
    let (Stack { cp, env }, team) = chat_stack(1).await;
    let key = all_models_key(&cp, &team).await;
    let proxy = env.data_plane().base_url();
    wait_until_served(&proxy, &key, "chat").await.unwrap();
    let call = |path: &'static str, body: Value| post(&proxy, &key, path, body.to_string());
    let (status, first) = call(
        "/v1/responses",
        json!({"model": "chat", "input": "fix the bug"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let (status, compacted) = call(
        "/v1/responses/compact",
        json!({"model": "chat", "previous_response_id": first["id"], "input": [{"role": "user", "content": "and add a test"}]}),
    )
    .await;
    assert_eq!(status, 200, "{compacted}");
    assert_eq!(compacted["object"], "response.compaction");
    let output = compacted["output"].as_array().unwrap();
    assert_eq!(output.len(), 3, "{compacted}");
    assert_eq!(output[0]["content"], "fix the bug");
    assert_eq!(output[1]["content"], "and add a test");
    assert_eq!(
        output[2]["content"][0]["text"],
        "Summary of the conversation so far:\nHello from the mock provider."
    );
    assert!(
        compacted["usage"]["input_tokens"].as_u64() > Some(0),
        "{compacted}"
    );
    // The model was asked for the summary after the whole conversation.
    let seen = env.mock().requests().await.unwrap();
    let messages = seen.last().unwrap()["body"]["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[3]["content"]
        .as_str()
        .is_some_and(|t| t.starts_with("Summarize the conversation")));
    // The compacted output continues the conversation.
    let mut next = output.clone();
    next.push(json!({"role": "user", "content": "go on"}));
    let (status, after) = call("/v1/responses", json!({"model": "chat", "input": next})).await;
    assert_eq!(status, 200, "{after}");
}

/// Compaction with an `openai` deployment: the client's body reaches its
/// `/v1/responses/compact` byte for byte but for the model, and the provider's
/// `response.compaction` (its encrypted item) comes back as it is and continues on OpenAI; a
/// conversation holding that item is refused where only a summary could be made; a chain
/// whose OpenAI deployment fails falls back to its chat-only one, which summarises. Every
/// answer is metered as the mock billed it.
#[tokio::test]
async fn compaction_passes_through_to_openai_and_falls_back_to_a_summary() {
    let (Stack { cp, env }, team) = chat_stack(1).await;
    let base = env.mock().base_url();
    let openai = json!({"id": "openai-up", "kind": "openai",
                        "base_url": format!("{base}/v1"), "api_key": UPSTREAM_KEY});
    cp.post("/admin/providers", &openai).await.unwrap();
    let gpt = json!({"provider": "openai-up", "model": "gpt-up"});
    let chat = json!({"provider": "mock", "model": "mock-chat", "priority": 1});
    for route in [
        json!({"alias": "gpt", "deployments": [gpt]}),
        json!({"alias": "mixed", "strategy": "ordered", "deployments": [gpt, chat]}),
    ] {
        cp.post("/admin/routes", &route).await.unwrap();
    }
    let prices = [("gpt-up", ("1.25", "10")), ("mock-chat", ("0.5", "1.5"))];
    for (model, (input, output)) in prices {
        let price = json!({"input_per_mtok": input, "output_per_mtok": output});
        let path = format!("/admin/pricing/{model}");
        let answer = cp
            .call(reqwest::Method::PUT, &path, None, Some(&price))
            .await
            .unwrap();
        assert!(answer.status < 300, "{answer:?}");
    }
    let key = all_models_key(&cp, &team).await;
    let proxy = env.data_plane().base_url();
    wait_until_served(&proxy, &key, "mixed").await.unwrap();

    // Odd spacing, fields a summary would drop, an earlier compaction item: all reach OpenAI.
    let sent = r#"{"input": [{"role": "user", "content": "fix the bug"}, {"type": "compaction", "id": "cmp_0", "encrypted_content": "gAAAA0"}],  "model" : "gpt", "tools": [], "parallel_tool_calls": false, "reasoning": {"effort": "high"}}"#;
    let (status, compacted) = post(&proxy, &key, "/v1/responses/compact", sent.into()).await;
    assert_eq!(status, 200, "{compacted}");
    let seen = env.mock().requests().await.unwrap();
    let upstream = seen.last().unwrap();
    assert_eq!(upstream["path"], "/v1/responses/compact");
    let expected = sent.replace(r#""model" : "gpt""#, r#""model" : "gpt-up""#);
    assert_eq!(upstream["body_sha256"], sha256_hex(&expected), "{upstream}");
    // The provider's own answer: its id, the user's message, its sealed item, its usage.
    assert_eq!(compacted["object"], "response.compaction");
    assert!(compacted["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("resp_mock")));
    let output = compacted["output"].as_array().unwrap().clone();
    assert_eq!(output.len(), 2, "{compacted}");
    assert_eq!(output[0]["content"], "fix the bug");
    assert_eq!(output[1]["type"], "compaction");
    assert!(output[1]["encrypted_content"].is_string());
    assert_eq!(
        compacted["usage"]["output_tokens"],
        upstream["billed"]["completion_tokens"]
    );

    // The compacted output continues on OpenAI; only OpenAI reads it.
    let mut next = output.clone();
    next.push(json!({"role": "user", "content": "go on"}));
    let turn = json!({"model": "gpt", "input": next, "store": false});
    let (status, after) = post(&proxy, &key, "/v1/responses", turn.to_string()).await;
    assert_eq!(status, 200, "{after}");
    let refused = json!({"model": "chat", "input": next});
    let (status, error) = post(&proxy, &key, "/v1/responses/compact", refused.to_string()).await;
    assert_eq!(status, 400, "{error}");

    // The OpenAI deployment fails: the chain's chat-only deployment summarises instead.
    let failing = json!({"model": "gpt-up", "status": 500});
    env.mock().script(&failing).await.unwrap();
    let ask = json!({"model": "mixed", "input": "fix the bug", "tools": []});
    let (status, summary) = post(&proxy, &key, "/v1/responses/compact", ask.to_string()).await;
    assert_eq!(status, 200, "{summary}");
    let output = summary["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{summary}");
    assert_eq!(
        output[1]["content"][0]["text"],
        "Summary of the conversation so far:\nHello from the mock provider."
    );
    let seen = env.mock().requests().await.unwrap();
    let paths: Vec<&Value> = seen.iter().rev().take(2).map(|r| &r["path"]).collect();
    assert_eq!(paths, ["/v1/chat/completions", "/v1/responses/compact"]);

    // One ledger entry per answer, as the mock billed it (the failed attempt billed nothing).
    let mut billed: BTreeMap<String, Expected> = BTreeMap::new();
    for r in seen.iter().filter(|r| !r["billed"].is_null()) {
        let (provider, (_, price)) = match r["model"].as_str() {
            Some("gpt-up") => ("openai-up", prices[0]),
            _ => ("mock", prices[1]),
        };
        let tokens = |class: &str| r["billed"][class].as_u64().unwrap();
        billed.entry(provider.into()).or_default().add(
            tokens("prompt_tokens"),
            tokens("completion_tokens"),
            price,
        );
    }
    assert_eq!(billed["openai-up"].requests, 2, "{billed:?}");
    assert_eq!(billed["mock"].requests, 1, "{billed:?}");
    assert_ledger_by_provider(&cp, &billed).await;
}

/// POSTs `body` (JSON text) to the proxy's `path` with `key`: the status and the JSON answer.
async fn post(proxy: &str, key: &str, path: &str, body: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{proxy}{path}"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap_or_default())
}
