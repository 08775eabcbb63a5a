//! The semantic index: the records of every scope, bounded, searched in two steps.
//!
//! Each scope has a shelf of its own (a search reads only its scope's shelf, so it never
//! returns another scope's record). A shelf holds, record by record at one position, the
//! record's sign code ([`simhash`](super::simhash)), its unit vector, its key, text and expiry;
//! codes and vectors each lie in one contiguous array. A search of a shelf larger than
//! [`CANDIDATES`] scans the codes for the live records nearest by Hamming distance (the
//! proposal), then computes their exact cosines; a smaller shelf is scanned exactly. The
//! search returns the most similar candidate a caller's test accepts (the threshold and the
//! lexical guard), so a hit is always decided on the exact cosine: the approximation can cost
//! a hit (a record that the codes ranked too far), never make a wrong one.
//!
//! Vectors of any length are held (a routed embedding model's): a shelf's vectors all have the
//! length of its first, a vector of another length replaces the shelf (the model behind the
//! scope changed, and the old vectors cannot be compared with the new). The codes are made
//! from [`DIMENSIONS`] components: a longer vector is folded onto them (component `i` added to
//! `i % DIMENSIONS`), a shorter one padded with zeros; both are linear maps, so near vectors
//! keep near codes, and the exact cosine is always computed on the whole vectors.
//!
//! A key stored again replaces its record (a stream read again from its start folds the same
//! records twice). The index holds at most its capacity: when full, expired records go, and
//! if that frees less than one percent, the oldest records go until it does (an insert pays
//! for a pass over the records at most once per one percent of the capacity).

use std::collections::HashMap;
use std::sync::Arc;

use super::embed::DIMENSIONS;
use super::simhash::{Code, Hyperplanes};

/// Candidates proposed by the codes and checked on their exact cosine.
pub const CANDIDATES: usize = 128;

/// One record of a shelf.
#[derive(Debug)]
struct Meta {
    key: Arc<str>,
    /// The prompt's text (for the caller's lexical guard).
    text: Box<str>,
    expires_ms: i64,
    /// Insertion order: the lowest is the oldest.
    seq: u64,
}

/// A scope's records; position `i` of each array is record `i`.
#[derive(Debug, Default)]
struct Shelf {
    /// The length of every vector of the shelf.
    dims: usize,
    codes: Vec<Code>,
    /// `dims` per record.
    vectors: Vec<f32>,
    meta: Vec<Meta>,
    /// Key → position.
    slots: HashMap<Arc<str>, usize>,
}

impl Shelf {
    fn len(&self) -> usize {
        self.meta.len()
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }

    /// Keeps the records `keep` accepts, in order; returns how many went.
    fn retain(&mut self, mut keep: impl FnMut(&Meta) -> bool) -> usize {
        let before = self.len();
        let d = self.dims;
        let mut w = 0;
        for r in 0..before {
            if !keep(&self.meta[r]) {
                continue;
            }
            if w != r {
                self.codes[w] = self.codes[r];
                self.vectors.copy_within(r * d..(r + 1) * d, w * d);
                self.meta.swap(w, r);
            }
            w += 1;
        }
        self.codes.truncate(w);
        self.vectors.truncate(w * d);
        self.meta.truncate(w);
        if w != before {
            self.slots = (self.meta.iter().enumerate())
                .map(|(i, m)| (Arc::clone(&m.key), i))
                .collect();
        }
        before - w
    }
}

/// A record the index found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub key: String,
    pub similarity: f32,
}

/// A record to store.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub text: String,
    /// A unit vector (of the scope's length).
    pub vector: Vec<f32>,
    pub expires_ms: i64,
}

/// Every scope's shelf.
#[derive(Debug)]
pub struct Index {
    shelves: HashMap<String, Shelf>,
    len: usize,
    capacity: usize,
    /// Candidates a search proposes ([`CANDIDATES`] unless set).
    candidates: usize,
    seq: u64,
    planes: Hyperplanes,
}

impl Index {
    /// An empty index of at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            shelves: HashMap::new(),
            len: 0,
            capacity: capacity.max(1),
            candidates: CANDIDATES,
            seq: 0,
            planes: Hyperplanes::new(),
        }
    }

    /// The same index proposing `k` candidates per search (for measuring the trade-off).
    pub fn with_candidates(mut self, k: usize) -> Self {
        self.candidates = k.max(1);
        self
    }

    /// Records held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `entry` in `scope` (replacing a record of the same key there), making room first
    /// if the index is full. An empty vector is ignored; one of another length than the
    /// scope's replaces the scope's records.
    pub fn insert(&mut self, scope: &str, entry: Entry, now_ms: i64) {
        let dims = entry.vector.len();
        if dims == 0 {
            return;
        }
        let code = self.code(&entry.vector);
        self.seq += 1;
        let seq = self.seq;
        if self.shelves.get(scope).is_some_and(|s| s.dims != dims) {
            if let Some(old) = self.shelves.remove(scope) {
                self.len -= old.len();
            }
        }
        if let Some(shelf) = self.shelves.get_mut(scope) {
            if let Some(&i) = shelf.slots.get(entry.key.as_str()) {
                shelf.codes[i] = code;
                shelf.vectors[i * dims..(i + 1) * dims].copy_from_slice(&entry.vector);
                let meta = &mut shelf.meta[i];
                meta.text = entry.text.into();
                meta.expires_ms = entry.expires_ms;
                meta.seq = seq;
                return;
            }
        }
        if self.len >= self.capacity {
            self.make_room(now_ms);
        }
        let shelf = self
            .shelves
            .entry(scope.to_owned())
            .or_insert_with(|| Shelf {
                dims,
                ..Shelf::default()
            });
        let key: Arc<str> = entry.key.into();
        shelf.slots.insert(Arc::clone(&key), shelf.len());
        shelf.codes.push(code);
        shelf.vectors.extend_from_slice(&entry.vector);
        shelf.meta.push(Meta {
            key,
            text: entry.text.into(),
            expires_ms: entry.expires_ms,
            seq,
        });
        self.len += 1;
    }

    /// Drops expired records, then, if that left the index more than 99% full, the oldest
    /// until it is not.
    fn make_room(&mut self, now_ms: i64) {
        self.retain(|m| m.expires_ms > now_ms);
        let target = self.capacity - self.capacity.div_ceil(100);
        if self.len <= target {
            return;
        }
        let mut seqs: Vec<u64> = (self.shelves.values())
            .flat_map(|s| s.meta.iter().map(|m| m.seq))
            .collect();
        let excess = self.len - target;
        // The seq of the `excess`-th oldest record: it and every older one go.
        let (_, &mut cutoff, _) = seqs.select_nth_unstable(excess - 1);
        self.retain(|m| m.seq > cutoff);
    }

    fn retain(&mut self, mut keep: impl FnMut(&Meta) -> bool) {
        for shelf in self.shelves.values_mut() {
            self.len -= shelf.retain(&mut keep);
        }
        self.shelves.retain(|_, shelf| shelf.len() > 0);
    }

    /// The most similar live record of `scope` to `vector` that `accept` takes (given its
    /// text and exact cosine), among the candidates the codes propose (every record of a small
    /// scope).
    pub fn search(
        &self,
        scope: &str,
        vector: &[f32],
        now_ms: i64,
        accept: impl FnMut(&str, f32) -> bool,
    ) -> Option<Found> {
        let shelf = self.shelves.get(scope)?;
        if vector.len() != shelf.dims {
            return None;
        }
        if shelf.len() <= self.candidates {
            return self.exact(scope, vector, now_ms, accept);
        }
        let query = self.code(vector);
        let live = |i: usize| shelf.meta[i].expires_ms > now_ms;
        let candidates = self
            .planes
            .nearest(&shelf.codes, &query, self.candidates, live);
        self.best(shelf, vector, candidates.into_iter(), accept)
    }

    /// What [`Index::search`] answers, found by comparing `vector` with every live record of
    /// the scope: the reference the approximation is measured against.
    pub fn exact(
        &self,
        scope: &str,
        vector: &[f32],
        now_ms: i64,
        accept: impl FnMut(&str, f32) -> bool,
    ) -> Option<Found> {
        let shelf = self.shelves.get(scope)?;
        if vector.len() != shelf.dims {
            return None;
        }
        let live = (0..shelf.len()).filter(|&i| shelf.meta[i].expires_ms > now_ms);
        self.best(shelf, vector, live, accept)
    }

    /// The sign code of `vector`, folded onto or padded to `DIMENSIONS` components first.
    fn code(&self, vector: &[f32]) -> Code {
        if vector.len() == DIMENSIONS {
            return self.planes.code(vector);
        }
        let mut folded = vec![0.0f32; DIMENSIONS];
        for (i, x) in vector.iter().enumerate() {
            folded[i % DIMENSIONS] += x;
        }
        self.planes.code(&folded)
    }

    /// The accepted record of `candidates` with the highest exact cosine.
    fn best(
        &self,
        shelf: &Shelf,
        vector: &[f32],
        candidates: impl Iterator<Item = usize>,
        mut accept: impl FnMut(&str, f32) -> bool,
    ) -> Option<Found> {
        let mut scored: Vec<(f32, usize)> = candidates
            .map(|i| (self.planes.dot(vector, shelf.vector(i)), i))
            .collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let (similarity, i) = scored
            .into_iter()
            .find(|&(s, i)| accept(&shelf.meta[i].text, s))?;
        Some(Found {
            key: shelf.meta[i].key.to_string(),
            similarity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::simhash::SplitMix;
    use super::*;

    const LATER: i64 = i64::MAX;

    fn entry(key: &str, vector: Vec<f32>, expires_ms: i64) -> Entry {
        Entry {
            key: key.into(),
            text: format!("text of {key}"),
            vector,
            expires_ms,
        }
    }

    fn any(_: &str, _: f32) -> bool {
        true
    }

    /// An index with `n` random records in scope "s" (keys "0".."n"), and the vectors.
    fn filled(n: usize, rng: &mut SplitMix) -> (Index, Vec<Vec<f32>>) {
        let mut index = Index::new(n + 1);
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.unit_vector()).collect();
        for (i, v) in vectors.iter().enumerate() {
            index.insert("s", entry(&i.to_string(), v.clone(), LATER), 0);
        }
        (index, vectors)
    }

    #[test]
    fn a_scope_never_answers_with_another_scopes_record() {
        let mut rng = SplitMix(1);
        let (mut index, vectors) = filled(500, &mut rng);
        // Scope "t" holds the exact query; scope "s" only a near one.
        let query = rng.unit_vector();
        index.insert("t", entry("t-exact", query.clone(), LATER), 0);
        index.insert("s", entry("s-near", rng.near(&query, 0.95), LATER), 0);
        let found = index.search("s", &query, 0, any).unwrap();
        assert_eq!(found.key, "s-near");
        assert!((found.similarity - 0.95).abs() < 1e-3);
        assert_eq!(index.search("t", &query, 0, any).unwrap().key, "t-exact");
        assert!(index.search("u", &vectors[0], 0, any).is_none());
    }

    #[test]
    fn expired_records_are_never_found_and_go_first_when_full() {
        let mut rng = SplitMix(2);
        let mut index = Index::new(300);
        let v = rng.unit_vector();
        index.insert("s", entry("old", v.clone(), 1_000), 0);
        for i in 0..250 {
            index.insert("s", entry(&i.to_string(), rng.unit_vector(), LATER), 0);
        }
        assert_eq!(index.search("s", &v, 0, any).unwrap().key, "old");
        assert_ne!(index.search("s", &v, 1_000, any).unwrap().key, "old");
        assert!(index.exact("s", &v, 1_000, |_, s| s > 0.99).is_none());
        // Full: the expired record goes; as that frees less than 1%, the oldest live ones too.
        for i in 250..299 {
            index.insert("s", entry(&i.to_string(), rng.unit_vector(), LATER), 2_000);
        }
        assert_eq!(index.len(), 300);
        index.insert("s", entry("new", rng.unit_vector(), LATER), 2_000);
        assert_eq!(index.len(), 297 + 1);
        let keys: Vec<&str> = index.shelves["s"].meta.iter().map(|m| &*m.key).collect();
        assert_eq!(keys[..2], ["2", "3"]);
        assert_eq!(keys.last(), Some(&"new"));
        // Positions stay consistent after the compaction.
        for (i, m) in index.shelves["s"].meta.iter().enumerate() {
            assert_eq!(index.shelves["s"].slots[&m.key], i);
        }
    }

    #[test]
    fn a_key_stored_again_replaces_its_record() {
        let mut rng = SplitMix(3);
        let mut index = Index::new(10);
        let (a, b) = (rng.unit_vector(), rng.unit_vector());
        index.insert("s", entry("k", a.clone(), LATER), 0);
        index.insert("s", entry("k", b.clone(), LATER), 0);
        assert_eq!(index.len(), 1);
        let found = index.search("s", &b, 0, any).unwrap();
        assert!((found.similarity - 1.0).abs() < 1e-5);
    }

    #[test]
    fn the_exact_cosine_decides_a_hit() {
        let mut rng = SplitMix(4);
        let (mut index, _) = filled(1_000, &mut rng);
        let query = rng.unit_vector();
        index.insert("s", entry("near", rng.near(&query, 0.93), LATER), 0);
        let threshold = |t: f32| move |_: &str, s: f32| s >= t;
        let found = index.search("s", &query, 0, threshold(0.92)).unwrap();
        assert_eq!(found.key, "near");
        assert!(index.search("s", &query, 0, threshold(0.94)).is_none());
        // A rejected best (the lexical guard) leaves the next accepted one.
        index.insert("s", entry("nearer", rng.near(&query, 0.99), LATER), 0);
        let guard = |text: &str, s: f32| s >= 0.92 && text != "text of nearer";
        assert_eq!(index.search("s", &query, 0, guard).unwrap().key, "near");
    }

    /// Recall@1 of the index against the exact scan, on 2,000 random unit vectors: every query
    /// near a stored record (cosine 0.85 to 0.99, the range a threshold serves) finds it; for
    /// queries near nothing (the hardest case: the nearest record is barely nearer than the
    /// rest, at cosine 0.2), at least half find the exact nearest.
    #[test]
    fn the_index_finds_what_the_exact_scan_finds() {
        let mut rng = SplitMix(5);
        let (index, vectors) = filled(2_000, &mut rng);
        let mut near_hits = 0;
        for q in 0..100 {
            let cosine = 0.85 + 0.14 * (q as f32 / 99.0);
            let query = rng.near(&vectors[q * 19], cosine);
            let approx = index.search("s", &query, 0, any);
            let exact = index.exact("s", &query, 0, any);
            assert_eq!(
                exact.as_ref().map(|f| f.key.as_str()),
                Some(&*(q * 19).to_string())
            );
            near_hits += usize::from(approx == exact);
        }
        assert_eq!(near_hits, 100);
        let mut far_hits = 0;
        for _ in 0..100 {
            let query = rng.unit_vector();
            far_hits +=
                usize::from(index.search("s", &query, 0, any) == index.exact("s", &query, 0, any));
        }
        assert!(far_hits >= 50, "recall@1 of random queries {far_hits}%");
    }

    /// A routed model's vectors: any length, found through folded codes past the candidate
    /// count; a vector of another length replaces the scope, and never matches the old.
    #[test]
    fn vectors_of_any_length_are_indexed_and_a_new_length_replaces_the_scope() {
        let mut rng = SplitMix(7);
        let unit = |rng: &mut SplitMix, n: usize| {
            let v: Vec<f32> = (0..n).map(|_| rng.unit() as f32 - 0.5).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
        };
        for dims in [8, 1536] {
            let mut index = Index::new(1_000);
            let vectors: Vec<Vec<f32>> = (0..300).map(|_| unit(&mut rng, dims)).collect();
            for (i, v) in vectors.iter().enumerate() {
                index.insert("s", entry(&i.to_string(), v.clone(), LATER), 0);
            }
            let found = index.search("s", &vectors[123], 0, any).unwrap();
            assert_eq!(found.key, "123", "{dims} dimensions");
            assert!((found.similarity - 1.0).abs() < 1e-4);
            // The model changed: a vector of another length replaces the scope's records.
            index.insert("s", entry("new", unit(&mut rng, dims + 1), LATER), 0);
            assert_eq!(index.len(), 1);
            assert_eq!(index.search("s", &vectors[123], 0, any), None);
        }
    }
}
