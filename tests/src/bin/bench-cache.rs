//! Response-cache figures, in one run: the exact lookup (key of an 8 KB prompt, then a hit
//! from the proxy's memory), this process's memory with 100,000 entries, the semantic index
//! search over 100,000 records of one scope, and the embedding of a short prompt.
//!
//! `cargo run --release -p switchyard-tests --bin bench-cache` (the model is fetched into
//! `target/models/` as the tests do).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use data_plane::cache::embed::Embedder;
use data_plane::cache::entry::Entry;
use data_plane::cache::key::{key, Scope};
use data_plane::cache::semantic::{encode, Record, Semantic};
use data_plane::cache::Cache;
use data_plane::providers::JsonBody;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn p50(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn entry(i: usize) -> Entry {
    let completion = serde_json::json!({
        "id": format!("chatcmpl-{i}"), "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": "An answer of a few sentences, as a cached chat completion would hold. ".repeat(8)}}],
        "usage": {"prompt_tokens": 2000, "completion_tokens": 120, "total_tokens": 2120}
    });
    Entry {
        expires_ms: i64::MAX,
        team: Some("team".into()),
        shared: false,
        deployment: "p/m".into(),
        model: "m".into(),
        usage: proto::TokenUsage::default(),
        completion: serde_json::value::to_raw_value(&completion).unwrap(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    const N: usize = 100_000;
    let scope = Scope {
        policy: "default",
        epoch: 0,
        team: Some(Some("team")),
        route: "chat",
    };
    let prompt = "Explain the difference between processes and threads in detail. ".repeat(125);
    let body: JsonBody = serde_json::from_value(serde_json::json!({
        "model": "chat", "temperature": 0, "max_tokens": 512,
        "messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": prompt}]
    }))
    .unwrap();

    let before = rss_kib();
    let cache = Cache::new(None, N + 10, 1 << 34);
    for i in 0..N {
        cache.put(format!("{i:064x}"), entry(i)).await;
    }
    let after = rss_kib();
    let hit = key(scope, &body).unwrap();
    cache.put(hit.clone(), entry(0)).await;
    let mut keyed = Vec::new();
    let mut found = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let k = key(scope, &body).unwrap();
        keyed.push(t.elapsed());
        let t = Instant::now();
        assert!(cache.get(&k, Some("team")).await.is_some());
        found.push(t.elapsed());
    }
    let bytes = serde_json::to_vec(&body).unwrap().len();
    println!(
        "exact lookup, {bytes}-byte body: key p50 {:?}, memory hit p50 {:?}",
        p50(keyed),
        p50(found)
    );
    println!(
        "memory with {N} entries: {} MiB more",
        (after - before) / 1024
    );

    let dir = switchyard_tests::support::minilm().unwrap();
    let embedder = Embedder::load(&dir).unwrap();
    let mut embeds = Vec::new();
    let mut vector = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        vector = embedder
            .embed("How do I reverse a list in Python?")
            .unwrap();
        embeds.push(t.elapsed());
    }
    println!("embedding a short prompt: p50 {:?}", p50(embeds));
    let semantic = Semantic::new(Some(Embedder::load(&dir).unwrap()), None);
    let mut seed = 1u64;
    for i in 0..N {
        let v: Vec<f32> = (0..384)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        semantic.fold(Record {
            scope: "s".into(),
            key: format!("{i}"),
            expires_ms: i64::MAX,
            text: "q".into(),
            vector: encode(&v),
        });
    }
    let mut searched = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let _ = semantic.search("s", "How do I reverse a list in Python?", &vector, 0.92);
        searched.push(t.elapsed());
    }
    println!(
        "semantic search over {N} records of one scope: p50 {:?}",
        p50(searched)
    );
}
