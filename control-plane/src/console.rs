//! The read-only web console: static files embedded in the binary, served at `/console`.
//!
//! The page holds no data, so it is served without a token; it asks the user for an admin
//! token (kept in the tab's `sessionStorage`) and reads everything from the admin API on the
//! same origin with it, so a team-scoped token sees exactly what the API shows it. The files
//! (`control-plane/console/`: HTML, CSS and vanilla JavaScript modules, no build step, no
//! framework) are compiled in with `include_str!`: nothing is fetched from anywhere else at
//! run time, and the Content-Security-Policy says so to the browser (`default-src 'self'`: no
//! inline script or style, no other origin).

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};

use crate::api::ApiError;

/// Every console response's policy: only this origin's files and API, never framed.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../console/index.html");

/// The files under `/console/`: name, content type, contents.
const FILES: [(&str, &str, &str); 9] = [
    ("console.css", CSS, include_str!("../console/console.css")),
    ("app.js", JS, include_str!("../console/app.js")),
    ("api.js", JS, include_str!("../console/api.js")),
    ("dom.js", JS, include_str!("../console/dom.js")),
    ("requests.js", JS, include_str!("../console/requests.js")),
    ("detail.js", JS, include_str!("../console/detail.js")),
    ("spend.js", JS, include_str!("../console/spend.js")),
    ("budgets.js", JS, include_str!("../console/budgets.js")),
    ("fleet.js", JS, include_str!("../console/fleet.js")),
];
const ICON: &str = include_str!("../console/favicon.svg");

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// `/console`, `/console/` (the page) and `/console/{file}` (its assets).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { page(HTML, INDEX) }))
        .route("/console/", get(|| async { page(HTML, INDEX) }))
        .route("/console/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    if file == "favicon.svg" {
        return page("image/svg+xml", ICON);
    }
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => page(kind, body),
        None => ApiError::NotFound("console file".into()).into_response(),
    }
}

fn page(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, kind),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Small files; a new release's are picked up at once.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_loaded_by_the_page_and_none_fetches_elsewhere_or_parses_markup() {
        let mut sources = vec![INDEX];
        sources.extend(FILES.iter().map(|(_, _, body)| *body));
        for text in &sources {
            // The SVG namespace is a name, not something fetched.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for needle in [
                "http://",
                "https://",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "style=",
            ] {
                assert!(!text.contains(needle), "`{needle}` in a console file");
            }
        }
        for (name, _, _) in FILES {
            let imported = sources.iter().any(|s| {
                s.contains(&format!("\"/console/{name}\"")) || s.contains(&format!("'./{name}'"))
            });
            assert!(imported, "{name} is served but nothing loads it");
        }
    }
}
