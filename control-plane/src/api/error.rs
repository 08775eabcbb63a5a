//! The admin API's one error edge: every failure becomes `{"error": {code, message, details}}`
//! with the status a client can act on. 5xx bodies never carry internal detail.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::Serialize;

use crate::domain::{DomainError, FieldError};
use crate::store::StoreError;

/// The error body of every admin endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// Machine-readable code: `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `validation_failed`, `bad_request`, `unavailable`.
    pub code: String,
    pub message: String,
    /// For `validation_failed`: each field with its path and reason.
    pub details: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("the service is temporarily unavailable")]
    Unavailable,
}

impl ApiError {
    pub fn invalid(path: &str, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(path, reason)])
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Invalid(_) => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unavailable => "unavailable",
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => Self::NotFound(what.to_owned()),
            DomainError::Conflict(m) => Self::Conflict(m),
            DomainError::Invalid(details) => Self::Invalid(details),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::VersionConflict { .. } | StoreError::Unique(_) => {
                Self::Conflict(e.to_string())
            }
            StoreError::Db(_) | StoreError::Pool(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                Self::Unavailable
            }
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Db(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            Self::Invalid(d) => d.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code().to_owned(),
                message: self.to_string(),
                details,
            },
        };
        (status, Json(body)).into_response()
    }
}
