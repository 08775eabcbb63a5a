//! The request log's policy of a key or a team (`log_payloads`) as the admin API documents it.
//!
//! The type itself is [`proto::LogPayloads`] (the wire crate is serde only, so it has no
//! OpenAPI schema); [`LogPayloadsSchema`] stands in for it in `#[schema(value_type = ...)]`,
//! and names its values from the type itself, so the document cannot drift from what the API
//! reads.

use std::borrow::Cow;

use proto::LogPayloads;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

/// The OpenAPI schema of [`proto::LogPayloads`]: a string enum named `LogPayloads`.
pub struct LogPayloadsSchema;

/// Every policy, in the order the document lists them.
fn all() -> [LogPayloads; 3] {
    use LogPayloads::{Full, Metadata, Off};
    // A policy proto adds later fails to compile here instead of missing from the document.
    let _exhaustive = |p: LogPayloads| match p {
        Off | Metadata | Full => (),
    };
    [Off, Metadata, Full]
}

impl utoipa::PartialSchema for LogPayloadsSchema {
    fn schema() -> RefOr<Schema> {
        let description = "What the request log keeps of a request: `off` (not listed, still \
            metered), `metadata` (listed without bodies; the default), `full` (request and \
            response bodies kept, up to the proxy's cap). A key's own setting wins over its \
            team's.";
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(all().map(LogPayloads::as_str)))
            .description(Some(description))
            .into()
    }
}

impl utoipa::ToSchema for LogPayloadsSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("LogPayloads")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_lists_the_names_the_api_reads() {
        let schema =
            serde_json::to_value(<LogPayloadsSchema as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(
            schema["enum"],
            serde_json::json!(["off", "metadata", "full"])
        );
        for p in all() {
            let read: LogPayloads = serde_json::from_value(serde_json::json!(p.as_str())).unwrap();
            assert_eq!(read, p, "{} reads back", p.as_str());
        }
    }
}
