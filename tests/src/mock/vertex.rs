//! vertex endpoints of the mock (stub: being built).

use std::sync::Arc;

use axum::Router;

use super::Shared;

/// The vertex routes, merged into the mock's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
}
