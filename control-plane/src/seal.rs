//! Sealing provider credentials so they never exist in plaintext outside the two processes
//! that need them.
//!
//! Format (shared with the data plane, which opens it): `v1:` + base64 (standard, padded) of a
//! 24-byte random nonce followed by the XChaCha20-Poly1305 ciphertext and tag, with the provider
//! id as associated data (a sealed value cannot be moved to another provider). The 32-byte key
//! is read from `SWITCHYARD_SEAL_KEY` (base64) by both planes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The sealing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SealKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the seal key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("no randomness available for a nonce")]
    Random,
    #[error("sealing failed")]
    Seal,
}

impl SealKey {
    /// Parses a base64-encoded 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| SealError::BadKey)
    }

    /// Seals `secret` for provider `provider_id`.
    pub fn seal(&self, provider_id: &str, secret: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; 24];
        getrandom::getrandom(&mut nonce).map_err(|_| SealError::Random)?;
        let ciphertext = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: provider_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    /// Opens a sealed value (used by tests to prove the round trip; the data plane has its own).
    pub fn open(&self, provider_id: &str, sealed: &str) -> Option<String> {
        let raw = STANDARD.decode(sealed.strip_prefix("v1:")?).ok()?;
        if raw.len() < 24 + 16 {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(24);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: provider_id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn round_trip_bound_to_the_provider() {
        let key = SealKey::from_base64(KEY).unwrap();
        let sealed = key.seal("openai", "sk-live-123").unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("sk-live"));
        assert_eq!(key.open("openai", &sealed).as_deref(), Some("sk-live-123"));
        assert_eq!(
            key.open("other", &sealed),
            None,
            "a sealed value cannot be moved to another provider"
        );
        assert_ne!(
            key.seal("openai", "sk-live-123").unwrap(),
            sealed,
            "fresh nonce each time"
        );
        assert_eq!(
            SealKey::from_base64("c2hvcnQ=").err(),
            Some(SealError::BadKey)
        );
    }
}
