//! Compiled virtual keys: the lookup table from a key's SHA-256 digest to its policy, split
//! into the same parts the control plane publishes ([`KeyTable`]), so a new snapshot shares
//! every unchanged part with the one it replaces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use proto::{ValidationError, VirtualKey};
use rust_decimal::Decimal;

/// A snapshot's keys, in `2^bits` parts picked by the leading bits of each key's hash (as
/// [`proto::part_of`] does). Parts are shared: a snapshot that changes one key holds a new copy
/// of that key's part and the very same `Arc`s for all others.
#[derive(Debug, Clone)]
pub struct KeyTable {
    bits: u8,
    parts: Vec<Arc<KeyPart>>,
}

/// The compiled keys of one part.
#[derive(Debug, Default)]
pub struct KeyPart {
    keys: HashMap<[u8; 32], Arc<KeyPolicy>, DigestHasher>,
}

/// The part of a digest under `bits` (the same as [`proto::part_of`] on its hex form).
pub fn part_of_digest(digest: &[u8; 32], bits: u8) -> usize {
    if bits == 0 {
        return 0;
    }
    let lead = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (lead >> (32 - u32::from(bits.min(proto::MAX_PART_BITS)))) as usize
}

impl KeyTable {
    /// All keys in one part.
    pub fn single(part: KeyPart) -> Self {
        Self {
            bits: 0,
            parts: vec![Arc::new(part)],
        }
    }

    /// A table from its parts; `None` unless there are exactly `2^bits` of them.
    pub fn from_parts(bits: u8, parts: Vec<Arc<KeyPart>>) -> Option<Self> {
        (bits <= proto::MAX_PART_BITS && parts.len() == 1usize << bits)
            .then_some(Self { bits, parts })
    }

    pub(super) fn get(&self, digest: &[u8; 32]) -> Option<&Arc<KeyPolicy>> {
        self.parts
            .get(part_of_digest(digest, self.bits))?
            .keys
            .get(digest)
    }

    pub(super) fn len(&self) -> usize {
        self.parts.iter().map(|p| p.keys.len()).sum()
    }

    #[cfg(test)]
    pub fn part(&self, index: usize) -> Arc<KeyPart> {
        Arc::clone(&self.parts[index])
    }
}

impl KeyPart {
    /// Validates and compiles the keys of part `index` of `2^bits`: each key must belong there.
    pub fn compile(
        keys: Vec<VirtualKey>,
        index: usize,
        bits: u8,
    ) -> Result<Self, Vec<ValidationError>> {
        VirtualKey::validate_all(&keys)?;
        let misplaced: Vec<ValidationError> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| proto::part_of(&k.sha256, bits) != index)
            .map(|(i, _)| ValidationError {
                path: format!("keys[{i}].sha256"),
                reason: format!("does not belong in part {index} of {}", 1usize << bits),
            })
            .collect();
        if !misplaced.is_empty() {
            return Err(misplaced);
        }
        Ok(Self::build(keys))
    }

    /// Reads, validates and compiles a binary part (`proto::encode_keys`) without building a
    /// [`VirtualKey`] per key: the strings a policy keeps are copied from the part's bytes,
    /// and nothing else is allocated.
    pub fn compile_binary(bytes: &[u8], index: usize, bits: u8) -> Result<Self, BinaryPartError> {
        // A key takes at least ~45 bytes; an overestimate only reserves a little more.
        let mut keys = HashMap::with_capacity_and_hasher(bytes.len() / 45, DigestHasher);
        let mut errors = Vec::new();
        let mut i = 0;
        proto::read_keys(bytes, |k| {
            errors.extend(k.problems(i));
            let invalid = |reason: String| ValidationError {
                path: format!("keys[{i}].sha256"),
                reason,
            };
            if part_of_digest(&k.digest, bits) != index {
                errors.push(invalid(format!(
                    "does not belong in part {index} of {}",
                    1usize << bits
                )));
            } else if keys
                .insert(k.digest, Arc::new(KeyPolicy::from_view(&k)))
                .is_some()
            {
                errors.push(invalid("duplicate key hash".into()));
            }
            i += 1;
        })?;
        if errors.is_empty() {
            Ok(Self { keys })
        } else {
            Err(BinaryPartError::Invalid(errors))
        }
    }

    /// Compiles keys that have been validated.
    pub(super) fn build(keys: Vec<VirtualKey>) -> Self {
        let mut map = HashMap::with_capacity_and_hasher(keys.len(), DigestHasher);
        for k in keys {
            let mut digest = [0u8; 32];
            // Validation guarantees 64 lowercase hex characters.
            if hex::decode_to_slice(&k.sha256, &mut digest).is_err() {
                continue;
            }
            map.insert(digest, Arc::new(KeyPolicy::from(k)));
        }
        Self { keys: map }
    }

    /// Number of keys in the part.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the part has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a binary part could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum BinaryPartError {
    #[error("{0}")]
    Encoding(#[from] proto::KeyPartError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValidationError>),
}

impl ModelAccess {
    fn new<'a>(models: impl Iterator<Item = &'a str> + Clone) -> Self {
        if models.clone().any(|m| m == "*") {
            return Self::All;
        }
        let (prefixes, exact): (Vec<&str>, Vec<&str>) = models.partition(|m| m.ends_with('*'));
        Self::Some {
            exact: exact.into_iter().map(str::to_owned).collect(),
            prefixes: prefixes
                .into_iter()
                .map(|p| p.trim_end_matches('*').to_owned())
                .collect(),
        }
    }
}

impl KeyPolicy {
    fn from_view(k: &proto::KeyView<'_>) -> Self {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        KeyPolicy {
            name: k.name.to_owned(),
            team: owned(k.team),
            id: owned(k.id),
            tags: k
                .tags
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            rpm: k.rpm,
            tpm: k.tpm,
            max_request_cost_usd: k.max_request_cost_usd,
            budget: owned(k.budget),
            log_payloads: k.log_payloads,
            models: ModelAccess::new(k.models.iter().copied()),
            expires_at: k.expires_at,
        }
    }
}

impl From<VirtualKey> for KeyPolicy {
    fn from(k: VirtualKey) -> Self {
        let models = ModelAccess::new(k.models.iter().map(String::as_str));
        KeyPolicy {
            name: k.name,
            team: k.team,
            id: k.id,
            tags: k.tags,
            rpm: k.rpm,
            tpm: k.tpm,
            max_request_cost_usd: k.max_request_cost_usd,
            budget: k.budget,
            log_payloads: k.log_payloads,
            models,
            expires_at: k.expires_at,
        }
    }
}

/// Hashes a SHA-256 digest by taking its first 8 bytes: the digests are already uniformly
/// distributed, and nobody can choose them (they are hashes of secrets, and of what callers
/// present), so SipHash's protection against chosen collisions buys nothing here and costs
/// time on every request and on every compile of 100,000 keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHasher;

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = FirstBytes;

    fn build_hasher(&self) -> FirstBytes {
        FirstBytes(0)
    }
}

/// The hasher of [`DigestHasher`].
#[derive(Debug, Default)]
pub struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // The digest arrives in one write (after its length, which `write_usize` ignores).
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _len: usize) {}
}

/// What a virtual key may do.
#[derive(Debug)]
pub struct KeyPolicy {
    pub name: String,
    pub team: Option<String>,
    /// Stable key id (shared by both secrets during a rotation).
    pub id: Option<String>,
    /// Tags forced onto every request made with this key.
    pub tags: BTreeMap<String, String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// The most one request may cost.
    pub max_request_cost_usd: Option<Decimal>,
    /// A budget this key spends from besides those matched by scope.
    pub budget: Option<String>,
    /// What the request log keeps of this key's requests, if the key says.
    pub log_payloads: Option<proto::LogPayloads>,
    models: ModelAccess,
    /// The secret stops working at this time (Unix seconds).
    expires_at: Option<i64>,
}

#[derive(Debug)]
enum ModelAccess {
    All,
    Some {
        exact: HashSet<String>,
        prefixes: Vec<String>,
    },
}

impl KeyPolicy {
    /// Whether the key has expired at `now` (Unix seconds).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }

    /// Whether the key has an expiry at all (most do not; they skip reading the clock).
    pub fn expires(&self) -> bool {
        self.expires_at.is_some()
    }

    /// Whether this key may call `alias`.
    pub fn allows(&self, alias: &str) -> bool {
        match &self.models {
            ModelAccess::All => true,
            ModelAccess::Some { exact, prefixes } => {
                exact.contains(alias) || prefixes.iter().any(|p| alias.starts_with(p))
            }
        }
    }
}
