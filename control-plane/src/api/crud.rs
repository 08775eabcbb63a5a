//! The admin operations every resource shares, written once: read, list, update (PATCH) and
//! delete over a resource spec.
//!
//! A resource module says only what differs: its aggregate and view ([`AdminResource`]), how a
//! patch becomes a command ([`Updatable`]), what must hold before a delete ([`Deletable`]) and
//! how a page is read ([`Listed`]); creation and special actions (rotate, revoke) stay in the
//! module. [`handlers!`] then emits the axum handlers with their OpenAPI annotations.
//!
//! What this guarantees for every resource alike:
//! - a resource the caller may not see answers exactly like a missing one (404 naming the
//!   kind), so another team's resources are never acknowledged;
//! - responses carry the stream version as `ETag`; `If-Match` on an update or delete makes a
//!   concurrent change a 409;
//! - an update merged from the loaded state expects that state's version even without
//!   `If-Match` (a change in between is never silently overwritten), unless the command itself
//!   carries only the changed fields ([`Updatable::PIN`]);
//! - lists are pages of `{"data": [...], "next": cursor|null}`.

use std::future::Future;

use axum::response::Response;
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::extract::{if_match, Page};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::resource::{Resource, Spec};
use crate::domain::Aggregate;
use crate::store::Project;

/// The command type of a resource's aggregate.
pub type Command<R> = <<R as AdminResource>::State as Aggregate>::Command;

/// One kind of admin resource: which stream holds it, who may see it, how it is shown.
pub trait AdminResource: Send + Sync + 'static {
    /// The aggregate behind one resource.
    type State: Project;
    /// The response body of one resource.
    type View: Serialize + Send;
    /// The kind named in a 404 body (`provider`, `team`, ...).
    const WHAT: &'static str;

    /// The stream id of a path id; an id that cannot name a resource is a 404.
    fn stream_id(id: &str) -> Result<String, ApiError> {
        Ok(id.to_owned())
    }

    /// Whether the loaded state is a resource this caller may see.
    fn visible(state: &Self::State, who: &Principal) -> bool;

    /// The response body of a state at a version.
    fn view(state: &Self::State, version: i32) -> Self::View;
}

/// A resource with a `PATCH`.
pub trait Updatable: AdminResource {
    /// The request body: absent fields are kept.
    type Patch: DeserializeOwned + Send;
    /// Whether an update without `If-Match` still expects the loaded version: true when the
    /// command carries a complete new state merged from it.
    const PIN: bool = true;

    /// The command that applies `patch` to `current` (validation of references included).
    fn merge(
        app: &AppState,
        who: &Principal,
        stream: &str,
        current: Self::State,
        patch: Self::Patch,
    ) -> impl Future<Output = Result<Command<Self>, ApiError>> + Send;
}

/// A resource with a `DELETE`.
pub trait Deletable: AdminResource {
    /// The delete command, once nothing that must outlive the resource still uses it (409
    /// otherwise).
    fn delete(
        app: &AppState,
        who: &Principal,
        current: &Self::State,
    ) -> impl Future<Output = Result<Command<Self>, ApiError>> + Send;
}

/// A resource listed in pages.
pub trait Listed: Send + Sync + 'static {
    /// One listed item.
    type Row: Serialize + Send;

    /// Up to `page.limit + 1` items after the cursor that the caller may see, in cursor order
    /// (the extra item only says there is a next page).
    fn page(
        app: &AppState,
        who: &Principal,
        page: &Page,
    ) -> impl Future<Output = Result<Vec<Self::Row>, ApiError>> + Send;

    /// The cursor that continues after this item.
    fn cursor(row: &Self::Row) -> String;
}

/// Visibility of a spec resource: live, and global or of the caller's team.
pub fn spec_visible<S: Spec>(r: &Resource<S>, who: &Principal) -> bool {
    r.live && who.can_see(r.team_id)
}

/// Loads a resource the caller may see: its stream id, state and version.
pub async fn load<R: AdminResource>(
    app: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(String, R::State, i32), ApiError> {
    let stream = R::stream_id(id)?;
    let (state, version) = app.store().load::<R::State>(&stream).await?;
    if !R::visible(&state, who) {
        return Err(ApiError::NotFound(R::WHAT.to_owned()));
    }
    Ok((stream, state, version))
}

/// Runs a command and answers `status` with the new state's view and version.
pub async fn run<R: AdminResource>(
    app: &AppState,
    who: &Principal,
    stream: &str,
    expected: Option<i32>,
    command: Command<R>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let done = app
        .store()
        .execute::<R::State>(stream, expected, &who.actor, command)
        .await?;
    Ok(with_etag(
        status,
        done.version,
        &R::view(&done.state, done.version),
    ))
}

/// `GET /admin/<kind>/{id}`.
pub async fn read<R: AdminResource>(
    app: AppState,
    who: Principal,
    id: String,
) -> Result<Response, ApiError> {
    let (_, state, version) = load::<R>(&app, &who, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        version,
        &R::view(&state, version),
    ))
}

/// `PATCH /admin/<kind>/{id}`.
pub async fn update<R: Updatable>(
    app: AppState,
    who: Principal,
    id: String,
    headers: HeaderMap,
    patch: R::Patch,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, current, version) = load::<R>(&app, &who, &id).await?;
    let command = R::merge(&app, &who, &stream, current, patch).await?;
    let expected = if R::PIN {
        Some(expected.unwrap_or(version))
    } else {
        expected
    };
    run::<R>(&app, &who, &stream, expected, command, StatusCode::OK).await
}

/// `DELETE /admin/<kind>/{id}`.
pub async fn remove<R: Deletable>(
    app: AppState,
    who: Principal,
    id: String,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, current, _) = load::<R>(&app, &who, &id).await?;
    let command = R::delete(&app, &who, &current).await?;
    app.store()
        .execute::<R::State>(&stream, expected, &who.actor, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /admin/<kind>`.
pub async fn list<L: Listed>(
    app: AppState,
    who: Principal,
    page: Page,
) -> Result<Json<List<L::Row>>, ApiError> {
    let rows = L::page(&app, &who, &page).await?;
    Ok(Json(List::page(rows, page.limit, L::cursor)))
}

/// Emits a resource module's `list`, `read`, `update` and `remove` handlers over the generic
/// operations above, each with its OpenAPI annotation.
///
/// `handlers!(Resource, View, "tag"; list(..), read(..), update(..), remove(..))` with
/// `op("operation_id", "path", [Patch type,] params(..) [, extra responses..])` for the
/// operations the resource has. The standard responses of each operation are written here
/// once; a resource adds only its extra ones (a 403 where only global tokens may act).
/// `List` must be in scope where it is used (the document names `List<View>` as written).
macro_rules! handlers {
    ($r:ty, $view:ident, $tag:literal; $($op:ident $args:tt),+ $(,)?) => {
        $( $crate::api::crud::handlers!(@$op $r, $view, $tag, $args); )+
    };
    (@list $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal, params $params:tt $(, $extra:tt)*)) => {
        #[utoipa::path(get, path = $path, operation_id = $id, tag = $tag, security(("bearer" = [])), params $params,
            responses((status = 200, body = List<$view>), (status = 401, body = super::error::ErrorBody),
                (status = 422, body = super::error::ErrorBody) $(, $extra)*))]
        pub async fn list(
            axum::extract::State(state): axum::extract::State<$crate::api::AppState>,
            who: $crate::api::Principal,
            page: $crate::api::extract::Page,
        ) -> Result<axum::Json<$crate::api::List<$view>>, $crate::api::ApiError> {
            $crate::api::crud::list::<$r>(state, who, page).await
        }
    };
    (@read $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal, params $params:tt $(, $extra:tt)*)) => {
        #[utoipa::path(get, path = $path, operation_id = $id, tag = $tag, security(("bearer" = [])), params $params,
            responses((status = 200, body = $view), (status = 401, body = super::error::ErrorBody),
                (status = 404, body = super::error::ErrorBody) $(, $extra)*))]
        pub async fn read(
            axum::extract::State(state): axum::extract::State<$crate::api::AppState>,
            who: $crate::api::Principal,
            axum::extract::Path(id): axum::extract::Path<String>,
        ) -> Result<axum::response::Response, $crate::api::ApiError> {
            $crate::api::crud::read::<$r>(state, who, id).await
        }
    };
    (@update $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal, $patch:ident, params $params:tt $(, $extra:tt)*)) => {
        #[utoipa::path(patch, path = $path, operation_id = $id, tag = $tag, request_body = $patch, security(("bearer" = [])),
            params $params,
            responses((status = 200, body = $view), (status = 400, body = super::error::ErrorBody),
                (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
                (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody) $(, $extra)*))]
        pub async fn update(
            axum::extract::State(state): axum::extract::State<$crate::api::AppState>,
            who: $crate::api::Principal,
            axum::extract::Path(id): axum::extract::Path<String>,
            headers: http::HeaderMap,
            $crate::api::extract::JsonBody(body): $crate::api::extract::JsonBody<$patch>,
        ) -> Result<axum::response::Response, $crate::api::ApiError> {
            $crate::api::crud::update::<$r>(state, who, id, headers, body).await
        }
    };
    (@remove $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal, params $params:tt $(, $extra:tt)*)) => {
        #[utoipa::path(delete, path = $path, operation_id = $id, tag = $tag, security(("bearer" = [])), params $params,
            responses((status = 204), (status = 400, body = super::error::ErrorBody),
                (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody),
                (status = 409, body = super::error::ErrorBody) $(, $extra)*))]
        pub async fn remove(
            axum::extract::State(state): axum::extract::State<$crate::api::AppState>,
            who: $crate::api::Principal,
            axum::extract::Path(id): axum::extract::Path<String>,
            headers: http::HeaderMap,
        ) -> Result<http::StatusCode, $crate::api::ApiError> {
            $crate::api::crud::remove::<$r>(state, who, id, headers).await
        }
    };
}
pub(crate) use handlers;
