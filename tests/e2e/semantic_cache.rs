//! The semantic cache's embedding model against labelled prompt pairs: each line of
//! `tests/fixtures/semantic_triples.tsv` is a prompt, a paraphrase (a cached answer to one is
//! right for the other) and a different question on the same topic (a cached answer would be
//! wrong). At the default threshold the precision must be at least 0.98: a wrong cached answer
//! is worse than a miss. Precision and recall are printed for a sweep of thresholds. A pair the
//! cache's lexical guard tells apart (same words reordered, other numbers) is never a hit.

use data_plane::cache::embed::{cosine, differ_beyond_embedding, Embedder, DEFAULT_THRESHOLD};
use switchyard_tests::support::{minilm, workspace_root};

/// (similarity, same question) of every labelled pair.
fn scored(embedder: &Embedder) -> Vec<(f32, bool)> {
    let text =
        std::fs::read_to_string(workspace_root().join("tests/fixtures/semantic_triples.tsv"))
            .unwrap();
    let mut pairs = Vec::new();
    let mut scores = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let [base, same, other]: [&str; 3] = line
            .split('\t')
            .collect::<Vec<_>>()
            .try_into()
            .unwrap_or_else(|l| panic!("not three columns: {l:?}"));
        let [b, s, o] = [base, same, other].map(|t| embedder.embed(t).unwrap());
        // What the cache compares: the similarity, unless the texts differ in a way the
        // embedding cannot see (then never a hit).
        let score = |v: &[f32], t: &str| {
            if differ_beyond_embedding(base, t) {
                -1.0
            } else {
                cosine(&b, v)
            }
        };
        pairs.push((score(&s, same), true));
        pairs.push((score(&o, other), false));
        scores.push(format!("{}\t{}\t{line}", cosine(&b, &s), cosine(&b, &o)));
    }
    // Every pair's scores, for a look at the hard cases.
    let out = workspace_root().join("target/semantic-scores.tsv");
    std::fs::write(out, scores.join("\n")).unwrap();
    pairs
}

/// Precision and recall of "similar at or above `threshold`".
fn measure(pairs: &[(f32, bool)], threshold: f32) -> (f64, f64, usize, usize) {
    let hits: Vec<bool> = pairs
        .iter()
        .filter(|(s, _)| *s >= threshold)
        .map(|(_, same)| *same)
        .collect();
    let right = hits.iter().filter(|h| **h).count();
    let positives = pairs.iter().filter(|(_, same)| *same).count();
    let precision = if hits.is_empty() {
        1.0
    } else {
        right as f64 / hits.len() as f64
    };
    (
        precision,
        right as f64 / positives as f64,
        right,
        hits.len() - right,
    )
}

#[test]
fn semantic_threshold_keeps_precision_on_labelled_pairs() {
    let embedder = Embedder::load(&minilm().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let pairs = scored(&embedder);
    let per_text = started.elapsed() / (pairs.len() as u32 * 3 / 2);
    assert!(pairs.len() >= 200, "{} pairs", pairs.len());
    println!(
        "{} labelled pairs; {per_text:?} per embedding (this build)",
        pairs.len()
    );
    println!("threshold precision recall right wrong");
    for t in [0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97] {
        let (p, r, right, wrong) = measure(&pairs, t);
        println!("{t:.2} {p:.3} {r:.3} {right} {wrong}");
    }
    let (precision, recall, _, wrong) = measure(&pairs, DEFAULT_THRESHOLD);
    println!("default {DEFAULT_THRESHOLD}: precision {precision:.3}, recall {recall:.3}");
    eprintln!("default {DEFAULT_THRESHOLD}: precision {precision:.3}, recall {recall:.3}");
    assert!(precision >= 0.98, "precision {precision} ({wrong} wrong)");
    // The model really separates paraphrases: a fair share of them are found.
    assert!(recall >= 0.2, "recall {recall}");
}

/// Through two proxies on one NATS, both with the embedder: a paraphrase asked on the second
/// proxy is answered from what the first stored (`x-switchyard-cache-match: semantic`), the
/// mock saw one request for both; a different question on the same topic is a miss, and so is
/// the paraphrase from another team.
#[tokio::test]
async fn a_paraphrase_is_a_semantic_hit_on_another_proxy() {
    use serde_json::json;
    use switchyard_tests::support::{
        eventually, wait_until_served, DataPlane, DataPlaneSpec, MockProviderOptions, TestEnv,
        ENV_EMBED_MODEL,
    };

    use crate::fixture::{add_mock_provider, all_models_key, client, UPSTREAM_KEY};

    let model = minilm().unwrap();
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    let cp = env.control_plane("control-plane-0").await.unwrap();
    for _ in 0..2 {
        let spec = DataPlaneSpec::nats_sealed().env(ENV_EMBED_MODEL, model.to_str().unwrap());
        env.start_data_plane(spec).await.unwrap();
    }
    add_mock_provider(&cp, &env).await;
    let route =
        json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "mock-chat"}]});
    cp.post("/admin/routes", &route).await.unwrap();
    let policy = json!({"id": "sem", "ttl_secs": 600, "semantic": {"enabled": true}});
    cp.post("/admin/cache-policies", &policy).await.unwrap();
    let a = cp
        .post("/admin/teams", &json!({"name": "a"}))
        .await
        .unwrap();
    let b = cp
        .post("/admin/teams", &json!({"name": "b"}))
        .await
        .unwrap();
    let (key_a, key_b) = (all_models_key(&cp, &a).await, all_models_key(&cp, &b).await);
    let [one, two] = [env.data_plane_at(0), env.data_plane_at(1)];
    for proxy in [one, two] {
        wait_until_served(&proxy.base_url(), &key_b, "chat")
            .await
            .unwrap();
    }
    let ask = |proxy: &DataPlane, key: &str, prompt: &str| {
        let request = client()
            .post(proxy.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": prompt}]}));
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let header = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            (
                header("x-switchyard-cache"),
                header("x-switchyard-cache-match"),
            )
        }
    };
    let gauge = |text: String, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };

    let (cache, _) = ask(one, &key_a, "How do I reverse a list in Python?").await;
    assert_eq!(cache, "miss");
    // The record reached the other proxy's index through the stream.
    eventually(std::time::Duration::from_secs(20), || async {
        let n = gauge(
            two.metrics().await?,
            "switchyard_cache_semantic_index_entries ",
        );
        anyhow::ensure!(n >= 1.0, "index holds {n}");
        Ok(())
    })
    .await
    .unwrap();
    let (cache, matched) = ask(two, &key_a, "What's the way to reverse a Python list?").await;
    assert_eq!(cache, "hit", "{matched}");
    assert!(matched.starts_with("semantic; similarity=0.9"), "{matched}");
    let (cache, matched) = ask(two, &key_a, "How do I reverse a list in Python?").await;
    assert_eq!((cache.as_str(), matched.as_str()), ("hit", "exact"));
    let (cache, _) = ask(two, &key_a, "How do I sort a list in Python?").await;
    assert_eq!(cache, "miss", "a different question");
    let (cache, _) = ask(two, &key_b, "What's the way to reverse a Python list?").await;
    assert_eq!(cache, "miss", "another team");
    let seen = env.mock().requests().await.unwrap();
    let calls = seen
        .iter()
        .filter(|r| r["path"] == "/v1/chat/completions")
        .count();
    assert_eq!(calls, 3);
}
