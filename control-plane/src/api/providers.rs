//! `/admin/providers`: create, list, read, update, delete upstream providers.
//!
//! The credential is write-only: a plaintext `api_key` is sealed with the control plane's seal
//! key before it reaches a command, so the log, the projections and the snapshots only ever
//! hold the sealed value; responses say only `sealed`, `env:VAR` or `null`. Plaintext is never
//! logged (its type's `Debug` hides it).

use std::collections::BTreeMap;

use axum::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use proto::Credential;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::{double_option, ensure_team};
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Deletable, Tabled, Updatable};
use super::{ApiError, List};
use crate::domain::provider::{Provider, ProviderSpec};
use crate::domain::resource::ResourceCommand;
use crate::domain::Check;
use crate::seal::SealKey;
use crate::store::admin::{SpecTable, PROVIDERS};

crud::handlers!(Provider, ProviderView, "providers";
    create("create_provider", "/admin/providers", CreateProvider, responses((status = 201, body = ProviderView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_providers", "/admin/providers"), read("get_provider", "/admin/providers/{id}", params(("id" = String, Path))),
    update("update_provider", "/admin/providers/{id}", UpdateProvider, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag"))),
    remove("delete_provider", "/admin/providers/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header))));

/// A plaintext secret from a request body. Its `Debug` never shows it.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Plaintext(String);

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(..)")
    }
}

impl AdminResource for Provider {
    type View = ProviderView;

    fn view(p: &Provider, version: i32) -> ProviderView {
        let s = &p.spec;
        ProviderView {
            id: p.id.clone(),
            team_id: p.team_id,
            kind: s.kind,
            base_url: s.base_url.clone(),
            api_version: s.api_version.clone(),
            timeout_ms: s.timeout_ms,
            stream_usage: s.stream_usage,
            health_check_ms: s.health_check_ms,
            headers: s.headers.clone(),
            settings: s.settings.clone(),
            credential: describe(s.credential.as_ref()),
            version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A provider as responses show it: everything but the secret itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub team_id: Option<Uuid>,
    /// `openai`, `azure_openai`, `mistral`, `vllm`, `ollama`, `openai_compatible`, `anthropic` or
    /// `gemini`.
    #[schema(value_type = String, example = "openai")]
    pub kind: proto::ProviderKind,
    pub base_url: Option<String>,
    pub api_version: Option<String>,
    pub timeout_ms: Option<u64>,
    pub stream_usage: Option<bool>,
    pub health_check_ms: Option<u64>,
    pub headers: BTreeMap<String, String>,
    pub settings: BTreeMap<String, String>,
    /// `sealed`, `env:VAR`, or null. The secret itself is never returned.
    #[schema(example = "sealed")]
    pub credential: Option<String>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What a response may say about a credential.
pub fn describe(credential: Option<&Credential>) -> Option<String> {
    credential.map(|c| match c {
        Credential::Sealed { .. } => "sealed".to_owned(),
        Credential::Env { env } => format!("env:{env}"),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    /// Letters, digits, `-`, `_`, `.`; referenced by route deployments.
    pub id: String,
    #[schema(value_type = String, example = "openai")]
    pub kind: proto::ProviderKind,
    pub base_url: Option<String>,
    pub api_version: Option<String>,
    pub timeout_ms: Option<u64>,
    pub stream_usage: Option<bool>,
    /// Active health checks: a one-token chat request to each deployment this often (ms,
    /// at least 100); off when absent.
    pub health_check_ms: Option<u64>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    pub team_id: Option<Uuid>,
    /// Plaintext secret; sealed before it is stored (needs `SWITCHYARD_SEAL_KEY`). Write-only.
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Plaintext>,
    /// Name of an environment variable of the data plane that holds the secret.
    pub api_key_env: Option<String>,
}

/// A partial update: absent fields are kept; `null` clears a nullable one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProvider {
    #[schema(value_type = Option<String>)]
    pub kind: Option<proto::ProviderKind>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub base_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<bool>)]
    pub stream_usage: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub health_check_ms: Option<Option<u64>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub settings: Option<BTreeMap<String, String>>,
    /// Replaces the credential with this secret, sealed; `null` removes the credential.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_key: Option<Option<Plaintext>>,
    /// Replaces the credential with this environment reference; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_key_env: Option<Option<String>>,
}

impl UpdateProvider {
    /// The current spec with the given fields replaced.
    fn merge(
        self,
        mut s: ProviderSpec,
        seal: Option<&SealKey>,
        id: &str,
    ) -> Result<ProviderSpec, ApiError> {
        s.credential = credential(
            seal,
            id,
            self.api_key,
            self.api_key_env,
            s.credential.take(),
        )?;
        crate::domain::assign_present!(s, self;
            kind, base_url, api_version, timeout_ms, stream_usage, health_check_ms, headers, settings);
        Ok(s)
    }
}

/// The credential after a create or update. `None` arguments keep `current`; `Some(None)`
/// clears it. Re-sending the secret that is already sealed keeps the sealed value (no event).
fn credential(
    seal: Option<&SealKey>,
    id: &str,
    api_key: Option<Option<Plaintext>>,
    api_key_env: Option<Option<String>>,
    current: Option<Credential>,
) -> Result<Option<Credential>, ApiError> {
    match (api_key, api_key_env) {
        (Some(Some(_)), Some(Some(_))) => Err(ApiError::invalid(
            "api_key_env",
            "give either api_key or api_key_env, not both",
        )),
        (Some(Some(secret)), _) => seal_secret(seal, id, &secret, current.as_ref()).map(Some),
        (_, Some(Some(env))) => {
            let mut check = Check::new();
            env_name(&mut check, "api_key_env", &env);
            check.done()?;
            Ok(Some(Credential::Env { env }))
        }
        (Some(None), _) | (_, Some(None)) => Ok(None),
        (None, None) => Ok(current),
    }
}

fn seal_secret(
    seal: Option<&SealKey>,
    id: &str,
    secret: &Plaintext,
    current: Option<&Credential>,
) -> Result<Credential, ApiError> {
    if secret.0.is_empty() {
        return Err(ApiError::invalid("api_key", "must not be empty"));
    }
    let Some(key) = seal else {
        return Err(ApiError::invalid(
            "api_key",
            "storing a provider secret needs SWITCHYARD_SEAL_KEY (32 bytes, base64) set on the control plane \
             and the data planes; or pass api_key_env to name an environment variable of the data plane instead",
        ));
    };
    if let Some(Credential::Sealed { sealed }) = current {
        if key.open(id, sealed).is_some_and(|plain| plain == secret.0) {
            return Ok(Credential::Sealed {
                sealed: sealed.clone(),
            });
        }
    }
    match key.seal(id, &secret.0) {
        Ok(sealed) => Ok(Credential::Sealed { sealed }),
        Err(e) => {
            tracing::error!(error = %e, provider = id, "sealing a provider credential failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
pub fn env_name(check: &mut Check, path: &str, name: &str) {
    let ok = name.len() <= 256
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        check.fail(path, "must be an environment variable name: letters, digits and `_`, not starting with a digit");
    }
}

impl Creatable for Provider {
    type Body = CreateProvider;

    async fn create(cx: Cx<'_>, body: CreateProvider) -> Result<Response, ApiError> {
        let team_id = cx.who.owner(body.team_id)?;
        let mut check = Check::new();
        check.ident("id", &body.id);
        check.done()?;
        ensure_team(cx.app, team_id).await?;
        let credential = credential(
            cx.app.seal(),
            &body.id,
            body.api_key.map(Some),
            body.api_key_env.map(Some),
            None,
        )?;
        let spec = ProviderSpec {
            kind: body.kind,
            base_url: body.base_url,
            api_version: body.api_version,
            timeout_ms: body.timeout_ms,
            stream_usage: body.stream_usage,
            health_check_ms: body.health_check_ms,
            headers: body.headers,
            settings: body.settings,
            credential,
        };
        let command = ResourceCommand::Create {
            id: body.id.clone(),
            team_id,
            spec,
        };
        crud::run::<Self>(cx, &body.id, None, command, StatusCode::CREATED).await
    }
}

impl Updatable for Provider {
    type Patch = UpdateProvider;

    async fn merge(cx: Cx<'_>, current: Provider, patch: UpdateProvider) -> Decided<Self> {
        let spec = patch.merge(current.spec, cx.app.seal(), &current.id)?;
        Ok(ResourceCommand::Update(spec))
    }
}

impl Deletable for Provider {
    /// Refused while a route deploys on the provider.
    async fn delete(cx: Cx<'_>, current: &Provider) -> Decided<Self> {
        let id = &current.id;
        let users = cx.app.store().routes_using(id).await?;
        if users.is_empty() {
            return Ok(ResourceCommand::Delete);
        }
        // Name only the routes the caller may see; another team's aliases stay unacknowledged.
        let visible: Vec<String> = users
            .iter()
            .filter(|(_, team)| cx.who.can_see(*team))
            .map(|(alias, _)| format!("`{alias}`"))
            .take(10)
            .collect();
        Err(ApiError::Conflict(format!(
            "provider `{id}` is still used by {} route(s){}; remove those deployments first",
            users.len(),
            if visible.is_empty() {
                String::new()
            } else {
                format!(" ({})", visible.join(", "))
            }
        )))
    }
}

impl Tabled for ProviderSpec {
    const TABLE: SpecTable = PROVIDERS;
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn plain(s: &str) -> Plaintext {
        Plaintext(s.to_owned())
    }

    #[test]
    fn credentials_are_sealed_or_referenced_and_never_shown() {
        let key = SealKey::from_base64(KEY).unwrap();
        let sealed = credential(Some(&key), "openai", Some(Some(plain("sk-1"))), None, None)
            .unwrap()
            .unwrap();
        let Credential::Sealed { sealed: blob } = &sealed else {
            panic!("not sealed")
        };
        assert_eq!(key.open("openai", blob).as_deref(), Some("sk-1"));
        assert_eq!(describe(Some(&sealed)).as_deref(), Some("sealed"));
        assert!(!format!("{:?}", plain("sk-1")).contains("sk-1"));

        let again = credential(
            Some(&key),
            "openai",
            Some(Some(plain("sk-1"))),
            None,
            Some(sealed.clone()),
        )
        .unwrap();
        assert_eq!(
            again.as_ref(),
            Some(&sealed),
            "the same secret keeps the sealed value, so no event"
        );

        let env = credential(
            None,
            "x",
            None,
            Some(Some("OPENAI_KEY".into())),
            Some(sealed.clone()),
        )
        .unwrap();
        assert_eq!(describe(env.as_ref()).as_deref(), Some("env:OPENAI_KEY"));
        assert_eq!(
            credential(None, "x", Some(None), None, Some(sealed.clone())).unwrap(),
            None
        );
        assert_eq!(
            credential(None, "x", None, None, Some(sealed.clone())).unwrap(),
            Some(sealed)
        );
    }

    #[test]
    fn bad_credential_input_is_a_validation_error() {
        let no_seal = credential(None, "x", Some(Some(plain("sk"))), None, None);
        assert!(
            matches!(no_seal, Err(ApiError::Invalid(ref d)) if d[0].path == "api_key" && d[0].reason.contains("SWITCHYARD_SEAL_KEY"))
        );
        let both = credential(
            None,
            "x",
            Some(Some(plain("sk"))),
            Some(Some("A".into())),
            None,
        );
        assert!(matches!(both, Err(ApiError::Invalid(_))));
        for bad in ["", "1ABC", "A-B", "A B"] {
            assert!(
                credential(None, "x", None, Some(Some(bad.into())), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let body: UpdateProvider =
            serde_json::from_str(r#"{"base_url": null, "timeout_ms": 5}"#).unwrap();
        let current = ProviderSpec {
            base_url: Some("http://x".into()),
            api_version: Some("v".into()),
            ..Default::default()
        };
        let merged = body.merge(current, None, "p").unwrap();
        assert_eq!(
            (
                merged.base_url,
                merged.api_version.as_deref(),
                merged.timeout_ms
            ),
            (None, Some("v"), Some(5))
        );
    }
}
