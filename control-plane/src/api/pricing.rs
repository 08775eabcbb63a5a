//! `/admin/pricing`: the built-in price table merged with overrides, and setting or removing
//! an override (global tokens only). Each row names the cache classes it has no price for
//! (`input_price_fallbacks`): those are charged at the input price.
//!
//! Also home of money parsing for the admin API ([`decimal`], [`opt_decimal`]): amounts are
//! exact decimals end to end. A JSON string (`"12.50"`) is parsed as written; a JSON number is
//! parsed from its shortest round-trip text, which is exact up to 15 significant digits (send a
//! string for more). Amounts are always serialized back as strings.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::crud::{self, Cx, Listed, Rows};
use super::extract::{if_match, JsonBody, Page};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::pricing::{built_in, Price, PriceSpec};
use crate::domain::resource::ResourceCommand;
use crate::domain::Check;

crud::handlers!(Prices, PriceView, "pricing"; list("list_prices", "/admin/pricing");
    also ("/admin/pricing/{model}", axum::routing::put(put).delete(remove)));

/// An exact amount read from a JSON/YAML string or number, never through a lossy float path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub Decimal);

struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a decimal amount as a string (\"12.50\") or a number")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
        Decimal::from_str_exact(v)
            .map(Money)
            .map_err(|_| E::custom(format!("`{v}` is not an exact decimal amount")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        Ok(Money(Decimal::from(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        Ok(Money(Decimal::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        // `Display` of an f64 is the shortest text that reads back as the same float, so a
        // number written with up to 15 significant digits comes back exactly as written.
        if !v.is_finite() {
            return Err(E::custom("amounts must be finite"));
        }
        self.visit_str(&v.to_string())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MoneyVisitor)
    }
}

/// `deserialize_with` for a required amount.
pub fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    Money::deserialize(d).map(|m| m.0)
}

/// `deserialize_with` for an optional amount (use with `#[serde(default)]`).
pub fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Option::<Money>::deserialize(d).map(|m| m.map(|m| m.0))
}

/// Where a price row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    BuiltIn,
    Override,
}

/// USD per million tokens for one upstream model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub model: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "2.50")]
    pub input_per_mtok: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "10.00")]
    pub output_per_mtok: Decimal,
    /// Cache reads; null: charged at the input price.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "1.25")]
    pub cached_input_per_mtok: Option<Decimal>,
    /// 5-minute cache writes; null: charged at the input price.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "3.75")]
    pub cache_write_5m_per_mtok: Option<Decimal>,
    /// 1-hour cache writes; null: charged at the input price.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "6.00")]
    pub cache_write_1h_per_mtok: Option<Decimal>,
    /// The cache classes without a price of their own, charged at the input price
    /// (`cache_read`, `cache_write_5m`, `cache_write_1h`).
    pub input_price_fallbacks: Vec<String>,
    pub source: PriceSource,
    /// Stream version of an override; null for built-in rows.
    pub version: Option<i32>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl PriceView {
    fn new(
        model: String,
        s: &PriceSpec,
        source: PriceSource,
        version: Option<i32>,
        updated_at: Option<DateTime<Utc>>,
    ) -> Self {
        let input_price_fallbacks = s
            .price(&model)
            .fallbacks()
            .into_iter()
            .map(str::to_owned)
            .collect();
        Self {
            model,
            input_per_mtok: s.input_per_mtok,
            output_per_mtok: s.output_per_mtok,
            cached_input_per_mtok: s.cached_input_per_mtok,
            cache_write_5m_per_mtok: s.cache_write_5m_per_mtok,
            cache_write_1h_per_mtok: s.cache_write_1h_per_mtok,
            input_price_fallbacks,
            source,
            version,
            updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPrice {
    #[serde(deserialize_with = "decimal")]
    #[schema(value_type = String, example = "2.50")]
    pub input_per_mtok: Decimal,
    #[serde(deserialize_with = "decimal")]
    #[schema(value_type = String, example = "10.00")]
    pub output_per_mtok: Decimal,
    /// Cache reads (also accepted as `cache_read_per_mtok`); absent: the input price.
    #[serde(
        default,
        alias = "cache_read_per_mtok",
        deserialize_with = "opt_decimal"
    )]
    #[schema(value_type = Option<String>, example = "1.25")]
    pub cached_input_per_mtok: Option<Decimal>,
    /// 5-minute cache writes; absent: the input price.
    #[serde(default, deserialize_with = "opt_decimal")]
    #[schema(value_type = Option<String>, example = "3.75")]
    pub cache_write_5m_per_mtok: Option<Decimal>,
    /// 1-hour cache writes; absent: the input price.
    #[serde(default, deserialize_with = "opt_decimal")]
    #[schema(value_type = Option<String>, example = "6.00")]
    pub cache_write_1h_per_mtok: Option<Decimal>,
}

/// The built-in table with the overrides laid over it, by model.
fn merge(overrides: Vec<PriceView>) -> BTreeMap<String, PriceView> {
    let mut rows: BTreeMap<String, PriceView> = built_in()
        .into_iter()
        .map(|(m, s)| {
            (
                m.clone(),
                PriceView::new(m, &s, PriceSource::BuiltIn, None, None),
            )
        })
        .collect();
    for o in overrides {
        rows.insert(o.model.clone(), o);
    }
    rows
}

fn check_model(model: &str) -> Result<(), ApiError> {
    let mut check = Check::new();
    check.model("model", model);
    Ok(check.done()?)
}

/// The merged price table for the generic list.
pub struct Prices;

impl Listed for Prices {
    type Row = PriceView;

    /// Every caller may read prices: they are not team data.
    async fn page(cx: Cx<'_>, page: &Page) -> Rows<PriceView> {
        let overrides = cx
            .app
            .store()
            .price_overrides()
            .await?
            .into_iter()
            .map(|o| {
                let (source, version) = (PriceSource::Override, Some(o.version));
                PriceView::new(o.model, &o.spec, source, version, Some(o.updated_at))
            });
        let after = page.after.as_deref().unwrap_or_default();
        Ok(merge(overrides.collect())
            .into_values()
            .filter(|v| v.model.as_str() > after)
            .take(usize::try_from(page.limit + 1).unwrap_or(0))
            .map(|v| (v.model.clone(), v))
            .collect())
    }
}

#[utoipa::path(put, path = "/admin/pricing/{model}",
    operation_id = "set_price", tag = "pricing", request_body = SetPrice, security(("bearer" = [])),
    params(("model" = String, Path, description = "upstream model name"), ("If-Match" = Option<String>, Header, description = "version from ETag")),
    responses((status = 200, body = PriceView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    who: Principal,
    Path(model): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SetPrice>,
) -> Result<Response, ApiError> {
    who.require_global()?;
    let expected = if_match(&headers)?;
    check_model(&model)?;
    let spec = PriceSpec {
        input_per_mtok: body.input_per_mtok,
        output_per_mtok: body.output_per_mtok,
        cached_input_per_mtok: body.cached_input_per_mtok,
        cache_write_5m_per_mtok: body.cache_write_5m_per_mtok,
        cache_write_1h_per_mtok: body.cache_write_1h_per_mtok,
    };
    let command = ResourceCommand::Put {
        id: model.clone(),
        team_id: None,
        spec,
    };
    let done = state
        .store()
        .execute::<Price>(&model, expected, &who.actor, command)
        .await?;
    let view = PriceView::new(
        model,
        &done.state.spec,
        PriceSource::Override,
        Some(done.version),
        done.state.updated_at,
    );
    Ok(with_etag(StatusCode::OK, done.version, &view))
}

#[utoipa::path(delete, path = "/admin/pricing/{model}",
    operation_id = "delete_price", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    who.require_global()?;
    let expected = if_match(&headers)?;
    state
        .store()
        .execute::<Price>(&model, expected, &who.actor, ResourceCommand::Delete)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Amounts {
        #[serde(deserialize_with = "decimal")]
        a: Decimal,
        #[serde(default, deserialize_with = "opt_decimal")]
        b: Option<Decimal>,
    }

    fn parse(json: &str) -> Result<Amounts, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn amounts_parse_exactly_from_strings_and_numbers() {
        assert_eq!(parse(r#"{"a": "12.50"}"#).unwrap().a.to_string(), "12.50");
        assert_eq!(parse(r#"{"a": 12.5}"#).unwrap().a.to_string(), "12.5");
        assert_eq!(parse(r#"{"a": 0.075}"#).unwrap().a.to_string(), "0.075");
        assert_eq!(
            parse(r#"{"a": 0.1, "b": 0.2}"#)
                .unwrap()
                .b
                .unwrap()
                .to_string(),
            "0.2",
            "no binary-float residue"
        );
        assert_eq!(
            parse(r#"{"a": 1000000000}"#).unwrap().a,
            Decimal::from(1_000_000_000u64)
        );
        assert_eq!(
            parse(r#"{"a": "0.0000000001"}"#).unwrap().a.to_string(),
            "0.0000000001"
        );
        assert_eq!(parse(r#"{"a": 1, "b": null}"#).unwrap().b, None);
        assert_eq!(parse(r#"{"a": 1}"#).unwrap().b, None);
    }

    #[test]
    fn non_amounts_are_refused() {
        for bad in [
            r#"{"a": "ten"}"#,
            r#"{"a": ""}"#,
            r#"{"a": " 1"}"#,
            r#"{"a": true}"#,
            r#"{"a": "1e3"}"#,
            r#"{"a": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_price_body_takes_every_class_and_refuses_a_class_named_twice() {
        let body: SetPrice = serde_json::from_str(
            r#"{"input_per_mtok":"3","output_per_mtok":"15","cache_read_per_mtok":"0.30",
                "cache_write_5m_per_mtok":"3.75","cache_write_1h_per_mtok":6}"#,
        )
        .unwrap();
        assert_eq!(body.cached_input_per_mtok.unwrap().to_string(), "0.30");
        assert_eq!(body.cache_write_5m_per_mtok.unwrap().to_string(), "3.75");
        assert_eq!(body.cache_write_1h_per_mtok.unwrap(), Decimal::from(6));
        for bad in [
            r#"{"input_per_mtok":"3","output_per_mtok":"15","cache_read_per_mtok":"1","cached_input_per_mtok":"1"}"#,
            r#"{"input_per_mtok":"3","output_per_mtok":"15","cache_write_per_mtok":"1"}"#,
            r#"{"input_per_mtok":"3","output_per_mtok":"15","cache_write_1h_per_mtok":"lots"}"#,
        ] {
            assert!(serde_json::from_str::<SetPrice>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts_serialize_as_strings_and_overrides_win() {
        let spec = PriceSpec {
            input_per_mtok: "9.99".parse().unwrap(),
            output_per_mtok: Decimal::ONE,
            cache_write_1h_per_mtok: Some(Decimal::TWO),
            ..PriceSpec::default()
        };
        let row = PriceView::new("gpt-4o".into(), &spec, PriceSource::Override, Some(1), None);
        let rows = merge(vec![row]);
        let json = serde_json::to_value(&rows["gpt-4o"]).unwrap();
        assert_eq!(json["input_per_mtok"], "9.99");
        assert_eq!(json["source"], "override");
        assert_eq!(json["cached_input_per_mtok"], serde_json::Value::Null);
        assert_eq!(json["cache_write_1h_per_mtok"], "2");
        assert_eq!(
            json["input_price_fallbacks"],
            serde_json::json!(["cache_read", "cache_write_5m"])
        );
        assert_eq!(rows["gpt-4o-mini"].source, PriceSource::BuiltIn);
        let sonnet = serde_json::to_value(&rows["claude-sonnet-4-5"]).unwrap();
        assert_eq!(
            (
                &sonnet["cache_write_5m_per_mtok"],
                &sonnet["cache_write_1h_per_mtok"]
            ),
            (&serde_json::json!("3.75"), &serde_json::json!("6.00"))
        );
        assert_eq!(sonnet["input_price_fallbacks"], serde_json::json!([]));
        assert_eq!(rows.len(), built_in().len());
    }
}
