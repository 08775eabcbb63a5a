//! The official `openai` Python SDK's Responses API (`client.responses.create`) against the
//! data plane's `/v1/responses`: translated to chat for a chat-only upstream (alias `chat`,
//! the OpenAI-compatible mock), passed through to an `openai` deployment (alias `gpt`, the
//! mock's own `/v1/responses`), with a scripted tool round trip both ways, and metered once
//! per request either way.

use serde_json::{json, Value};
use switchyard_tests::support::{DataPlaneSpec, TestEnv};

use crate::fixture::{
    client, config, gateway_with, python_json, sdk_check, sdk_script, Sdk, FULL_KEY, UPSTREAM_KEY,
};
use crate::usage_events::spooled_events;

const SDK_CHECKS: &str = r#"
import json, os
import openai

client = openai.OpenAI(max_retries=0, timeout=30)
MODEL = os.environ["MODEL"]
TOOLS = [{"type": "function", "name": "shell", "description": "Runs a command",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]

def usage(u):
    return {"input": u.input_tokens, "output": u.output_tokens, "cached": u.input_tokens_details.cached_tokens}

def plain():
    r = client.responses.create(model=MODEL, instructions="Be brief.", input="say hello to me")
    return {"id": r.id, "status": r.status, "text": r.output_text, "usage": usage(r.usage), "model": r.model}

def stream():
    types, deltas, seqs = [], "", []
    with client.responses.stream(model=MODEL, input=[{"role": "user", "content": "say hello to me"}]) as s:
        for event in s:
            types.append(event.type)
            seqs.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas += event.delta
        final = s.get_final_response()
    return {"types": types, "seqs": seqs, "deltas": deltas, "text": final.output_text,
            "status": final.status, "usage": usage(final.usage)}

def tools():
    """A scripted tool call (the test queued it), then its output sent back: the answer is
    text."""
    ask = [{"role": "developer", "content": "You run commands."}, {"role": "user", "content": "list the files"}]
    first = client.responses.create(model=MODEL, input=ask, tools=TOOLS)
    call = next(i for i in first.output if i.type == "function_call")
    with client.responses.stream(model=MODEL, input=ask, tools=TOOLS) as s:
        streamed = s.get_final_response()
    scall = next(i for i in streamed.output if i.type == "function_call")
    history = ask + [{"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
                     {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt b.txt"}]
    second = client.responses.create(model=MODEL, input=history, tools=TOOLS)
    return {"name": call.name, "arguments": json.loads(call.arguments), "call_id": call.call_id,
            "streamed": {"name": scall.name, "arguments": json.loads(scall.arguments)},
            "second_text": second.output_text, "second_status": second.status}

def builtin():
    client.responses.create(model=MODEL, input="news?", tools=[{"type": "web_search_preview"}],
                            tool_choice={"type": "web_search_preview"})

CHECKS = {"plain": plain, "stream": stream, "tools": tools, "builtin": builtin}
"#;

/// The standard gateway plus alias `gpt` on an `openai` provider (the mock's Responses API).
async fn gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| {
        let base = env.mock().base_url();
        let provider = format!(
            "providers:\n  - {{ id: openai-up, kind: openai, base_url: \"{base}/v1\", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}\n"
        );
        config(
            &base,
            "  - { alias: gpt, deployments: [{ provider: openai-up, model: gpt-up }] }",
        )
        .replacen("providers:\n", &provider, 1)
    })
    .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    gateway_with(spec).await
}

/// Queues the tool call `shell {"command": "ls"}` for the next three requests.
async fn script_tool_call(env: &TestEnv) {
    let calls =
        json!({"times": 3, "tool_calls": [{"name": "shell", "arguments": {"command": "ls"}}]});
    env.mock().script(&calls).await.unwrap();
}

async fn sdk(env: &TestEnv, model: &str, check: &str) -> Value {
    sdk_check(
        env,
        Sdk::OpenAi,
        SDK_CHECKS,
        FULL_KEY,
        check,
        &[("MODEL", model)],
    )
    .await
}

#[tokio::test]
async fn responses_api_translated_to_a_chat_only_upstream() {
    let env = gateway().await;
    let r = sdk(&env, "chat", "plain").await;
    assert_eq!(r["text"], "Hello from the mock provider.", "{r}");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "chat");
    assert!(
        r["id"].as_str().is_some_and(|id| id.starts_with("resp_")),
        "{r}"
    );
    // "Be brief." (2 words) + "say hello to me" (4); the reply is 5 words.
    assert_eq!(r["usage"], json!({"input": 6, "output": 5, "cached": 0}));
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(
        seen[0]["body"]["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hello to me"}])
    );

    let s = sdk(&env, "chat", "stream").await;
    assert_eq!(s["text"], "Hello from the mock provider.", "{s}");
    assert_eq!(s["deltas"], s["text"]);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["usage"], json!({"input": 4, "output": 5, "cached": 0}));
    let types: Vec<&str> = s["types"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        &types[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ],
        "{s}"
    );
    assert_eq!(types.last(), Some(&"response.completed"), "{s}");
    let seqs: Vec<u64> = s["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());

    script_tool_call(&env).await;
    let t = sdk(&env, "chat", "tools").await;
    assert_eq!(t["name"], "shell", "{t}");
    assert_eq!(t["arguments"], json!({"command": "ls"}));
    assert_eq!(
        t["streamed"],
        json!({"name": "shell", "arguments": {"command": "ls"}})
    );
    assert_eq!(t["second_text"], "Hello from the mock provider.");
    let seen = env.mock().requests().await.unwrap();
    let last = &seen.last().unwrap()["body"];
    assert_eq!(last["tools"][0]["function"]["name"], "shell", "{last}");
    let messages = last["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "You run commands."})
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], t["call_id"]);
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": t["call_id"], "content": "a.txt b.txt"})
    );

    // A built-in tool cannot run on a chat upstream: forcing one is the client's 400, in
    // OpenAI's shape (offering one drops it, below).
    let b = sdk(&env, "chat", "builtin").await;
    assert_eq!(b["status"], 400, "{b}");
    assert!(
        b["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("web_search_preview")),
        "{b}"
    );

    // Fields with no chat counterpart are dropped and named.
    let response = client()
        .post(env.data_plane().url("/v1/responses"))
        .bearer_auth(FULL_KEY)
        .json(&json!({"model": "chat", "input": "hi", "store": false, "reasoning": {"effort": "low"}, "tools": [{"type": "web_search"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-switchyard-dropped-fields"],
        "reasoning, store, tools.web_search"
    );
    let seen = env.mock().requests().await.unwrap();
    assert!(seen.last().unwrap()["body"].get("tools").is_none());

    // plain, stream, three tool turns and the dropped-fields call; the 400 is not metered.
    let events = metered(&env, 6).await;
    assert!(events.iter().all(|e| e.alias == "chat"), "{events:?}");
}

#[tokio::test]
async fn responses_api_passes_through_to_an_openai_deployment() {
    let env = gateway().await;
    let r = sdk(&env, "gpt", "plain").await;
    assert_eq!(r["text"], "Hello from the mock provider.", "{r}");
    // The provider's own response, relayed as it came (its id and upstream model name).
    assert!(
        r["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_mock")),
        "{r}"
    );
    assert_eq!(r["model"], "gpt-up");
    assert_eq!(r["usage"], json!({"input": 6, "output": 5, "cached": 0}));
    let s = sdk(&env, "gpt", "stream").await;
    assert_eq!(s["text"], "Hello from the mock provider.", "{s}");
    assert_eq!(s["usage"], json!({"input": 4, "output": 5, "cached": 0}));
    script_tool_call(&env).await;
    let t = sdk(&env, "gpt", "tools").await;
    assert_eq!(t["arguments"], json!({"command": "ls"}), "{t}");
    assert_eq!(t["second_text"], "Hello from the mock provider.");

    let seen = env.mock().requests().await.unwrap();
    assert!(
        seen.iter().all(|r| r["path"] == "/v1/responses"),
        "{seen:?}"
    );
    // Byte-faithful but for the model: the upstream got the SDK's own fields.
    assert_eq!(seen[0]["body"]["model"], "gpt-up");
    assert_eq!(seen[0]["body"]["instructions"], "Be brief.");
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );

    // A body only OpenAI can serve goes to the OpenAI deployment as it is.
    let response = client()
        .post(env.data_plane().url("/v1/responses"))
        .bearer_auth(FULL_KEY)
        .json(&json!({"model": "gpt", "input": "news?", "tools": [{"type": "web_search_preview"}], "tool_choice": {"type": "web_search_preview"}, "store": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("x-switchyard-dropped-fields")
        .is_none());
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen.last().unwrap()["body"]["tools"],
        json!([{"type": "web_search_preview"}])
    );

    // Each request metered once, with the provider's usage.
    let events = metered(&env, seen.len()).await;
    let billed: u64 = seen
        .iter()
        .filter_map(|r| r["completion_tokens"].as_u64())
        .sum();
    let output: u64 = events.iter().map(|e| e.usage.completion_tokens).sum();
    assert_eq!(output, billed);
}

/// The OpenAI Agents SDK (Responses API by default) runs an agent with a function tool
/// through the gateway on a chat-only upstream: the model calls the tool, the SDK runs it and
/// sends the result back, and the agent's final output is the model's answer.
const AGENTS_SDK: &str = r#"
import json, os
from openai import AsyncOpenAI
from agents import Agent, Runner, function_tool, set_default_openai_client, set_tracing_disabled

set_tracing_disabled(True)
set_default_openai_client(AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"], max_retries=0))
ran = []

@function_tool
def shell(command: str) -> str:
    """Runs a command."""
    ran.append(command)
    return "a.txt b.txt"

agent = Agent(name="coder", instructions="You run commands.", tools=[shell], model=os.environ["MODEL"])
result = Runner.run_sync(agent, "list the files")
print(json.dumps({"final": result.final_output, "ran": ran}))
"#;

#[tokio::test]
async fn openai_agents_sdk_runs_a_tool_through_the_gateway() {
    let env = gateway().await;
    script_tool_call(&env).await;
    let out = sdk_script(
        &env,
        Sdk::OpenAi,
        AGENTS_SDK,
        FULL_KEY,
        &[("MODEL", "chat")],
    )
    .await;
    assert_eq!(out["ran"], json!(["ls"]), "{out}");
    assert_eq!(out["final"], "Hello from the mock provider.", "{out}");
    let seen = env.mock().requests().await.unwrap();
    let last = &seen.last().unwrap()["body"];
    let tool = last["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(tool["role"], "tool", "{last}");
    assert_eq!(tool["content"], "a.txt b.txt");
    metered(&env, seen.len()).await;
}

/// Reasoning a chat-only upstream reports (`reasoning_content`) reaches a Responses client as
/// a `reasoning` item (and its summary events) and a Messages client as a `thinking` block,
/// streamed and not, through the official SDKs; the reasoning tokens are metered.
const REASONING: &str = r#"
import json, os
import anthropic, openai

oa = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"], max_retries=0)
an = anthropic.Anthropic(base_url=os.environ["BASE"], api_key=os.environ["KEY"], max_retries=0)
r = oa.responses.create(model="chat", input="say hello to me")
reasoning = [i for i in r.output if i.type == "reasoning"]
with oa.responses.stream(model="chat", input="say hello to me") as s:
    types = [e.type for e in s]
    streamed = s.get_final_response()
m = an.messages.create(model="chat", max_tokens=100, messages=[{"role": "user", "content": "say hello to me"}])
with an.messages.stream(model="chat", max_tokens=100, messages=[{"role": "user", "content": "say hello to me"}]) as s:
    final = s.get_final_message()
print(json.dumps({
    "summary": reasoning[0].summary[0].text, "text": r.output_text,
    "reasoning_tokens": r.usage.output_tokens_details.reasoning_tokens,
    "streamed_summary": [i for i in streamed.output if i.type == "reasoning"][0].summary[0].text,
    "summary_events": [t for t in types if t.startswith("response.reasoning_summary")],
    "thinking": [b.model_dump() for b in m.content if b.type == "thinking"],
    "streamed_thinking": [b.thinking for b in final.content if b.type == "thinking"],
    "message_text": "".join(b.text for b in m.content if b.type == "text"),
}))
"#;

#[tokio::test]
async fn reasoning_from_a_chat_upstream_reaches_responses_and_messages_clients() {
    let env = gateway().await;
    let script = json!({"times": 4, "reasoning": "The user greets me."});
    env.mock().script(&script).await.unwrap();
    let base = env.data_plane().base_url();
    let out = python_json(REASONING, &[("BASE", &base), ("KEY", FULL_KEY)]).await;
    assert_eq!(out["summary"], "The user greets me.", "{out}");
    assert_eq!(out["text"], "Hello from the mock provider.");
    assert_eq!(out["reasoning_tokens"], 4, "{out}");
    assert_eq!(out["streamed_summary"], "The user greets me.");
    assert_eq!(
        out["summary_events"],
        json!([
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done"
        ]),
        "{out}"
    );
    assert_eq!(
        out["thinking"],
        json!([{"type": "thinking", "thinking": "The user greets me.", "signature": ""}])
    );
    assert_eq!(out["streamed_thinking"], json!(["The user greets me."]));
    assert_eq!(out["message_text"], "Hello from the mock provider.");
    // Metered with the reasoning inside the completion: 5 reply words + 4 reasoning words.
    let events = metered(&env, 2).await;
    for e in &events {
        assert_eq!(e.usage.completion_tokens, 9, "{e:?}");
        assert_eq!(e.usage.reasoning_tokens, 4, "{e:?}");
    }
}

/// Waits for exactly `n` usage events of the Responses endpoint in the proxy's spool.
async fn metered(env: &TestEnv, n: usize) -> Vec<proto::UsageEvent> {
    let spool = env.data_plane().spool_dir().to_owned();
    switchyard_tests::support::eventually(std::time::Duration::from_secs(20), || async {
        let events: Vec<_> = spooled_events(&spool)
            .into_iter()
            .filter(|e| e.endpoint == "responses")
            .collect();
        anyhow::ensure!(events.len() == n, "{} of {n} events", events.len());
        Ok(events)
    })
    .await
    .unwrap()
}
