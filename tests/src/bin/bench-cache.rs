//! Response-cache figures, in one run: the exact lookup (key of an 8 KB prompt, then a hit
//! from the proxy's memory), this process's memory with 100,000 entries, the embedding of a
//! short prompt, and the semantic index over 100,000 records of one scope: its build (time
//! and memory), its search (p50 and p99, for queries near a record and queries near none),
//! and its recall@1 against the exact scan, for the default number of candidates and others.
//!
//! `cargo build --release -p switchyard-tests --bin bench-cache && target/release/bench-cache`
//! (the model is fetched into `target/models/` as the tests do). A debug build runs too, but
//! its figures say little.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use data_plane::cache::embed::Embedder;
use data_plane::cache::entry::Entry;
use data_plane::cache::index::{self, Found, Index, CANDIDATES};
use data_plane::cache::key::{key, Scope};
use data_plane::cache::semantic::{encode, Record, Semantic};
use data_plane::cache::simhash::SplitMix;
use data_plane::cache::Cache;
use data_plane::providers::JsonBody;

const N: usize = 100_000;
/// Queries of each kind for the search times and the recall.
const QUERIES: usize = 200;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// The `p`-th percentile (0–100).
fn pct(d: &[Duration], p: usize) -> Duration {
    let mut d = d.to_vec();
    d.sort();
    d[(d.len() * p / 100).min(d.len() - 1)]
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

async fn exact_lookup() {
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
    for _ in 0..5000 {
        let t = Instant::now();
        let k = key(scope, &body).unwrap();
        keyed.push(t.elapsed());
        let t = Instant::now();
        assert!(cache.get(&k, Some("team")).await.is_some());
        found.push(t.elapsed());
    }
    let bytes = serde_json::to_vec(&body).unwrap().len();
    println!(
        "exact lookup, {bytes}-byte body: key p50 {:?} (p99 {:?}), memory hit p50 {:?}",
        pct(&keyed, 50),
        pct(&keyed, 99),
        pct(&found, 50)
    );
    println!(
        "memory with {N} entries: {} MiB more",
        (after - before) / 1024
    );
}

/// Cosines of the queries near a record to it, `QUERIES / BANDS.len()` queries each.
const BANDS: [f32; 8] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// The queries: `QUERIES` near a stored record (at each cosine of `BANDS` in turn), and
/// `QUERIES` near none (random, plus a real prompt's embedding).
fn queries(vectors: &[Vec<f32>], real: &[f32], rng: &mut SplitMix) -> [Vec<Vec<f32>>; 2] {
    let near = (0..QUERIES)
        .map(|q| rng.near(&vectors[q * (N / QUERIES)], BANDS[q % BANDS.len()]))
        .collect();
    let mut far: Vec<Vec<f32>> = (1..QUERIES).map(|_| rng.unit_vector()).collect();
    far.push(real.to_vec());
    [near, far]
}

fn any(_: &str, _: f32) -> bool {
    true
}

fn semantic_index(dir: &std::path::Path, real: &[f32]) {
    let mut rng = SplitMix(42);
    let vectors: Vec<Vec<f32>> = (0..N).map(|_| rng.unit_vector()).collect();
    let records: Vec<Record> = (vectors.iter().enumerate())
        .map(|(i, v)| Record {
            scope: "s".into(),
            key: format!("{i}"),
            expires_ms: i64::MAX,
            text: "q".into(),
            vector: encode(v),
        })
        .collect();
    let semantic = Semantic::new(Some(Embedder::load(dir).unwrap()), None);
    let before = rss_kib();
    let t = Instant::now();
    for record in records {
        semantic.fold(record);
    }
    let built = t.elapsed();
    println!(
        "semantic index build, {N} records of one scope (folded as from the stream): {built:.2?}, {} MiB",
        (rss_kib() - before) / 1024
    );

    let [near, far] = queries(&vectors, real, &mut rng);
    let text = "How do I reverse a list in Python?";
    for (name, set) in [("near a record", &near), ("near none", &far)] {
        let mut times = Vec::new();
        let mut hits = 0;
        for q in set {
            let t = Instant::now();
            hits += usize::from(semantic.search("s", text, q, 0.92).is_some());
            times.push(t.elapsed());
        }
        println!(
            "semantic search at {N}, {QUERIES} queries {name}: p50 {:?}, p99 {:?} ({hits} hits at 0.92)",
            pct(&times, 50),
            pct(&times, 99)
        );
    }

    // The exact answers, once; then the index with several candidate counts.
    let index = semantic.index();
    let mut scans = Vec::new();
    let exact: Vec<Vec<Option<Found>>> = [&near, &far]
        .iter()
        .map(|set| {
            set.iter()
                .map(|q| {
                    let t = Instant::now();
                    let found = index.exact("s", q, 0, any);
                    scans.push(t.elapsed());
                    found
                })
                .collect()
        })
        .collect();
    println!(
        "exact scan at {N} (the reference): p50 {:?}",
        pct(&scans, 50)
    );
    let recall = |index: &Index| -> Vec<(f64, Duration)> {
        [&near, &far]
            .iter()
            .zip(&exact)
            .map(|(set, truth)| {
                let mut times = Vec::new();
                let mut same = 0;
                for (q, want) in set.iter().zip(truth) {
                    let t = Instant::now();
                    let got = index.search("s", q, 0, any);
                    times.push(t.elapsed());
                    same += usize::from(got == *want);
                }
                (same as f64 / set.len() as f64, pct(&times, 50))
            })
            .collect()
    };
    let r = recall(&index);
    println!(
        "recall@1 against the exact scan ({CANDIDATES} candidates): {:.3} for queries near a record, {:.3} for queries near none",
        r[0].0, r[1].0
    );
    for (b, cosine) in BANDS.iter().enumerate() {
        let band: Vec<usize> = (b..QUERIES).step_by(BANDS.len()).collect();
        let same = (band.iter())
            .filter(|&&q| index.search("s", &near[q], 0, any) == exact[0][q])
            .count();
        print!("cosine {cosine}: {same}/{}; ", band.len());
    }
    // Near none, what a miss of the exact nearest costs: how much less similar the index's
    // answer is.
    let gaps: Vec<f32> = (far.iter().zip(&exact[1]))
        .filter_map(|(q, want)| {
            let got = index.search("s", q, 0, any)?;
            Some(want.as_ref()?.similarity - got.similarity)
        })
        .collect();
    let best = exact[1].iter().flatten().map(|f| f.similarity);
    println!(
        "\nnear none: the exact nearest at cosine {:.3} on average, the index's answer {:.4} less (at most {:.4})",
        best.sum::<f32>() / far.len() as f32,
        gaps.iter().sum::<f32>() / gaps.len() as f32,
        gaps.iter().copied().fold(0.0, f32::max)
    );
    drop(index);
    drop(semantic);

    let mut sweep = Index::new(N);
    for (i, v) in vectors.iter().enumerate() {
        let entry = index::Entry {
            key: i.to_string(),
            text: "q".into(),
            vector: v.clone(),
            expires_ms: i64::MAX,
        };
        sweep.insert("s", entry, 0);
    }
    println!("candidates | recall@1 near a record | recall@1 near none | search p50");
    for k in [32, 64, 128, 256, 512, 1024] {
        sweep = sweep.with_candidates(k);
        let r = recall(&sweep);
        println!(
            "{k} | {:.3} | {:.3} | {:?}",
            r[0].0,
            r[1].0,
            r[1].1.max(r[0].1)
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    exact_lookup().await;

    let dir = switchyard_tests::support::minilm().unwrap();
    let embedder = Embedder::load(&dir).unwrap();
    let mut embeds = Vec::new();
    let mut real = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        real = embedder
            .embed("How do I reverse a list in Python?")
            .unwrap();
        embeds.push(t.elapsed());
    }
    println!("embedding a short prompt: p50 {:?}", pct(&embeds, 50));

    semantic_index(&dir, &real);
}
