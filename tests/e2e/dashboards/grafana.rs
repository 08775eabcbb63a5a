//! The dashboards' JSON as the tests read it: every panel target and template-variable query,
//! Grafana's variables substituted so Prometheus can run them, and the structure Grafana needs
//! (checked without any service running).

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures_util::future::join_all;
use serde_json::Value;
use switchyard_tests::support::{workspace_root, Prometheus};

/// What Grafana's interval variables (`$__rate_interval`, `$__interval`, `$__range`) become:
/// long enough to cover the whole live test's traffic.
pub const RANGE: &str = "5m";
/// The dashboards and their uids.
pub const DASHBOARDS: [(&str, &str); 3] = [
    ("overview.json", "switchyard-overview"),
    ("spend.json", "switchyard-spend"),
    ("fleet.json", "switchyard-fleet"),
];
/// The datasource uid the provisioning file gives Prometheus and the dashboards default to.
const DATASOURCE_UID: &str = "switchyard-prometheus";

fn dashboards_dir() -> PathBuf {
    workspace_root().join("dashboards")
}

/// Replaces Grafana's variables in `expr`: `$__name` (interval variables) with [`RANGE`], any
/// other `$name`, `${name}` or `${name:format}` with `.*`.
fn substitute(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}').expect("an unclosed ${ in a query");
                (inner[..end].split(':').next().unwrap_or_default(), end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        assert!(!name.is_empty(), "a bare $ in {expr}");
        out.push_str(if name.starts_with("__") { RANGE } else { ".*" });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// A dashboard's JSON.
fn dashboard(file: &str) -> Value {
    let path = dashboards_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// `(where, PromQL)` of every panel target and every `label_values(metric, label)` variable
/// query of a dashboard, before substitution.
fn queries(file: &str) -> Vec<(String, String)> {
    let d = dashboard(file);
    let mut out = Vec::new();
    for panel in panels(&d).into_iter().filter(|p| p["type"] != "row") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            let place = format!("{file} / {title} / {}", target["refId"]);
            out.push((
                place,
                target["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for var in d["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"].as_str().or(var["query"].as_str());
        let inner = query
            .and_then(|q| q.strip_prefix("label_values("))
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| {
                panic!(
                    "{file}: variable {} is not label_values(metric, label)",
                    var["name"]
                )
            });
        let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        let place = format!("{file} / variable {}", var["name"]);
        out.push((
            place,
            format!("group by ({}) ({})", label.trim(), metric.trim()),
        ));
    }
    out
}

/// Runs every query (all at once); returns one line per query that failed or answered no
/// data (an empty result, or only NaN).
pub async fn failing_queries(prometheus: &Prometheus) -> Vec<String> {
    let all: Vec<(String, String)> = DASHBOARDS
        .iter()
        .flat_map(|(file, _)| queries(file))
        .map(|(place, expr)| (place, substitute(&expr)))
        .collect();
    assert!(all.len() >= 40, "only {} queries found", all.len());
    let answers = join_all(all.iter().map(|(_, promql)| prometheus.query(promql))).await;
    let mut failures = Vec::new();
    for ((place, promql), answer) in all.iter().zip(answers) {
        match answer {
            Err(e) => failures.push(format!("{place}: {e:#}\n    {promql}")),
            Ok(data) => {
                let result = data["result"].as_array().cloned().unwrap_or_default();
                let numbers = result
                    .iter()
                    .filter(|r| r["value"][1].as_str().is_some_and(|v| v != "NaN"));
                if numbers.count() == 0 {
                    failures.push(format!("{place}: no data ({result:?})\n    {promql}"));
                }
            }
        }
    }
    failures
}

#[test]
fn dashboards_are_complete_grafana_json() {
    let mut uids = BTreeSet::new();
    for (file, uid) in DASHBOARDS {
        let d = dashboard(file);
        assert_eq!(d["uid"], uid, "{file}");
        assert!(uids.insert(uid), "{file}: duplicate uid");
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: schemaVersion"
        );
        let panels = panels(&d);
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        for panel in panels.into_iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(!title.is_empty(), "{file}: a panel without a title");
            assert!(
                ids.insert(panel["id"].as_u64().expect("panel id")),
                "{file}/{title}: duplicate id"
            );
            assert!(
                panel["gridPos"]["w"].as_u64().is_some(),
                "{file}/{title}: no gridPos"
            );
            assert!(
                panel["description"].as_str().is_some_and(|t| !t.is_empty()),
                "{file}/{title}: no description"
            );
            assert_eq!(panel["datasource"]["type"], "prometheus", "{file}/{title}");
            let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
            let targets = targets.unwrap_or_else(|| panic!("{file}/{title}: no targets"));
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                    "{file}/{title}: empty expr"
                );
                assert!(t["refId"].as_str().is_some(), "{file}/{title}: no refId");
                assert_eq!(t["datasource"], panel["datasource"], "{file}/{title}");
            }
        }
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let datasource = vars
            .iter()
            .find(|v| v["type"] == "datasource")
            .expect("a datasource variable");
        assert_eq!(datasource["query"], "prometheus", "{file}");
        assert_eq!(datasource["current"]["value"], DATASOURCE_UID, "{file}");
    }
    let provisioning = dashboards_dir().join("provisioning");
    let read = |path: &str| -> serde_yaml::Value {
        let text = std::fs::read_to_string(provisioning.join(path)).unwrap();
        serde_yaml::from_str(&text).unwrap()
    };
    let datasources = read("datasources/switchyard.yml");
    let prometheus = &datasources["datasources"][0];
    assert_eq!(prometheus["type"], "prometheus");
    assert_eq!(prometheus["uid"], DATASOURCE_UID);
    let providers = read("dashboards/switchyard.yml");
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(
        provider["options"]["path"].as_str().is_some(),
        "{provider:?}"
    );
}

#[test]
fn dashboards_substitute_grafana_variables() {
    assert_eq!(
        substitute(
            r#"sum(rate(x{team=~"$team",p=~"${provider}",m=~"${model:regex}"}[$__rate_interval]))"#
        ),
        r#"sum(rate(x{team=~".*",p=~".*",m=~".*"}[5m]))"#
    );
}
