//! Payload entries off the wire and into `request_payloads`.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use proto::{LoggedBody, RequestPayload};
use uuid::Uuid;

use super::partitions::{self, Known};
use crate::store::Store;

/// Why a message is not an entry we can store.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a request-log entry: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the entry id `{0}` is not a UUID")]
    Id(String),
    #[error("the entry time {0} ms is out of range")]
    Time(i64),
    #[error("a body is marked base64 and is not")]
    Base64,
}

/// An entry ready to insert.
#[derive(Debug)]
pub struct Entry {
    pub id: Uuid,
    pub time: DateTime<Utc>,
    pub payload: RequestPayload,
    pub request: Vec<u8>,
    pub response: Option<Vec<u8>>,
}

/// Decodes one message body.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let payload: RequestPayload = serde_json::from_slice(bytes)?;
    let id = Uuid::parse_str(&payload.id).map_err(|_| DecodeError::Id(payload.id.clone()))?;
    let time = DateTime::from_timestamp_millis(payload.time_ms)
        .filter(|t| t.timestamp() > 0 && t.timestamp() < 253_402_300_799)
        .ok_or(DecodeError::Time(payload.time_ms))?;
    let request = raw(&payload.request)?;
    let response = payload.response.as_ref().map(raw).transpose()?;
    Ok(Entry {
        id,
        time,
        payload,
        request,
        response,
    })
}

/// The bytes a logged body holds.
fn raw(body: &LoggedBody) -> Result<Vec<u8>, DecodeError> {
    if body.base64 {
        base64::engine::general_purpose::STANDARD
            .decode(&body.body)
            .map_err(|_| DecodeError::Base64)
    } else {
        Ok(body.body.as_bytes().to_vec())
    }
}

const INSERT: &str = "
INSERT INTO request_payloads (id, time, team_id, key_id, request_headers, request_body,
    request_bytes, request_truncated, status, response_body, response_bytes, response_truncated,
    streamed)
SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::jsonb[],
    $6::bytea[], $7::int8[], $8::bool[], $9::int4[], $10::bytea[], $11::int8[], $12::bool[],
    $13::bool[])
ON CONFLICT (time, id) DO NOTHING";

/// Stores `entries` (those older than retention are skipped) in one transaction, creating
/// their days' partitions first; returns how many were new.
pub async fn insert(
    store: &Store,
    known: &mut Known,
    mut entries: Vec<Entry>,
    retention_days: u32,
) -> anyhow::Result<u64> {
    if let Some(first) = partitions::first_kept(retention_days) {
        entries.retain(|e| e.time.date_naive() >= first);
    }
    if entries.is_empty() {
        return Ok(0);
    }
    let mut client = store.pool().get().await?;
    let days: Vec<_> = entries.iter().map(|e| e.time.date_naive()).collect();
    partitions::ensure(&mut client, known, days).await?;
    let tx = client.transaction().await?;
    let n = write(&tx, &entries).await?;
    tx.commit().await?;
    Ok(n)
}

/// The multi-row insert; returns how many rows were new.
async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    entries: &[Entry],
) -> Result<u64, tokio_postgres::Error> {
    macro_rules! col {
        ($f:expr) => {
            entries.iter().map($f).collect::<Vec<_>>()
        };
    }
    fn bytes(n: u64) -> i64 {
        i64::try_from(n).unwrap_or(i64::MAX)
    }
    let id = col!(|e| e.id);
    let time = col!(|e| e.time);
    let team = col!(|e| e.payload.team.as_deref());
    let key = col!(|e| e.payload.key_id.as_deref());
    let headers = col!(|e| serde_json::to_value(&e.payload.request_headers).unwrap_or_default());
    let request = col!(|e| e.request.as_slice());
    let request_bytes = col!(|e| bytes(e.payload.request.bytes));
    let request_truncated = col!(|e| e.payload.request.truncated);
    let status = col!(|e| i32::from(e.payload.status));
    let response = col!(|e| e.response.as_deref());
    let response_bytes = col!(|e| e.payload.response.as_ref().map(|r| bytes(r.bytes)));
    let response_truncated = col!(|e| e.payload.response.as_ref().map(|r| r.truncated));
    let streamed = col!(|e| e.payload.streamed);
    let statement = tx.prepare_cached(INSERT).await?;
    tx.execute(
        &statement,
        &[
            &id,
            &time,
            &team,
            &key,
            &headers,
            &request,
            &request_bytes,
            &request_truncated,
            &status,
            &response,
            &response_bytes,
            &response_truncated,
            &streamed,
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_with_their_bytes_and_bad_ones_are_refused() {
        let good = r#"{"id":"01936f5e-0000-7000-8000-000000000001","time_ms":1795275000000,"request":{"body":"{}","bytes":2},"status":200,"response":{"body":"/wA=","base64":true,"bytes":2}}"#;
        let e = decode(good.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.request, b"{}");
        assert_eq!(e.response.as_deref(), Some(&[0xff, 0x00][..]));
        assert!(matches!(decode(b"[]"), Err(DecodeError::Json(_))));
        let bad_b64 = good.replace("/wA=", "%%");
        assert!(matches!(
            decode(bad_b64.as_bytes()),
            Err(DecodeError::Base64)
        ));
        let bad_id = good.replace("01936f5e-0000-7000-8000-000000000001", "x");
        assert!(matches!(decode(bad_id.as_bytes()), Err(DecodeError::Id(_))));
    }
}
