//! Generating secrets that are shown once: virtual keys and admin tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::ApiError;

/// A new secret: `prefix` + 43 characters of base64url from 32 random bytes.
pub fn generate(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|_| ApiError::Unavailable)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The part of a secret that may be shown again to recognise it.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(12).collect()
}
