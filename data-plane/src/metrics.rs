//! Prometheus metrics of the data plane: names, labels and the recorder. Every series and its
//! label limits are listed in docs/METRICS.md.
//!
//! Labels are bounded: provider labels come from the snapshot, route, model and deployment
//! labels too except for `provider/model` names a caller typed, which are capped
//! ([`labels`]); status is the HTTP status class, error kinds are a closed set. The
//! OpenTelemetry GenAI series live in [`gen_ai`].

pub mod gen_ai;
pub mod handles;
pub mod labels;

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::snapshot::CompiledSnapshot;

pub const REQUESTS: &str = "switchyard_requests_total";
pub const REQUEST_DURATION: &str = "switchyard_request_duration_seconds";
pub const GATEWAY_OVERHEAD: &str = "switchyard_gateway_overhead_seconds";
pub const UPSTREAM_FIRST_BYTE: &str = "switchyard_upstream_first_byte_seconds";
pub const TOKENS: &str = "switchyard_tokens_total";
pub const ERRORS: &str = "switchyard_errors_total";
pub const STREAMS_ABANDONED: &str = "switchyard_streams_abandoned_total";
pub const BILLING_UNSETTLED: &str = "switchyard_billing_unsettled_total";
pub const INFLIGHT: &str = "switchyard_inflight_requests";
pub const SNAPSHOT_VERSION: &str = "switchyard_snapshot_version";
pub const SNAPSHOT_KEYS: &str = "switchyard_snapshot_keys";
pub const SNAPSHOT_ROUTES: &str = "switchyard_snapshot_routes";
pub const SNAPSHOT_RELOADS: &str = "switchyard_snapshot_reloads_total";
pub const SNAPSHOT_SWAP: &str = "switchyard_snapshot_swap_seconds";
pub const SNAPSHOT_KEY_PARTS: &str = "switchyard_snapshot_key_parts_total";
pub const USAGE_EVENTS: &str = "switchyard_usage_events_total";
pub const USAGE_PUBLISHED: &str = "switchyard_usage_published_total";
pub const USAGE_PUBLISH_FAILURES: &str = "switchyard_usage_publish_failures_total";
pub const USAGE_PUBLISH_LATENCY: &str = "switchyard_usage_publish_seconds";
pub const USAGE_SPOOLED: &str = "switchyard_usage_spooled_total";
pub const USAGE_REPLAYED: &str = "switchyard_usage_replayed_total";
pub const USAGE_SPOOL_DROPPED: &str = "switchyard_usage_spool_dropped_total";
pub const USAGE_SPOOL_BYTES: &str = "switchyard_usage_spool_bytes";
pub const USAGE_QUEUE_FULL: &str = "switchyard_usage_queue_full_total";
pub const FALLBACKS: &str = "switchyard_fallbacks_total";
pub const BREAKER_STATE: &str = "switchyard_breaker_state";
pub const RESPONSES: &str = "switchyard_responses_total";
pub const ATTEMPTS: &str = "switchyard_attempts_total";
pub const CACHE_REQUESTS: &str = "switchyard_cache_requests_total";
pub const GUARDRAIL_DETECTIONS: &str = "switchyard_guardrail_detections_total";
pub const DEPENDENCY_UP: &str = "switchyard_dependency_up";
pub const SNAPSHOT_INSTALLED_AT: &str = "switchyard_snapshot_installed_timestamp_seconds";
pub const SNAPSHOT_PUBLISHED_AT: &str = "switchyard_snapshot_published_timestamp_seconds";
pub const SNAPSHOT_PROPAGATION: &str = "switchyard_snapshot_propagation_seconds";

/// When this process installed its recorder: snapshots published before it are not counted in
/// [`SNAPSHOT_PROPAGATION`] (a proxy that starts reads an old pointer; that is not propagation).
static STARTED: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01, 0.05,
];

/// Installs the global recorder; call once per process.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    LazyLock::force(&STARTED);
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(UPSTREAM_FIRST_BYTE.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(GATEWAY_OVERHEAD.into()), OVERHEAD_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(SNAPSHOT_SWAP.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(USAGE_PUBLISH_LATENCY.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_LOG_STREAM.publish_seconds.into()),
            LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Full(SNAPSHOT_PROPAGATION.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(gen_ai::OPERATION_DURATION.into()),
            gen_ai::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(gen_ai::TOKEN_USAGE.into()),
            gen_ai::TOKEN_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(gen_ai::TIME_TO_FIRST_TOKEN.into()),
            gen_ai::TTFT_BUCKETS,
        )?
        .install_recorder()
}

/// Labels of one served request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLabels<'a> {
    pub endpoint: &'static str,
    pub route: &'a str,
    pub provider: &'a str,
}

/// A request finished with `status`.
pub fn request_done(l: RequestLabels<'_>, status: u16, total: Duration) {
    let class = status_class(status);
    let key = [l.endpoint, l.route, l.provider, class];
    let (requests, duration) = handles::cached("request_done", &key, || {
        let route = labels::ROUTES.label(l.route);
        (
            counter!(REQUESTS, "endpoint" => l.endpoint, "route" => route.clone(), "provider" => l.provider.to_owned(), "status" => class),
            histogram!(REQUEST_DURATION, "endpoint" => l.endpoint, "route" => route),
        )
    });
    requests.increment(1);
    duration.record(total.as_secs_f64());
}

/// A response head left for the client with `status`: every request of the API endpoints,
/// refused and failed ones included (a stream counts with its 200 head, even if it breaks
/// later; `switchyard_requests_total` has its end).
pub fn response(endpoint: &'static str, status: u16) {
    let class = status_class(status);
    handles::cached(
        "response",
        &[endpoint, class],
        || counter!(RESPONSES, "endpoint" => endpoint, "status" => class),
    )
    .increment(1);
}

/// Time the gateway itself spent on a request (total minus waiting for the provider).
pub fn overhead(endpoint: &'static str, d: Duration) {
    handles::cached(
        "overhead",
        &[endpoint],
        || histogram!(GATEWAY_OVERHEAD, "endpoint" => endpoint),
    )
    .record(d.as_secs_f64());
}

/// Time from sending upstream to the provider's response head.
pub fn upstream_first_byte(provider: &str, d: Duration) {
    handles::cached(
        "upstream_first_byte",
        &[provider],
        || histogram!(UPSTREAM_FIRST_BYTE, "provider" => provider.to_owned()),
    )
    .record(d.as_secs_f64());
}

/// An attempt failed and the request moved on to another deployment.
pub fn fallback(route: &str, from_provider: &str, kind: &'static str) {
    counter!(FALLBACKS, "route" => labels::ROUTES.label(route), "provider" => from_provider.to_owned(), "error" => kind).increment(1);
}

/// A deployment's breaker state after an outcome: 0 closed, 1 half-open, 2 open.
pub fn breaker(deployment: &str, state: &'static str) {
    let value = match state {
        "closed" => 0.0,
        "half_open" => 1.0,
        _ => 2.0,
    };
    gauge!(BREAKER_STATE, "deployment" => labels::DEPLOYMENTS.label(deployment)).set(value);
}

/// Tokens the provider reported.
pub fn tokens(l: RequestLabels<'_>, prompt: u64, completion: u64) {
    let (prompt_tokens, completion_tokens) = handles::cached(
        "tokens",
        &[l.route, l.provider],
        || {
            let route = labels::ROUTES.label(l.route);
            (
                counter!(TOKENS, "route" => route.clone(), "provider" => l.provider.to_owned(), "type" => "prompt"),
                counter!(TOKENS, "route" => route, "provider" => l.provider.to_owned(), "type" => "completion"),
            )
        },
    );
    prompt_tokens.increment(prompt);
    completion_tokens.increment(completion);
}

/// A request failed; `kind` is the error's closed-set label.
pub fn error(endpoint: &'static str, kind: &'static str) {
    handles::cached(
        "error",
        &[endpoint, kind],
        || counter!(ERRORS, "endpoint" => endpoint, "kind" => kind),
    )
    .increment(1);
}

/// The client went away before the stream ended.
pub fn stream_abandoned(route: &str) {
    counter!(STREAMS_ABANDONED, "route" => labels::ROUTES.label(route)).increment(1);
}

/// Guardrail detections of `class` handled by `action`, in a request (`input`) or an answer
/// (`output`). Classes are the built-in ones and the snapshot's custom pattern names.
pub fn guardrail(class: &str, action: &'static str, direction: &'static str, n: u64) {
    counter!(GUARDRAIL_DETECTIONS, "class" => class.to_owned(), "action" => action, "direction" => direction).increment(n);
}

/// A request's billing was dropped without being settled (settled then as abandoned).
pub fn billing_unsettled() {
    counter!(BILLING_UNSETTLED).increment(1);
}

/// In-flight requests go up by `delta`.
pub fn inflight(delta: f64) {
    handles::cached("inflight", &[], || gauge!(INFLIGHT)).increment(delta);
}

/// A snapshot was installed.
pub fn snapshot_installed(s: &CompiledSnapshot) {
    gauge!(SNAPSHOT_VERSION).set(s.version as f64);
    gauge!(SNAPSHOT_KEYS).set(s.key_count() as f64);
    gauge!(SNAPSHOT_ROUTES).set(s.aliases().len() as f64);
    gauge!(SNAPSHOT_INSTALLED_AT).set(unix_seconds(SystemTime::now()));
}

/// A snapshot the control plane published at `published_at_ms` (Unix milliseconds; `None`
/// from a control plane that does not say) was installed from NATS just now. Its publication
/// time is exported, and the time it took to get here is recorded if it was published while
/// this proxy ran.
pub fn snapshot_published(published_at_ms: Option<i64>) {
    let Some(ms) = published_at_ms.and_then(|ms| u64::try_from(ms).ok()) else {
        return;
    };
    let published = UNIX_EPOCH + Duration::from_millis(ms);
    gauge!(SNAPSHOT_PUBLISHED_AT).set(unix_seconds(published));
    if published >= *STARTED {
        let took = SystemTime::now()
            .duration_since(published)
            .unwrap_or_default();
        histogram!(SNAPSHOT_PROPAGATION).record(took.as_secs_f64());
    }
}

/// Background work of one snapshot swap: download, then parse + check + compile.
pub fn snapshot_swap(fetch: Duration, compile: Duration) {
    histogram!(SNAPSHOT_SWAP, "stage" => "fetch").record(fetch.as_secs_f64());
    histogram!(SNAPSHOT_SWAP, "stage" => "compile").record(compile.as_secs_f64());
}

/// Key parts of an installed snapshot: `fetched` downloaded and compiled, `reused` shared
/// with the snapshot it replaced.
pub fn snapshot_key_parts(fetched: usize, reused: usize) {
    counter!(SNAPSHOT_KEY_PARTS, "source" => "fetched").increment(fetched as u64);
    counter!(SNAPSHOT_KEY_PARTS, "source" => "reused").increment(reused as u64);
}

/// A reload attempt ended with `result` (`ok`, `invalid`, `stale`).
pub fn snapshot_reload(result: &'static str) {
    counter!(SNAPSHOT_RELOADS, "result" => result).increment(1);
}

/// A usage event was built for a request (`outcome`: `ok`, `upstream_error`, `refused`).
pub fn usage_event(outcome: &'static str) {
    handles::cached(
        "usage_event",
        &[outcome],
        || counter!(USAGE_EVENTS, "outcome" => outcome),
    )
    .increment(1);
}

/// The metric names of one stream the proxy publishes with acknowledgement and spools for
/// (usage events, request-log entries): each has the same series under its own prefix.
#[derive(Debug)]
pub struct Published {
    pub published: &'static str,
    pub publish_failures: &'static str,
    pub publish_seconds: &'static str,
    pub spooled: &'static str,
    pub replayed: &'static str,
    pub spool_dropped: &'static str,
    pub spool_bytes: &'static str,
    pub queue_full: &'static str,
}

/// Usage events.
pub static USAGE_STREAM: Published = Published {
    published: USAGE_PUBLISHED,
    publish_failures: USAGE_PUBLISH_FAILURES,
    publish_seconds: USAGE_PUBLISH_LATENCY,
    spooled: USAGE_SPOOLED,
    replayed: USAGE_REPLAYED,
    spool_dropped: USAGE_SPOOL_DROPPED,
    spool_bytes: USAGE_SPOOL_BYTES,
    queue_full: USAGE_QUEUE_FULL,
};

/// Request-log payload entries.
pub static REQUEST_LOG_STREAM: Published = Published {
    published: "switchyard_request_log_published_total",
    publish_failures: "switchyard_request_log_publish_failures_total",
    publish_seconds: "switchyard_request_log_publish_seconds",
    spooled: "switchyard_request_log_spooled_total",
    replayed: "switchyard_request_log_replayed_total",
    spool_dropped: "switchyard_request_log_spool_dropped_total",
    spool_bytes: "switchyard_request_log_spool_bytes",
    queue_full: "switchyard_request_log_queue_full_total",
};

impl Published {
    /// `n` items were acknowledged by JetStream; `source` is `live` or `replay`.
    pub fn published(&self, source: &'static str, n: u64) {
        counter!(self.published, "source" => source).increment(n);
    }

    /// One publish failed (not acknowledged in time, or refused).
    pub fn publish_failure(&self) {
        counter!(self.publish_failures).increment(1);
    }

    /// Time from sending an item to its JetStream acknowledgement.
    pub fn publish_latency(&self, d: Duration) {
        histogram!(self.publish_seconds).record(d.as_secs_f64());
    }

    /// An item was written to the on-disk spool.
    pub fn spooled(&self) {
        counter!(self.spooled).increment(1);
    }

    /// `n` spooled items were acknowledged on replay and their segment removed.
    pub fn replayed(&self, n: u64) {
        counter!(self.replayed).increment(n);
    }

    /// An item was lost: the spool was full or could not be written (`reason`).
    pub fn spool_dropped(&self, reason: &'static str) {
        counter!(self.spool_dropped, "reason" => reason).increment(1);
    }

    /// Bytes currently held in the spool directory.
    pub fn spool_bytes(&self, bytes: u64) {
        gauge!(self.spool_bytes).set(bytes as f64);
    }

    /// The handler-to-publisher queue was full (or closed); the item went to the spool.
    pub fn queue_full(&self) {
        counter!(self.queue_full).increment(1);
    }
}

/// One attempt at a provider ended: `result` is `ok` or the failure's kind.
pub fn attempt(provider: &str, result: &'static str) {
    handles::cached(
        "attempt",
        &[provider, result],
        || counter!(ATTEMPTS, "provider" => provider.to_owned(), "result" => result),
    )
    .increment(1);
}

/// A request passed the response-cache stage with `result` `hit`, `miss` or `bypass`. There is
/// no cache yet, so every request that reaches a provider counts as `bypass`.
pub fn cache_lookup(result: &'static str) {
    handles::cached(
        "cache_lookup",
        &[result],
        || counter!(CACHE_REQUESTS, "result" => result),
    )
    .increment(1);
}

/// Whether this proxy's connection to `dependency` (`nats`) is up.
pub fn dependency_up(dependency: &'static str, up: bool) {
    gauge!(DEPENDENCY_UP, "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}
