//! Google Vertex AI routes of the mock, with Google's OAuth token endpoint in front of them.
//!
//! - `POST /token`: the service-account JWT bearer grant. The form body must carry
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an `assertion` JWT that is
//!   `RS256`-signed by the key of [`MockOptions::google_service_account`], with `iss` = its
//!   `client_email`, `aud` = the URL the request was sent to (`http://{Host}/token`), a `scope`
//!   that includes `https://www.googleapis.com/auth/cloud-platform`, `exp` in the future and
//!   `exp - iat` at most 3600. Then it answers
//!   `{"access_token":"ya29.mock-N","expires_in":TTL,"token_type":"Bearer"}` (N counts from 1,
//!   TTL is [`MockOptions::google_token_ttl_secs`]); else 400
//!   `{"error":"invalid_grant"|"unsupported_grant_type"|"invalid_scope","error_description":…}`
//!   as Google does. Token requests are recorded like API requests (`body` is the form as a
//!   JSON object, `model` null).
//! - `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`
//!   with `generateContent`, `streamGenerateContent?alt=sse` (the Gemini handlers of
//!   `gemini.rs`: same bodies, scripting, faults, recording and token counting) and `predict`
//!   (text embeddings: `{"instances":[{"content"}],"parameters":{"outputDimensionality"}}` →
//!   `{"predictions":[{"embeddings":{"values","statistics":{"token_count","truncated"}}}]}`,
//!   token_count = words of the content, vectors as for the other embedding routes). These
//!   require `Authorization: Bearer <token>` with a token this mock issued that has not
//!   expired; otherwise, before anything else is checked, 401
//!   `{"error":{"code":401,"message":…,"status":"UNAUTHENTICATED"}}` (recorded too).
//!
//! [`MockOptions::google_service_account`]: super::MockOptions::google_service_account
//! [`MockOptions::google_token_ttl_secs`]: super::MockOptions::google_token_ttl_secs

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::Path;
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{KeyPair as _, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::admit::{Admitted, ApiRequest, Dialect, Inbound};
use super::embedding::{self, Item, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use super::gemini::{generate_action, google_answer, non_stream};
use super::google_error::gemini_error;
use super::openai::json_response;
use super::record::{now_ms, RecordInit};
use super::tokens::count_words;
use super::Shared;

const MODELS: &str =
    "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's limit on an assertion's lifetime.
const MAX_ASSERTION_SECS: u64 = 3600;

/// The tokens this mock issued, and the service account it trusts (parsed on first use).
#[derive(Debug, Default)]
struct Tokens {
    issued: AtomicU64,
    /// Token → expiry (Unix ms).
    live: Mutex<HashMap<String, u64>>,
    account: OnceLock<Result<Account, String>>,
}

#[derive(Debug)]
struct Account {
    client_email: String,
    /// DER `RSAPublicKey`.
    public_key: Vec<u8>,
}

/// The Vertex routes, merged into the mock's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/token", post(token))
        .route(MODELS, post(models_action))
        .layer(Extension(Arc::new(Tokens::default())))
}

/// `POST /token`.
async fn token(Extension(tokens): Extension<Arc<Tokens>>, inbound: Inbound) -> Response {
    let (shared, headers) = (&inbound.shared, &inbound.headers);
    let form = parse_form(&inbound.body);
    let record = shared.records.start(RecordInit {
        body: Value::Object(
            form.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        ),
        ..inbound.record_init()
    });
    let account = tokens
        .account
        .get_or_init(|| parse_account(shared.options.google_service_account.as_deref()));
    let audience = format!(
        "http://{}{}",
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default(),
        inbound.uri.path()
    );
    let response = match grant(account, &form, &audience) {
        Ok(()) => {
            let n = tokens.issued.fetch_add(1, Ordering::Relaxed) + 1;
            let access_token = format!("ya29.mock-{n}");
            let ttl = shared.options.google_token_ttl_secs;
            tokens
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(access_token.clone(), now_ms() + ttl * 1000);
            let body =
                json!({ "access_token": access_token, "expires_in": ttl, "token_type": "Bearer" });
            json_response(StatusCode::OK, body.to_string())
        }
        Err((error, description)) => json_response(
            StatusCode::BAD_REQUEST,
            json!({ "error": error, "error_description": description }).to_string(),
        ),
    };
    record.completed();
    response
}

/// Checks a token request; `Err((error, error_description))` as Google words them.
fn grant(
    account: &Result<Account, String>,
    form: &HashMap<String, String>,
    audience: &str,
) -> Result<(), (&'static str, String)> {
    let invalid = |d: &str| ("invalid_grant", d.to_owned());
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(("unsupported_grant_type", "Invalid grant_type.".to_owned()));
    }
    let account = account.as_ref().map_err(|e| invalid(e))?;
    let jwt = form
        .get("assertion")
        .ok_or_else(|| invalid("Missing required parameter: assertion"))?;
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        ));
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(signature)) = (
        decode(header),
        decode(claims),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return Err(invalid("Invalid JWT: malformed"));
    };
    if header["alg"] != "RS256" {
        return Err(invalid("Invalid JWT: alg must be RS256"));
    }
    let signed = &jwt[..jwt.rfind('.').unwrap_or_default()];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| invalid("Invalid JWT Signature."))?;
    if claims["iss"] != account.client_email.as_str() {
        return Err(invalid("Invalid grant: account not found"));
    }
    if claims["aud"] != audience {
        return Err(invalid(&format!("Invalid JWT: aud must be {audience}")));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == CLOUD_PLATFORM) {
        return Err((
            "invalid_scope",
            format!("Invalid scope; {CLOUD_PLATFORM} required"),
        ));
    }
    let now = now_ms() / 1000;
    match (claims["iat"].as_u64(), claims["exp"].as_u64()) {
        (Some(iat), Some(exp)) if exp > now && exp >= iat && exp - iat <= MAX_ASSERTION_SECS => {
            Ok(())
        }
        _ => Err(invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )),
    }
}

/// `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`.
async fn models_action(
    Extension(tokens): Extension<Arc<Tokens>>,
    Path((_project, _location, target)): Path<(String, String, String)>,
    inbound: Inbound,
) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    if !tokens.valid(&inbound.headers) {
        let body = &inbound.body;
        let record = inbound.shared.records.start(RecordInit {
            body: serde_json::from_slice(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
            model: Some(model),
            stream: action == "streamGenerateContent",
            ..inbound.record_init()
        });
        record.completed();
        return gemini_error(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. (mock provider)",
            None,
        );
    }
    let dialect = Dialect::Vertex { model };
    match action {
        "predict" => google_answer(&inbound, dialect, predict).await,
        _ => generate_action(&inbound, dialect, action)
            .await
            .unwrap_or_else(|| not_found(&target)),
    }
}

impl Tokens {
    /// The request carries a token this mock issued that has not expired.
    fn valid(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.get(token).is_some_and(|expiry| now_ms() < *expiry)
    }
}

#[derive(Debug, Deserialize)]
struct Instance {
    content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    #[serde(default)]
    output_dimensionality: Option<u32>,
}

/// A text-embedding `predict` request.
#[derive(Debug, Deserialize)]
struct Predict {
    instances: Vec<Instance>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

impl Predict {
    fn dimensions(&self) -> Option<u32> {
        self.parameters.as_ref()?.output_dimensionality
    }
}

impl ApiRequest for Predict {
    fn prompt_tokens(&self) -> u64 {
        self.instances.iter().map(|i| count_words(&i.content)).sum()
    }
    fn validate(&self) -> Result<(), String> {
        if self.instances.is_empty() {
            return Err("instances must not be empty".into());
        }
        match self.dimensions() {
            Some(d) if !(1..=MAX_DIMENSIONS).contains(&d) => Err(format!(
                "outputDimensionality {d} is not in 1..={MAX_DIMENSIONS}"
            )),
            _ => Ok(()),
        }
    }
}

fn predict(admitted: &Admitted<Predict>) -> Response {
    let request = &admitted.request;
    let dims = request.dimensions().unwrap_or(DEFAULT_DIMENSIONS);
    let predictions: Vec<Value> = request
        .instances
        .iter()
        .map(|i| {
            json!({ "embeddings": {
                "values": embedding::vector(Item::Text(&i.content), dims),
                "statistics": { "token_count": count_words(&i.content), "truncated": false },
            }})
        })
        .collect();
    let characters: usize = request
        .instances
        .iter()
        .map(|i| i.content.chars().count())
        .sum();
    admitted.report_usage(request.prompt_tokens(), 0);
    let body = json!({
        "predictions": predictions,
        "metadata": { "billableCharacterCount": characters },
    });
    non_stream(admitted, body.to_string().into_bytes())
}

fn not_found(target: &str) -> Response {
    let message = format!("Publisher Model `{target}` not found. (mock provider)");
    gemini_error(StatusCode::NOT_FOUND, &message, None)
}

/// The trusted account from the configured key file.
fn parse_account(json: Option<&str>) -> Result<Account, String> {
    let json = json.ok_or("the mock has no service account configured")?;
    let file: Value =
        serde_json::from_str(json).map_err(|_| "the mock's service account is not JSON")?;
    let client_email = file["client_email"]
        .as_str()
        .ok_or("the mock's service account has no client_email")?
        .to_owned();
    let pem = file["private_key"].as_str().unwrap_or_default();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "the mock's service account key is not PEM")?;
    let key = RsaKeyPair::from_pkcs8(&der)
        .map_err(|_| "the mock's service account key is not a PKCS#8 RSA key")?;
    Ok(Account {
        client_email,
        public_key: key.public_key().as_ref().to_vec(),
    })
}

/// `application/x-www-form-urlencoded` fields (later duplicates win).
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    use serde_json::{json, Value};

    use super::super::record::now_ms;
    use super::super::test_client::TestMock;
    use super::super::MockOptions;
    use super::{percent_decode, STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;

    fn key_file() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/test-only-vertex-service-account.json"
        );
        std::fs::read_to_string(path).unwrap()
    }

    /// A JWT signed with the fixture key.
    fn jwt(claims: &Value) -> String {
        let file: Value = serde_json::from_str(&key_file()).unwrap();
        let pem = file["private_key"].as_str().unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            percent_decode("urn%3Aietf%3Aparams+x%2"),
            "urn:ietf:params x%2"
        );
    }

    #[tokio::test]
    async fn token_endpoint_checks_the_jwt_and_vertex_routes_need_a_live_token() {
        let mock = TestMock::start_with(MockOptions {
            google_service_account: Some(key_file()),
            google_token_ttl_secs: 1,
            ..MockOptions::default()
        })
        .await;
        let token_url = mock.url("/token");
        let now = now_ms() / 1000;
        let good = json!({
            "iss": "switchyard-test@switchyard-test.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": token_url,
            "iat": now,
            "exp": now + 3600,
        });
        let ask = |grant: &str, assertion: String| {
            mock.client
                .post(&token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type={grant}&assertion={assertion}"))
                .send()
        };
        let bearer = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            jwt(&c)
        };
        let tampered = {
            let signed = jwt(&good);
            let parts: Vec<&str> = signed.split('.').collect();
            let claims = with("iss", json!("x"));
            let claims = claims.split('.').nth(1).unwrap();
            format!("{}.{claims}.{}", parts[0], parts[2])
        };
        let refused = [
            (ask("password", jwt(&good)), "unsupported_grant_type"),
            (ask(bearer, tampered), "Invalid JWT Signature."),
            (
                ask(
                    bearer,
                    with("iss", json!("other@x.iam.gserviceaccount.com")),
                ),
                "account not found",
            ),
            (
                ask(
                    bearer,
                    with("aud", json!("https://oauth2.googleapis.com/token")),
                ),
                "aud",
            ),
            (ask(bearer, with("scope", json!("openid"))), "scope"),
            (ask(bearer, with("exp", json!(now + 7200))), "short-lived"),
            (ask(bearer, with("exp", json!(now - 10))), "short-lived"),
        ];
        for (response, expected) in refused {
            let response = response.await.unwrap();
            assert_eq!(response.status(), 400);
            let body: Value = response.json().await.unwrap();
            let text = body.to_string();
            assert!(text.contains(expected), "{expected}: {text}");
            assert!(body["error"].is_string(), "{text}");
        }

        let issued: Value = ask(bearer, jwt(&good)).await.unwrap().json().await.unwrap();
        assert_eq!(
            issued,
            json!({"access_token": "ya29.mock-1", "expires_in": 1, "token_type": "Bearer"})
        );

        let chat = json!({"contents": [{"role": "user", "parts": [{"text": "a b c"}]}]});
        let send = |action: &str, token: &str, body: &Value| {
            let path =
                format!("/v1/projects/p/locations/us-central1/publishers/google/models/m:{action}");
            mock.client
                .post(mock.url(&path))
                .header("authorization", format!("Bearer {token}"))
                .json(body)
                .send()
        };
        let anonymous = send("generateContent", "ya29.forged", &chat).await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let anonymous: Value = anonymous.json().await.unwrap();
        assert_eq!(anonymous["error"]["status"], "UNAUTHENTICATED");

        let ok: Value = send("generateContent", "ya29.mock-1", &chat)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ok["usageMetadata"]["promptTokenCount"], 3);
        let predicted: Value = send(
            "predict",
            "ya29.mock-1",
            &json!({"instances": [{"content": "one two"}], "parameters": {"outputDimensionality": 4}}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let embeddings = &predicted["predictions"][0]["embeddings"];
        assert_eq!(embeddings["values"].as_array().unwrap().len(), 4);
        assert_eq!(embeddings["statistics"]["token_count"], 2);

        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let expired = send("generateContent", "ya29.mock-1", &chat).await.unwrap();
        assert_eq!(expired.status(), 401);

        let records = mock.records().await;
        assert_eq!(records[0]["path"], "/token");
        assert_eq!(records[0]["body"]["grant_type"], "password");
        let last = records.last().unwrap();
        assert_eq!(last["headers"]["authorization"], "Bearer ya29.mock-1");
        assert_eq!(last["model"], "m");
        assert_eq!(
            records[records.len() - 2]["billed"],
            json!({"prompt_tokens": 2, "completion_tokens": 0})
        );
    }
}
