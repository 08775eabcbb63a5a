//! `request_payloads` is partitioned by UTC day (`request_payloads_YYYYMMDD`, covering
//! `[day, day + 1)`). A day's partition is created the first time an entry of that day is
//! stored; retention drops whole partitions, never rows.

use std::collections::HashSet;

use chrono::{Days, NaiveDate, Utc};

use crate::store::Store;

/// Advisory lock serializing partition creation across replicas.
const CREATE_LOCK: i64 = 0x5357_4954_4348_0010;

/// Days whose partition this writer knows exists.
#[derive(Debug, Default)]
pub struct Known(HashSet<NaiveDate>);

/// The partition holding `day`.
pub fn name(day: NaiveDate) -> String {
    format!("request_payloads_{}", day.format("%Y%m%d"))
}

/// Creates the partitions of `days` this writer has not seen yet.
pub async fn ensure(
    client: &mut deadpool_postgres::Object,
    known: &mut Known,
    days: Vec<NaiveDate>,
) -> Result<(), tokio_postgres::Error> {
    for day in days {
        if known.0.contains(&day) {
            continue;
        }
        let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
            .await?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF request_payloads \
             FOR VALUES FROM ('{day}') TO ('{next}')",
            name(day)
        ))
        .await?;
        tx.commit().await?;
        known.0.insert(day);
    }
    Ok(())
}

/// The first day retention keeps (`days` days, today included); `None` keeps every day.
pub fn first_kept(days: u32) -> Option<NaiveDate> {
    let today = Utc::now().date_naive();
    (days > 0).then(|| today - Days::new(u64::from(days - 1)))
}

/// Drops the partitions of days before retention's first kept day; logs what it dropped.
pub async fn sweep(store: &Store, days: u32) {
    let Some(first) = first_kept(days) else {
        return;
    };
    match drop_before(store, first).await {
        Ok(dropped) if !dropped.is_empty() => {
            tracing::info!(partitions = ?dropped, "request log: dropped expired days");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "request log: dropping expired days failed"),
    }
}

/// Drops every partition of a day before `first`; returns their names.
pub async fn drop_before(store: &Store, first: NaiveDate) -> anyhow::Result<Vec<String>> {
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname = 'request_payloads'",
            &[],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let table: String = row.get(0);
        let day = table
            .strip_prefix("request_payloads_")
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok());
        if day.is_some_and(|d| d < first) {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
            dropped.push(table);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_the_first_kept_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default();
        assert_eq!(name(day), "request_payloads_20261204");
        assert_eq!(first_kept(0), None);
        assert_eq!(first_kept(1), Some(Utc::now().date_naive()));
        assert_eq!(
            first_kept(30),
            Some(Utc::now().date_naive() - Days::new(29))
        );
    }
}
