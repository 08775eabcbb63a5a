//! Parallel tool calls and reasoning from every provider family to every client dialect.
//!
//! The mock is scripted to answer each family's model with reasoning and two parallel tool
//! calls. Through the official SDKs, each family (the provider matrix of `providers.rs`, plus
//! an `openai` provider whose Responses requests pass through) is asked in each dialect (chat
//! completions, Anthropic Messages, Responses), plain and streamed: the client must see both
//! calls with their arguments and distinct ids, and the reasoning (`reasoning_content`, a
//! `thinking` block, a `reasoning` item); the usage it sees must be what the mock billed for
//! that very request (reasoning tokens apart where the provider reports them apart), and the
//! spend ledger must hold the mock's billing exactly.

use serde_json::{json, Value};

use crate::fixture::python_json;
use crate::providers::{
    assert_ledger_by_provider, billed_by_provider, families, matrix_of, openai_family, Family,
};

const REASONING: &str = "The user wants two lookups; I will make both at once.";

/// The two calls every family is scripted to answer with.
fn scripted_calls() -> Value {
    json!([
        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
        {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
    ])
}

/// Families whose provider reports reasoning tokens apart (OpenAI's `reasoning_tokens`,
/// Gemini's `thoughtsTokenCount`); Anthropic and Bedrock count them inside the output only.
const REPORTS_REASONING: [&str; 4] = ["oai", "gem", "vtx", "gpt"];

/// Per alias, dialect and stream flag, one request whose prompt carries a tag naming it (so
/// the mock's record of it can be found); prints what each client saw.
const CLIENTS: &str = r#"
import json, os
import anthropic, openai

oa = openai.OpenAI(max_retries=0, timeout=30)
an = anthropic.Anthropic(max_retries=0, timeout=30)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "zone": {"type": "string"}}}
NAMES = ["get_weather", "get_time"]
CHAT_TOOLS = [{"type": "function", "function": {"name": n, "description": n, "parameters": SCHEMA}} for n in NAMES]
RESPONSES_TOOLS = [{"type": "function", "name": n, "description": n, "parameters": SCHEMA} for n in NAMES]
MESSAGES_TOOLS = [{"name": n, "description": n, "input_schema": SCHEMA} for n in NAMES]

def ask(tag):
    return "weather and time in Paris " + tag

def chat(alias, stream, tag):
    kw = dict(model=alias, messages=[{"role": "user", "content": ask(tag)}], tools=CHAT_TOOLS)
    if not stream:
        r = oa.chat.completions.create(**kw)
        m = r.choices[0].message
        calls = [{"id": c.id, "name": c.function.name, "arguments": json.loads(c.function.arguments)}
                 for c in m.tool_calls or []]
        return {"reasoning": getattr(m, "reasoning_content", None) or "", "calls": calls,
                "finish": r.choices[0].finish_reason, "usage": chat_usage(r.usage)}
    reasoning, calls, finish, usage = "", {}, None, None
    for chunk in oa.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw):
        if chunk.choices:
            d = chunk.choices[0].delta
            reasoning += getattr(d, "reasoning_content", None) or ""
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                c["id"] = c["id"] or tc.id
                if tc.function:
                    c["name"] = c["name"] or tc.function.name
                    c["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chat_usage(chunk.usage)
    calls = [dict(c, arguments=json.loads(c["arguments"])) for _, c in sorted(calls.items())]
    return {"reasoning": reasoning, "calls": calls, "finish": finish, "usage": usage}

def chat_usage(u):
    d = u.completion_tokens_details
    return {"prompt": u.prompt_tokens, "completion": u.completion_tokens,
            "reasoning": d.reasoning_tokens if d else None}

def messages(alias, stream, tag):
    kw = dict(model=alias, max_tokens=256, messages=[{"role": "user", "content": ask(tag)}], tools=MESSAGES_TOOLS)
    if stream:
        with an.messages.stream(**kw) as s:
            m = s.get_final_message()
    else:
        m = an.messages.create(**kw)
    thinking = [b for b in m.content if b.type == "thinking"]
    u = m.usage
    return {"reasoning": "".join(b.thinking for b in thinking), "signed": [bool(b.signature) for b in thinking],
            "calls": [{"id": b.id, "name": b.name, "arguments": b.input} for b in m.content if b.type == "tool_use"],
            "finish": m.stop_reason,
            "usage": {"prompt": u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
                      "completion": u.output_tokens, "reasoning": None}}

def responses(alias, stream, tag):
    kw = dict(model=alias, input=ask(tag), tools=RESPONSES_TOOLS)
    deltas = None
    if stream:
        summary, arguments = "", {}
        with oa.responses.stream(**kw) as s:
            for e in s:
                if e.type == "response.reasoning_summary_text.delta":
                    summary += e.delta
                elif e.type == "response.function_call_arguments.delta":
                    arguments[e.output_index] = arguments.get(e.output_index, "") + e.delta
            r = s.get_final_response()
        deltas = {"reasoning": summary, "arguments": [json.loads(a) for _, a in sorted(arguments.items())]}
    else:
        r = oa.responses.create(**kw)
    return {"reasoning": "".join(p.text for i in r.output if i.type == "reasoning" for p in i.summary),
            "calls": [{"id": i.call_id, "name": i.name, "arguments": json.loads(i.arguments)}
                      for i in r.output if i.type == "function_call"],
            "finish": r.status, "deltas": deltas,
            "usage": {"prompt": r.usage.input_tokens, "completion": r.usage.output_tokens,
                      "reasoning": r.usage.output_tokens_details.reasoning_tokens}}

out = []
for alias in os.environ["ALIASES"].split(","):
    for dialect, client in (("chat", chat), ("messages", messages), ("responses", responses)):
        for stream in (False, True):
            tag = "q%s%s%d" % (alias, dialect, stream)
            try:
                seen = client(alias, stream, tag)
            except Exception as e:
                seen = {"error": repr(e)}
            seen.update(alias=alias, dialect=dialect, stream=stream, tag=tag)
            out.append(seen)
print(json.dumps(out))
"#;

fn with_openai(mock: &str) -> Vec<Family> {
    let mut all = families(mock);
    all.push(openai_family(mock));
    all
}

#[tokio::test]
async fn parallel_calls_and_reasoning_reach_every_dialect_from_every_family() {
    let m = matrix_of(with_openai).await;
    let aliases: Vec<&str> = m.families.iter().map(|f| f.alias).collect();
    for f in &m.families {
        let script = json!({"model": f.model, "times": 6, "tool_calls": scripted_calls(),
                            "reasoning": REASONING});
        m.env.mock().script(&script).await.unwrap();
    }
    let base = m.env.data_plane().base_url();
    let seen = python_json(
        CLIENTS,
        &[
            ("OPENAI_BASE_URL", &format!("{base}/v1")),
            ("OPENAI_API_KEY", &m.key),
            ("ANTHROPIC_BASE_URL", &base),
            ("ANTHROPIC_API_KEY", &m.key),
            ("ALIASES", &aliases.join(",")),
        ],
    )
    .await;
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), aliases.len() * 6);
    let failed: Vec<&Value> = seen.iter().filter(|s| s.get("error").is_some()).collect();
    assert!(failed.is_empty(), "{failed:#?}");

    let upstream = m.upstream().await;
    let expected_calls: Vec<Value> = scripted_calls()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["name"], c["arguments"]]))
        .collect();
    let reasoning_words = REASONING.split_whitespace().count() as u64;
    for s in seen {
        let at = format!("{} {} (stream: {})", s["alias"], s["dialect"], s["stream"]);
        let calls: Vec<Value> = s["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| json!([c["name"], c["arguments"]]))
            .collect();
        assert_eq!(calls, expected_calls, "{at}: {s}");
        let ids: Vec<&str> = s["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap_or_default())
            .collect();
        assert!(
            ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1],
            "{at}: {s}"
        );
        assert_eq!(s["reasoning"], REASONING, "{at}: {s}");
        let finish = match s["dialect"].as_str() {
            Some("chat") => "tool_calls",
            Some("messages") => "tool_use",
            _ => "completed",
        };
        assert_eq!(s["finish"], finish, "{at}: {s}");
        if ["claude", "vtx-claude"].contains(&s["alias"].as_str().unwrap_or_default())
            && s["dialect"] == "messages"
        {
            // Passed through: Anthropic's signature reaches the client.
            assert_eq!(s["signed"], json!([true]), "{at}: {s}");
        }
        if !s["deltas"].is_null() {
            let args: Vec<&Value> = expected_calls.iter().map(|c| &c[1]).collect();
            assert_eq!(
                s["deltas"],
                json!({"reasoning": REASONING, "arguments": args}),
                "{at}: the stream's deltas add up"
            );
        }

        // The usage the client saw is what the mock billed for this request.
        let tag = s["tag"].as_str().unwrap();
        let sent: Vec<&Value> = upstream
            .iter()
            .filter(|r| r["body"].to_string().contains(tag))
            .collect();
        assert_eq!(sent.len(), 1, "{at}: one upstream request");
        let billed = &sent[0]["billed"];
        let usage = &s["usage"];
        assert_eq!(usage["prompt"], billed["prompt_tokens"], "{at}: {s}");
        assert_eq!(
            usage["completion"], billed["completion_tokens"],
            "{at}: {s}"
        );
        let alias = s["alias"].as_str().unwrap_or_default();
        if s["dialect"] != "messages" && REPORTS_REASONING.contains(&alias) {
            assert_eq!(usage["reasoning"], reasoning_words, "{at}: {s}");
        }
    }

    let expected = billed_by_provider(&upstream, &m.families);
    assert_eq!(
        expected.values().map(|e| e.requests).sum::<u64>(),
        seen.len() as u64
    );
    assert_ledger_by_provider(&m.cp, &expected).await;
}
