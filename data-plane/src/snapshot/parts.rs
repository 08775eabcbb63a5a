//! Key parts (see `proto::distribution`): which parts of a pointer must be fetched, and the key
//! table built from the parts already held plus the ones just fetched.
//!
//! A part is identified by its place and its digest: the same bytes at the same place compile
//! to the same keys, so a part held under the same layout is reused as is (its `Arc` is shared
//! by the old and the new snapshot), and only new parts are checked, parsed and compiled.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proto::{KeyParts, PartRef, VirtualKey};
use sha2::{Digest as _, Sha256};

use super::keys::{BinaryPartError, KeyPart, KeyTable};

/// Compiled parts of the snapshot being served, by place and digest.
#[derive(Debug, Clone, Default)]
pub struct HeldParts {
    bits: u8,
    parts: HashMap<(usize, String), Arc<KeyPart>>,
}

/// Why the parts of a pointer could not become a key table.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("the pointer's key layout is malformed ({parts} parts for {bits} bits)")]
    Layout { bits: u8, parts: usize },
    #[error("key part {index} was not fetched")]
    Missing { index: usize },
    #[error("key part {index} is {got} bytes, the pointer says {want}")]
    Size { index: usize, got: u64, want: u64 },
    #[error("key part {index} does not match the pointer's SHA-256")]
    Digest { index: usize },
    #[error("key part {index} is not a list of keys: {reason}")]
    Encoding { index: usize, reason: String },
    #[error("key part {index} is invalid: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        index: usize,
        errors: Vec<proto::ValidationError>,
    },
}

impl PartError {
    /// The part whose bytes are not what the pointer says (wrong size or digest).
    pub fn damaged(&self) -> Option<usize> {
        match self {
            Self::Size { index, .. } | Self::Digest { index } => Some(*index),
            _ => None,
        }
    }

    /// Whether the bytes were wrong in transit (as opposed to a body that is itself invalid).
    pub fn is_transfer(&self) -> bool {
        matches!(
            self,
            Self::Missing { .. } | Self::Size { .. } | Self::Digest { .. }
        )
    }
}

/// A key table and what it was built from.
#[derive(Debug)]
pub struct Assembled {
    pub table: KeyTable,
    /// What to hold for the next pointer.
    pub held: HeldParts,
    /// Parts compiled from fetched bytes.
    pub compiled: usize,
    /// Parts taken from the held set.
    pub reused: usize,
}

impl HeldParts {
    /// The distinct parts of `layout` not held (what must be fetched).
    pub fn missing(&self, layout: &KeyParts) -> Vec<PartRef> {
        let mut seen = HashSet::new();
        layout
            .parts
            .iter()
            .enumerate()
            .filter(|(i, r)| !self.holds(layout.bits, *i, &r.sha256))
            .filter(|(_, r)| seen.insert(r.sha256.as_str()))
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn holds(&self, bits: u8, index: usize, sha256: &str) -> bool {
        bits == self.bits && self.parts.contains_key(&(index, sha256.to_owned()))
    }

    /// The key table for `layout`: held parts as they are, the others from `fresh` (bytes by
    /// digest), each checked against the pointer, parsed and compiled.
    pub fn assemble(
        &self,
        layout: &KeyParts,
        fresh: &HashMap<String, Vec<u8>>,
    ) -> Result<Assembled, PartError> {
        if !layout.is_well_formed() {
            return Err(PartError::Layout {
                bits: layout.bits,
                parts: layout.parts.len(),
            });
        }
        let mut verified = HashSet::new();
        let mut next = HeldParts {
            bits: layout.bits,
            parts: HashMap::with_capacity(layout.parts.len()),
        };
        let mut table = Vec::with_capacity(layout.parts.len());
        let (mut compiled, mut reused) = (0, 0);
        for (index, r) in layout.parts.iter().enumerate() {
            let place = (index, r.sha256.clone());
            let part = match self.parts.get(&place).filter(|_| self.bits == layout.bits) {
                Some(held) => {
                    reused += 1;
                    Arc::clone(held)
                }
                None => {
                    let bytes = fresh.get(&r.sha256).ok_or(PartError::Missing { index })?;
                    if !verified.contains(r.sha256.as_str()) {
                        check(index, r, bytes)?;
                        verified.insert(r.sha256.as_str());
                    }
                    compiled += 1;
                    Arc::new(compile(index, layout.bits, bytes)?)
                }
            };
            next.parts.insert(place, Arc::clone(&part));
            table.push(part);
        }
        let table = KeyTable::from_parts(layout.bits, table).ok_or(PartError::Layout {
            bits: layout.bits,
            parts: layout.parts.len(),
        })?;
        Ok(Assembled {
            table,
            held: next,
            compiled,
            reused,
        })
    }
}

/// Compiles part `index` of `2^bits`: binary, or JSON as staged before the binary encoding.
fn compile(index: usize, bits: u8, bytes: &[u8]) -> Result<KeyPart, PartError> {
    if proto::is_binary_key_part(bytes) {
        return KeyPart::compile_binary(bytes, index, bits).map_err(|e| match e {
            BinaryPartError::Encoding(e) => PartError::Encoding {
                index,
                reason: e.to_string(),
            },
            BinaryPartError::Invalid(errors) => PartError::Invalid { index, errors },
        });
    }
    let keys: Vec<VirtualKey> = serde_json::from_slice(bytes).map_err(|e| PartError::Encoding {
        index,
        reason: e.to_string(),
    })?;
    KeyPart::compile(keys, index, bits).map_err(|errors| PartError::Invalid { index, errors })
}

/// Checks fetched bytes against their reference.
pub fn check(index: usize, r: &PartRef, bytes: &[u8]) -> Result<(), PartError> {
    let got = bytes.len() as u64;
    if got != r.size {
        return Err(PartError::Size {
            index,
            got,
            want: r.size,
        });
    }
    if hex::encode(Sha256::digest(bytes)) != r.sha256 {
        return Err(PartError::Digest { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(lead: u8, n: u8) -> VirtualKey {
        let mut digest = [n; 32];
        digest[0] = lead;
        VirtualKey::allowing_all(format!("k{lead}-{n}"), hex::encode(digest))
    }

    /// Encodes keys into parts the way the control plane does.
    fn layout(bits: u8, keys: &[VirtualKey]) -> (KeyParts, HashMap<String, Vec<u8>>) {
        let encoded = proto::split_keys_with_bits(keys, bits).unwrap();
        (encoded.layout, encoded.bodies.into_iter().collect())
    }

    #[test]
    fn unchanged_parts_are_shared_and_only_changed_ones_are_compiled() {
        let mut keys = vec![key(0x00, 1), key(0x40, 2), key(0x80, 3), key(0xc0, 4)];
        let (first, fresh) = layout(2, &keys);
        let held = HeldParts::default();
        assert_eq!(held.missing(&first).len(), 4);
        let a = held.assemble(&first, &fresh).unwrap();
        assert_eq!((a.compiled, a.reused), (4, 0));

        keys.push(key(0x41, 5));
        let (second, fresh) = layout(2, &keys);
        let missing = a.held.missing(&second);
        assert_eq!(missing.len(), 1, "only part 1 changed");
        let only: HashMap<_, _> = missing
            .iter()
            .map(|r| (r.sha256.clone(), fresh[&r.sha256].clone()))
            .collect();
        let b = a.held.assemble(&second, &only).unwrap();
        assert_eq!((b.compiled, b.reused), (1, 3));
        assert!(Arc::ptr_eq(&a.table_part(0), &b.table_part(0)));
        assert!(!Arc::ptr_eq(&a.table_part(1), &b.table_part(1)));
        assert_eq!(b.table_part(1).len(), 2);

        // A different layout reuses nothing.
        let (third, fresh) = layout(3, &keys);
        assert_eq!(b.held.missing(&third).len(), third.parts.len() - 3);
        let c = b.held.assemble(&third, &fresh).unwrap();
        assert_eq!(c.reused, 0);
    }

    #[test]
    fn wrong_bytes_and_misplaced_keys_are_refused() {
        let keys = vec![key(0x00, 1), key(0x80, 2)];
        let (good, mut fresh) = layout(1, &keys);
        let sha = good.parts[1].sha256.clone();
        let mut tampered = fresh[&sha].clone();
        tampered[3] ^= 1;
        fresh.insert(sha, tampered);
        let err = HeldParts::default().assemble(&good, &fresh).unwrap_err();
        assert!(matches!(err, PartError::Digest { index: 1 }), "{err}");
        assert!(err.is_transfer());

        // Part 0 claims a key whose hash belongs in part 1.
        let (mut swapped, fresh) = layout(1, &keys);
        swapped.parts.swap(0, 1);
        let err = HeldParts::default().assemble(&swapped, &fresh).unwrap_err();
        assert!(
            err.to_string().contains("does not belong in part 0 of 2"),
            "{err}"
        );
        assert!(!err.is_transfer());

        let (mut short, fresh) = layout(1, &keys);
        short.parts.pop();
        let err = HeldParts::default().assemble(&short, &fresh).unwrap_err();
        assert!(matches!(err, PartError::Layout { .. }), "{err}");
    }

    /// A part stored with its digest (as a control plane would, whatever the bytes are).
    fn stored(bytes: Vec<u8>) -> (KeyParts, HashMap<String, Vec<u8>>) {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let layout = KeyParts {
            bits: 0,
            parts: vec![PartRef {
                sha256: sha256.clone(),
                size: bytes.len() as u64,
            }],
        };
        (layout, HashMap::from([(sha256, bytes)]))
    }

    #[test]
    fn json_parts_from_before_the_binary_encoding_are_read() {
        let keys = vec![key(0x00, 1), key(0x80, 2)];
        let (layout, fresh) = stored(serde_json::to_vec(&keys).unwrap());
        let a = HeldParts::default().assemble(&layout, &fresh).unwrap();
        assert_eq!(a.table_part(0).len(), 2);
    }

    #[test]
    fn a_part_that_is_not_a_list_of_keys_is_invalid_not_a_transfer_error() {
        let keys = [key(0x00, 1)];
        let mut bytes = proto::encode_keys(&[&keys[0]]).unwrap();
        bytes.push(7);
        for bytes in [bytes, b"{\"not\": \"a list\"}".to_vec()] {
            let (layout, fresh) = stored(bytes);
            let err = HeldParts::default().assemble(&layout, &fresh).unwrap_err();
            assert!(matches!(err, PartError::Encoding { index: 0, .. }), "{err}");
            assert!(!err.is_transfer());
        }
    }

    #[test]
    fn a_binary_part_is_checked_like_a_json_one() {
        let k = key(0x00, 1);
        let nameless = VirtualKey {
            name: String::new(),
            models: vec![String::new()],
            ..key(0x01, 2)
        };
        let (layout, fresh) = stored(proto::encode_keys(&[&k, &k, &nameless]).unwrap());
        let err = HeldParts::default()
            .assemble(&layout, &fresh)
            .unwrap_err()
            .to_string();
        for problem in [
            "keys[1].sha256: duplicate key hash",
            "keys[2].name: must not be empty",
            "keys[2].models[0]: must not be empty",
        ] {
            assert!(err.contains(problem), "{problem} in {err}");
        }
        // The same keys as JSON are refused with the same reasons.
        let (layout, fresh) = stored(serde_json::to_vec(&[&k, &k, &nameless]).unwrap());
        let json_err = HeldParts::default()
            .assemble(&layout, &fresh)
            .unwrap_err()
            .to_string();
        assert!(
            json_err.contains("keys[1].sha256: duplicate key hash"),
            "{json_err}"
        );
        assert!(
            json_err.contains("keys[2].name: must not be empty"),
            "{json_err}"
        );
    }

    impl Assembled {
        fn table_part(&self, index: usize) -> Arc<KeyPart> {
            self.table.part(index)
        }
    }
}
