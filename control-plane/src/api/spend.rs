//! `GET /admin/spend`: the spend ledger summed over a time range, grouped by any of team,
//! key, model, provider, tag and day.
//!
//! The ledger is daily (UTC), so a range covers every day that overlaps `[from, to)`; both
//! default to the current calendar month. Without `tag` in `group_by` the untagged rows are
//! summed (each event once); with it, the tag rows (each event once per tag). A `tag` filter
//! (`k=v`, or `k` for every value of tag `k`) reads the tag rows too. A team-scoped token only
//! ever sees its own team's spend: its team is forced into the filter, and asking for another
//! team's id finds nothing. Amounts are exact decimals, as strings.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use super::extract::Page;
use super::{ApiError, AppState, Principal};
pub use crate::usage::ledger::SpendTotals;

/// Most rows one answer carries (`truncated` says when there were more).
const MAX_ROWS: i64 = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/spend", get(spend))
}

/// A dimension spend can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Team,
    Key,
    Model,
    Provider,
    Tag,
    Day,
}

impl Dim {
    const ALL: [(&'static str, Dim); 6] = [
        ("team", Dim::Team),
        ("key", Dim::Key),
        ("model", Dim::Model),
        ("provider", Dim::Provider),
        ("tag", Dim::Tag),
        ("day", Dim::Day),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, d)| *d == self)
            .map(|(n, _)| *n)
            .unwrap_or_default()
    }

    fn column(self) -> &'static str {
        match self {
            Dim::Team => "team_id",
            Dim::Key => "key_id",
            Dim::Model => "model",
            Dim::Provider => "provider",
            Dim::Tag => "tag",
            Dim::Day => "day",
        }
    }
}

/// Parses `group_by` (comma-separated, duplicates ignored, order kept).
pub fn parse_group_by(text: Option<&str>) -> Result<Vec<Dim>, ApiError> {
    let mut dims = Vec::new();
    for part in text
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((_, dim)) = Dim::ALL.iter().find(|(n, _)| *n == part) else {
            return Err(ApiError::invalid(
                "group_by",
                format!(
                    "unknown dimension `{part}`; use any of team, key, model, provider, tag, day"
                ),
            ));
        };
        if !dims.contains(dim) {
            dims.push(*dim);
        }
    }
    Ok(dims)
}

/// `from`/`to` from the query, defaulting to the calendar month (UTC) containing `now`.
pub fn range(page: &Page, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let next = if now.month() == 12 {
        Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0)
    }
    .single()
    .unwrap_or(now);
    let from = page.time("from")?.unwrap_or(month);
    let to = page.time("to")?.unwrap_or(next);
    if to < from {
        return Err(ApiError::invalid("to", "must not be before `from`"));
    }
    Ok((from, to))
}

/// The days overlapping `[from, to)`: first day, and the day after the last.
pub fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let first = from.date_naive();
    let mut end = to.date_naive();
    if to.time() != chrono::NaiveTime::MIN {
        end = end.succ_opt().unwrap_or(end);
    }
    (first, end)
}

/// One group. Only the grouped dimensions are present; `null` means "none" (no team, key,
/// model or provider on those events).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub provider: Option<Option<String>>,
    /// `k=v`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tag: Option<Option<String>>,
    /// UTC day, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub day: Option<NaiveDate>,
    #[serde(flatten)]
    pub totals: SpendTotals,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SpendReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: Vec<String>,
    pub rows: Vec<SpendRow>,
    pub total: SpendTotals,
    /// More than 10,000 groups: `rows` holds the first ones (by cost), `total` is complete.
    pub truncated: bool,
}

fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[utoipa::path(get, path = "/admin/spend",
    operation_id = "get_spend", tag = "spend", security(("bearer" = [])),
    params(
        ("group_by" = Option<String>, Query, description = "comma-separated: team, key, model, provider, tag, day"),
        ("from" = Option<String>, Query, description = "RFC 3339; default: start of this month (UTC)"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default: start of next month"),
        ("team_id" = Option<String>, Query), ("key_id" = Option<String>, Query),
        ("model" = Option<String>, Query), ("provider" = Option<String>, Query),
        ("tag" = Option<String>, Query, description = "`k=v`, or `k` for every value of tag k")),
    responses((status = 200, body = SpendReport), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn spend(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<Json<SpendReport>, ApiError> {
    let dims = parse_group_by(page.params.get("group_by").map(String::as_str))?;
    let (from, to) = range(&page, Utc::now())?;
    let (first, end) = days(from, to);
    let text = |n: &str| page.text(n);
    let own_team = who.team.map(|t| t.to_string());
    let tag = text("tag");
    let (tag_exact, tag_key) = match &tag {
        Some(t) if t.contains('=') => (Some(t.clone()), None),
        Some(t) => (None, Some(t.clone())),
        None => (None, None),
    };
    let tagged = dims.contains(&Dim::Tag) || tag.is_some();
    let filter = format!(
        "day >= $1 AND day < $2 AND ($3::text IS NULL OR team_id = $3) AND ($4::text IS NULL OR team_id = $4)
         AND ($5::text IS NULL OR key_id = $5) AND ($6::text IS NULL OR model = $6)
         AND ($7::text IS NULL OR provider = $7) AND ($8::text IS NULL OR tag = $8)
         AND ($9::text IS NULL OR left(tag, length($9) + 1) = $9 || '=') AND {}",
        if tagged { "tag <> ''" } else { "tag = ''" }
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &first,
        &end,
        &own_team,
        &text("team_id"),
        &text("key_id"),
        &text("model"),
        &text("provider"),
        &tag_exact,
        &tag_key,
    ];
    let client = state.store().pool().get().await?;
    let sums = SpendTotals::sums();
    let total_row = client
        .query_one(
            &format!("SELECT {sums} FROM spend_ledger WHERE {filter}"),
            &params,
        )
        .await?;
    let total = SpendTotals::read(&total_row, 0);
    let mut rows = Vec::new();
    let mut truncated = false;
    if !dims.is_empty() {
        let cols: Vec<&str> = dims.iter().map(|d| d.column()).collect();
        let cols = cols.join(", ");
        let sql = format!(
            "SELECT {cols}, {sums} FROM spend_ledger WHERE {filter} GROUP BY {cols}
             ORDER BY SUM(cost_usd) DESC, {cols} LIMIT {}",
            MAX_ROWS + 1
        );
        let found = client.query(&sql, &params).await?;
        truncated = found.len() as i64 > MAX_ROWS;
        for r in found.iter().take(MAX_ROWS as usize) {
            let mut row = SpendRow {
                team_id: None,
                key_id: None,
                model: None,
                provider: None,
                tag: None,
                day: None,
                totals: SpendTotals::read(r, dims.len()),
            };
            for (i, d) in dims.iter().enumerate() {
                match d {
                    Dim::Day => row.day = Some(r.get(i)),
                    Dim::Team => row.team_id = Some(none_if_empty(r.get(i))),
                    Dim::Key => row.key_id = Some(none_if_empty(r.get(i))),
                    Dim::Model => row.model = Some(none_if_empty(r.get(i))),
                    Dim::Provider => row.provider = Some(none_if_empty(r.get(i))),
                    Dim::Tag => row.tag = Some(none_if_empty(r.get(i))),
                }
            }
            rows.push(row);
        }
    }
    Ok(Json(SpendReport {
        from,
        to,
        group_by: dims.iter().map(|d| d.name().to_owned()).collect(),
        rows,
        total,
        truncated,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn group_by_accepts_known_dimensions_only() {
        assert_eq!(parse_group_by(None).unwrap(), vec![]);
        assert_eq!(
            parse_group_by(Some("team, model,team,day")).unwrap(),
            vec![Dim::Team, Dim::Model, Dim::Day]
        );
        let err = parse_group_by(Some("team,colour")).unwrap_err();
        match err {
            ApiError::Invalid(d) => {
                assert_eq!(d[0].path, "group_by");
                assert!(d[0].reason.contains("colour"), "{}", d[0].reason);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_range_defaults_to_this_month_and_covers_whole_days() {
        let page = |pairs: &[(&str, &str)]| Page {
            limit: 100,
            after: None,
            params: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        };
        let now = Utc.with_ymd_and_hms(2026, 12, 15, 10, 0, 0).unwrap();
        let (from, to) = range(&page(&[]), now).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let (a, b) = days(from, to);
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        let (from, to) = range(
            &page(&[
                ("from", "2026-11-20T12:00:00Z"),
                ("to", "2026-11-21T00:00:01 00:00"),
            ]),
            now,
        )
        .unwrap();
        let (a, b) = days(from, to);
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2026-11-20".into(), "2026-11-22".into())
        );
        assert!(range(&page(&[("from", "yesterday")]), now).is_err());
        assert!(range(
            &page(&[
                ("from", "2026-11-21T00:00:00Z"),
                ("to", "2026-11-20T00:00:00Z")
            ]),
            now
        )
        .is_err());
    }
}
