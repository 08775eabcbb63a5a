//! How snapshots travel over NATS: names, the pointer message, and how keys are split into
//! content-addressed parts.
//!
//! A snapshot can be large (100,000 keys is ~15 MB of JSON, past NATS's default 1 MB message
//! limit). Its core (providers, routes, teams, budgets, prices, health: everything but the keys)
//! goes into a JetStream object store, which chunks it. The keys are split by their hash into
//! [`KeyParts`], each stored once under the SHA-256 of its bytes in a key-value bucket: a
//! change to one key produces one new part, and a proxy fetches and compiles only the parts it
//! does not already hold. What is small and frequent is the [`SnapshotPointer`]: the latest one
//! sits in a key-value bucket for proxies that start cold, and each new one is pushed on
//! [`SNAPSHOT_SUBJECT`] for hot swaps.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::keycodec::{encode_keys, KeyPartError};
use crate::VirtualKey;

/// Key-value bucket holding the latest [`SnapshotPointer`].
pub const SNAPSHOT_KV_BUCKET: &str = "switchyard_snapshot";
/// Key of the latest pointer in [`SNAPSHOT_KV_BUCKET`].
pub const SNAPSHOT_KV_KEY: &str = "latest";
/// Object store holding snapshot bodies (JSON of [`crate::Snapshot`]; without keys when the
/// pointer names [`KeyParts`]).
pub const SNAPSHOT_OBJECT_BUCKET: &str = "switchyard_snapshots";
/// Key-value bucket holding key parts (lists of [`crate::VirtualKey`] in the binary encoding of
/// [`crate::encode_keys`]; JSON arrays from control planes before it) under
/// [`KeyParts::entry_name`].
pub const SNAPSHOT_PARTS_BUCKET: &str = "switchyard_snapshot_parts";
/// Subject on which each new pointer is pushed.
pub const SNAPSHOT_SUBJECT: &str = "switchyard.snapshot.published";
/// Key-value bucket of stored Responses API responses (key: the response id), shared by every
/// proxy; entries expire with the bucket's `max_age`.
pub const RESPONSES_KV_BUCKET: &str = "switchyard_responses";
/// Largest encoded part the publisher produces: more keys than fit raise the number of parts
/// (NATS refuses messages above its `max_payload`, 1 MB by default).
pub const MAX_PART_BYTES: usize = 512 * 1024;
/// Most bits of a key's hash used to pick its part (65,536 parts).
pub const MAX_PART_BITS: u8 = 16;

/// Where to find a published snapshot and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    /// The snapshot's version (position of the last event it contains).
    pub version: u64,
    /// Object name in [`SNAPSHOT_OBJECT_BUCKET`].
    pub object: String,
    /// Lowercase hex SHA-256 of the object's bytes.
    pub sha256: String,
    /// Size of the object in bytes.
    pub size: u64,
    /// The snapshot's keys, when they travel as parts (the body then carries none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyParts>,
    /// When the control plane moved the pointer to this snapshot (Unix milliseconds): proxies
    /// export it and measure propagation against it. Absent from older control planes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at_ms: Option<i64>,
}

impl SnapshotPointer {
    /// The object name used for a version.
    pub fn object_name(version: u64) -> String {
        format!("snapshot-{version:020}")
    }
}

/// A snapshot's keys split by hash: key `k` is in part [`part_of`]`(k.sha256, bits)`, and each
/// part lists its keys ordered by hash, in the binary encoding of [`crate::encode_keys`] (parts
/// staged before it are JSON arrays, told apart by their first byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyParts {
    /// How many leading bits of a key's hash pick its part; there are `2^bits` parts.
    pub bits: u8,
    /// One entry per part, in part order.
    pub parts: Vec<PartRef>,
}

/// One stored part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Lowercase hex SHA-256 of the part's bytes (which also names it).
    pub sha256: String,
    /// Size of the part in bytes.
    pub size: u64,
}

impl KeyParts {
    /// The entry in [`SNAPSHOT_PARTS_BUCKET`] holding the part with this digest.
    pub fn entry_name(sha256: &str) -> String {
        format!("keys.{sha256}")
    }

    /// Whether the list is as long as `bits` says and within bounds.
    pub fn is_well_formed(&self) -> bool {
        self.bits <= MAX_PART_BITS && self.parts.len() == 1usize << self.bits
    }
}

/// The part a key hash (64 hex characters, or anything else: it lands in part 0) belongs to.
pub fn part_of(sha256_hex: &str, bits: u8) -> usize {
    if bits == 0 {
        return 0;
    }
    let lead = sha256_hex
        .get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    (lead >> (32 - u32::from(bits.min(MAX_PART_BITS)))) as usize
}

/// Bits for `keys` keys: about 1,024 keys per part (so a part stays well under
/// [`MAX_PART_BYTES`] for ordinary keys, and a one-key change re-sends little).
pub fn part_bits_for(keys: usize) -> u8 {
    let mut bits = 0u8;
    while bits < MAX_PART_BITS && (keys >> bits) > 1024 {
        bits += 1;
    }
    bits
}

/// Keys encoded as parts: the layout for the pointer and each distinct part's bytes.
#[derive(Debug, Clone)]
pub struct EncodedParts {
    pub layout: KeyParts,
    /// `(sha256, bytes)` of each distinct part, in part order.
    pub bodies: Vec<(String, Vec<u8>)>,
}

/// Splits `keys` into parts: [`part_bits_for`] their number, raised while a part would exceed [`MAX_PART_BYTES`]. Each part lists its keys ordered by hash, so the same keys always
/// encode to the same bytes (and an unchanged part keeps its digest).
pub fn split_keys(keys: &[VirtualKey]) -> Result<EncodedParts, KeyPartError> {
    let mut bits = part_bits_for(keys.len());
    loop {
        let encoded = split_keys_with_bits(keys, bits)?;
        let largest = encoded.bodies.iter().map(|(_, b)| b.len()).max();
        if bits >= MAX_PART_BITS || largest.unwrap_or(0) <= MAX_PART_BYTES {
            return Ok(encoded);
        }
        bits += 1;
    }
}

/// Splits `keys` into `2^bits` parts.
pub fn split_keys_with_bits(keys: &[VirtualKey], bits: u8) -> Result<EncodedParts, KeyPartError> {
    let bits = bits.min(MAX_PART_BITS);
    let mut split: Vec<Vec<&VirtualKey>> = vec![Vec::new(); 1 << bits];
    for k in keys {
        split[part_of(&k.sha256, bits)].push(k);
    }
    let mut parts = Vec::with_capacity(split.len());
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for mut part in split {
        part.sort_unstable_by(|a, b| a.sha256.cmp(&b.sha256));
        let bytes = encode_keys(&part)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        parts.push(PartRef {
            sha256: sha256.clone(),
            size: bytes.len() as u64,
        });
        if seen.insert(sha256.clone()) {
            bodies.push((sha256, bytes));
        }
    }
    Ok(EncodedParts {
        layout: KeyParts { bits, parts },
        bodies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_leading_bits_of_the_hash() {
        let h = |lead: &str| format!("{lead}{}", "0".repeat(64 - lead.len()));
        assert_eq!(part_of(&h("ff"), 0), 0);
        assert_eq!(part_of(&h("80"), 1), 1);
        assert_eq!(part_of(&h("7f"), 1), 0);
        assert_eq!(part_of(&h("ff"), 8), 255);
        assert_eq!(part_of(&h("0100"), 8), 1);
        assert_eq!(part_of(&h("ffff"), 16), 65_535);
        assert_eq!(part_of("not hex", 4), 0);
    }

    #[test]
    fn about_a_thousand_keys_per_part() {
        assert_eq!(part_bits_for(0), 0);
        assert_eq!(part_bits_for(1024), 0);
        assert_eq!(part_bits_for(1025), 1);
        assert_eq!(part_bits_for(100_000), 7);
        assert_eq!(part_bits_for(usize::MAX), MAX_PART_BITS);
    }

    fn key(sha256: String) -> VirtualKey {
        VirtualKey::allowing_all("k", sha256)
    }

    #[test]
    fn splitting_is_deterministic_and_a_change_touches_one_part() {
        let keys: Vec<VirtualKey> = (0..3000u32)
            .map(|i| key(hex::encode(Sha256::digest(i.to_be_bytes()))))
            .collect();
        let a = split_keys(&keys).unwrap();
        assert_eq!(a.layout.bits, 2);
        assert!(a.layout.is_well_formed());
        let mut reversed = keys.clone();
        reversed.reverse();
        let b = split_keys(&reversed).unwrap();
        assert_eq!(a.layout, b.layout, "order of the input does not matter");

        let mut more = keys.clone();
        more.push(key(hex::encode(Sha256::digest(b"new"))));
        let c = split_keys(&more).unwrap();
        let changed = (0..4)
            .filter(|&i| a.layout.parts[i] != c.layout.parts[i])
            .count();
        assert_eq!(changed, 1);
        for (sha, bytes) in &c.bodies {
            assert_eq!(&hex::encode(Sha256::digest(bytes)), sha);
        }
    }

    #[test]
    fn large_keys_raise_the_number_of_parts() {
        let mut big = key(hex::encode(Sha256::digest(b"x")));
        big.models = vec!["m".repeat(100); 600];
        let keys: Vec<VirtualKey> = (0..20u32)
            .map(|i| VirtualKey {
                sha256: hex::encode(Sha256::digest(i.to_be_bytes())),
                ..big.clone()
            })
            .collect();
        let parts = split_keys(&keys).unwrap();
        assert!(parts.layout.bits > 0);
        assert!(parts.bodies.iter().all(|(_, b)| b.len() <= MAX_PART_BYTES));
    }

    #[test]
    fn a_pointer_without_parts_reads_as_before() {
        let old = r#"{"version":3,"object":"snapshot-3","sha256":"ab","size":2}"#;
        let p: SnapshotPointer = serde_json::from_str(old).unwrap();
        assert!(p.keys.is_none());
        assert_eq!(serde_json::to_string(&p).unwrap(), old);
    }
}
