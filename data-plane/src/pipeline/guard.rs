//! Stage 6: guardrails on the request (see `crate::guard`).
//!
//! The policies that apply to the request's key, its team and its route are merged; if none
//! does, nothing is done (one lookup per scope). Otherwise the client's body, in its own
//! dialect, is rewritten: the caller then translates the rewritten bytes again, so the
//! pass-through and the translated attempts alike can only send the redacted text. A `block`
//! class is the client's 400 (in its dialect, by the error edge), naming the classes. The
//! request log keeps the redacted body, and the detections go to metrics and, by `Prepared`,
//! to the usage event.

use bytes::Bytes;
use http::HeaderMap;

use super::prepare::Prepared;
use crate::error::ApiError;
use crate::guard::restore::Restorer;
use crate::guard::{Outcome, Session};
use crate::metrics;
use crate::usage::payload::LoggedRequest;

/// What stage 6 did to a request.
#[derive(Debug, Default)]
pub struct Guarded {
    /// The body to send instead of the client's (`None`: unchanged).
    pub body: Option<Bytes>,
    /// What the answer needs: reversible placeholders to put back, output checks.
    pub restorer: Option<Restorer>,
}

/// Applies the request's guardrail policies to `body` (the client's bytes).
pub fn request(p: &mut Prepared, headers: &HeaderMap, body: &Bytes) -> Result<Guarded, ApiError> {
    let key = &p.key;
    let Some(effective) = p.snapshot.guards.effective(
        key.id.as_deref(),
        key.team.as_deref(),
        &p.route.requested.alias,
    ) else {
        return Ok(Guarded::default());
    };
    let mut session = Session::new(effective);
    let outcome = session.redact_body(body);
    for ((class, action), n) in &session.detections {
        metrics::guardrail(class, action, "input", *n);
    }
    p.guardrail = session.counts();
    match outcome {
        Outcome::Blocked(classes) => Err(ApiError::Guardrail(classes.join(", "))),
        Outcome::Unchanged => Ok(Guarded {
            body: None,
            restorer: Restorer::new(session),
        }),
        Outcome::Changed(redacted) => {
            if p.logged.is_some() {
                p.logged = Some(std::sync::Arc::new(LoggedRequest::new(headers, &redacted)));
            }
            Ok(Guarded {
                body: Some(redacted),
                restorer: Restorer::new(session),
            })
        }
    }
}
