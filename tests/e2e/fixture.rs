//! The standard gateway under test: one mock provider (requiring its own upstream key) and one
//! data plane with routes that exercise each provider kind and failure path.

use serde_json::{json, Value};
use switchyard_tests::support::{
    run_python_source, ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv,
};

/// Key with access to every alias.
pub const FULL_KEY: &str = "sk-sy-test-full-0123456789";
/// Key allowed to use only `chat`.
pub const LIMITED_KEY: &str = "sk-sy-test-limited-0123456789";
/// What the mock demands from the gateway; the caller's key must never reach it.
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-abcdef";

pub fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// The YAML config pointing at `mock_base` (http://127.0.0.1:PORT), with `extra_routes`
/// appended to the route list.
pub fn config(mock_base: &str, extra_routes: &str) -> String {
    format!(
        r#"
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{mock_base}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
  - {{ id: azure, kind: azure_openai, base_url: "{mock_base}", api_version: "2024-10-21", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
  - {{ id: wrongkey, kind: vllm, base_url: "{mock_base}/v1" }}
  - {{ id: nokey, kind: openai, base_url: "{mock_base}/v1", api_key: {{ env: SWITCHYARD_TEST_UNSET_VARIABLE }} }}
  - {{ id: dead, kind: ollama, base_url: "http://127.0.0.1:9/v1" }}
  - {{ id: slow, kind: openai_compatible, base_url: "{mock_base}/v1", timeout_ms: 400, api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
  - {{ alias: embed, deployments: [{{ provider: mock, model: mock-embed }}] }}
  - {{ alias: azure-chat, deployments: [{{ provider: azure, model: my-gpt-deployment }}] }}
  - {{ alias: wrongkey-chat, deployments: [{{ provider: wrongkey, model: m }}] }}
  - {{ alias: nokey-chat, deployments: [{{ provider: nokey, model: m }}] }}
  - {{ alias: dead-chat, deployments: [{{ provider: dead, model: m }}] }}
  - {{ alias: slow-chat, deployments: [{{ provider: slow, model: slow-model }}] }}
{extra_routes}
keys:
  - {{ name: full, sha256: "{full}", team: platform, models: ["*"] }}
  - {{ name: limited, sha256: "{limited}", models: [chat] }}
"#,
        full = sha256_hex(FULL_KEY),
        limited = sha256_hex(LIMITED_KEY),
    )
}

/// Starts the mock and a data plane with the standard config; `args` go to the data plane.
pub async fn gateway(args: &[&str]) -> TestEnv {
    let mut spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url(), ""))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY)
        .env("SWITCHYARD_CONFIG_POLL_MS", "50");
    for a in args {
        spec = spec.arg(*a);
    }
    gateway_with(spec).await
}

/// Starts the mock (requiring [`UPSTREAM_KEY`]) and a data plane from `spec`.
pub async fn gateway_with(spec: DataPlaneSpec) -> TestEnv {
    gateway_requiring(UPSTREAM_KEY, spec).await
}

/// Starts the mock, requiring `upstream_key`, and a data plane from `spec`.
pub async fn gateway_requiring(upstream_key: &str, spec: DataPlaneSpec) -> TestEnv {
    TestEnv::builder()
        .mock_provider_with(MockProviderOptions::new().api_key(upstream_key))
        .data_plane_spec(spec)
        .build()
        .await
        .expect("gateway starts")
}

/// Starts NATS and the mock, requiring `upstream_key`; data planes are the test's to start.
pub async fn nats_and_mock(upstream_key: &str) -> TestEnv {
    TestEnv::builder()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(upstream_key))
        .build()
        .await
        .expect("nats and the mock start")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Sends `request` and reads its answer's JSON body (whatever the status).
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A chat body for `model` with a 4-word prompt.
pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "say hello to me"}]})
}

/// POSTs JSON to the data plane with the full key; returns status, headers and body text.
pub async fn post(
    env: &TestEnv,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client()
        .post(env.data_plane().url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("request reaches the data plane");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

/// Asserts that the mock billed the request it recorded as `record` `prompt` and `completion`
/// tokens.
pub fn assert_billed(record: &Value, prompt: u64, completion: u64) {
    assert_eq!(
        record["billed"],
        json!({"prompt_tokens": prompt, "completion_tokens": completion}),
        "{record}"
    );
}

/// Parses an OpenAI error body and returns `error.code`, `error.type` and `error.message`.
pub fn error_of(body: &str) -> (String, String, String) {
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body}"));
    let e = &v["error"];
    assert!(e.is_object(), "no error object in {body}");
    for field in ["message", "type", "param", "code"] {
        assert!(
            e.get(field).is_some(),
            "error object lacks `{field}`: {body}"
        );
    }
    (
        e["code"].as_str().unwrap_or_default().to_owned(),
        e["type"].as_str().unwrap_or_default().to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// SSE `data:` payloads of a response body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// Runs inline Python (an SDK check script) and returns its last stdout line as JSON.
pub async fn python_json(source: &str, envs: &[(&str, &str)]) -> Value {
    let out = run_python_source(source, envs).await.unwrap();
    out.ensure_success().unwrap();
    serde_json::from_str(out.stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("bad output ({e}): {}\n{}", out.stdout, out.stderr))
}

/// The official Python SDK a script drives.
#[derive(Debug, Clone, Copy)]
pub enum Sdk {
    /// `openai`: `OPENAI_BASE_URL` is the data plane's `/v1`.
    OpenAi,
    /// `anthropic`: `ANTHROPIC_BASE_URL` is the data plane itself.
    Anthropic,
}

/// Runs an SDK script against `env`'s data plane: the SDK's base URL and API key (`key`)
/// variables, plus `vars`.
pub async fn sdk_script(
    env: &TestEnv,
    sdk: Sdk,
    source: &str,
    key: &str,
    vars: &[(&str, &str)],
) -> Value {
    let base = env.data_plane().base_url();
    let (base, url_var, key_var) = match sdk {
        Sdk::OpenAi => (format!("{base}/v1"), "OPENAI_BASE_URL", "OPENAI_API_KEY"),
        Sdk::Anthropic => (base, "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    };
    let sdk_vars = [(url_var, base.as_str()), (key_var, key)];
    python_json(source, &[&sdk_vars, vars].concat()).await
}

/// Runs check `check` of an SDK check script (see [`check_runner`]), as [`sdk_script`] does.
pub async fn sdk_check(
    env: &TestEnv,
    sdk: Sdk,
    checks: &str,
    key: &str,
    check: &str,
    vars: &[(&str, &str)],
) -> Value {
    let module = match sdk {
        Sdk::OpenAi => "openai",
        Sdk::Anthropic => "anthropic",
    };
    let source = format!("{checks}{}", check_runner(module));
    sdk_script(
        env,
        sdk,
        &source,
        key,
        &[&[("CHECK", check)], vars].concat(),
    )
    .await
}

/// The `chat` check of [`openai_sdk`](switchyard_tests::support::openai_sdk) answered with the
/// mock's default reply to its 4-word prompt: 5 words, `stop`, and that usage.
pub fn assert_default_chat(chat: &Value) {
    assert_eq!(chat["content"], "Hello from the mock provider.", "{chat}");
    assert_eq!(chat["finish_reason"], "stop", "{chat}");
    assert_eq!(
        chat["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}),
        "{chat}"
    );
}

/// The `stream` check of [`openai_sdk`](switchyard_tests::support::openai_sdk) streamed the
/// mock's default reply and its usage.
pub fn assert_default_stream(stream: &Value) {
    assert_eq!(
        stream["content"], "Hello from the mock provider.",
        "{stream}"
    );
    assert_eq!(
        stream["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 5}),
        "{stream}"
    );
}

/// The end of an SDK check script (one that imports `json`, `os` and the `sdk` module and
/// defines its checks as functions, named in a `CHECKS` dict or by their own names): runs the
/// check that `CHECK` names and prints what it returns, or the API error it raised
/// (`exception`, `status`, `body`, `message`).
fn check_runner(sdk: &str) -> String {
    format!(
        r#"
checks = globals().get("CHECKS") or globals()
try:
    out = checks[os.environ["CHECK"]]()
except {sdk}.APIStatusError as e:
    out = {{"exception": type(e).__name__, "status": e.status_code, "body": e.body, "message": e.message}}
print(json.dumps(out))
"#
    )
}

/// The snapshot the control plane last published (the KV pointer's object), as text.
pub async fn published_snapshot(env: &TestEnv) -> anyhow::Result<String> {
    let js = env.nats().jetstream().await?;
    let store = js
        .get_object_store(proto::SNAPSHOT_OBJECT_BUCKET)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kv = js
        .get_key_value(proto::SNAPSHOT_KV_BUCKET)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pointer: proto::SnapshotPointer =
        serde_json::from_slice(&kv.get(proto::SNAPSHOT_KV_KEY).await?.unwrap_or_default())?;
    let mut object = store
        .get(&pointer.object)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut object, &mut bytes).await?;
    Ok(String::from_utf8(bytes)?)
}

/// Runs the control-plane command line with `args` against the environment's database; returns
/// whether it succeeded and its stderr.
pub fn control_plane_cli(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let database_url = env.postgres().database_url();
    let out = ControlPlane::run_cli(&database_url, args).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rebuilds every projection from the event log (`control-plane rebuild-projections`) and
/// asserts the rebuild changes nothing; returns the projections.
pub async fn rebuild_changes_nothing(env: &TestEnv) -> Value {
    let pg = env.postgres().client().await.unwrap();
    let before = control_plane::store::rebuild::dump(&pg).await.unwrap();
    let (ok, stderr) = control_plane_cli(env, &["rebuild-projections"]);
    assert!(ok, "{stderr}");
    let after = control_plane::store::rebuild::dump(&pg).await.unwrap();
    assert_eq!(before, after);
    after
}

/// A decimal from a JSON string (as amounts travel) or number.
pub fn dec(v: &Value) -> rust_decimal::Decimal {
    switchyard_tests::support::decimal(v).unwrap()
}

/// POSTs `body` to the admin API at `path`; returns the string at `pointer` in the answer (a
/// JSON pointer: `/id`, `/secret`, `/key/id`).
pub async fn created(cp: &ControlPlane, path: &str, body: &Value, pointer: &str) -> String {
    let answer = cp.post(path, body).await.unwrap();
    match answer.pointer(pointer).and_then(Value::as_str) {
        Some(found) => found.to_owned(),
        None => panic!("no string at {pointer} in {answer}"),
    }
}

/// Registers the environment's first mock as the OpenAI-compatible provider `mock`, with
/// [`UPSTREAM_KEY`] as its credential, through the admin API.
pub async fn add_mock_provider(cp: &ControlPlane, env: &TestEnv) {
    let base_url = format!("{}/v1", env.mock().base_url());
    let provider = json!({"id": "mock", "kind": "openai_compatible", "base_url": base_url,
                          "api_key": UPSTREAM_KEY});
    cp.post("/admin/providers", &provider).await.unwrap();
}

/// Creates a key of `team` (an admin-API team object) allowed every alias; returns its secret.
pub async fn all_models_key(cp: &ControlPlane, team: &Value) -> String {
    let key = cp
        .post(
            "/admin/keys",
            &json!({"team_id": team["id"], "name": "svc", "models": ["*"]}),
        )
        .await
        .unwrap();
    key["secret"].as_str().unwrap().to_owned()
}
