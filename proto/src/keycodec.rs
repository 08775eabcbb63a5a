//! The binary encoding of a key part.
//!
//! A part of 1,000 keys is ~130 KB as JSON, most of it field names and hex; the proxy that
//! starts cold or takes a mass re-keying parses 100,000 of them, and NATS carries every byte.
//! This encoding carries the same [`VirtualKey`]s in about 40% of the bytes and decodes without
//! a tokenizer:
//!
//! ```text
//! part   = "SYK1" count:varint key*
//! key    = digest:32 bytes  fields:u8  name:str
//!          [team:str] [id:str] [expires_at:zigzag] [rpm:varint] [tpm:varint]
//!          [max_request_cost_usd:str] [budget:str] [log_payloads:u8]
//!                                                           (present when their bit is set)
//!          models:varint str*  tags:varint (str str)*
//! str    = length:varint utf-8 bytes
//! varint = unsigned LEB128 (at most 10 bytes)
//! ```
//!
//! The `fields` bits, lowest first: team, id, expires_at, rpm, tpm, max_request_cost_usd,
//! budget, log_payloads (a byte: 0 off, 1 metadata, 2 full). A bit this build does not know,
//! or any byte left over, makes the part unreadable; all eight bits are now taken, so a field
//! added later needs a new magic, and an older proxy refuses the part instead of dropping a
//! restriction.

use std::str::FromStr as _;

use rust_decimal::Decimal;

use crate::{LogPayloads, VirtualKey};

/// First bytes of a binary key part.
pub const KEY_PART_MAGIC: &[u8; 4] = b"SYK1";

const TEAM: u8 = 1;
const ID: u8 = 1 << 1;
const EXPIRES_AT: u8 = 1 << 2;
const RPM: u8 = 1 << 3;
const TPM: u8 = 1 << 4;
const MAX_COST: u8 = 1 << 5;
const BUDGET: u8 = 1 << 6;
const LOG_PAYLOADS: u8 = 1 << 7;
// Every bit of `fields` is taken, so a reader has no unknown bit to refuse; a field added
// later needs a new magic (see the module docs).
const _: () =
    assert!(TEAM | ID | EXPIRES_AT | RPM | TPM | MAX_COST | BUDGET | LOG_PAYLOADS == u8::MAX);

/// Bytes a key takes at the least (digest, fields, empty name, no models, no tags).
const MIN_KEY_BYTES: usize = 32 + 1 + 1 + 1 + 1;

/// Why bytes are not a binary key part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPartError {
    #[error("does not start with {KEY_PART_MAGIC:?}")]
    Magic,
    #[error("key {index}: {reason} at byte {offset}")]
    Malformed {
        index: usize,
        offset: usize,
        reason: &'static str,
    },
    #[error("a key hash is not 64 hex characters: {0:?}")]
    Hash(String),
}

/// Encodes keys (in the order given) as a binary part.
pub fn encode_keys(keys: &[&VirtualKey]) -> Result<Vec<u8>, KeyPartError> {
    let mut out = Vec::with_capacity(8 + keys.len() * 64);
    out.extend_from_slice(KEY_PART_MAGIC);
    put_varint(&mut out, keys.len() as u64);
    for k in keys {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&k.sha256, &mut digest)
            .map_err(|_| KeyPartError::Hash(k.sha256.clone()))?;
        out.extend_from_slice(&digest);
        let fields = [
            (TEAM, k.team.is_some()),
            (ID, k.id.is_some()),
            (EXPIRES_AT, k.expires_at.is_some()),
            (RPM, k.rpm.is_some()),
            (TPM, k.tpm.is_some()),
            (MAX_COST, k.max_request_cost_usd.is_some()),
            (BUDGET, k.budget.is_some()),
            (LOG_PAYLOADS, k.log_payloads.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .fold(0u8, |bits, (bit, _)| bits | bit);
        out.push(fields);
        put_str(&mut out, &k.name);
        if let Some(team) = &k.team {
            put_str(&mut out, team);
        }
        if let Some(id) = &k.id {
            put_str(&mut out, id);
        }
        if let Some(at) = k.expires_at {
            put_varint(&mut out, zigzag(at));
        }
        if let Some(rpm) = k.rpm {
            put_varint(&mut out, rpm);
        }
        if let Some(tpm) = k.tpm {
            put_varint(&mut out, tpm);
        }
        if let Some(cost) = k.max_request_cost_usd {
            put_str(&mut out, &cost.to_string());
        }
        if let Some(budget) = &k.budget {
            put_str(&mut out, budget);
        }
        if let Some(policy) = k.log_payloads {
            out.push(match policy {
                LogPayloads::Off => 0,
                LogPayloads::Metadata => 1,
                LogPayloads::Full => 2,
            });
        }
        put_varint(&mut out, k.models.len() as u64);
        for m in &k.models {
            put_str(&mut out, m);
        }
        put_varint(&mut out, k.tags.len() as u64);
        for (name, value) in &k.tags {
            put_str(&mut out, name);
            put_str(&mut out, value);
        }
    }
    Ok(out)
}

/// Whether `bytes` start as a binary part does (a JSON part starts with `[`).
pub fn is_binary_key_part(bytes: &[u8]) -> bool {
    bytes.starts_with(KEY_PART_MAGIC)
}

/// One key as read from a binary part, borrowing its strings from the part's bytes: a reader
/// that keeps only some of them (the proxy's compiled key table) copies only those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView<'a> {
    pub digest: [u8; 32],
    pub name: &'a str,
    pub team: Option<&'a str>,
    pub id: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_request_cost_usd: Option<Decimal>,
    pub budget: Option<&'a str>,
    pub log_payloads: Option<LogPayloads>,
    pub models: Vec<&'a str>,
    pub tags: Vec<(&'a str, &'a str)>,
}

impl KeyView<'_> {
    /// The key as a [`VirtualKey`] (with its hash in hex).
    pub fn to_key(&self) -> VirtualKey {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        VirtualKey {
            name: self.name.to_owned(),
            sha256: hex::encode(self.digest),
            team: owned(self.team),
            models: self.models.iter().map(|m| (*m).to_owned()).collect(),
            id: owned(self.id),
            expires_at: self.expires_at,
            rpm: self.rpm,
            tpm: self.tpm,
            max_request_cost_usd: self.max_request_cost_usd,
            budget: owned(self.budget),
            log_payloads: self.log_payloads,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// Decodes a binary part. Never panics, and allocates no more than the bytes can hold.
pub fn decode_keys(bytes: &[u8]) -> Result<Vec<VirtualKey>, KeyPartError> {
    let mut keys = Vec::new();
    read_keys(bytes, |k| keys.push(k.to_key()))?;
    Ok(keys)
}

/// Reads a binary part, calling `each` with every key in order; returns how many there were.
/// Never panics.
pub fn read_keys<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(KeyView<'a>),
) -> Result<usize, KeyPartError> {
    let rest = bytes
        .strip_prefix(KEY_PART_MAGIC.as_slice())
        .ok_or(KeyPartError::Magic)?;
    let mut r = Reader {
        bytes: rest,
        at: 0,
        index: 0,
    };
    let n = r.varint()?;
    if n > (rest.len() / MIN_KEY_BYTES) as u64 {
        return Err(r.fail("more keys than the bytes can hold"));
    }
    for index in 0..n as usize {
        r.index = index;
        each(r.key()?);
    }
    if r.at != r.bytes.len() {
        return Err(r.fail("bytes after the last key"));
    }
    Ok(n as usize)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    index: usize,
}

impl<'a> Reader<'a> {
    fn fail(&self, reason: &'static str) -> KeyPartError {
        KeyPartError::Malformed {
            index: self.index,
            offset: KEY_PART_MAGIC.len() + self.at,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyPartError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.fail("truncated"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, KeyPartError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, KeyPartError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.fail("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.fail("varint longer than 10 bytes"))
    }

    fn string(&mut self) -> Result<&'a str, KeyPartError> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.fail("string too long"))?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.fail("string is not UTF-8"))
    }

    /// A list length, bounded by what the remaining bytes can hold (`min` bytes per item).
    fn count(&mut self, min: usize) -> Result<usize, KeyPartError> {
        let n = self.varint()?;
        let left = (self.bytes.len() - self.at) / min;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| self.fail("more items than the bytes can hold"))
    }

    fn key(&mut self) -> Result<KeyView<'a>, KeyPartError> {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(self.take(32)?);
        let fields = self.byte()?;
        let name = self.string()?;
        let has = |bit: u8| fields & bit != 0;
        let team = has(TEAM).then(|| self.string()).transpose()?;
        let id = has(ID).then(|| self.string()).transpose()?;
        let expires_at = has(EXPIRES_AT)
            .then(|| self.varint().map(unzigzag))
            .transpose()?;
        let rpm = has(RPM).then(|| self.varint()).transpose()?;
        let tpm = has(TPM).then(|| self.varint()).transpose()?;
        let max_request_cost_usd = match has(MAX_COST) {
            true => Some(
                Decimal::from_str(self.string()?)
                    .map_err(|_| self.fail("max_request_cost_usd is not a decimal"))?,
            ),
            false => None,
        };
        let budget = has(BUDGET).then(|| self.string()).transpose()?;
        let log_payloads = match has(LOG_PAYLOADS).then(|| self.byte()).transpose()? {
            None => None,
            Some(0) => Some(LogPayloads::Off),
            Some(1) => Some(LogPayloads::Metadata),
            Some(2) => Some(LogPayloads::Full),
            Some(_) => return Err(self.fail("log_payloads is not 0, 1 or 2")),
        };
        let models = (0..self.count(1)?)
            .map(|_| self.string())
            .collect::<Result<Vec<_>, _>>()?;
        let tags = (0..self.count(2)?)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyView {
            digest,
            name,
            team,
            id,
            expires_at,
            rpm,
            tpm,
            max_request_cost_usd,
            budget,
            log_payloads,
            models,
            tags,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};
    use std::collections::BTreeMap;

    fn full_key() -> VirtualKey {
        VirtualKey {
            name: "ünïcode key".into(),
            sha256: hex::encode(Sha256::digest(b"full")),
            team: Some("team-a".into()),
            models: vec!["gpt-*".into(), "claude".into()],
            id: Some("key_01".into()),
            expires_at: Some(-5),
            rpm: Some(u64::MAX),
            tpm: Some(0),
            max_request_cost_usd: Some(Decimal::from_str("0.0125").unwrap()),
            budget: Some("budget_7".into()),
            tags: BTreeMap::from([("env".into(), "prod".into()), ("t".into(), String::new())]),
            log_payloads: Some(LogPayloads::Full),
        }
    }

    #[test]
    fn every_field_round_trips() {
        let bare = VirtualKey {
            models: Vec::new(),
            ..VirtualKey::allowing_all("", hex::encode(Sha256::digest(b"bare")))
        };
        let off = VirtualKey {
            log_payloads: Some(LogPayloads::Off),
            ..VirtualKey::allowing_all("off", hex::encode(Sha256::digest(b"off")))
        };
        let keys = vec![
            full_key(),
            bare,
            off,
            VirtualKey::allowing_all("k", "00".repeat(32)),
        ];
        let refs: Vec<&VirtualKey> = keys.iter().collect();
        let bytes = encode_keys(&refs).unwrap();
        assert!(is_binary_key_part(&bytes));
        assert_eq!(decode_keys(&bytes).unwrap(), keys);
        assert_eq!(decode_keys(&encode_keys(&[]).unwrap()).unwrap(), Vec::new());
    }

    #[test]
    fn smaller_than_json() {
        let keys: Vec<VirtualKey> = (0..1000u32)
            .map(|i| VirtualKey {
                team: Some("team-1".into()),
                ..VirtualKey::allowing_all(
                    format!("key-{i}"),
                    hex::encode(Sha256::digest(i.to_be_bytes())),
                )
            })
            .collect();
        let refs: Vec<&VirtualKey> = keys.iter().collect();
        let binary = encode_keys(&refs).unwrap().len();
        let json = serde_json::to_vec(&keys).unwrap().len();
        assert!(binary * 2 < json, "{binary} bytes vs {json} as JSON");
    }

    #[test]
    fn a_hash_that_is_not_hex_cannot_be_encoded() {
        let k = VirtualKey::allowing_all("k", "not hex");
        assert_eq!(
            encode_keys(&[&k]),
            Err(KeyPartError::Hash("not hex".into()))
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let keys = [full_key(), full_key()];
        let refs: Vec<&VirtualKey> = keys.iter().collect();
        let bytes = encode_keys(&refs).unwrap();
        for len in 0..bytes.len() {
            assert!(decode_keys(&bytes[..len]).is_err(), "truncated at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_keys(&longer),
            Err(KeyPartError::Malformed {
                reason: "bytes after the last key",
                ..
            })
        ));
        // Flipping any single byte either still decodes (a byte of a name or the digest) or is
        // refused; it never panics or allocates wildly.
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                let _ = decode_keys(&bad);
            }
        }
        // One nameless key with only a log policy: magic, count, digest, fields, name length,
        // then the policy byte, which must be 0, 1 or 2.
        let policy_only = VirtualKey {
            models: Vec::new(),
            log_payloads: Some(LogPayloads::Metadata),
            ..VirtualKey::allowing_all("", "00".repeat(32))
        };
        let mut unknown = encode_keys(&[&policy_only]).unwrap();
        assert_eq!(unknown[4 + 1 + 32], LOG_PAYLOADS);
        unknown[4 + 1 + 32 + 2] = 3;
        assert!(matches!(
            decode_keys(&unknown),
            Err(KeyPartError::Malformed {
                index: 0,
                reason: "log_payloads is not 0, 1 or 2",
                ..
            })
        ));
        let huge_count = [KEY_PART_MAGIC.as_slice(), &[0xff; 9], &[0x01]].concat();
        assert!(decode_keys(&huge_count).is_err());
        assert_eq!(decode_keys(b"[{}]"), Err(KeyPartError::Magic));
    }

    #[test]
    fn zigzag_covers_the_extremes() {
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1_700_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
