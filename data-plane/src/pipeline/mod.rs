//! The request pipeline before a provider is called: who is calling, what they sent, and
//! which route serves it.

pub mod auth;
pub mod body;

use std::sync::Arc;

use crate::error::ApiError;
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};

/// The route for `model` if it exists (404) and the key may use it (403).
pub fn resolve(
    snapshot: &CompiledSnapshot,
    key: &KeyPolicy,
    model: &str,
) -> Result<Arc<Route>, ApiError> {
    let route = snapshot
        .route(model)
        .ok_or_else(|| ApiError::ModelNotFound(model.to_owned()))?;
    if !key.allows(model) {
        return Err(ApiError::ModelNotAllowed(model.to_owned()));
    }
    Ok(Arc::clone(route))
}
