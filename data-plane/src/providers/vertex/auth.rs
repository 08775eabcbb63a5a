//! The service-account key file and the signed JWT Google's token endpoint exchanges for an
//! access token (OAuth 2.0 JWT bearer grant, RFC 7523).
//!
//! Guarantees: the key file is parsed once (per snapshot); no error text and no `Debug` output
//! contains the private key or any part of the key file except the non-secret fields it names
//! (`type`, `client_email`, `token_uri`). The JWT is `RS256`, `kid` = `private_key_id`, with
//! `iss` = `client_email`, `scope` = cloud-platform, `aud` = `token_uri`, `iat` = now and
//! `exp` = now + 1 hour (the most Google accepts).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

/// Google's token endpoint, used when the key file names none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Lifetime of the JWT assertion (Google's maximum).
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// A parsed service-account key: who it is, where to exchange it, and the signing key.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parses the JSON key file Google issues for a service account. The error says what is
    /// wrong with it, never what it holds.
    pub fn parse(json: &str) -> Result<Self, String> {
        // Parsed as a tree first: a typed parse would quote offending values in its errors.
        let file: Value = serde_json::from_str(json).map_err(|e| {
            format!(
                "is not a service-account JSON key file (not JSON: line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let field = |name: &str| file.get(name).and_then(Value::as_str);
        let required = |name: &str| {
            field(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("is not a service-account JSON key file (no `{name}`)"))
        };
        let kind = required("type")?;
        if kind != "service_account" {
            return Err(format!(
                "is a `{kind}` credential, not a service-account key (`type: service_account`)"
            ));
        }
        let client_email = required("client_email")?.to_owned();
        let pem = required("private_key")?;
        let key = signing_key(pem)?;
        Ok(Self {
            client_email,
            private_key_id: field("private_key_id").map(str::to_owned),
            token_uri: field("token_uri")
                .filter(|v| !v.is_empty())
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_owned(),
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The signed assertion for a token request made at `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, String> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let (Some(kid), Some(h)) = (&self.private_key_id, header.as_object_mut()) {
            h.insert("kid".into(), json!(kid));
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "the service-account key could not sign the token request".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The public half of the signing key (DER `RSAPublicKey`), for verification in tests.
    #[cfg(test)]
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.key.public_key().as_ref().to_vec()
    }
}

/// The RSA key from `private_key`: PKCS#8 PEM as Google issues it (PKCS#1 also accepted).
fn signing_key(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_body(pem).ok_or_else(|| {
        "has a `private_key` that is not a PEM private key (`-----BEGIN PRIVATE KEY-----`)"
            .to_owned()
    })?;
    let parsed = match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        _ => {
            return Err(format!(
                "has a `private_key` of type `{label}`, not an RSA private key"
            ))
        }
    };
    // ring's reasons are fixed descriptions (e.g. `InvalidEncoding`), never key material.
    parsed.map_err(|e| format!("has a `private_key` that is not a usable RSA key ({e})"))
}

/// The label and decoded bytes of the first PEM block.
fn pem_body(pem: &str) -> Option<(&str, Vec<u8>)> {
    let rest = pem.trim_start().strip_prefix("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(end.as_str())?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Some((label, STANDARD.decode(b64).ok()?))
}

#[cfg(test)]
mod tests {
    use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    use super::*;

    /// The test-only key committed for the e2e suite (never used anywhere real).
    pub(crate) fn key_file() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/test-only-vertex-service-account.json"
        );
        std::fs::read_to_string(path).unwrap()
    }

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn jwt_is_signed_with_the_key_and_carries_googles_claims() {
        let sa = ServiceAccount::parse(&key_file()).unwrap();
        assert_eq!(
            sa.client_email,
            "switchyard-test@switchyard-test.iam.gserviceaccount.com"
        );
        let jwt = sa.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], sa.private_key_id.clone().unwrap());
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], sa.client_email);
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["aud"], sa.token_uri);
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_003_600);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = sa.public_key();
        let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public);
        let signed = format!("{}.{}", parts[0], parts[1]);
        verifier.verify(signed.as_bytes(), &signature).unwrap();
        assert!(verifier.verify(b"something else", &signature).is_err());
    }

    #[test]
    fn token_uri_defaults_to_google() {
        let mut file: Value = serde_json::from_str(&key_file()).unwrap();
        file.as_object_mut().unwrap().remove("token_uri");
        let sa = ServiceAccount::parse(&file.to_string()).unwrap();
        assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
        assert!(!format!("{sa:?}").contains("BEGIN"));
    }

    #[test]
    fn bad_key_files_are_explained_without_their_contents() {
        let file: Value = serde_json::from_str(&key_file()).unwrap();
        let pem = file["private_key"].as_str().unwrap().to_owned();
        let secret_line = pem.lines().nth(3).unwrap().to_owned();
        let with = |k: &str, v: Value| {
            let mut f = file.clone();
            f.as_object_mut().unwrap().insert(k.into(), v);
            f.to_string()
        };
        // A damaged key: one line of the body reversed (still base64, other bytes).
        let reversed: String = secret_line.chars().rev().collect();
        let damaged = pem.replacen(&secret_line, &reversed, 1);
        let cases = [
            ("not json".to_owned(), "not JSON"),
            (with("type", json!("authorized_user")), "`authorized_user`"),
            (with("client_email", json!(42)), "no `client_email`"),
            (with("private_key", json!("MIIEv...")), "not a PEM"),
            (with("private_key", json!(damaged)), "not a usable RSA key"),
            (
                with(
                    "private_key",
                    json!(pem.replace("PRIVATE KEY", "EC PRIVATE KEY")),
                ),
                "`EC PRIVATE KEY`",
            ),
        ];
        for (text, expected) in cases {
            let e = ServiceAccount::parse(&text).unwrap_err();
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains(&secret_line), "{e}");
            assert!(!e.contains("MII"), "{e}");
        }
    }
}
