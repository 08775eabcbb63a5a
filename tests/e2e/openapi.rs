//! The admin API's OpenAPI document, fuzzed with schemathesis: no 5xx, no response that
//! contradicts the document.

use switchyard_tests::support::{python, TestEnv, ADMIN_TOKEN};

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let env = TestEnv::builder().postgres().build().await.unwrap();
    let cp = env.control_plane("control-plane-0").await.unwrap();
    // Some data so that reads of lists and ids have something to return.
    let team = cp
        .post("/admin/teams", &serde_json::json!({"name": "fuzz"}))
        .await
        .unwrap();
    cp.post(
        "/admin/keys",
        &serde_json::json!({"team_id": team["id"], "name": "k"}),
    )
    .await
    .unwrap();

    let doc = cp.get("/openapi.json").await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for needle in [
        "/admin/teams",
        "/admin/keys",
        "/admin/providers",
        "/admin/routes",
        "/admin/budgets",
        "/admin/pricing",
        "/admin/audit",
        "/admin/config",
        "/admin/tokens",
        "/admin/spend",
        "/admin/usage",
    ] {
        assert!(
            paths.keys().any(|p| p.starts_with(needle)),
            "{needle} is missing from /openapi.json"
        );
    }

    // schemathesis keeps a cache in its working directory: a temporary one, so a test run
    // leaves the tree as it found it.
    let scratch = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(python())
        .current_dir(scratch.path())
        .args(["-m", "schemathesis.cli", "run", &format!("{}/openapi.json", cp.base_url())])
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"])
        // One worker: on Python 3.11 the `ast` module's recursion guard is shared between
        // threads, so two workers building hypothesis' lambda descriptions at once fail with
        // "AST constructor recursion depth mismatch", a tool error that says nothing of ours.
        .args(["--max-examples", "30", "--seed", "7", "--workers", "1", "--phases", "examples,coverage,fuzzing"])
        .args(["--suppress-health-check", "all"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{}\n--- control plane log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        cp.stderr().unwrap_or_default()
    );
}
