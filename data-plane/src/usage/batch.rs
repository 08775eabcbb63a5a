//! Grouping a channel's items into batches, one JetStream message each (the framing is
//! `proto::batch_items`): per team, since the subject names the team, and bounded by
//! [`MAX_BATCH_BYTES`] and [`MAX_BATCH_ITEMS`]. The publisher closes the open batches
//! [`LINGER`] after the first item of a quiet spell arrived, or as soon as one is full.
//!
//! Why: JetStream's cost is per message far more than per byte. One message per request cost
//! nats-server about as much CPU as the proxy's whole request path; a few milliseconds of
//! lingering turns thousands of messages a second into a few hundred.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};

/// How long the first item of a batch waits for others.
pub const LINGER: Duration = Duration::from_millis(5);
/// Largest batch, in bytes of JSON (well under NATS' 1 MiB `max_payload`; a single item larger
/// than this travels alone, up to `sink::MAX_ITEM_BYTES`).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Most items in a batch.
pub const MAX_BATCH_ITEMS: usize = 1024;

/// Items of one team on their way in one message.
#[derive(Debug)]
pub struct Batch {
    pub team: Option<String>,
    /// The batch's `Nats-Msg-Id` (the same on every retry of it).
    pub id: String,
    /// Each item's JSON, one line each in the message.
    pub items: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn new(team: Option<String>, first_id: &str) -> Self {
        Self {
            team,
            id: first_id.to_owned(),
            items: Vec::new(),
            bytes: 0,
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.items.is_empty()
            || (self.items.len() < MAX_BATCH_ITEMS && self.bytes + 1 + len <= MAX_BATCH_BYTES)
    }

    fn full(&self) -> bool {
        self.items.len() >= MAX_BATCH_ITEMS || self.bytes >= MAX_BATCH_BYTES
    }

    fn push(&mut self, json: Bytes) {
        self.bytes += json.len() + 1;
        self.items.push(json);
    }

    /// Closes the batch: its id now counts its items.
    fn close(mut self) -> Self {
        self.id = proto::batch_id(&self.id, self.items.len());
        self
    }

    /// The message body: the items' JSON, one per line (a lone item as it is, not copied).
    pub fn payload(&self) -> Bytes {
        if let [one] = self.items.as_slice() {
            return one.clone();
        }
        let mut out = BytesMut::with_capacity(self.bytes);
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.put_u8(b'\n');
            }
            out.extend_from_slice(item);
        }
        out.freeze()
    }
}

/// The batches still open, one per team.
#[derive(Debug, Default)]
pub struct Open {
    batches: HashMap<Option<String>, Batch>,
}

impl Open {
    /// Adds an item; returns the batches that are complete because of it (the team's previous
    /// batch, if the item did not fit, and the new one, if the item filled it).
    pub fn add(&mut self, id: &str, team: Option<&str>, json: Bytes) -> Vec<Batch> {
        let mut closed = Vec::new();
        let key = team.map(str::to_owned);
        let batch = match self.batches.get_mut(&key) {
            Some(batch) if batch.fits(json.len()) => batch,
            Some(_) => {
                if let Some(old) = self.batches.remove(&key) {
                    closed.push(old.close());
                }
                self.batches
                    .entry(key.clone())
                    .or_insert_with(|| Batch::new(key.clone(), id))
            }
            None => self
                .batches
                .entry(key.clone())
                .or_insert_with(|| Batch::new(key.clone(), id)),
        };
        batch.push(json);
        if batch.full() {
            if let Some(full) = self.batches.remove(&key) {
                closed.push(full.close());
            }
        }
        closed
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Closes every open batch.
    pub fn take_all(&mut self) -> Vec<Batch> {
        self.batches.drain().map(|(_, b)| b.close()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: usize) -> Bytes {
        Bytes::from(format!(
            "{{\"id\":\"{n}\",\"pad\":\"{}\"}}",
            "x".repeat(100)
        ))
    }

    #[test]
    fn batches_per_team_with_ids_and_lines() {
        let mut open = Open::default();
        assert!(open.add("a1", Some("a"), item(1)).is_empty());
        assert!(open.add("b1", Some("b"), item(2)).is_empty());
        assert!(open.add("a2", Some("a"), item(3)).is_empty());
        let mut closed = open.take_all();
        closed.sort_by(|x, y| x.team.cmp(&y.team));
        assert!(open.is_empty());
        assert_eq!(closed[0].id, "a1+2");
        assert_eq!(closed[1].id, "b1");
        let payload = closed[0].payload();
        let lines: Vec<&[u8]> = proto::batch_items(&payload).collect();
        assert_eq!(lines, vec![&item(1)[..], &item(3)[..]]);
        assert_eq!(closed[1].payload(), item(2));
    }

    #[test]
    fn a_batch_closes_when_full_by_count_or_bytes() {
        let mut open = Open::default();
        let mut closed = Vec::new();
        for n in 0..MAX_BATCH_ITEMS + 1 {
            closed.extend(open.add(&n.to_string(), None, Bytes::from_static(b"{}")));
        }
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].items.len(), MAX_BATCH_ITEMS);
        assert_eq!(closed[0].id, format!("0+{MAX_BATCH_ITEMS}"));

        let big = Bytes::from(vec![b'x'; MAX_BATCH_BYTES / 2]);
        let mut open = Open::default();
        assert!(open.add("1", None, big.clone()).is_empty());
        let closed = open.add("2", None, big.clone());
        assert_eq!(
            closed.len(),
            1,
            "the second half does not fit beside the first"
        );
        assert_eq!(closed[0].id, "1");
        // An item larger than a batch travels alone.
        let huge = Bytes::from(vec![b'x'; MAX_BATCH_BYTES + 10]);
        let closed = open.add("3", None, huge);
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[1].items.len(), 1);
        assert!(closed[1].payload().len() > MAX_BATCH_BYTES);
    }
}
