//! The proxy's own bounded memory of entries, in front of the shared bucket: at most a number
//! of entries and of bytes, the least recently used going first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::entry::Entry;

/// A bounded least-recently-used map of entries.
#[derive(Debug)]
pub struct Lru {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    /// Key → entry, its size and its last use.
    map: HashMap<String, (Arc<Entry>, usize, u64)>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, String>,
}

impl Lru {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_entries,
            max_bytes,
            bytes: 0,
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The entry under `key`, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<Arc<Entry>> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, _, used) = self.map.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, key.to_owned());
        Some(Arc::clone(entry))
    }

    /// Stores `entry` (`size` bytes); returns how many entries were evicted to make room. An
    /// entry larger than the whole budget is not kept.
    pub fn insert(&mut self, key: String, entry: Arc<Entry>, size: usize) -> usize {
        self.remove(&key);
        if size > self.max_bytes || self.max_entries == 0 {
            return 0;
        }
        let mut evicted = 0;
        while self.map.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, bytes, _)) = self.map.remove(&oldest) {
                self.bytes -= bytes;
                evicted += 1;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (entry, size, self.tick));
        self.bytes += size;
        evicted
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some((_, bytes, used)) = self.map.remove(key) {
            self.order.remove(&used);
            self.bytes -= bytes;
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Arc<Entry> {
        Arc::new(Entry {
            expires_ms: 0,
            team: None,
            shared: false,
            deployment: String::new(),
            model: String::new(),
            usage: proto::TokenUsage::default(),
            completion: serde_json::value::to_raw_value(&0).unwrap(),
        })
    }

    #[test]
    fn bounded_by_entries_and_bytes_least_recently_used_first() {
        let mut lru = Lru::new(2, 100);
        assert_eq!(lru.insert("a".into(), entry(), 10), 0);
        assert_eq!(lru.insert("b".into(), entry(), 10), 0);
        assert!(lru.get("a").is_some());
        assert_eq!(lru.insert("c".into(), entry(), 10), 1, "b goes");
        assert!(lru.get("b").is_none() && lru.get("a").is_some() && lru.get("c").is_some());
        assert_eq!(lru.insert("d".into(), entry(), 95), 2, "bytes bound");
        assert_eq!((lru.len(), lru.bytes()), (1, 95));
        assert_eq!(
            lru.insert("e".into(), entry(), 101),
            0,
            "too large is not kept"
        );
        assert!(lru.get("e").is_none());
        lru.remove("d");
        assert_eq!((lru.len(), lru.bytes()), (0, 0));
    }
}
