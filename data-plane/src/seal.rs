//! Opening sealed provider credentials (`api_key: {sealed: "v1:..."}` in a snapshot).
//!
//! Format, shared with the control plane, which seals:
//!
//! ```text
//! sealed = "v1:" + base64(nonce ‖ ciphertext ‖ tag)     standard alphabet, with padding
//! nonce  = 24 random bytes                             XChaCha20-Poly1305
//! tag    = 16 bytes (Poly1305)
//! key    = 32 bytes, given to both planes as base64 in SWITCHYARD_SEAL_KEY
//! aad    = the provider id's UTF-8 bytes               a value sealed for one provider
//!                                                      does not open for another
//! ```
//!
//! Guarantees: opening never panics and never logs or returns the secret in an error; the key's
//! `Debug` output is redacted.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// Prefix of the only format version so far.
pub const PREFIX_V1: &str = "v1:";
/// Length of an XChaCha20 nonce.
const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
const TAG_LEN: usize = 16;
/// Length of the key.
const KEY_LEN: usize = 32;

/// The key that opens sealed credentials, read once at start.
#[derive(Clone)]
pub struct SealKey([u8; KEY_LEN]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Why the seal key from the environment is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{var} must be 32 bytes in base64 (e.g. `openssl rand -base64 32`): {reason}")]
pub struct BadKey {
    pub var: &'static str,
    pub reason: &'static str,
}

/// Why a sealed value did not open. Carries nothing from the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no seal key is configured ({})", crate::config::ENV_SEAL_KEY)]
    NoKey,
    #[error("the sealed value is not in a known format (expected `v1:` and base64)")]
    Format,
    #[error("the sealed value does not open with this seal key for this provider")]
    Mismatch,
    #[error("the opened value is not UTF-8")]
    NotUtf8,
}

impl SealKey {
    /// Parses the base64 text of a 32-byte key.
    pub fn from_base64(var: &'static str, text: &str) -> Result<Self, BadKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| BadKey {
            var,
            reason: "not valid base64",
        })?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| BadKey {
            var,
            reason: "wrong length",
        })?;
        Ok(Self(key))
    }

    /// Reads [`crate::config::ENV_SEAL_KEY`]; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, BadKey> {
        let var = crate::config::ENV_SEAL_KEY;
        match std::env::var(var) {
            Ok(text) if !text.trim().is_empty() => Self::from_base64(var, &text).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(BadKey {
                var,
                reason: "not valid base64",
            }),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(self.0))
    }
}

/// Opens `sealed` (sealed for the provider `aad`) with `key`.
pub fn open(key: Option<&SealKey>, aad: &[u8], sealed: &str) -> Result<String, OpenError> {
    let key = key.ok_or(OpenError::NoKey)?;
    let body = sealed
        .trim()
        .strip_prefix(PREFIX_V1)
        .ok_or(OpenError::Format)?;
    let raw = STANDARD.decode(body).map_err(|_| OpenError::Format)?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Format);
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    // `split_at` above made it exactly NONCE_LEN bytes, which `from_slice` requires.
    let nonce = XNonce::from_slice(nonce);
    let plain = key
        .cipher()
        .decrypt(
            nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| OpenError::Mismatch)?;
    String::from_utf8(plain).map_err(|_| OpenError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed vector both planes assert (also checked against libsodium's
    /// `crypto_aead_xchacha20poly1305_ietf_encrypt`): key = bytes 0..=31, nonce = bytes
    /// 100..=123, AAD = the provider id.
    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const AAD: &str = "openai-main";
    const PLAINTEXT: &str = "sk-upstream-test-vector-0123456789";
    const SEALED: &str = "v1:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7DxjUxY9d/fDiUfAS0grOvXbNNxKQQ7idvGRWlB9rTieTP6Ixa0GcdpN9AvWKZGqSf4Y=";

    /// Seals like the control plane does, but with a chosen nonce (the control plane draws a
    /// fresh random one per value), to produce the fixed vector.
    fn seal_with_nonce(key: &SealKey, aad: &[u8], plaintext: &[u8], nonce: [u8; 24]) -> String {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let sealed = key.cipher().encrypt(&XNonce::from(nonce), payload).unwrap();
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX_V1}{}", STANDARD.encode(raw))
    }

    fn key() -> SealKey {
        SealKey::from_base64("TEST", KEY_B64).unwrap()
    }

    fn nonce() -> [u8; NONCE_LEN] {
        std::array::from_fn(|i| 100 + i as u8)
    }

    #[test]
    fn fixed_vector_seals_and_opens() {
        assert_eq!(
            key().0,
            std::array::from_fn::<u8, 32, _>(|i| i as u8),
            "the key is bytes 0..=31"
        );
        let sealed = seal_with_nonce(&key(), AAD.as_bytes(), PLAINTEXT.as_bytes(), nonce());
        assert_eq!(sealed, SEALED);
        assert_eq!(
            open(Some(&key()), AAD.as_bytes(), SEALED).as_deref(),
            Ok(PLAINTEXT)
        );
    }

    #[test]
    fn wrong_key_wrong_provider_tampering_and_garbage_are_refused() {
        let other = SealKey::from_base64("TEST", &STANDARD.encode([7u8; 32])).unwrap();
        assert_eq!(
            open(Some(&other), AAD.as_bytes(), SEALED),
            Err(OpenError::Mismatch)
        );
        assert_eq!(
            open(Some(&key()), b"other-provider", SEALED),
            Err(OpenError::Mismatch)
        );
        assert_eq!(open(None, AAD.as_bytes(), SEALED), Err(OpenError::NoKey));
        let mut raw = STANDARD.decode(&SEALED[3..]).unwrap();
        raw[30] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(raw));
        assert_eq!(
            open(Some(&key()), AAD.as_bytes(), &tampered),
            Err(OpenError::Mismatch)
        );
        for garbage in [
            "",
            "v1:",
            "v2:AAAA",
            "v1:not base64!",
            "v1:AAAA",
            &SEALED[3..],
        ] {
            assert_eq!(
                open(Some(&key()), AAD.as_bytes(), garbage),
                Err(OpenError::Format),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn bad_keys_are_named_and_never_printed() {
        let short = SealKey::from_base64("K", "AAEC")
            .err()
            .map(|e| e.to_string());
        assert!(short.is_some_and(|e| e.contains("wrong length") && e.starts_with("K ")));
        assert!(SealKey::from_base64("K", "***").is_err());
        assert_eq!(format!("{:?}", key()), "SealKey(..)");
    }
}
