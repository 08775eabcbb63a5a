//! The web console in a real headless Chromium against a live stack: traffic is produced
//! (a logged request with a tag, requests that fail over from a dead deployment until its
//! breaker opens, another team's request), then each view is opened as a user would and must
//! show what was just produced: the request ids and model in the request log, the request's
//! body in its detail (reached by clicking its row), the ledger's amounts by team, model and
//! tag, the budget's used and remaining amounts, the open breaker. No view logs an error (a
//! Content-Security-Policy violation would be one). A team-scoped token sees only its team.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, free_port, Browser, ControlPlane, MockProviderOptions, TestEnv, ADMIN_TOKEN,
};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{add_mock_provider, client, created, UPSTREAM_KEY};

/// How long a view may take to show what the API already has.
const SHOWN: Duration = Duration::from_secs(15);
/// The tag the marked request carries.
const TAG: &str = "workflow=console-e2e";
/// The marked request, as these exact bytes.
const MARKED: &str = r#"{"model":"chat","messages":[{"role":"user","content":"console marker <b>&amp; \"quoted\" text"}]}"#;

/// One request as the client saw it.
struct Sent {
    id: String,
    body: String,
}

/// What the traffic produced, as the admin API reports it.
struct Produced {
    marked: Sent,
    /// The requests that failed over from the dead deployment.
    failed_over: Vec<String>,
    /// The research team's request.
    research: Sent,
    research_token: String,
    /// The payments team's spend (the ledger's decimal string).
    payments_cost: String,
    /// The payments budget's `(spent, remaining)` this period.
    budget: (String, String),
    /// The tag's spend.
    tag_cost: String,
}

/// POSTs `body` to the proxy's chat endpoint with `secret` (waiting until the proxy knows the
/// key); fails unless the answer is 200.
async fn send(env: &TestEnv, secret: &str, body: &str, tags: Option<&str>) -> Sent {
    let url = format!("{}/v1/chat/completions", env.data_plane().base_url());
    let response = eventually(Duration::from_secs(10), || async {
        let mut request = client()
            .post(&url)
            .bearer_auth(secret)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = tags {
            request = request.header("x-switchyard-tags", t);
        }
        let r = request.send().await?;
        anyhow::ensure!(r.status() == 200, "status {}", r.status());
        Ok(r)
    })
    .await
    .unwrap();
    Sent {
        id: response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned(),
        body: body.to_owned(),
    }
}

/// Two teams with `full` keys, the mock priced so amounts are visible, a route that fails
/// over from a dead deployment, a team budget and a tag budget, a token of the second team.
async fn configure(s: &Stack) -> (String, String, String, String) {
    let cp = &s.cp;
    let payments = created(cp, "/admin/teams", &json!({"name": "payments"}), "/id").await;
    let research = created(cp, "/admin/teams", &json!({"name": "research"}), "/id").await;
    add_mock_provider(cp, &s.env).await;
    let nowhere = format!("http://127.0.0.1:{}/v1", free_port().unwrap());
    cp.post(
        "/admin/providers",
        &json!({"id": "gone", "kind": "openai_compatible", "base_url": nowhere, "api_key": "x"}),
    )
    .await
    .unwrap();
    for route in [
        json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]}),
        json!({"alias": "resilient", "strategy": "ordered", "deployments": [
            {"provider": "gone", "model": "m"}, {"provider": "mock", "model": "mock-chat", "priority": 1}]}),
    ] {
        cp.post("/admin/routes", &route).await.unwrap();
    }
    let price = json!({"input_per_mtok": "1000", "output_per_mtok": "2000"});
    let put = cp
        .call(
            reqwest::Method::PUT,
            "/admin/pricing/mock-chat",
            None,
            Some(&price),
        )
        .await
        .unwrap();
    assert!(put.status < 300, "{put:?}");
    cp.post(
        "/admin/budgets",
        &json!({"name": "payments-monthly", "scope": "team",
        "target": payments, "amount_usd": "50.00", "period": "monthly", "hard": true}),
    )
    .await
    .unwrap();
    cp.post(
        "/admin/budgets",
        &json!({"name": "workflow-soft", "scope": "tag",
        "target": "workflow", "amount_usd": "1", "period": "daily", "hard": false}),
    )
    .await
    .unwrap();
    let key = |team: String, name: &'static str| async move {
        let body = json!({"team_id": team, "name": name, "models": ["*"], "log_payloads": "full"});
        created(cp, "/admin/keys", &body, "/secret").await
    };
    let payments_key = key(payments.clone(), "checkout").await;
    let research_key = key(research.clone(), "notebook").await;
    let token = created(
        cp,
        "/admin/tokens",
        &json!({"name": "research-admin", "team_id": research}),
        "/secret",
    )
    .await;
    (payments, payments_key, research_key, token)
}

/// Produces the traffic and waits until the admin API reports all of it.
async fn produce(s: &Stack) -> Produced {
    let (payments, payments_key, research_key, research_token) = configure(s).await;
    let marked = send(&s.env, &payments_key, MARKED, Some(TAG)).await;
    let mut failed_over = Vec::new();
    for _ in 0..6 {
        let body = r#"{"model":"resilient","messages":[{"role":"user","content":"fail over"}]}"#;
        failed_over.push(send(&s.env, &payments_key, body, None).await.id);
    }
    let research = send(&s.env, &research_key, MARKED, None).await;
    let cp = &s.cp;
    let spend = eventually(Duration::from_secs(30), || async {
        let report = cp.get("/admin/spend?group_by=team").await?;
        let row = report["rows"].as_array().and_then(|r| {
            r.iter()
                .find(|r| r["team_id"] == payments.as_str())
                .cloned()
        });
        match row {
            Some(r) if r["requests"] == 7 && report["total"]["requests"] == 8 => Ok(r),
            other => anyhow::bail!("not folded yet: {other:?}"),
        }
    })
    .await
    .unwrap();
    let budget = eventually(Duration::from_secs(10), || async {
        let used = cp.get("/admin/budgets/usage").await?;
        let b = used["data"]
            .as_array()
            .and_then(|d| d.iter().find(|b| b["name"] == "payments-monthly").cloned())
            .ok_or_else(|| anyhow::anyhow!("no budget in {used}"))?;
        let pool = b["pools"][0].clone();
        anyhow::ensure!(pool["spent_usd"] == spend["cost_usd"], "{b}");
        Ok(pool)
    })
    .await
    .unwrap();
    let tags = cp.get("/admin/spend?group_by=tag").await.unwrap();
    let tag_cost = tags["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["tag"] == TAG))
        .map(|r| text(&r["cost_usd"]))
        .unwrap_or_else(|| panic!("no {TAG} row: {tags}"));
    eventually(Duration::from_secs(20), || async {
        let report = cp.get("/admin/health").await?;
        let open = report["deployments"].as_array().is_some_and(|d| {
            d.iter()
                .any(|d| d["deployment"] == "gone/m" && d["state"] == "open")
        });
        anyhow::ensure!(open, "the dead deployment is not reported open: {report}");
        Ok(())
    })
    .await
    .unwrap();
    // The marked request's bodies are stored.
    let detail = format!("/admin/requests/{}", marked.id);
    eventually(Duration::from_secs(10), || async {
        let d = cp.get(&detail).await?;
        anyhow::ensure!(d["payload"]["request"]["body"] == MARKED, "{d}");
        Ok(())
    })
    .await
    .unwrap();
    Produced {
        marked,
        failed_over,
        research,
        research_token,
        payments_cost: text(&spend["cost_usd"]),
        budget: (text(&budget["spent_usd"]), text(&budget["remaining_usd"])),
        tag_cost,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Opens the console and signs in with `token`.
async fn sign_in(browser: &Browser, cp: &ControlPlane, token: &str) {
    browser
        .goto(&format!("{}/console", cp.base_url()))
        .await
        .unwrap();
    let field = browser
        .wait_for("#sign-in:not([hidden]) #token", SHOWN)
        .await
        .unwrap();
    browser.type_into(&field, token).await.unwrap();
    let submit = browser
        .wait_for("#sign-in button[type=submit]", SHOWN)
        .await
        .unwrap();
    browser.click(&submit).await.unwrap();
}

/// Opens a view through its navigation link.
async fn open(browser: &Browser, view: &str) {
    let link = browser
        .wait_for(&format!("#nav a[data-view={view}]"), SHOWN)
        .await
        .unwrap();
    browser.click(&link).await.unwrap();
}

/// Takes a screenshot into `dir` and checks it is a PNG with something in it.
async fn screenshot(browser: &Browser, dir: &Path, name: &str) {
    let path = dir.join(format!("console-{name}.png"));
    let png = browser.screenshot(&path).await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
    assert!(png.len() > 2_000, "{name}: {} bytes only", png.len());
    assert_eq!(std::fs::read(&path).unwrap(), png);
}

/// No view logged an error or warning (a refused load, a script error, a CSP violation).
async fn no_console_errors(browser: &Browser) {
    let logged = browser.console().await.unwrap();
    let bad: Vec<_> = logged
        .iter()
        .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
        .collect();
    assert!(bad.is_empty(), "the console logged: {bad:?}");
}

async fn requests_and_detail(browser: &Browser, console: &str, p: &Produced, dir: &Path) {
    let list = "#view-requests table.requests";
    browser
        .wait_for_text(list, &p.marked.id, SHOWN)
        .await
        .unwrap();
    let shown = browser
        .wait_for_text(list, &p.research.id, SHOWN)
        .await
        .unwrap();
    for id in &p.failed_over {
        assert!(shown.contains(id.as_str()), "{id} is not listed");
    }
    assert!(
        shown.contains("mock-chat") && shown.contains("payments"),
        "{shown}"
    );
    let rows = browser.find_all(&format!("{list} tbody tr")).await.unwrap();
    let first = browser
        .attribute(&rows[0], "data-request-id")
        .await
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some(p.research.id.as_str()),
        "newest first"
    );
    screenshot(browser, dir, "requests").await;

    let row = browser
        .wait_for(&format!("tr[data-request-id='{}']", p.marked.id), SHOWN)
        .await
        .unwrap();
    browser.click(&row).await.unwrap();
    browser
        .wait_for_text("#request-body", "console marker", SHOWN)
        .await
        .unwrap();
    let exact = browser
        .execute(
            "return document.getElementById('request-body').textContent",
            json!([]),
        )
        .await
        .unwrap();
    assert_eq!(
        exact, p.marked.body,
        "the body is shown as sent, not as markup"
    );
    assert!(browser
        .url()
        .await
        .unwrap()
        .ends_with(&format!("#/requests/{}", p.marked.id)));
    browser
        .wait_for_text("#request-model", "mock-chat", SHOWN)
        .await
        .unwrap();
    let response = browser
        .wait_for_text("#response-body", "Hello from the mock", SHOWN)
        .await;
    response.unwrap();
    let detail = browser
        .wait_for_text("#view-request", TAG, SHOWN)
        .await
        .unwrap();
    assert!(detail.contains("content-type"), "request headers: {detail}");
    screenshot(browser, dir, "request").await;

    // A failed-over request shows its route decision.
    let url = format!("{console}#/requests/{}", p.failed_over[0]);
    browser.goto(&url).await.unwrap();
    let route = browser
        .wait_for_text("#view-request", "fallback", SHOWN)
        .await
        .unwrap();
    assert!(route.contains("mock/mock-chat"), "{route}");
}

async fn spend_budgets_fleet(browser: &Browser, p: &Produced, dir: &Path) {
    open(browser, "spend").await;
    let cost = format!("${}", p.payments_cost);
    let by_team = browser
        .wait_for_text("#view-spend table.by-team", &cost, SHOWN)
        .await
        .unwrap();
    assert!(
        by_team.contains("payments") && by_team.contains("research"),
        "{by_team}"
    );
    browser
        .wait_for_text("#view-spend table.by-model", "mock-chat", SHOWN)
        .await
        .unwrap();
    let by_tag = browser
        .wait_for_text("#view-spend table.by-tag", TAG, SHOWN)
        .await
        .unwrap();
    assert!(by_tag.contains(&format!("${}", p.tag_cost)), "{by_tag}");
    assert!(
        browser
            .find_all("#view-spend svg.bar rect.bar-fill")
            .await
            .unwrap()
            .len()
            >= 4
    );
    screenshot(browser, dir, "spend").await;

    open(browser, "budgets").await;
    let budgets = browser
        .wait_for_text("#view-budgets table.budgets", "payments-monthly", SHOWN)
        .await
        .unwrap();
    let (spent, remaining) = &p.budget;
    assert!(
        budgets.contains(&format!("${spent}")),
        "used {spent}: {budgets}"
    );
    assert!(
        budgets.contains(&format!("${remaining}")),
        "remaining {remaining}: {budgets}"
    );
    assert!(
        budgets.contains("$50.00") && budgets.contains("workflow=console-e2e"),
        "{budgets}"
    );
    screenshot(browser, dir, "budgets").await;

    open(browser, "fleet").await;
    let fleet = browser
        .wait_for_text("#view-fleet table.health", "gone/m", SHOWN)
        .await
        .unwrap();
    assert!(fleet.contains("open"), "{fleet}");
    browser
        .wait_for_text("#control-plane-ready", "ready", SHOWN)
        .await
        .unwrap();
    screenshot(browser, dir, "fleet").await;
}

async fn team_token_sees_its_team(browser: &Browser, cp: &ControlPlane, p: &Produced) {
    let out = browser.wait_for("#sign-out", SHOWN).await.unwrap();
    browser.click(&out).await.unwrap();
    sign_in(browser, cp, &p.research_token).await;
    open(browser, "requests").await;
    let list = "#view-requests table.requests";
    let shown = browser
        .wait_for_text(list, &p.research.id, SHOWN)
        .await
        .unwrap();
    assert!(
        !shown.contains(p.marked.id.as_str()) && !shown.contains("payments"),
        "{shown}"
    );
    assert_eq!(
        browser
            .find_all(&format!("{list} tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    open(browser, "spend").await;
    let by_team = browser
        .wait_for_text("#view-spend table.by-team", "research", SHOWN)
        .await
        .unwrap();
    assert!(!by_team.contains("payments"), "{by_team}");
    open(browser, "budgets").await;
    browser
        .wait_for_text("#view-budgets", "No budgets", SHOWN)
        .await
        .unwrap();
}

#[tokio::test]
async fn console_shows_what_the_stack_just_did_and_a_team_token_sees_only_its_team() {
    let s = stack_with([MockProviderOptions::new().api_key(UPSTREAM_KEY)], 1).await;
    let produced = produce(&s).await;
    let browser = Browser::start(s.env.dir()).await.unwrap();
    // A wrong token is refused, and the page says so.
    sign_in(&browser, &s.cp, "not-a-token-of-this-control-plane").await;
    browser
        .wait_for_text("#sign-in-error", "refused that token", SHOWN)
        .await
        .unwrap();
    let refusals = browser.console().await.unwrap();
    assert!(
        refusals.iter().all(|(_, m)| m.contains("401")),
        "{refusals:?}"
    );
    sign_in(&browser, &s.cp, ADMIN_TOKEN).await;
    let console = format!("{}/console", s.cp.base_url());
    requests_and_detail(&browser, &console, &produced, s.env.dir()).await;
    spend_budgets_fleet(&browser, &produced, s.env.dir()).await;
    no_console_errors(&browser).await;
    team_token_sees_its_team(&browser, &s.cp, &produced).await;
    no_console_errors(&browser).await;
    // Another team's request, asked for by its address, is not there for this token.
    let theirs = format!("{console}#/requests/{}", produced.marked.id);
    browser.goto(&theirs).await.unwrap();
    browser
        .wait_for_text("#view-request", "No such request", SHOWN)
        .await
        .unwrap();
    browser.quit().await.unwrap();
}

#[tokio::test]
async fn console_files_are_served_without_a_token_under_their_content_security_policy() {
    let env = TestEnv::builder().postgres().build().await.unwrap();
    let cp = env.control_plane("control-plane-0").await.unwrap();
    let get = |path: &str| client().get(format!("{}{path}", cp.base_url())).send();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/requests.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(
            header("content-security-policy").starts_with("default-src 'self';"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    assert_eq!(get("/console/nothing.js").await.unwrap().status(), 404);
    // The page holds no data; the API it reads still wants a token.
    assert_eq!(get("/admin/requests").await.unwrap().status(), 401);
    assert_eq!(get("/admin/budgets/usage").await.unwrap().status(), 401);
}
