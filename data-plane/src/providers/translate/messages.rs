//! One walker over OpenAI chat messages for every translated wire format.
//!
//! The walker owns what the formats share: `system`/`developer` messages hoisted (in order)
//! into the system texts; `user` and `assistant` turns; text parts (empty ones dropped, as
//! Anthropic and Bedrock refuse blank blocks), image parts (`image_url.url`, or `image_url` as
//! a string), assistant `tool_calls` (arguments parsed: empty means `{}`), `tool` (and legacy
//! `function`) messages as tool results in a user turn, named after the matching call earlier
//! in the conversation; consecutive turns of one role merged, so parallel tool results answer in
//! one turn. A [`Target`] supplies only its block builders; the client's mistakes, and what a
//! target cannot express, are an [`Untranslatable`] naming the message and part.
//!
//! Prompt-cache marks: a `cache_control` object on a content part (Anthropic's breakpoint, as
//! the Messages dialect translates it and as OpenAI-compatible clients such as OpenCode send
//! it), or on a whole message (then it marks the message's last block), is handed to
//! [`Target::cache`] with the block it marks. A target whose provider caches by breakpoint
//! (Anthropic, Bedrock) keeps it; the others drop it.

use std::collections::HashMap;
use std::fmt;

use serde_json::{json, Value};

use super::body::text_of;
use super::{bad, Untranslatable};

/// Where a piece came from, for the client's error message: `messages[i]` or
/// `messages[i].content[j]`.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub message: usize,
    pub part: Option<usize>,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            Some(j) => write!(f, "messages[{}].content[{j}]", self.message),
            None => write!(f, "messages[{}]", self.message),
        }
    }
}

/// The two conversational roles every target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// An assistant's tool call.
#[derive(Debug)]
pub struct ToolCall<'a> {
    pub id: Option<&'a str>,
    pub name: &'a str,
    /// The arguments, parsed (`{}` when there were none).
    pub arguments: Value,
}

/// A tool's result.
#[derive(Debug)]
pub struct ToolResult<'a> {
    /// `tool_call_id`, if the message has one.
    pub id: Option<&'a str>,
    /// The name of the call it answers (from the earlier call with that id, else the
    /// message's own `name`).
    pub name: Option<&'a str>,
    /// Its text parts, joined.
    pub text: String,
}

/// What a target wire format supplies to the walker.
pub trait Target {
    /// One content block (part) of a turn.
    type Block;
    /// The provider, as error messages name it ("Gemini", "Bedrock", "this model").
    const NAME: &'static str;

    /// A non-empty text part.
    fn text(&mut self, text: &str) -> Self::Block;
    /// An image part with its URL (`data:` or `http(s)`).
    fn image(&mut self, url: &str, at: At) -> Result<Self::Block, Untranslatable>;
    /// An assistant's tool call.
    fn tool_call(&mut self, call: ToolCall<'_>, at: At) -> Result<Self::Block, Untranslatable>;
    /// A tool's result (a user turn).
    fn tool_result(
        &mut self,
        result: ToolResult<'_>,
        at: At,
    ) -> Result<Self::Block, Untranslatable>;
    /// A prompt-cache mark (`cache_control`) on `block`, the block just built: the target marks
    /// the block itself, or returns a block to place after it. By default the mark is dropped
    /// (the provider caches on its own, or not at all).
    fn cache(&mut self, block: &mut Self::Block, mark: &Value) -> Option<Self::Block> {
        let _ = (block, mark);
        None
    }
    /// An assistant's `refusal` part; refused unless the target has a block for it.
    fn refusal(&mut self, text: &str, at: At) -> Result<Option<Self::Block>, Untranslatable> {
        let _ = text;
        Err(unsupported_part("refusal", at, Self::NAME))
    }
}

/// A system or developer message's text, with the prompt-cache mark the message or one of its
/// parts carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemText {
    pub text: String,
    pub cache: Option<Value>,
}

/// The `cache_control` mark of a message or part, if it has one (`null` is none).
pub fn cache_mark(value: &Value) -> Option<&Value> {
    value.get("cache_control").filter(|m| !m.is_null())
}

/// A message's own mark, else the last mark among its content parts.
fn message_mark(message: &Value) -> Option<&Value> {
    cache_mark(message).or_else(|| {
        message
            .get("content")
            .and_then(Value::as_array)?
            .iter()
            .rev()
            .find_map(cache_mark)
    })
}

/// A walked conversation.
#[derive(Debug)]
pub struct Conversation<B> {
    /// The system and developer texts, in order (empty ones dropped).
    pub system: Vec<SystemText>,
    /// The turns, consecutive ones of a role merged, empty ones dropped.
    pub turns: Vec<(Role, Vec<B>)>,
    /// The conversation holds tool calls or tool results.
    pub uses_tools: bool,
}

impl<B: serde::Serialize> Conversation<B> {
    /// The turns as JSON objects: `{"role": <user or assistant name>, <key>: [blocks]}`.
    pub fn turns_json(&mut self, names: [&str; 2], key: &str) -> Vec<Value> {
        std::mem::take(&mut self.turns)
            .into_iter()
            .map(|(role, blocks)| {
                let role = match role {
                    Role::User => names[0],
                    Role::Assistant => names[1],
                };
                json!({ "role": role, key: blocks })
            })
            .collect()
    }

    /// The system texts as `{"text": ...}` blocks (their marks dropped).
    pub fn system_blocks(&self) -> Vec<Value> {
        self.system
            .iter()
            .map(|t| json!({ "text": t.text }))
            .collect()
    }
}

/// Walks `messages` into `target`'s blocks.
pub fn walk<T: Target>(
    messages: &[Value],
    target: &mut T,
) -> Result<Conversation<T::Block>, Untranslatable> {
    let mut conversation = Conversation {
        system: Vec::new(),
        turns: Vec::new(),
        uses_tools: false,
    };
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let at = At {
            message: i,
            part: None,
        };
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("messages[{i}].role is required")))?;
        let content = message.get("content").filter(|c| !c.is_null());
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = content.map(|c| text_of(c, i)).transpose()?;
                let cache = message_mark(message).cloned();
                conversation.system.extend(
                    text.filter(|t| !t.is_empty())
                        .map(|text| SystemText { text, cache }),
                );
                continue;
            }
            "user" => (Role::User, content_blocks(target, message, content, i)?),
            "assistant" => {
                let mut blocks = content_blocks(target, message, content, i)?;
                for call in tool_calls(message, i)? {
                    let call = tool_call(call, i)?;
                    if let Some(id) = call.id {
                        call_names.insert(id, call.name);
                    }
                    blocks.push(target.tool_call(call, at)?);
                    conversation.uses_tools = true;
                }
                (Role::Assistant, blocks)
            }
            "tool" | "function" => {
                let id = message.get("tool_call_id").and_then(Value::as_str);
                let name = id
                    .and_then(|id| call_names.get(id).copied())
                    .or_else(|| message.get("name").and_then(Value::as_str));
                let text = content.map(|c| text_of(c, i)).transpose()?;
                let result = ToolResult {
                    id,
                    name,
                    text: text.unwrap_or_default(),
                };
                conversation.uses_tools = true;
                let mut blocks = Vec::with_capacity(1);
                let block = target.tool_result(result, at)?;
                marked(target, &mut blocks, block, message_mark(message));
                (Role::User, blocks)
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}].role `{other}` is not supported by {}",
                    T::NAME
                )))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match conversation.turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => conversation.turns.push((role, blocks)),
        }
    }
    Ok(conversation)
}

/// `block` into `blocks`, with the block its mark asks the target for, if any.
fn marked<T: Target>(
    target: &mut T,
    blocks: &mut Vec<T::Block>,
    mut block: T::Block,
    mark: Option<&Value>,
) {
    let after = mark.and_then(|mark| target.cache(&mut block, mark));
    blocks.push(block);
    blocks.extend(after);
}

/// A user's or assistant's content as blocks: a string, or an array of parts. A mark on the
/// message itself marks its last content block, unless a part carries its own.
fn content_blocks<T: Target>(
    target: &mut T,
    message: &Value,
    content: Option<&Value>,
    i: usize,
) -> Result<Vec<T::Block>, Untranslatable> {
    let mut blocks = Vec::new();
    let mut own_marks = false;
    match content {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => blocks.push(target.text(s)),
        Some(Value::Array(parts)) => {
            blocks.reserve(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let at = At {
                    message: i,
                    part: Some(j),
                };
                if let Some(block) = content_block(target, part, at)? {
                    let mark = cache_mark(part);
                    own_marks |= mark.is_some();
                    marked(target, &mut blocks, block, mark);
                }
            }
        }
        Some(_) => {
            return Err(bad(format!(
                "messages[{i}].content must be a string or an array"
            )))
        }
    }
    if let (false, Some(mark)) = (own_marks, cache_mark(message)) {
        if let Some(last) = blocks.pop() {
            marked(target, &mut blocks, last, Some(mark));
        }
    }
    Ok(blocks)
}

fn content_block<T: Target>(
    target: &mut T,
    part: &Value,
    at: At,
) -> Result<Option<T::Block>, Untranslatable> {
    let string = |name: &str, path: &str| {
        part.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.{path} must be a string")))
    };
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = string("text", "text")?;
            Ok((!text.is_empty()).then(|| target.text(text)))
        }
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("{at}.image_url.url must be a string")))?;
            target.image(url, at).map(Some)
        }
        Some("refusal") => target.refusal(string("refusal", "refusal")?, at),
        other => Err(unsupported_part(other.unwrap_or("(missing)"), at, T::NAME)),
    }
}

fn unsupported_part(kind: &str, at: At, name: &str) -> Untranslatable {
    bad(format!(
        "{at}: content part type `{kind}` is not supported by {name}"
    ))
}

/// The assistant's `tool_calls` (absent or null: none).
fn tool_calls(message: &Value, i: usize) -> Result<&[Value], Untranslatable> {
    match message.get("tool_calls") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(calls)) => Ok(calls),
        Some(_) => Err(bad(format!("messages[{i}].tool_calls must be an array"))),
    }
}

fn tool_call(call: &Value, i: usize) -> Result<ToolCall<'_>, Untranslatable> {
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(format!(
                "messages[{i}].tool_calls[].function.name is required"
            ))
        })?;
    let arguments = match call.pointer("/function/arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| {
            bad(format!(
                "messages[{i}].tool_calls[].function.arguments of `{name}` is not valid JSON"
            ))
        })?,
        Some(other) => other.clone(),
    };
    Ok(ToolCall {
        id: call.get("id").and_then(Value::as_str),
        name,
        arguments,
    })
}

/// The id a target requires of a call or result, or the client's 400.
pub fn required_id<'a>(id: Option<&'a str>, what: &str, at: At) -> Result<&'a str, Untranslatable> {
    id.ok_or_else(|| bad(format!("{at}: {what} is required")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that writes blocks as strings.
    struct Plain;

    impl Target for Plain {
        type Block = String;
        const NAME: &'static str = "plain";

        fn text(&mut self, text: &str) -> String {
            format!("text:{text}")
        }
        fn image(&mut self, url: &str, _: At) -> Result<String, Untranslatable> {
            Ok(format!("image:{url}"))
        }
        fn tool_call(&mut self, call: ToolCall<'_>, _: At) -> Result<String, Untranslatable> {
            Ok(format!("call:{}:{}", call.name, call.arguments))
        }
        fn tool_result(&mut self, r: ToolResult<'_>, _: At) -> Result<String, Untranslatable> {
            Ok(format!("result:{}:{}", r.name.unwrap_or("?"), r.text))
        }
    }

    #[test]
    fn hoists_system_merges_turns_and_names_results() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": ""},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
        ]);
        let Value::Array(messages) = messages else {
            panic!("an array")
        };
        let c = walk(&messages, &mut Plain).unwrap_or_else(|e| panic!("{e}"));
        let system: Vec<&str> = c.system.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(system, ["be brief", "and kind"]);
        assert!(c.uses_tools);
        let turns: Vec<(Role, Vec<String>)> = c.turns;
        assert_eq!(
            turns,
            [
                (
                    Role::User,
                    vec!["text:hi".into(), "image:data:image/png;base64,AA".into()]
                ),
                (
                    Role::Assistant,
                    vec![r#"call:f:{"a":1}"#.into(), "call:g:{}".into()]
                ),
                (
                    Role::User,
                    vec!["result:f:one".into(), "result:g:two".into()]
                ),
            ]
        );
    }

    #[test]
    fn mistakes_are_400s_naming_the_place() {
        for (messages, want) in [
            (json!([{"content": "x"}]), "messages[0].role is required"),
            (
                json!([{"role": "critic", "content": "x"}]),
                "messages[0].role `critic` is not supported by plain",
            ),
            (
                json!([{"role": "user", "content": [{"type": "audio"}]}]),
                "messages[0].content[0]: content part type `audio` is not supported by plain",
            ),
            (
                json!([{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]),
                "messages[0].content[0]: content part type `refusal` is not supported by plain",
            ),
            (
                json!([{"role": "user", "content": 7}]),
                "messages[0].content must be a string or an array",
            ),
            (
                json!([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}]),
                "messages[0].tool_calls[].function.arguments of `f` is not valid JSON",
            ),
            (
                json!([{"role": "assistant", "tool_calls": {}}]),
                "messages[0].tool_calls must be an array",
            ),
        ] {
            let Value::Array(messages) = messages else {
                panic!("an array")
            };
            let e = walk(&messages, &mut Plain).err().map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some(want));
        }
    }
}
