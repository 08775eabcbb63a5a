//! Stored Responses through the official `openai` SDK: a turn stored by one proxy is continued
//! (`previous_response_id`), read, listed and deleted through another, because the store is
//! NATS key-value shared by every proxy; another team's key sees none of it.

use serde_json::{json, Value};
use switchyard_tests::support::{wait_until_served, MockProviderOptions};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, python_json, UPSTREAM_KEY};

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
    let call = |path: &str, body: Value| {
        let request = reqwest::Client::new()
            .post(format!("{proxy}{path}"))
            .bearer_auth(&key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };
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
