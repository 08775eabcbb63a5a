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

use super::common::parse_id;
use super::extract::{if_match, Page};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::resource::{Resource, Spec};
use crate::domain::Aggregate;
use crate::store::admin::SpecTable;
use crate::store::Project;

/// The command type of a resource's aggregate.
pub type Command<R> = <R as Aggregate>::Command;
/// A command decided from a request, or why the request is refused.
pub type Decided<R> = Result<Command<R>, ApiError>;
/// Listed items, each with the cursor that continues after it.
pub type Rows<T> = Result<Vec<(String, T)>, ApiError>;

/// Who asks, and the state every operation works on.
#[derive(Debug, Clone, Copy)]
pub struct Cx<'a> {
    pub app: &'a AppState,
    pub who: &'a Principal,
}

impl<'a> Cx<'a> {
    pub fn new(app: &'a AppState, who: &'a Principal) -> Self {
        Self { app, who }
    }
}

/// Who may see a stored resource. Anything else is reported exactly like a missing one.
pub trait Visible {
    fn visible_to(&self, who: &Principal) -> bool;
}

/// A spec resource is seen while live, by every caller if global, else by its team.
impl<S: Spec> Visible for Resource<S> {
    fn visible_to(&self, who: &Principal) -> bool {
        self.live && who.can_see(self.team_id)
    }
}

/// An aggregate served as an admin resource: how it is addressed and shown.
pub trait AdminResource: Project + Visible {
    /// The response body of one resource.
    type View: Serialize + Send;
    /// The kind named in a 404 body (`provider`, `team`, ...).
    const WHAT: &'static str = <Self as Aggregate>::KIND;
    /// Whether ids are UUIDs (any other path id names nothing), kept in canonical form.
    const UUID_IDS: bool = false;

    /// The response body of a state at a version.
    fn view(state: &Self, version: i32) -> Self::View;

    /// The stream id of a path id; an id that cannot name a resource is a 404.
    fn stream_id(id: &str) -> Result<String, ApiError> {
        if Self::UUID_IDS {
            Ok(parse_id(id, Self::WHAT)?.to_string())
        } else {
            Ok(id.to_owned())
        }
    }
}

/// A resource created with `POST /admin/<kind>`.
pub trait Creatable: AdminResource {
    /// The request body.
    type Body: DeserializeOwned + Send;

    /// Checks the body, runs the create command and answers 201.
    fn create(
        cx: Cx<'_>,
        body: Self::Body,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;
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
        cx: Cx<'_>,
        current: Self,
        patch: Self::Patch,
    ) -> impl Future<Output = Decided<Self>> + Send;
}

/// A resource with a `DELETE`.
pub trait Deletable: AdminResource {
    /// The delete command, once nothing that must outlive the resource still uses it (409
    /// otherwise).
    fn delete(cx: Cx<'_>, current: &Self) -> impl Future<Output = Decided<Self>> + Send;
}

/// A resource listed in pages.
pub trait Listed: Send + Sync + 'static {
    /// One listed item.
    type Row: Serialize + Send;

    /// Up to `page.limit + 1` items after the cursor that the caller may see, in cursor order
    /// (the extra item only says there is a next page).
    fn page(cx: Cx<'_>, page: &Page) -> impl Future<Output = Rows<Self::Row>> + Send;
}

/// The views of loaded states, keyed by `key`.
pub fn keyed<R: AdminResource>(
    rows: &[(R, i32)],
    key: impl Fn(&R) -> String,
) -> Vec<(String, R::View)> {
    rows.iter().map(|(s, v)| (key(s), R::view(s, *v))).collect()
}

/// A spec whose resources are listed straight from their projection table.
pub trait Tabled: Spec {
    const TABLE: SpecTable;
}

/// Spec resources list their table's rows; the cursor is the key, of the key's type.
impl<S: Tabled> Listed for Resource<S>
where
    Resource<S>: AdminResource,
{
    type Row = <Resource<S> as AdminResource>::View;

    async fn page(cx: Cx<'_>, page: &Page) -> Rows<Self::Row> {
        let (store, table, limit) = (cx.app.store(), &S::TABLE, page.limit + 1);
        let rows = if table.key_type == "uuid" {
            let after = page.after_uuid()?;
            store
                .spec_page::<S>(table, cx.who.team, &after, limit)
                .await?
        } else {
            store
                .spec_page::<S>(table, cx.who.team, &page.after, limit)
                .await?
        };
        Ok(keyed(&rows, |r| r.id.clone()))
    }
}

/// Loads a resource the caller may see: its stream id, state and version.
pub async fn load<R: AdminResource>(cx: Cx<'_>, id: &str) -> Result<(String, R, i32), ApiError> {
    let stream = R::stream_id(id)?;
    let (state, version) = cx.app.store().load::<R>(&stream).await?;
    if !state.visible_to(cx.who) {
        return Err(ApiError::NotFound(R::WHAT.to_owned()));
    }
    Ok((stream, state, version))
}

/// Runs a command and answers `status` with the new state's view and version.
pub async fn run<R: AdminResource>(
    cx: Cx<'_>,
    stream: &str,
    expected: Option<i32>,
    command: Command<R>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    run_with(cx, stream, expected, command, status, R::view).await
}

/// Runs a command and answers `status` with `show(new state, version)`.
pub async fn run_with<R: AdminResource, T: Serialize>(
    cx: Cx<'_>,
    stream: &str,
    expected: Option<i32>,
    command: Command<R>,
    status: StatusCode,
    show: impl FnOnce(&R, i32) -> T,
) -> Result<Response, ApiError> {
    let store = cx.app.store();
    let done = store
        .execute::<R>(stream, expected, &cx.who.actor, command)
        .await?;
    Ok(with_etag(
        status,
        done.version,
        &show(&done.state, done.version),
    ))
}

/// `GET /admin/<kind>/{id}`.
pub async fn read<R: AdminResource>(cx: Cx<'_>, id: String) -> Result<Response, ApiError> {
    let (_, state, version) = load::<R>(cx, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        version,
        &R::view(&state, version),
    ))
}

/// `PATCH /admin/<kind>/{id}`.
pub async fn update<R: Updatable>(
    cx: Cx<'_>,
    id: String,
    headers: HeaderMap,
    patch: R::Patch,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, current, version) = load::<R>(cx, &id).await?;
    let command = R::merge(cx, current, patch).await?;
    let expected = if R::PIN {
        Some(expected.unwrap_or(version))
    } else {
        expected
    };
    run::<R>(cx, &stream, expected, command, StatusCode::OK).await
}

/// `DELETE /admin/<kind>/{id}`.
pub async fn remove<R: Deletable>(
    cx: Cx<'_>,
    id: String,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, current, _) = load::<R>(cx, &id).await?;
    let command = R::delete(cx, &current).await?;
    let store = cx.app.store();
    store
        .execute::<R>(&stream, expected, &cx.who.actor, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /admin/<kind>`.
pub async fn list<L: Listed>(cx: Cx<'_>, page: Page) -> Result<Json<List<L::Row>>, ApiError> {
    let rows = L::page(cx, &page).await?;
    let keyed = List::page(rows, page.limit, |(key, _)| key.clone());
    let data = keyed.data.into_iter().map(|(_, row)| row).collect();
    Ok(Json(List {
        data,
        next: keyed.next,
    }))
}

/// Emits a resource module's handlers over the generic operations above, each with its
/// OpenAPI annotation, so a resource declares its endpoints in a line each.
///
/// `handlers!(Resource, View, "tag"; op("operation_id", "path", ..), .. [; also (path, route)..])`
/// emits the handlers and `routes()`, which mounts them and the routes after `also` (a
/// resource's special actions), with, per operation:
/// - `create(id, path, Body, responses(..))`: the responses are the resource's own;
/// - `list(id, path [, params(..)])`: `limit` and `after` unless other params are given;
/// - `read(id, path, params(..))`, `update(id, path, Patch, params(..) [, extra..])` and
///   `remove(id, path, params(..) [, extra..])`: the standard responses are written here once,
///   a resource adds only its extra ones (a 403 where only global tokens may act).
///
/// `List` must be in scope where `list` is used (the document names `List<View>` as written).
macro_rules! handlers {
    ($r:ty, $view:ident, $tag:literal; $($op:ident $args:tt),+ $(; also $(($more:literal, $route:expr)),+)?) => {
        $( $crate::api::crud::handlers!(@$op $r, $view, $tag, $args); )+

        /// This module's endpoints.
        pub fn routes() -> axum::Router<$crate::api::AppState> {
            axum::Router::new()
                $( .route($crate::api::crud::handlers!(@path $args), $crate::api::crud::handlers!(@method $op)($op)) )+
                $($( .route($more, $route) )+)?
        }
    };
    (@path ($id:literal, $path:literal $($rest:tt)*)) => { $path };
    (@method create) => { axum::routing::post };
    (@method list) => { axum::routing::get };
    (@method read) => { axum::routing::get };
    (@method update) => { axum::routing::patch };
    (@method remove) => { axum::routing::delete };
    (@create $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal, $body:ident, responses $responses:tt)) => {
        #[utoipa::path(post, path = $path, operation_id = $id, tag = $tag, request_body = $body, security(("bearer" = [])),
            responses $responses)]
        pub async fn create(
            axum::extract::State(state): axum::extract::State<$crate::api::AppState>,
            who: $crate::api::Principal,
            $crate::api::extract::JsonBody(body): $crate::api::extract::JsonBody<$body>,
        ) -> Result<axum::response::Response, $crate::api::ApiError> {
            let cx = $crate::api::crud::Cx::new(&state, &who);
            <$r as $crate::api::crud::Creatable>::create(cx, body).await
        }
    };
    (@list $r:ty, $view:ident, $tag:literal, ($id:literal, $path:literal)) => {
        $crate::api::crud::handlers!(@list $r, $view, $tag, ($id, $path, params(
            ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
            ("after" = Option<String>, Query, description = "cursor from `next`"))));
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
            $crate::api::crud::list::<$r>($crate::api::crud::Cx::new(&state, &who), page).await
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
            $crate::api::crud::read::<$r>($crate::api::crud::Cx::new(&state, &who), id).await
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
            $crate::api::crud::update::<$r>($crate::api::crud::Cx::new(&state, &who), id, headers, body).await
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
            $crate::api::crud::remove::<$r>($crate::api::crud::Cx::new(&state, &who), id, headers).await
        }
    };
}
pub(crate) use handlers;
