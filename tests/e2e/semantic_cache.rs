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
