//! One table of the mock's generation wires (OpenAI chat, Responses, Anthropic Messages,
//! Gemini, Bedrock Converse), each answered plain and streamed, folded back into one shape:
//! scripted reasoning and several parallel tool calls must come back whole in each wire's own
//! form, a tool result must get the reply text, and the usage each wire reports must be what
//! the mock billed. (Vertex AI answers through Gemini's code.)

use serde_json::{json, Value};

use super::bedrock::decode_frames;
use super::test_client::TestMock;
use super::{count_words, ToolCall, DEFAULT_REPLY};

const ASK: &str = "weather and time please";
const REASONING: &str = "Two lookups at once.";

fn calls() -> Vec<ToolCall> {
    serde_json::from_value(json!([
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"zone": "Europe/Paris", "format": "24 h"}},
    ]))
    .unwrap()
}

/// An answer as every wire can say it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Folded {
    reasoning: String,
    /// The signature on the reasoning (Anthropic, Bedrock).
    signature: Option<String>,
    /// Name and parsed arguments of each call, in order.
    calls: Vec<(String, Value)>,
    ids: Vec<String>,
    text: String,
    /// Every output token the wire reports (Gemini: candidates and thoughts).
    completion: u64,
    /// Reasoning tokens the wire reports apart, where it does.
    reasoning_tokens: Option<u64>,
}

impl Folded {
    fn call(&mut self, id: &Value, name: &Value) {
        self.ids.push(id.as_str().unwrap_or_default().to_owned());
        self.calls
            .push((name.as_str().unwrap().to_owned(), json!("")));
    }

    /// Appends a piece of call `i`'s arguments text.
    fn arguments(&mut self, i: usize, piece: &str) {
        let args = &mut self.calls[i].1;
        *args = json!(format!("{}{piece}", args.as_str().unwrap()));
    }

    /// Parses every call's arguments text.
    fn parsed(mut self) -> Self {
        for (_, args) in &mut self.calls {
            if let Some(text) = args.as_str() {
                *args = serde_json::from_str(text).unwrap();
            }
        }
        self
    }
}

/// One wire: where it answers, and how its body is asked and read.
struct Wire {
    name: &'static str,
    path: fn(stream: bool) -> String,
    headers: &'static [(&'static str, &'static str)],
    /// The request; `tools`: declares one; `answered`: the last turn carries its result.
    body: fn(stream: bool, tools: bool, answered: bool) -> Value,
    fold: fn(stream: bool, body: &[u8]) -> Folded,
}

fn wires() -> [Wire; 5] {
    [
        Wire {
            name: "chat",
            path: |_| "/v1/chat/completions".into(),
            headers: &[],
            body: |stream, tools, answered| {
                let mut messages = vec![json!({"role": "user", "content": ASK})];
                if answered {
                    messages.push(json!({"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}));
                    messages
                        .push(json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
                }
                let mut body = json!({"model": "m", "messages": messages, "stream": stream,
                                      "stream_options": {"include_usage": true}});
                if tools {
                    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
                }
                body
            },
            fold: fold_chat,
        },
        Wire {
            name: "responses",
            path: |_| "/v1/responses".into(),
            headers: &[],
            body: |stream, tools, answered| {
                let mut input = vec![json!({"role": "user", "content": ASK})];
                if answered {
                    input.push(json!({"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}));
                    input.push(
                        json!({"type": "function_call_output", "call_id": "c1", "output": "sunny"}),
                    );
                }
                let mut body = json!({"model": "m", "input": input, "stream": stream});
                if tools {
                    body["tools"] =
                        json!([{"type": "function", "name": "get_weather", "parameters": {}}]);
                }
                body
            },
            fold: fold_responses,
        },
        Wire {
            name: "anthropic",
            path: |_| "/v1/messages".into(),
            headers: &[("anthropic-version", "2023-06-01")],
            body: |stream, tools, answered| {
                let mut messages = vec![json!({"role": "user", "content": ASK})];
                if answered {
                    messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {}}]}));
                    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}]}));
                }
                let mut body = json!({"model": "m", "max_tokens": 100, "messages": messages, "stream": stream});
                if tools {
                    body["tools"] =
                        json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
                }
                body
            },
            fold: fold_anthropic,
        },
        Wire {
            name: "gemini",
            path: |stream| {
                if stream {
                    "/v1beta/models/gem:streamGenerateContent?alt=sse".into()
                } else {
                    "/v1beta/models/gem:generateContent".into()
                }
            },
            headers: &[],
            body: |_, tools, answered| {
                let mut contents = vec![json!({"role": "user", "parts": [{"text": ASK}]})];
                if answered {
                    contents.push(json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]}));
                    contents.push(json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]}));
                }
                let mut body = json!({"contents": contents});
                if tools {
                    body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather"}]}]);
                }
                body
            },
            fold: fold_gemini,
        },
        Wire {
            name: "bedrock",
            path: |stream| {
                let action = if stream {
                    "converse-stream"
                } else {
                    "converse"
                };
                format!("/model/rock/{action}")
            },
            headers: &[],
            body: |_, tools, answered| {
                let mut messages = vec![json!({"role": "user", "content": [{"text": ASK}]})];
                if answered {
                    messages.push(json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {}}}]}));
                    messages.push(json!({"role": "user", "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "sunny"}]}}]}));
                }
                let mut body = json!({"messages": messages});
                if tools || answered {
                    body["toolConfig"] = json!({"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {}}}}]});
                }
                body
            },
            fold: fold_bedrock,
        },
    ]
}

/// `(folded answer, the mock's billed completion tokens)` of one request with `headers`.
async fn ask(
    mock: &TestMock,
    wire: &Wire,
    stream: bool,
    body: &Value,
    headers: &[(&str, &str)],
) -> (Folded, u64) {
    let headers = [wire.headers, headers].concat();
    let response = mock.post(&(wire.path)(stream), &headers, body).await;
    assert_eq!(response.status(), 200, "{}", wire.name);
    let bytes = response.bytes().await.unwrap();
    let folded = (wire.fold)(stream, &bytes).parsed();
    let records = mock.records().await;
    let billed = &records.last().unwrap()["billed"];
    (folded, billed["completion_tokens"].as_u64().unwrap())
}

#[tokio::test]
async fn every_wire_answers_parallel_calls_and_reasoning_plain_and_streamed() {
    let mock = TestMock::start(None).await;
    let calls = calls();
    let scripted = serde_json::to_string(&calls).unwrap();
    let expected_calls: Vec<(String, Value)> = calls
        .iter()
        .map(|c| (c.name.clone(), c.arguments.clone()))
        .collect();
    let reasoning_words = count_words(REASONING);
    let calls_tokens: u64 = calls.iter().map(ToolCall::tokens).sum();
    for wire in &wires() {
        for stream in [false, true] {
            let at = format!("{} (stream: {stream})", wire.name);
            let headers = [
                ("x-mock-tool-calls", scripted.as_str()),
                ("x-mock-reasoning", REASONING),
            ];

            let body = (wire.body)(stream, true, false);
            let (got, billed) = ask(&mock, wire, stream, &body, &headers).await;
            assert_eq!(got.calls, expected_calls, "{at}: {got:?}");
            assert_eq!(got.reasoning, REASONING, "{at}");
            assert_eq!(got.text, "", "{at}");
            assert_eq!(billed, reasoning_words + calls_tokens, "{at}");
            assert_eq!(got.completion, billed, "{at}: reported vs billed");
            assert_eq!(got.ids.len(), 2, "{at}");
            assert_ne!(got.ids[0], got.ids[1], "{at}: call ids must differ");
            match wire.name {
                "anthropic" | "bedrock" => {
                    assert!(got.signature.is_some_and(|s| !s.is_empty()), "{at}")
                }
                "gemini" | "chat" | "responses" => {
                    assert_eq!(got.reasoning_tokens, Some(reasoning_words), "{at}")
                }
                _ => {}
            }

            // The turn that carries the tool's result gets the reply text (and the reasoning).
            let body = (wire.body)(stream, true, true);
            let (got, billed) = ask(&mock, wire, stream, &body, &headers).await;
            assert_eq!(
                (got.text.as_str(), got.calls.len()),
                (DEFAULT_REPLY, 0),
                "{at}: {got:?}"
            );
            assert_eq!(got.reasoning, REASONING, "{at}");
            assert_eq!(billed, reasoning_words + count_words(DEFAULT_REPLY), "{at}");
            assert_eq!(got.completion, billed, "{at}");

            // Without tools, scripted calls do not apply; unscripted, there is no reasoning.
            let body = (wire.body)(stream, false, false);
            let (got, billed) = ask(&mock, wire, stream, &body, &[]).await;
            assert_eq!(
                (got.text.as_str(), got.reasoning.as_str()),
                (DEFAULT_REPLY, ""),
                "{at}"
            );
            assert_eq!((got.completion, billed), (5, 5), "{at}");
        }
    }
}

#[tokio::test]
async fn a_queued_script_answers_with_every_call_too() {
    let mock = TestMock::start(None).await;
    let script = json!({"times": 10, "tool_calls": calls(), "reasoning": REASONING});
    assert_eq!(mock.script(&script).await.status(), 200);
    for wire in &wires() {
        let body = (wire.body)(true, true, false);
        let (got, billed) = ask(&mock, wire, true, &body, &[]).await;
        assert_eq!(
            (got.calls.len(), got.reasoning.as_str()),
            (2, REASONING),
            "{}",
            wire.name
        );
        assert_eq!(got.completion, billed, "{}", wire.name);
    }
}

/// The `data:` payloads of an SSE body, parsed (`[DONE]` left out).
fn sse(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .unwrap()
        .split("\n\n")
        .flat_map(|e| e.lines())
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d.trim_end()).unwrap())
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn fold_chat(stream: bool, body: &[u8]) -> Folded {
    let mut f = Folded::default();
    let chunks = if stream {
        sse(body)
    } else {
        let v: Value = serde_json::from_slice(body).unwrap();
        vec![v]
    };
    for chunk in &chunks {
        if let Some(choice) = chunk["choices"].get(0) {
            let m = if stream {
                &choice["delta"]
            } else {
                &choice["message"]
            };
            f.reasoning += text(&m["reasoning_content"]);
            f.text += text(&m["content"]);
            for (position, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
                let i = call["index"].as_u64().map_or(position, |i| i as usize);
                if i == f.calls.len() {
                    f.call(&call["id"], &call["function"]["name"]);
                }
                f.arguments(i, text(&call["function"]["arguments"]));
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            f.completion = usage["completion_tokens"].as_u64().unwrap();
            f.reasoning_tokens = usage["completion_tokens_details"]["reasoning_tokens"].as_u64();
        }
    }
    f
}

/// A whole `response` object.
fn fold_response(r: &Value) -> Folded {
    let mut f = Folded::default();
    for item in r["output"].as_array().unwrap() {
        match text(&item["type"]) {
            "reasoning" => f.reasoning += text(&item["summary"][0]["text"]),
            "message" => f.text += text(&item["content"][0]["text"]),
            "function_call" => {
                f.call(&item["call_id"], &item["name"]);
                let last = f.calls.len() - 1;
                f.arguments(last, text(&item["arguments"]));
            }
            other => panic!("unexpected item {other}"),
        }
    }
    f.completion = r["usage"]["output_tokens"].as_u64().unwrap();
    f.reasoning_tokens = r["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64();
    f
}

fn fold_responses(stream: bool, body: &[u8]) -> Folded {
    if !stream {
        return fold_response(&serde_json::from_slice(body).unwrap());
    }
    let mut f = Folded::default();
    let mut calls_at = Vec::new();
    let mut last = Value::Null;
    for (n, event) in sse(body).iter().enumerate() {
        assert_eq!(event["sequence_number"], n, "{event}");
        match text(&event["type"]) {
            "response.reasoning_summary_text.delta" => f.reasoning += text(&event["delta"]),
            "response.output_text.delta" => f.text += text(&event["delta"]),
            "response.output_item.added" if event["item"]["type"] == "function_call" => {
                f.call(&event["item"]["call_id"], &event["item"]["name"]);
                calls_at.push(event["output_index"].clone());
            }
            "response.function_call_arguments.delta" => {
                let i = calls_at
                    .iter()
                    .position(|at| *at == event["output_index"])
                    .unwrap();
                f.arguments(i, text(&event["delta"]));
            }
            "response.completed" => last = event["response"].clone(),
            _ => {}
        }
    }
    let whole = fold_response(&last);
    f.completion = whole.completion;
    f.reasoning_tokens = whole.reasoning_tokens;
    assert_eq!(
        f.clone().parsed(),
        whole.parsed(),
        "the deltas add up to the final response"
    );
    f
}

fn fold_anthropic(stream: bool, body: &[u8]) -> Folded {
    let mut f = Folded::default();
    if !stream {
        let m: Value = serde_json::from_slice(body).unwrap();
        for block in m["content"].as_array().unwrap() {
            match text(&block["type"]) {
                "thinking" => {
                    f.reasoning += text(&block["thinking"]);
                    f.signature = block["signature"].as_str().map(str::to_owned);
                }
                "text" => f.text += text(&block["text"]),
                "tool_use" => {
                    f.call(&block["id"], &block["name"]);
                    f.calls.last_mut().unwrap().1 = json!(block["input"].to_string());
                }
                other => panic!("unexpected block {other}"),
            }
        }
        f.completion = m["usage"]["output_tokens"].as_u64().unwrap();
        return f;
    }
    // Block index → call number; each block is started once, in index order.
    let mut blocks: Vec<Option<usize>> = Vec::new();
    for event in sse(body) {
        let index = event["index"].as_u64().unwrap_or_default() as usize;
        match text(&event["type"]) {
            "content_block_start" => {
                assert_eq!(index, blocks.len(), "{event}");
                let block = &event["content_block"];
                if block["type"] == "tool_use" {
                    f.call(&block["id"], &block["name"]);
                    blocks.push(Some(f.calls.len() - 1));
                } else {
                    blocks.push(None);
                }
            }
            "content_block_delta" => {
                assert_eq!(
                    index + 1,
                    blocks.len(),
                    "a delta to the open block: {event}"
                );
                let d = &event["delta"];
                match text(&d["type"]) {
                    "thinking_delta" => f.reasoning += text(&d["thinking"]),
                    "signature_delta" => f.signature = d["signature"].as_str().map(str::to_owned),
                    "text_delta" => f.text += text(&d["text"]),
                    "input_json_delta" => {
                        f.arguments(blocks[index].unwrap(), text(&d["partial_json"]))
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "message_delta" => f.completion = event["usage"]["output_tokens"].as_u64().unwrap(),
            _ => {}
        }
    }
    f
}

fn fold_gemini(stream: bool, body: &[u8]) -> Folded {
    let responses = if stream {
        sse(body)
    } else {
        vec![serde_json::from_slice(body).unwrap()]
    };
    let mut f = Folded::default();
    for r in &responses {
        for part in r["candidates"][0]["content"]["parts"].as_array().unwrap() {
            if let Some(call) = part.get("functionCall") {
                f.call(&json!(format!("call_{}", f.calls.len())), &call["name"]);
                f.calls.last_mut().unwrap().1 = json!(call["args"].to_string());
            } else if part["thought"] == true {
                f.reasoning += text(&part["text"]);
            } else {
                f.text += text(&part["text"]);
            }
        }
    }
    let usage = &responses.last().unwrap()["usageMetadata"];
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    // Gemini counts thoughts apart from the answer; the total holds both.
    assert_eq!(
        n("totalTokenCount"),
        n("promptTokenCount") + n("candidatesTokenCount") + n("thoughtsTokenCount"),
        "{usage}"
    );
    f.completion = n("candidatesTokenCount") + n("thoughtsTokenCount");
    f.reasoning_tokens = Some(n("thoughtsTokenCount")).filter(|t| *t > 0);
    f
}

fn fold_bedrock(stream: bool, body: &[u8]) -> Folded {
    let mut f = Folded::default();
    if !stream {
        let v: Value = serde_json::from_slice(body).unwrap();
        for block in v["output"]["message"]["content"].as_array().unwrap() {
            if let Some(r) = block.pointer("/reasoningContent/reasoningText") {
                f.reasoning += text(&r["text"]);
                f.signature = r["signature"].as_str().map(str::to_owned);
            } else if let Some(t) = block.get("toolUse") {
                f.call(&t["toolUseId"], &t["name"]);
                f.calls.last_mut().unwrap().1 = json!(t["input"].to_string());
            } else {
                f.text += text(&block["text"]);
            }
        }
        f.completion = v["usage"]["outputTokens"].as_u64().unwrap();
        return f;
    }
    let mut blocks = std::collections::HashMap::new();
    for (headers, payload) in decode_frames(body).unwrap() {
        let kind = &headers.iter().find(|(k, _)| k == ":event-type").unwrap().1;
        let event: Value = serde_json::from_slice(&payload).unwrap();
        let index = event["contentBlockIndex"].as_u64().unwrap_or_default();
        match kind.as_str() {
            "contentBlockStart" => {
                let tool = &event["start"]["toolUse"];
                f.call(&tool["toolUseId"], &tool["name"]);
                blocks.insert(index, f.calls.len() - 1);
            }
            "contentBlockDelta" => {
                let d = &event["delta"];
                if let Some(r) = d.get("reasoningContent") {
                    f.reasoning += text(&r["text"]);
                    if let Some(s) = r["signature"].as_str() {
                        f.signature = Some(s.to_owned());
                    }
                } else if let Some(t) = d.get("toolUse") {
                    f.arguments(blocks[&index], text(&t["input"]));
                } else {
                    f.text += text(&d["text"]);
                }
            }
            "metadata" => f.completion = event["usage"]["outputTokens"].as_u64().unwrap(),
            _ => {}
        }
    }
    f
}
