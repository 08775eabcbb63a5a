//! OAuth access tokens for one Vertex provider: fetched from the service account's token
//! endpoint, cached, refreshed before they expire.
//!
//! Guarantees:
//! - A cached token is used until its refresh point: 5 minutes before expiry, or a quarter of
//!   its lifetime before expiry for tokens that live under 20 minutes.
//! - Single flight: at most one fetch runs per provider; requests that need a token while it
//!   runs wait for it and use its result (or its error) instead of fetching again.
//! - A failed refresh while the old token has not yet expired keeps using the old token.
//! - Tokens are held as sensitive header values; no `Debug` output or error text contains a
//!   token or the key. Errors name the credential source and what the endpoint answered.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderValue;
use serde::Deserialize;

use super::auth::ServiceAccount;
use crate::providers::common::{encode_segment, parse_url, unix_now};
use crate::providers::http::{remaining, secret_header, send};

/// Refresh this long before expiry (at most).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Longest error description from the token endpoint quoted in an error.
const MAX_DESCRIPTION: usize = 200;

/// A token ready to send, with when to replace it.
#[derive(Clone)]
struct Token {
    /// `Bearer …`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// What the token endpoint gave.
pub struct Fetched {
    pub access_token: String,
    pub expires_in: Duration,
}

/// The cached token of one provider.
#[derive(Default)]
pub struct TokenCache {
    state: Mutex<State>,
    /// Held while a fetch runs: the single flight.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Fetches completed so far: a request that waited for a flight knows one ended.
    flights: u64,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

impl State {
    fn fresh(&self, now: Instant) -> Option<HeaderValue> {
        self.token
            .as_ref()
            .filter(|t| now < t.refresh_at)
            .map(|t| t.header.clone())
    }

    /// After a failed fetch: the current token while it has not expired, else the failure.
    fn fallback(&self, now: Instant, failure: String) -> Result<HeaderValue, String> {
        match self.token.as_ref().filter(|t| now < t.expires_at) {
            Some(old) => Ok(old.header.clone()),
            None => Err(failure),
        }
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache(<redacted>)")
    }
}

impl TokenCache {
    /// The `Authorization` value to send at `now`, from the cache or from `fetch`.
    pub async fn get<F, Fut>(&self, now: Instant, fetch: F) -> Result<HeaderValue, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, String>>,
    {
        let seen = {
            let state = self.lock();
            if let Some(header) = state.fresh(now) {
                return Ok(header);
            }
            state.flights
        };
        let _flight = self.refresh.lock().await;
        {
            // The flight we waited for may have refreshed the token, or failed.
            let state = self.lock();
            if let Some(header) = state.fresh(now) {
                return Ok(header);
            }
            if let (true, Some(failure)) = (state.flights != seen, &state.failure) {
                return state.fallback(now, failure.clone());
            }
        }
        let fetched = fetch().await.and_then(|f| Token::new(&f, now));
        let mut state = self.lock();
        state.flights += 1;
        match fetched {
            Ok(token) => {
                let header = token.header.clone();
                state.token = Some(token);
                state.failure = None;
                Ok(header)
            }
            Err(e) => {
                state.failure = Some(e.clone());
                let result = state.fallback(now, e);
                if let (Ok(_), Some(failure)) = (&result, &state.failure) {
                    tracing::warn!(
                        error = %failure,
                        "access token refresh failed; the current token is still valid"
                    );
                }
                result
            }
        }
    }

    /// Forgets `header` if it is still the cached token (the provider refused it).
    pub fn invalidate(&self, header: &HeaderValue) {
        let mut state = self.lock();
        if state.token.as_ref().is_some_and(|t| t.header == header) {
            state.token = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Token {
    /// A token fetched at `now`, due for refresh `REFRESH_MARGIN` (or a quarter of its
    /// lifetime, if shorter) before it expires.
    fn new(fetched: &Fetched, now: Instant) -> Result<Self, String> {
        let header =
            secret_header(&format!("Bearer {}", fetched.access_token)).ok_or_else(|| {
                "the token endpoint sent an access token that is not a valid header".to_owned()
            })?;
        let margin = REFRESH_MARGIN.min(fetched.expires_in / 4);
        Ok(Self {
            header,
            refresh_at: now + fetched.expires_in.saturating_sub(margin),
            expires_at: now + fetched.expires_in,
        })
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

/// Google's OAuth error answer.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Exchanges a fresh JWT for an access token at the account's `token_uri` within `timeout`.
/// `source` names where the key came from, for the error text.
pub async fn fetch(
    http: &reqwest::Client,
    account: &ServiceAccount,
    source: &str,
    timeout: Duration,
) -> Result<Fetched, String> {
    let start = Instant::now();
    let failed = |why: &str| {
        format!(
            "could not obtain a Google access token for the service account in {source} \
             ({}): {why}",
            account.client_email
        )
    };
    let url = parse_url(&account.token_uri).map_err(|e| failed(&e.to_string()))?;
    let assertion = account.assertion(unix_now()).map_err(|e| failed(&e))?;
    let body = format!(
        "grant_type={}&assertion={}",
        encode_segment("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        encode_segment(&assertion)
    );
    let request = http
        .post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body);
    let response = send("google-oauth", request, timeout)
        .await
        .map_err(|_| failed("the token endpoint did not answer"))?;
    let status = response.status();
    let bytes = tokio::time::timeout(remaining(start, timeout), response.bytes())
        .await
        .map_err(|_| failed("the token endpoint did not answer in time"))?
        .map_err(|_| failed("the token endpoint's answer broke off"))?;
    if !status.is_success() {
        let why = match serde_json::from_slice::<OAuthError>(&bytes) {
            Ok(e) => {
                let description: String = e
                    .error_description
                    .unwrap_or_default()
                    .chars()
                    .take(MAX_DESCRIPTION)
                    .collect();
                format!(
                    "the token endpoint refused it with {status}: {} {description}",
                    e.error
                )
            }
            Err(_) => format!("the token endpoint answered {status}"),
        };
        tracing::warn!(status = status.as_u16(), "token request refused");
        return Err(failed(why.trim_end()));
    }
    let token: TokenResponse = serde_json::from_slice(&bytes)
        .map_err(|_| failed("the token endpoint's answer is not a token response"))?;
    if token
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(failed(
            "the token endpoint sent a token that is not a bearer token",
        ));
    }
    if token.access_token.is_empty() {
        return Err(failed("the token endpoint sent an empty access token"));
    }
    Ok(Fetched {
        access_token: token.access_token,
        // Google's tokens live an hour; an answer without a lifetime is taken as that.
        expires_in: Duration::from_secs(token.expires_in.unwrap_or(3600)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    fn fetched(n: u32, secs: u64) -> Result<Fetched, String> {
        Ok(Fetched {
            access_token: format!("tok-{n}"),
            expires_in: Duration::from_secs(secs),
        })
    }

    #[tokio::test]
    async fn refreshes_before_expiry_not_before() {
        let cache = TokenCache::default();
        let calls = AtomicU32::new(0);
        let t0 = Instant::now();
        let get = |at: Duration| {
            let calls = &calls;
            let cache = &cache;
            async move {
                cache
                    .get(t0 + at, || async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                        fetched(n, 3600)
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(get(Duration::ZERO).await, "Bearer tok-1");
        assert_eq!(get(Duration::from_secs(3299)).await, "Bearer tok-1");
        // Five minutes before expiry: refreshed while the old one is still valid.
        assert_eq!(get(Duration::from_secs(3300)).await, "Bearer tok-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(get(Duration::ZERO).await.is_sensitive());
    }

    #[tokio::test]
    async fn short_lived_tokens_refresh_at_three_quarters() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        let a = cache.get(t0, || async { fetched(1, 40) }).await.unwrap();
        let b = cache
            .get(t0 + Duration::from_secs(29), || async { fetched(2, 40) })
            .await
            .unwrap();
        let c = cache
            .get(t0 + Duration::from_secs(30), || async { fetched(3, 40) })
            .await
            .unwrap();
        assert_eq!(a, "Bearer tok-1");
        assert_eq!(b, "Bearer tok-1");
        assert_eq!(c, "Bearer tok-3");
    }

    /// Eight requests at once on `cache`, each with a fetch that takes 100 ms and answers
    /// `answer(n)` when it is the n-th fetch started. Returns their results and how many
    /// fetches ran.
    async fn eight_at_once(
        cache: &Arc<TokenCache>,
        now: Instant,
        answer: fn(u32) -> Result<Fetched, String>,
    ) -> (Vec<Result<HeaderValue, String>>, u32) {
        let calls = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::clone(cache);
                let calls = Arc::clone(&calls);
                tokio::spawn(async move {
                    cache
                        .get(now, || async move {
                            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            answer(n)
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        (results, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let (results, calls) = eight_at_once(&cache, Instant::now(), |n| fetched(n, 3600)).await;
        for result in results {
            assert_eq!(result.unwrap(), "Bearer tok-1");
        }
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn requests_waiting_on_a_failed_fetch_share_its_failure() {
        let cache = Arc::new(TokenCache::default());
        let now = Instant::now();
        let (results, calls) = eight_at_once(&cache, now, |_| Err("refused".to_owned())).await;
        for result in results {
            assert_eq!(result.unwrap_err(), "refused");
        }
        assert_eq!(calls, 1);
        // A later request tries again.
        let later = cache.get(now, || async { fetched(1, 60) }).await;
        assert_eq!(later.unwrap(), "Bearer tok-1");
    }

    #[tokio::test]
    async fn failures_keep_a_valid_token_and_report_otherwise() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        let fail = || async { Err::<Fetched, _>("endpoint down".to_owned()) };
        assert_eq!(cache.get(t0, fail).await.unwrap_err(), "endpoint down");
        cache.get(t0, || async { fetched(1, 3600) }).await.unwrap();
        // Due for refresh, refresh fails, old token still valid: used.
        let kept = cache.get(t0 + Duration::from_secs(3500), fail).await;
        assert_eq!(kept.unwrap(), "Bearer tok-1");
        // Expired: the failure is reported.
        let gone = cache.get(t0 + Duration::from_secs(3600), fail).await;
        assert_eq!(gone.unwrap_err(), "endpoint down");
        // A refused token is forgotten, so the next request fetches.
        let header = cache.get(t0, || async { fetched(2, 3600) }).await.unwrap();
        cache.invalidate(&header);
        let next = cache.get(t0, || async { fetched(3, 3600) }).await.unwrap();
        assert_eq!(next, "Bearer tok-3");
        assert!(!format!("{cache:?}").contains("tok"));
    }

    /// A token endpoint on a free local port answering every request with `status` and
    /// `body`, after checking the grant type; the URL to send to.
    async fn token_endpoint(status: u16, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |form: String| async move {
                assert!(form.starts_with(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
                ));
                (http::StatusCode::from_u16(status).unwrap(), body)
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/token")
    }

    fn account(token_uri: &str) -> (ServiceAccount, String) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/test-only-vertex-service-account.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        file["token_uri"] = serde_json::json!(token_uri);
        let key_line = text.lines().find(|l| l.contains("PRIVATE KEY")).unwrap();
        let secret = key_line.split("\\n").nth(2).unwrap().to_owned();
        (ServiceAccount::parse(&file.to_string()).unwrap(), secret)
    }

    #[tokio::test]
    async fn fetch_exchanges_the_jwt_and_explains_refusals() {
        let http = reqwest::Client::new();
        let source = "environment variable `SA`";
        let timeout = Duration::from_secs(5);

        let url = token_endpoint(
            200,
            r#"{"access_token":"ya29.x","expires_in":120,"token_type":"Bearer"}"#,
        )
        .await;
        let (sa, _) = account(&url);
        let got = fetch(&http, &sa, source, timeout).await.unwrap();
        assert_eq!(got.access_token, "ya29.x");
        assert_eq!(got.expires_in, Duration::from_secs(120));

        let url = token_endpoint(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        )
        .await;
        let (sa, secret) = account(&url);
        let e = fetch(&http, &sa, source, timeout).await.err().unwrap();
        assert!(e.contains(source), "{e}");
        assert!(e.contains(&sa.client_email), "{e}");
        assert!(e.contains("invalid_grant Invalid JWT Signature."), "{e}");
        assert!(!e.contains(&secret) && !e.contains("eyJ"), "{e}");

        let url = token_endpoint(200, r#"{"access_token":"t","token_type":"MAC"}"#).await;
        let e = fetch(&http, &account(&url).0, source, timeout)
            .await
            .err()
            .unwrap();
        assert!(e.contains("not a bearer token"), "{e}");

        // Nothing listens on port 9 (discard) in the test environment.
        let e = fetch(
            &http,
            &account("http://127.0.0.1:9/token").0,
            source,
            timeout,
        )
        .await
        .err()
        .unwrap();
        assert!(e.contains("did not answer"), "{e}");
    }
}
