//! The OpenAPI 3 document, generated from the handlers' annotations.
//!
//! The error responses every endpoint can give (400 malformed body or header, 401 no valid
//! token, 422 invalid input, 503 database unavailable) are added to each operation here, so
//! the document promises exactly what the one error edge (`api::error`) produces.

use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchyard admin API", description = "Event-sourced configuration of the Switchyard AI gateway."),
    paths(
        super::teams::create, super::teams::list, super::teams::read, super::teams::update, super::teams::remove,
        super::keys::create, super::keys::list, super::keys::read, super::keys::update, super::keys::revoke, super::keys::rotate,
        super::tokens::create, super::tokens::list, super::tokens::revoke,
        super::providers::create, super::providers::list, super::providers::read, super::providers::update, super::providers::remove,
        super::routes::create, super::routes::list, super::routes::read, super::routes::update, super::routes::remove,
        super::budgets::create, super::budgets::list, super::budgets::read, super::budgets::update, super::budgets::remove,
        super::budget_usage::list,
        super::cache_policies::create, super::cache_policies::list, super::cache_policies::read, super::cache_policies::update, super::cache_policies::remove, super::cache_policies::purge,
        super::guardrails::create, super::guardrails::list, super::guardrails::read, super::guardrails::update, super::guardrails::remove,
        super::pricing::list, super::pricing::put, super::pricing::remove,
        super::audit::list,
        super::spend::spend, super::usage::list, super::requests::list, super::requests::detail,
        super::health::list,
        super::config::apply,
    ),
    components(schemas(super::error::ErrorBody, super::error::ErrorObject)),
    modifiers(&Bearer, &CommonErrors)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_errors(op);
            }
        }
    }
}

fn add_errors(op: &mut Operation) {
    for (status, description) in [
        ("400", "malformed JSON body, query or header"),
        ("401", "missing or invalid admin token"),
        ("422", "a field, query parameter or path failed validation"),
        ("503", "the database is unavailable"),
    ] {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_log_policy_is_one_nullable_string_enum_wherever_it_is_set_or_shown() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["LogPayloads"]["type"], "string");
        assert_eq!(
            schemas["LogPayloads"]["enum"],
            json!(["off", "metadata", "full"])
        );
        for owner in [
            "KeySettings",
            "CreateKey",
            "UpdateKey",
            "TeamView",
            "CreateTeam",
            "UpdateTeam",
        ] {
            let field = &schemas[owner]["properties"]["log_payloads"]["oneOf"];
            assert_eq!(field[0], json!({"type": "null"}), "{owner}");
            assert_eq!(
                field[1]["$ref"], "#/components/schemas/LogPayloads",
                "{owner}"
            );
        }
    }
}
