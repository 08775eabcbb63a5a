//! The real coding agents, installed from npm by the test setup, finishing a task with a tool
//! round trip through the gateway on every provider family, and the spend ledger holding
//! exactly what the mock billed × price.
//!
//! - Claude Code (`claude -p … --output-format json`, `ANTHROPIC_BASE_URL` at the proxy) on an
//!   Anthropic deployment (pass-through), an OpenAI-compatible one, Gemini and Bedrock.
//! - Codex CLI (`codex exec`, a `[model_providers.sy]` entry with `wire_api = "responses"`) on
//!   an OpenAI deployment (pass-through), a chat-only OpenAI-compatible one, Anthropic and
//!   Gemini.
//!
//! The mock is scripted to answer every request that offers tools with one call of the
//! agent's shell tool (`echo done > proof.txt`) until the tool's result comes back, and then
//! with text; so each task is one real tool loop: the agent runs the command and reports.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use switchyard_tests::support::{run_agent, wait_until_served, MockProviderOptions, TestEnv};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, UPSTREAM_KEY};
use crate::providers::{assert_ledger_by_provider, families, Expected, SERVICE_ACCOUNT};

const TASK: &str = "Create proof.txt containing the word done.";

/// One routed, priced deployment an agent is pointed at.
struct Target {
    provider: String,
    alias: &'static str,
    model: &'static str,
    /// Input and output USD per million tokens.
    price: (&'static str, &'static str),
}

/// The stack with every provider family plus an `openai` deployment (the Responses API,
/// passed through), each routed and priced; returns it with a key allowed every alias.
async fn gateway() -> (Stack, Vec<Target>, String) {
    let mock = MockProviderOptions::new()
        .api_key(UPSTREAM_KEY)
        .arg("--google-service-account")
        .arg(SERVICE_ACCOUNT);
    let stack = stack_with([mock], 1).await;
    let base = stack.env.mock().base_url();
    let responses = json!({"id": "openai-responses", "kind": "openai",
                           "base_url": format!("{base}/v1"), "api_key": UPSTREAM_KEY});
    let mut providers: Vec<Value> = vec![responses];
    let mut targets = vec![Target {
        provider: "openai-responses".into(),
        alias: "gpt",
        model: "gpt-5-codex-mock",
        price: ("1.25", "10"),
    }];
    for f in families(&base) {
        targets.push(Target {
            provider: f.provider["id"].as_str().unwrap().to_owned(),
            alias: f.alias,
            model: f.model,
            price: f.price,
        });
        providers.push(f.provider);
    }
    let cp = &stack.cp;
    let team = cp
        .post("/admin/teams", &json!({"name": "agents"}))
        .await
        .unwrap();
    for (provider, t) in providers.iter().zip(&targets) {
        cp.post("/admin/providers", provider).await.unwrap();
        let route =
            json!({"alias": t.alias, "deployments": [{"provider": t.provider, "model": t.model}]});
        cp.post("/admin/routes", &route).await.unwrap();
        let price = json!({"input_per_mtok": t.price.0, "output_per_mtok": t.price.1});
        let answer = cp
            .call(
                reqwest::Method::PUT,
                &format!("/admin/pricing/{}", t.model),
                None,
                Some(&price),
            )
            .await
            .unwrap();
        assert!(answer.status < 300, "{answer:?}");
    }
    let key = all_models_key(cp, &team).await;
    let last = targets.last().unwrap().alias;
    wait_until_served(&stack.env.data_plane().base_url(), &key, last)
        .await
        .unwrap();
    (stack, targets, key)
}

/// Queues the agent's tool call for every request to `model` that offers tools.
async fn script_tool_call(env: &TestEnv, model: &str, tool: &str, arguments: Value) {
    env.mock().clear_scripts().await.unwrap();
    let script = json!({"model": model, "times": 100, "tool_calls": [{"name": tool, "arguments": arguments}]});
    env.mock().script(&script).await.unwrap();
}

fn proof(workdir: &Path) -> String {
    std::fs::read_to_string(workdir.join("proof.txt")).unwrap_or_default()
}

#[tokio::test]
async fn claude_code_finishes_a_tool_task_on_every_provider_family() {
    let (stack, all, key) = gateway().await;
    let env = &stack.env;
    let base = env.data_plane().base_url();
    for alias in ["claude", "oai", "gem", "rock", "vtx-claude"] {
        let f = all.iter().find(|f| f.alias == alias).unwrap();
        let command = json!({"command": "echo done > proof.txt", "description": "Write the proof"});
        script_tool_call(env, f.model, "Bash", command).await;
        let home = env.dir().join(format!("claude-{alias}/home"));
        let work = env.dir().join(format!("claude-{alias}/work"));
        let run = run_agent(
            "claude",
            &[
                "-p",
                TASK,
                "--model",
                alias,
                "--allowedTools",
                "Bash",
                "--output-format",
                "json",
            ],
            &home,
            &work,
            &[
                ("ANTHROPIC_BASE_URL", &base),
                ("ANTHROPIC_API_KEY", &key),
                ("ANTHROPIC_DEFAULT_HAIKU_MODEL", alias),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_TELEMETRY", "1"),
            ],
        )
        .await
        .unwrap();
        let result: Value = run
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{alias}: no JSON result\n{run:?}"));
        assert!(run.success, "{alias}: {run:?}");
        assert_eq!(result["is_error"], false, "{alias}: {result}");
        assert_eq!(result["result"], "Hello from the mock provider.", "{alias}");
        assert!(result["num_turns"].as_u64() >= Some(2), "{alias}: {result}");
        assert_eq!(proof(&work), "done\n", "{alias}: the agent ran the tool");
    }
    assert_ledger_is_exact(&stack, &all).await;
}

#[tokio::test]
async fn codex_finishes_a_tool_task_on_every_provider_family() {
    let (stack, all, key) = gateway().await;
    let env = &stack.env;
    let base = format!("{}/v1", env.data_plane().base_url());
    for alias in ["gpt", "oai", "claude", "gem"] {
        let f = all.iter().find(|f| f.alias == alias).unwrap();
        script_tool_call(
            env,
            f.model,
            "exec_command",
            json!({"cmd": "echo done > proof.txt"}),
        )
        .await;
        let home = env.dir().join(format!("codex-{alias}/home"));
        let work = env.dir().join(format!("codex-{alias}/work"));
        let codex_home = home.join(".codex");
        std::fs::create_dir_all(&codex_home).unwrap();
        let config = format!(
            "model = \"{alias}\"\nmodel_provider = \"sy\"\n\n[model_providers.sy]\nname = \"switchyard\"\nbase_url = \"{base}\"\nenv_key = \"SWITCHYARD_KEY\"\nwire_api = \"responses\"\n"
        );
        std::fs::write(codex_home.join("config.toml"), config).unwrap();
        let run = run_agent(
            "codex",
            &[
                "exec",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                TASK,
            ],
            &home,
            &work,
            &[
                ("CODEX_HOME", codex_home.to_str().unwrap()),
                ("SWITCHYARD_KEY", &key),
            ],
        )
        .await
        .unwrap();
        assert!(run.success, "{alias}: {run:?}");
        assert!(
            run.stdout.contains("Hello from the mock provider."),
            "{alias}: {run:?}"
        );
        assert_eq!(proof(&work), "done\n", "{alias}: the agent ran the tool");
    }
    assert_ledger_is_exact(&stack, &all).await;
}

/// The spend ledger by provider equals the mock's record of what it billed × price.
async fn assert_ledger_is_exact(stack: &Stack, all: &[Target]) {
    let seen = stack.env.mock().requests().await.unwrap();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for r in seen.iter().filter(|r| r["path"] != "/token") {
        let model = r["model"].as_str().unwrap_or_default();
        let t = all
            .iter()
            .find(|t| model == t.model || model == t.model.replace(':', "%3A"))
            .unwrap_or_else(|| panic!("a request no deployment sent: {r}"));
        let billed = &r["billed"];
        assert!(!billed.is_null(), "an unbilled answer: {r}");
        expected.entry(t.provider.clone()).or_default().add(
            billed["prompt_tokens"].as_u64().unwrap(),
            billed["completion_tokens"].as_u64().unwrap(),
            t.price,
        );
    }
    assert_ledger_by_provider(&stack.cp, &expected).await;
}
