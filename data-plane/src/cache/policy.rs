//! Which cache policy a request takes, and what the client's headers allow.
//!
//! The most specific policy wins: one naming the request's key (id or name), else its route
//! (the alias asked for), else its team, else one naming nothing; ties go to the first in the
//! snapshot. No policy: nothing is cached. A disabled policy caches nothing, and still shadows
//! less specific ones (a key can opt out of its team's cache).

use http::HeaderMap;

use crate::snapshot::KeyPolicy;

/// `x-switchyard-cache`: the request header (`off` bypasses the cache) and the response header
/// (`hit`, `miss` or `bypass`).
pub const CACHE_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-cache");

/// What the client's headers allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Look up, and store a miss.
    Normal,
    /// `Cache-Control: no-cache`: do not answer from the cache, but store the answer.
    NoLookup,
    /// `Cache-Control: no-store` or `x-switchyard-cache: off`: neither.
    Bypass,
}

/// The client's cache control.
pub fn control(headers: &HeaderMap) -> Control {
    let off = headers.get_all(CACHE_HEADER).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("off"))
    });
    let mut directives = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase());
    let (mut no_store, mut no_cache) = (off, false);
    for d in directives.by_ref() {
        no_store |= d == "no-store";
        no_cache |= d == "no-cache";
    }
    if no_store {
        Control::Bypass
    } else if no_cache {
        Control::NoLookup
    } else {
        Control::Normal
    }
}

/// The policy `key` asking for `route` takes, if any.
pub fn select<'p>(
    policies: &'p [proto::CachePolicy],
    key: &KeyPolicy,
    route: &str,
) -> Option<&'p proto::CachePolicy> {
    let names_key = |p: &&proto::CachePolicy| {
        p.applies_to
            .keys
            .iter()
            .any(|k| Some(k) == key.id.as_ref() || *k == key.name)
    };
    let names_route = |p: &&proto::CachePolicy| p.applies_to.routes.iter().any(|r| r == route);
    let names_team = |p: &&proto::CachePolicy| {
        key.team
            .as_ref()
            .is_some_and(|team| p.applies_to.teams.contains(team))
    };
    let everything = |p: &&proto::CachePolicy| p.applies_to.is_empty();
    // A team's own policy never reaches another team's requests.
    let owned = |p: &&proto::CachePolicy| p.team.is_none() || p.team == key.team;
    let usable = || policies.iter().filter(owned);
    usable()
        .find(names_key)
        .or_else(|| usable().find(names_route))
        .or_else(|| usable().find(names_team))
        .or_else(|| usable().find(everything))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn client_headers_map_to_a_control() {
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            control(&h)
        };
        assert_eq!(with(&[]), Control::Normal);
        assert_eq!(with(&[("cache-control", "no-cache")]), Control::NoLookup);
        assert_eq!(
            with(&[("cache-control", "max-age=0, No-Store")]),
            Control::Bypass
        );
        assert_eq!(
            with(&[("cache-control", "no-cache"), ("cache-control", "no-store")]),
            Control::Bypass
        );
        assert_eq!(with(&[("x-switchyard-cache", "OFF")]), Control::Bypass);
        assert_eq!(with(&[("x-switchyard-cache", "on")]), Control::Normal);
    }
}
