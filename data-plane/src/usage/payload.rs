//! The bodies of a `full` request on their way to the request log.
//!
//! The request side is taken once, when the request is prepared ([`LoggedRequest`]: the
//! client's bytes, shared by every attempt, and its headers without any that can carry a
//! credential). The response side is what the client receives, appended as it is sent (a
//! stream's frames in order) up to the proxy's cap ([`Capture`]). Both are emitted with the
//! request's usage event, under its id, as one [`RequestPayload`].

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use proto::{LoggedBody, RequestPayload, UsageEvent};

/// The request as the client sent it.
#[derive(Debug)]
pub struct LoggedRequest {
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl LoggedRequest {
    pub fn new(headers: &HeaderMap, body: &Bytes) -> Self {
        let headers = headers
            .iter()
            .filter(|(name, _)| proto::loggable_header(name.as_str()))
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .fold(BTreeMap::new(), |mut all, (name, value)| {
                all.entry(name)
                    .and_modify(|v: &mut String| {
                        v.push_str(", ");
                        v.push_str(&value);
                    })
                    .or_insert(value);
                all
            });
        Self {
            headers,
            body: body.clone(),
        }
    }
}

/// One request's capture: the request, and the response as the client receives it.
#[derive(Debug)]
pub struct Capture {
    request: Arc<LoggedRequest>,
    cap: usize,
    response: Vec<u8>,
    /// Every response byte, kept or not.
    response_bytes: u64,
    responded: bool,
}

impl Capture {
    pub fn new(request: Arc<LoggedRequest>, cap: usize) -> Self {
        Self {
            request,
            cap,
            response: Vec::new(),
            response_bytes: 0,
            responded: false,
        }
    }

    /// Response bytes the client is sent next (a whole body, or one stream frame).
    pub fn response(&mut self, bytes: &[u8]) {
        self.responded = true;
        self.response_bytes += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.response.len());
        self.response
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The request-log entry of the request whose usage event is `event`.
    pub fn finish(self, event: &UsageEvent) -> RequestPayload {
        let request = &self.request.body;
        RequestPayload {
            id: event.id.clone(),
            time_ms: event.time_ms,
            team: event.team.clone(),
            key_id: event.key_id.clone(),
            request_headers: self.request.headers.clone(),
            request: logged(
                &request[..request.len().min(self.cap)],
                request.len() as u64,
            ),
            status: event.status,
            response: self
                .responded
                .then(|| logged(&self.response, self.response_bytes)),
            streamed: event.streamed,
        }
    }
}

/// `kept`, the first bytes of a body of `total` bytes, as the log keeps it: text when it is
/// UTF-8 (a character the cut split is left out), else base64.
pub fn logged(kept: &[u8], total: u64) -> LoggedBody {
    let truncated = (kept.len() as u64) < total;
    let text = match std::str::from_utf8(kept) {
        Ok(text) => Some(text),
        // Only the last character was cut: keep what precedes it.
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&kept[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match text {
        Some(text) => LoggedBody {
            body: text.to_owned(),
            base64: false,
            bytes: total,
            truncated,
        },
        None => LoggedBody {
            body: base64::engine::general_purpose::STANDARD.encode(kept),
            base64: true,
            bytes: total,
            truncated,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_text_or_base64_and_cut_at_the_cap() {
        let whole = logged(b"{\"a\":1}", 7);
        assert_eq!(
            (whole.body.as_str(), whole.base64, whole.truncated),
            ("{\"a\":1}", false, false)
        );
        // "é" is two bytes: a cut inside it keeps the text before it.
        let cut = logged(&"aé".as_bytes()[..2], 3);
        assert_eq!(
            (cut.body.as_str(), cut.base64, cut.truncated, cut.bytes),
            ("a", false, true, 3)
        );
        let binary = logged(&[0xff, 0x00], 2);
        assert_eq!((binary.body.as_str(), binary.base64), ("/wA=", true));
    }

    #[test]
    fn credentials_never_reach_the_entry_and_the_response_is_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "Bearer sk-secret"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        headers.insert(
            "x-api-key",
            "sk-secret".parse().unwrap_or_else(|_| unreachable!()),
        );
        headers.insert(
            "content-type",
            "application/json"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        let request = Arc::new(LoggedRequest::new(
            &headers,
            &Bytes::from_static(b"{\"q\":\"hi\"}"),
        ));
        let mut capture = Capture::new(request, 4);
        capture.response(b"data: 1\n\n");
        capture.response(b"data: 2\n\n");
        let event: UsageEvent = serde_json::from_str(
            r#"{"id":"e1","time_ms":5,"proxy":"p","team":"t","endpoint":"chat","alias":"a","latency_ms":1,"status":200,"outcome":"ok","streamed":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let entry = capture.finish(&event);
        let json = serde_json::to_string(&entry).unwrap_or_default();
        assert!(!json.contains("sk-secret"), "{json}");
        assert_eq!(
            entry.request_headers.keys().collect::<Vec<_>>(),
            ["content-type"]
        );
        assert_eq!(entry.request.body, "{\"q\"");
        let response = entry.response.unwrap_or_default();
        assert_eq!(
            (response.body.as_str(), response.bytes, response.truncated),
            ("data", 18, true)
        );
        assert_eq!(
            (entry.id.as_str(), entry.team.as_deref(), entry.streamed),
            ("e1", Some("t"), true)
        );
    }
}
