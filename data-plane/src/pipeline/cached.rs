//! Stage 6: the response-cache lookup (`crate::cache`), between the prepared request and its
//! first attempt.
//!
//! [`Plan::new`] decides from the request's cache policy and the client's headers whether to
//! look up and whether to store; [`Plan::lookup`] asks the cache; a hit is answered here in
//! the client's dialect ([`serve`]: the stored completion through the dialect's `reply`, or,
//! for a stream, replayed as internal chunks through the dialect's `Frames`, so the stream is
//! written exactly as a live one), and metered as one usage event flagged `cache_hit`, with no
//! provider cost and the cost it saved. No admission runs for a hit: nothing is spent.
//!
//! A miss goes on to the attempt loop with a [`Pending`] store: the success path stores a
//! complete answer, the relay a stream that ended well (assembled as it is relayed). The
//! cache keeps the internal form: a translated answer is in it already; one a deployment gave
//! in the client's own wire (Messages, Responses) is translated for the cache, and not stored
//! if that would lose something (a signed thinking block, a built-in tool's call); a
//! compaction passed through is not stored.
//!
//! Every chat response says what the cache did: `x-switchyard-cache: hit | miss | bypass`.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::body::ChatFields;
use super::chat::Keep;
use super::prepare::Prepared;
use crate::cache::semantic::{last_user_turn as semantic_turn, Semantic};
use crate::cache::{self, embed, key, policy, Control, Entry, Pending, CACHE_HEADER};
use crate::dialect::{Answer, ChatDialect};
use crate::metrics;
use crate::providers::JsonBody;
use crate::state::App;
use crate::usage::{Meter, Start};

/// What the cache does for one request.
#[derive(Debug)]
pub struct Plan {
    /// `hit`, `miss` or `bypass`, for the response header and the metric.
    pub result: &'static str,
    /// The key and team to look up, unless the client or the policy rules it out.
    lookup: Option<(String, Option<String>)>,
    /// Where a miss's answer goes.
    pub pending: Option<Pending>,
    /// The semantic lookup, under a semantic policy when this proxy has the embedder.
    semantic: Option<SemanticAsk>,
    /// A semantic hit's similarity.
    similarity: Option<f32>,
}

#[derive(Debug)]
struct SemanticAsk {
    semantic: Arc<Semantic>,
    scope: String,
    text: String,
    threshold: f32,
    /// The route that embeds the text (`None`: the in-process model).
    route: Option<String>,
}

/// `x-switchyard-cache-match`: `exact`, or `semantic; similarity=0.953` on a hit.
pub const CACHE_MATCH: http::HeaderName = http::HeaderName::from_static("x-switchyard-cache-match");

impl Plan {
    /// The plan for a prepared request whose internal body is `json`; `translatable`: the
    /// body has an internal form (else there is nothing to key).
    pub fn new(
        app: &App,
        p: &Prepared,
        headers: &HeaderMap,
        json: &JsonBody,
        translatable: bool,
    ) -> Self {
        let bypass = Self {
            result: "bypass",
            lookup: None,
            pending: None,
            semantic: None,
            similarity: None,
        };
        let control = policy::control(headers);
        let policies = &p.snapshot.cache_policies;
        let Some(policy) = policy::select(policies, &p.key, &p.route.requested.alias) else {
            return bypass;
        };
        if !policy.enabled || control == Control::Bypass || !translatable {
            return bypass;
        }
        let team = p.key.team.clone();
        let scope = key::Scope {
            policy: &policy.id,
            epoch: policy.epoch,
            team: (!policy.shared).then_some(team.as_deref()),
            route: &p.route.serving.alias,
        };
        let Some(key) = key::key(scope, json) else {
            return bypass;
        };
        let parts = app.parts();
        let semantic = semantic_ask(&parts.semantic, policy, scope, json);
        let pending = Pending {
            cache: Arc::clone(&parts.cache),
            tasks: parts.tasks.clone(),
            key: key.clone(),
            team: team.clone(),
            shared: policy.shared,
            ttl: std::time::Duration::from_secs(policy.ttl_secs),
            max_bytes: usize::try_from(policy.max_entry_bytes).unwrap_or(usize::MAX),
            finish_reasons: policy.finish_reasons.clone(),
            semantic: semantic.as_ref().map(|s| cache::SemanticStore {
                semantic: Arc::clone(&s.semantic),
                scope: s.scope.clone(),
                text: s.text.clone(),
                vector: None,
                local: s.route.is_none(),
            }),
        };
        Self {
            result: "miss",
            lookup: (control == Control::Normal).then_some((key, team)),
            pending: Some(pending),
            semantic,
            similarity: None,
        }
    }

    /// The stored entry that answers request `p`, if any (then the plan is a `hit`).
    pub async fn lookup(&mut self, app: &App, p: &Prepared) -> Option<Arc<Entry>> {
        let (key, team) = self.lookup.as_ref()?;
        let cache = &app.parts().cache;
        let entry = match cache.get(key, team.as_deref()).await {
            Some(entry) => entry,
            None => {
                let ask = self.semantic.as_ref()?;
                let vector = match &ask.route {
                    None => ask.semantic.embed(ask.text.clone()).await?,
                    Some(route) => match super::embed::routed(app, p, route, &ask.text).await {
                        Ok(vector) => vector,
                        Err(e) => {
                            // No embedding, no semantic lookup (nor a semantic record).
                            tracing::warn!(route = %route, error = %e, "the cache's embedding route failed");
                            if let Some(p) = self.pending.as_mut() {
                                p.semantic = None;
                            }
                            return None;
                        }
                    },
                };
                let found = ask
                    .semantic
                    .search(&ask.scope, &ask.text, &vector, ask.threshold);
                // A miss stores its answer with the embedding made here.
                if let Some(store) = self.pending.as_mut().and_then(|p| p.semantic.as_mut()) {
                    store.vector = Some(vector);
                }
                let found = found?;
                let entry = cache.get(&found.key, team.as_deref()).await?;
                self.similarity = Some(found.similarity);
                entry
            }
        };
        self.result = "hit";
        self.pending = None;
        Some(entry)
    }

    /// Counts the request's cache result and puts it on its response.
    pub fn tag(&self, response: &mut Response) {
        metrics::cache_lookup(self.result);
        let h = response.headers_mut();
        h.insert(CACHE_HEADER, HeaderValue::from_static(self.result));
        if self.result == "hit" {
            let how = match self.similarity {
                Some(s) => format!("semantic; similarity={s:.3}"),
                None => "exact".to_owned(),
            };
            if let Ok(v) = HeaderValue::from_str(&how) {
                h.insert(CACHE_MATCH, v);
            }
        }
    }
}

/// The semantic lookup a policy asks for, if there is an embedder (the policy's route, else
/// this proxy's in-process model) and the request ends with a text turn of the user: that turn
/// is compared by embedding; everything else (the scope, the embedder, every other field, the
/// messages before it) must match exactly.
fn semantic_ask(
    semantic: &Arc<Semantic>,
    policy: &proto::CachePolicy,
    scope: key::Scope<'_>,
    json: &JsonBody,
) -> Option<SemanticAsk> {
    let settings = policy.semantic.as_ref().filter(|s| s.enabled)?;
    let route = settings.embedding_route.clone();
    if route.is_none() && !semantic.has_embedder() {
        return None;
    }
    let messages: serde_json::Value = serde_json::from_str(json.get("messages")?.get()).ok()?;
    let (before, text) = semantic_turn(&messages)?;
    let mut rest = json.clone();
    rest.insert(
        "messages".into(),
        serde_json::value::to_raw_value(&before).ok()?,
    );
    let policy_scope = match &route {
        None => format!("semantic:{}", scope.policy),
        Some(route) => format!("semantic:{}@route:{route}", scope.policy),
    };
    let scope = key::key(
        key::Scope {
            policy: &policy_scope,
            ..scope
        },
        &rest,
    )?;
    let threshold = settings
        .threshold
        .and_then(|t| rust_decimal::prelude::ToPrimitive::to_f32(&t))
        .unwrap_or(embed::DEFAULT_THRESHOLD);
    Some(SemanticAsk {
        semantic: Arc::clone(semantic),
        scope,
        text,
        threshold,
        route,
    })
}

/// Answers a request from `entry` in dialect `D`, and meters it; `None` (nothing metered) if
/// the entry cannot be written in that dialect, which the caller treats as a miss.
pub fn serve<D: ChatDialect>(
    app: &App,
    p: &Prepared,
    fields: &ChatFields,
    request: &[u8],
    entry: &Entry,
    keep: Option<Keep>,
) -> Option<Response> {
    let answer = Answer {
        model: &fields.model,
        id: p.trace.id,
        prompt_tokens: p.prompt_tokens,
        request,
    };
    let completion = Bytes::copy_from_slice(entry.completion.get().as_bytes());
    let mut response = if fields.stream {
        let value: serde_json::Value = serde_json::from_slice(&completion).ok()?;
        let mut frames = D::frames(fields, &answer, false);
        let mut body = BytesMut::new();
        for chunk in cache::replay::chunks(&value) {
            if let Some(frame) = frames.chunk(&chunk) {
                body.extend_from_slice(&frame);
            }
        }
        body.extend_from_slice(&frames.done());
        if let (Some(keep), Some(whole)) = (keep, frames.finished()) {
            keep.run(whole);
        }
        let mut response = (StatusCode::OK, body.freeze()).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    } else {
        let body = D::reply(completion, &answer, false)?;
        if let Some(keep) = keep {
            keep.run(body.clone());
        }
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    meter(app, p, entry);
    if let Ok(v) = HeaderValue::from_str(&entry.deployment) {
        response.headers_mut().insert(super::respond::DEPLOYMENT, v);
    }
    Some(response)
}

/// The hit's one usage event: the stored answer's usage, no cost, the cost saved at the
/// price of the deployment that made it (else the route's first).
fn meter(app: &App, p: &Prepared, entry: &Entry) {
    let parts = app.parts();
    let route = &p.route.serving;
    let Some(deployment) = route
        .deployments
        .iter()
        .find(|d| d.id == entry.deployment)
        .or_else(|| route.primary())
    else {
        return;
    };
    let mut meter = Meter::new(Start {
        id: p.trace.id,
        started: p.trace.started,
        proxy: &parts.proxy_id,
        key: &p.key,
        tags: p.tags.clone(),
        endpoint: p.ask.endpoint,
        alias: &p.route.requested.alias,
        deployment,
        streamed: p.ask.streamed,
        prompt_estimate: p.prompt_tokens,
        log: p.log,
    });
    meter.guarded(&p.guardrail);
    let event = meter.cache_hit(entry.usage);
    metrics::request_done(p.labels(deployment), 200, p.trace.started.elapsed());
    p.trace.span.settled(&event);
    parts.usage.emit(event);
}
