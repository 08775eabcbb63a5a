//! Table test over the wire samples in `fixtures/`: each file is one case, by `kind`:
//! - `chat_request`: OpenAI body `in` → Converse body `out`;
//! - `chat_response`: Converse response `in` → OpenAI completion `out`;
//! - `stream`: ConverseStream events `in` (`{event, payload}`) → OpenAI chunks `out`. The
//!   events are encoded as real event-stream frames, concatenated, and fed to the decoder in
//!   7-byte pieces, so framing and translation are tested together.
//!
//! Translations run with id `chatcmpl-test`, model `anthropic.claude-3-5-haiku-20241022-v1:0`
//! and `created` 1700000000.

use serde_json::Value;

use super::eventstream::{self, Decoder};
use super::response::Meta;
use super::stream::{EventError, Translator};
use super::{request, response};
use crate::fixture_cases::{check_request, check_response};

fn meta() -> Meta {
    Meta {
        id: "chatcmpl-test".into(),
        model: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
        created: 1_700_000_000,
    }
}

/// Every frame of `wire`, fed in `piece`-byte slices.
fn frames(wire: &[u8], piece: usize) -> Vec<eventstream::Frame> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for slice in wire.chunks(piece) {
        decoder.push(slice);
        while let Some(frame) = decoder.next_frame().unwrap_or_else(|e| panic!("{e}")) {
            out.push(frame);
        }
    }
    assert_eq!(decoder.pending(), 0);
    out
}

fn run(name: &str, case: &Value) {
    let input = &case["in"];
    let expected = &case["out"];
    match case["kind"].as_str() {
        Some("chat_request") => check_request(name, case, request::converse_request),
        Some("chat_response") => {
            check_response(name, case, |input| response::chat_response(input, &meta()))
        }
        Some("stream") => {
            let mut wire = Vec::new();
            for event in input.as_array().into_iter().flatten() {
                let kind = event["event"].as_str().unwrap_or_default();
                wire.extend(eventstream::event(kind, &event["payload"].to_string()));
            }
            let mut translator = Translator::new(meta());
            let mut out = Vec::new();
            let mut usage_chunks = 0;
            for frame in frames(&wire, 7) {
                for chunk in translator
                    .frame(&frame)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                {
                    assert_eq!(chunk.usage_only, chunk.usage.is_some(), "{name}");
                    usage_chunks += usize::from(chunk.usage_only);
                    out.push(serde_json::from_slice::<Value>(&chunk.data).unwrap_or_default());
                }
            }
            assert!(translator.finished, "{name}: no messageStop seen");
            assert!(usage_chunks <= 1, "{name}");
            assert_eq!(&Value::Array(out), expected, "{name}");
        }
        other => panic!("{name}: unknown kind {other:?}"),
    }
}

#[test]
fn every_fixture_translates_as_recorded() {
    for (name, case) in crate::fixture_cases::load("src/providers/bedrock/fixtures", 11) {
        run(&name, &case);
    }
}

#[test]
fn an_exception_frame_ends_the_stream_with_its_type() {
    let wire = eventstream::encode(
        &[
            (":exception-type", "throttlingException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        br#"{"message":"Too many tokens, please wait before trying again."}"#,
    );
    let mut translator = Translator::new(meta());
    let frame = frames(&wire, 5)
        .pop()
        .unwrap_or_else(|| panic!("one frame"));
    assert_eq!(
        translator.frame(&frame).err(),
        Some(EventError::Exception {
            kind: "throttlingException".into(),
            message: "Too many tokens, please wait before trying again.".into(),
        })
    );
    assert!(!translator.finished);
}

#[test]
fn garbage_and_orphan_tool_deltas_are_malformed() {
    let mut t = Translator::new(meta());
    assert!(matches!(
        t.event("contentBlockDelta", b"{not json"),
        Err(EventError::Malformed(_))
    ));
    assert!(matches!(
        t.event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":3,"delta":{"toolUse":{"input":"{}"}}}"#
        ),
        Err(EventError::Malformed(_))
    ));
}
