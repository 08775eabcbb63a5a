//! Benchmark: the guardrails' redaction pass on 8 KB chat prompts (the figure: p50 at
//! most 50 µs), in process, with every built-in class looked for (`default_action: redact`).
//!
//! Three bodies of 8,192 bytes: `clean` (code, logs and prose with numbers, versions, hashes
//! and UUIDs but nothing to find), `dirty` (the same with twelve values of nine classes,
//! replaced in place) and `escaped` (clean, but with a `\u` escape, which the walk decodes),
//! plus the policy lookup of a request no policy applies to. Prints p50, p99 and mean per case.
//!
//! `cargo run --release -p switchyard-tests --bin bench-guard [-- ITERATIONS]`

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use data_plane::guard::{Guards, Outcome, Session};

const SIZE: usize = 8 * 1024;

fn filler() -> String {
    let lines = [
        "fn main() { let items: Vec<u64> = (0..4096).collect(); println!(\"{}\", items.len()); }",
        "2026-03-01 12:30:45 INFO request_id=550e8400-e29b-41d4-a716-446655440000 status=200 duration_ms=184",
        "Released v2.14.3 on 2026-02-11; see commit 9f86d081884c (sha256 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae).",
        "The quarterly numbers grew from 1,204,553 to 1,389,002 while costs fell by 3.5% over 12 months.",
        "Please refactor the retry loop so that backoff doubles up to 30 s and the deadline is honoured.",
    ];
    lines
        .iter()
        .cycle()
        .take(200)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

const DIRTY: [&str; 12] = [
    "mail ann.lee@corp.example",
    "call +1-555-123-4567",
    "card 4111 1111 1111 1111",
    "IBAN DE89370400440532013000",
    "SSN 123-45-6789",
    "host 203.0.113.45",
    "key AKIAIOSFODNN7EXAMPLE",
    "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "password = \"hX9$kq2Lp!zR\"",
    "mail bob@corp.example",
    "host 198.51.100.7",
    "call +44 20 7946 0958",
];

/// A chat body of exactly `SIZE` bytes whose user message is `text` padded with filler.
fn body(text: &str) -> Vec<u8> {
    let mut content = text.to_owned();
    let fill = filler();
    let shell = |c: &str| {
        serde_json::to_vec(&serde_json::json!({
            "model": "chat",
            "messages": [{"role": "system", "content": "You are a careful assistant."},
                         {"role": "user", "content": c}]
        }))
        .unwrap_or_default()
    };
    let mut chars = fill.chars();
    while shell(&content).len() < SIZE {
        content.push(chars.next().unwrap_or(' '));
    }
    while shell(&content).len() > SIZE {
        content.pop();
    }
    shell(&content)
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort_unstable();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(1);
    (samples[n / 2], samples[n * 99 / 100], mean)
}

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let policy: proto::GuardrailPolicy =
        serde_yaml::from_str("{id: bench, applies_to: {keys: [k]}, default_action: redact}")?;
    let guards = Guards::compile(vec![policy]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let Some(effective) = guards.effective(Some("k"), None, "chat") else {
        anyhow::bail!("the policy does not apply");
    };
    let mut dirty_text = DIRTY.join(". ");
    dirty_text.push_str(". ");
    let mut escaped_text = String::from("caf\u{e9} ");
    escaped_text.push_str(&filler()[..64]);
    let cases = [
        ("clean", body("")),
        ("dirty", body(&dirty_text)),
        ("escaped", {
            // serde_json writes UTF-8 as is; the escape is what an ASCII-only client sends.
            let raw = String::from_utf8(body(&escaped_text))?;
            raw.replacen('\u{e9}', "\\u00e9", 1).into_bytes()
        }),
    ];
    println!(
        "guardrail redaction pass, {iterations} iterations per case, every built-in class redacted"
    );
    println!(
        "{:<9}{:>8}{:>12}{:>12}{:>12}  outcome",
        "body", "bytes", "p50 us", "p99 us", "mean us"
    );
    for (name, bytes) in &cases {
        let mut samples = Vec::with_capacity(iterations);
        let mut last = String::new();
        for _ in 0..iterations {
            let mut session = Session::new(effective.clone());
            let start = Instant::now();
            let outcome = session.redact_body(bytes);
            samples.push(start.elapsed());
            last = match outcome {
                Outcome::Unchanged => "unchanged".into(),
                Outcome::Changed(_) => format!(
                    "rewritten, {} detections",
                    session.counts().values().sum::<u64>()
                ),
                Outcome::Blocked(c) => format!("blocked {c:?}"),
            };
        }
        let (p50, p99, mean) = stats(samples);
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{name:<9}{:>8}{:>12.1}{:>12.1}{:>12.1}  {last}",
            bytes.len(),
            us(p50),
            us(p99),
            us(mean)
        );
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let e = guards.effective(Some("other"), Some("team"), "chat-2");
        samples.push(start.elapsed());
        assert!(e.is_none());
    }
    let (p50, _, _) = stats(samples);
    println!(
        "policy lookup of a request no policy applies to: p50 {} ns",
        p50.as_nanos()
    );
    Ok(())
}
