//! What the control-plane bench measures while swaps happen: request latency under load,
//! per-process scheduler times, and the data plane's swap metrics.

use std::collections::BTreeMap;

use anyhow::Context as _;

/// oha at 1,000 req/s for `secs`; returns each successful request's latency in ms (with
/// oha's latency correction: from when the request was due, not when it was sent).
pub(crate) async fn load(url: &str, key: &str, secs: u64) -> anyhow::Result<Vec<f64>> {
    let out = tokio::process::Command::new("oha")
        .args([
            "--no-tui",
            "--output-format",
            "csv",
            "-z",
            &format!("{secs}s"),
            "-q",
            "1000",
            "--latency-correction",
            "-c",
            "32",
            "-m",
            "POST",
        ])
        .args([
            "-T",
            "application/json",
            "-H",
            &format!("Authorization: Bearer {key}"),
        ])
        .args([
            "-d",
            r#"{"model":"chat","messages":[{"role":"user","content":"hello there"}]}"#,
            url,
        ])
        .output()
        .await
        .context("running oha (cargo install oha)")?;
    // request-start,DNS,DNS+dialup,Response-delay,request-duration,bytes,status
    let text = String::from_utf8_lossy(&out.stdout);
    let latencies: Vec<f64> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            (cols.get(6) == Some(&"200"))
                .then(|| cols.get(4)?.parse::<f64>().ok())
                .flatten()
        })
        .map(|secs| secs * 1e3)
        .collect();
    anyhow::ensure!(
        latencies.len() as u64 > secs * 900,
        "only {} successful requests in {secs} s: {}",
        latencies.len(),
        text.lines().take(3).collect::<Vec<_>>().join(" | ")
    );
    Ok(latencies)
}

/// The p99 of all samples together.
pub(crate) fn p99(samples: &mut [f64]) -> f64 {
    samples.sort_unstable_by(f64::total_cmp);
    let i = ((samples.len() as f64 - 1.0) * 0.99).round() as usize;
    samples.get(i).copied().unwrap_or(0.0)
}

/// CPU time and run-queue wait (ms, from `/proc/*/task/*/schedstat`) so far, by process, and for
/// the data plane by thread: request workers apart from the snapshot threads.
pub(crate) fn sched_times() -> BTreeMap<String, (f64, f64)> {
    let watched = ["nats-server", "data-plane", "mock-provider", "oha"];
    let mut times: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return times;
    };
    let comm = |path: &std::path::Path| {
        std::fs::read_to_string(path.join("comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_default()
    };
    for proc in procs.flatten() {
        let name = comm(&proc.path());
        if !watched.contains(&name.as_str()) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(proc.path().join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            let mut fields = stat
                .split_whitespace()
                .map(|f| f.parse::<f64>().unwrap_or(0.0));
            let (run, wait) = (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0));
            let key = if name == "data-plane" {
                let thread = comm(&task.path());
                if thread.starts_with("snapshot") {
                    "data-plane snapshot threads".to_owned()
                } else {
                    "data-plane other threads".to_owned()
                }
            } else {
                name.clone()
            };
            let entry = times.entry(key).or_default();
            entry.0 += run / 1e6;
            entry.1 += wait / 1e6;
        }
    }
    times
}

/// What each process used per second between two [`sched_times`] readings `secs` apart.
pub(crate) fn per_second(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
    secs: f64,
) -> BTreeMap<String, (f64, f64)> {
    after
        .iter()
        .map(|(k, (run, wait))| {
            let (run0, wait0) = before.get(k).copied().unwrap_or_default();
            (k.clone(), ((run - run0) / secs, (wait - wait0) / secs))
        })
        .collect()
}

pub(crate) async fn metric_sum(ops: &str, name: &str, label: &str) -> anyhow::Result<(f64, f64)> {
    let text = reqwest::get(format!("{ops}/metrics")).await?.text().await?;
    let find = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((find("sum"), find("count")))
}
