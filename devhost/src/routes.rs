//! Spin's HTTP router and the `spin-*` request headers.
//!
//! Precedence follows Spin's router (routefinder): routes are compared
//! segment by segment, an exact segment beats a `:name` segment which beats
//! the trailing wildcard (`/...`); then the route with more dots, then the one
//! with fewer segments wins. So `/a/b/...` beats `/a/:x/c` for `/a/b/c`, and
//! `/a` beats `/a/...` for `/a`. Matching uses the raw path, case-sensitively,
//! ignoring leading and trailing slashes.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    Param(String),
    Wildcard,
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Exact(_) => 2,
            Segment::Param(_) => 1,
            Segment::Wildcard => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// The route exactly as written in the manifest.
    pub raw: String,
    pub component: String,
    segments: Vec<Segment>,
}

impl Route {
    pub fn parse(raw: &str, component: &str) -> Route {
        let trimmed = raw.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let last = parts.len().saturating_sub(1);
        let segments = parts
            .iter()
            .enumerate()
            .map(|(i, part)| match *part {
                "..." | "*" if i == last => Segment::Wildcard,
                p if p.starts_with(':') && p.len() > 1 => Segment::Param(p[1..].to_owned()),
                p => Segment::Exact(p.to_owned()),
            })
            .collect();
        Route {
            raw: raw.to_owned(),
            component: component.to_owned(),
            segments,
        }
    }

    /// Spin's normalised form: one leading slash, no single trailing slash.
    fn sanitized(&self) -> String {
        let with_slash = if self.raw.starts_with('/') {
            self.raw.clone()
        } else {
            format!("/{}", self.raw)
        };
        match with_slash.strip_suffix('/') {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => with_slash,
        }
    }

    fn dots(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Exact(e) => e.matches('.').count(),
                _ => 0,
            })
            .sum()
    }

    /// Spin's precedence: `Less` means `self` is tried first.
    fn precedence(&self, other: &Route) -> Ordering {
        self.segments
            .iter()
            .zip(&other.segments)
            .map(|(mine, theirs)| theirs.rank().cmp(&mine.rank()))
            .chain(std::iter::once_with(|| other.dots().cmp(&self.dots())))
            .chain(std::iter::once_with(|| {
                self.segments.len().cmp(&other.segments.len())
            }))
            .find(|c| *c != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    }

    /// Matches a request path; on success returns the named segments and the
    /// number of path segments the non-wildcard part consumed.
    fn matches<'p>(&self, path: &[&'p str]) -> Option<(Vec<(String, &'p str)>, usize)> {
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Wildcard => return Some((params, i)),
                Segment::Exact(e) => {
                    if path.get(i) != Some(&e.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => match path.get(i) {
                    Some(value) if !value.is_empty() => params.push((name.clone(), *value)),
                    _ => return None,
                },
            }
        }
        (path.len() == self.segments.len()).then_some((params, path.len()))
    }

    fn is_wildcard(&self) -> bool {
        self.segments.last() == Some(&Segment::Wildcard)
    }
}

/// A routed request: the component and the `spin-*` headers it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    pub headers: Vec<(String, String)>,
}

/// What Spin tells a component about the request, besides its own headers.
pub struct RequestFacts<'a> {
    /// Raw path, without the query.
    pub path: &'a str,
    /// `path?query` as received.
    pub path_and_query: &'a str,
    /// The Host header, if any (`localhost` is used otherwise, like Spin).
    pub host: Option<&'a str>,
    pub client_addr: &'a str,
}

#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Routes shadowed by a later duplicate, for start-up warnings.
    pub duplicates: Vec<(Route, Route)>,
}

impl Router {
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Router {
        let mut router = Router::default();
        for route in routes {
            // Spin keeps the last of several identical routes.
            if let Some(existing) = router
                .routes
                .iter_mut()
                .find(|r| r.sanitized() == route.sanitized())
            {
                let replaced = std::mem::replace(existing, route.clone());
                router.duplicates.push((replaced, route));
            } else {
                router.routes.push(route);
            }
        }
        router.routes.sort_by(|a, b| a.precedence(b));
        router
    }

    pub fn route(&self, facts: &RequestFacts) -> Option<RouteMatch> {
        let trimmed = facts.path.trim_matches('/');
        let path: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        self.routes.iter().find_map(|route| {
            let (params, consumed) = route.matches(&path)?;
            let path_info = if route.is_wildcard() {
                path_info(facts.path, consumed)
            } else {
                String::new()
            };
            let mut headers = base_headers(route, facts, path_info);
            headers.extend(params.into_iter().map(|(name, value)| {
                (
                    format!(
                        "spin-path-match-{}",
                        name.to_ascii_lowercase().replace('_', "-")
                    ),
                    value.to_owned(),
                )
            }));
            Some(RouteMatch {
                component: route.component.clone(),
                headers,
            })
        })
    }
}

/// The raw path after the first `consumed` segments (leading slashes skipped),
/// keeping a trailing slash; empty when nothing is left.
fn path_info(path: &str, consumed: usize) -> String {
    let mut rest = path.trim_start_matches('/');
    for _ in 0..consumed {
        rest = match rest.find('/') {
            Some(i) => &rest[i + 1..],
            None => "",
        };
    }
    if rest.is_empty() {
        // A path with a trailing slash right after the prefix keeps it.
        if consumed > 0 && path.len() > 1 && path.ends_with('/') {
            "/".to_owned()
        } else {
            String::new()
        }
    } else {
        format!("/{rest}")
    }
}

fn base_headers(route: &Route, facts: &RequestFacts, path_info: String) -> Vec<(String, String)> {
    let sanitized = route.sanitized();
    let matched = if sanitized == "/" {
        String::new()
    } else {
        sanitized
    };
    let component_route = route
        .raw
        .strip_suffix("/...")
        .or_else(|| route.raw.strip_suffix("/*"))
        .unwrap_or(&route.raw)
        .to_owned();
    vec![
        (
            "spin-full-url".into(),
            format!(
                "http://{}{}",
                facts.host.unwrap_or("localhost"),
                facts.path_and_query
            ),
        ),
        ("spin-path-info".into(), path_info),
        ("spin-matched-route".into(), matched),
        ("spin-raw-component-route".into(), route.raw.clone()),
        ("spin-component-route".into(), component_route),
        ("spin-base-path".into(), "/".into()),
        ("spin-client-addr".into(), facts.client_addr.to_owned()),
    ]
}

/// The headers of a service-chained request: Spin routes it through a
/// synthetic `/...` route from client address `0.0.0.0:0`.
pub fn chained_headers(path: &str, path_and_query: &str) -> Vec<(String, String)> {
    let facts = RequestFacts {
        path,
        path_and_query,
        host: None,
        client_addr: "0.0.0.0:0",
    };
    let route = Route::parse("/...", "");
    base_headers(&route, &facts, path_info(path, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(routes.iter().map(|(r, c)| Route::parse(r, c)))
    }

    fn facts(path: &str) -> RequestFacts<'_> {
        RequestFacts {
            path,
            path_and_query: path,
            host: Some("localhost:3000"),
            client_addr: "127.0.0.1:5000",
        }
    }

    fn component(router: &Router, path: &str) -> Option<String> {
        router.route(&facts(path)).map(|m| m.component)
    }

    fn header(m: &RouteMatch, name: &str) -> String {
        m.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no header {name}"))
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router(&[
            ("/...", "catchall"),
            ("/a/...", "a-wild"),
            ("/a", "a-exact"),
            ("/a/:x/c", "a-param"),
            ("/a/b/...", "ab-wild"),
        ]);
        assert_eq!(component(&r, "/a").as_deref(), Some("a-exact"));
        assert_eq!(component(&r, "/a/").as_deref(), Some("a-exact"));
        assert_eq!(component(&r, "/a/z").as_deref(), Some("a-wild"));
        assert_eq!(component(&r, "/a/b/c").as_deref(), Some("ab-wild"));
        assert_eq!(component(&r, "/a/z/c").as_deref(), Some("a-param"));
        assert_eq!(component(&r, "/zzz").as_deref(), Some("catchall"));
        assert_eq!(component(&r, "/").as_deref(), Some("catchall"));
    }

    #[test]
    fn unmatched_and_case_sensitive() {
        let r = router(&[("/health", "admin"), ("/users/:id", "users")]);
        assert_eq!(component(&r, "/Health"), None);
        assert_eq!(component(&r, "/users"), None);
        assert_eq!(component(&r, "/users/1/2"), None);
        assert_eq!(component(&r, "/users/1").as_deref(), Some("users"));
    }

    #[test]
    fn the_last_duplicate_wins() {
        let r = router(&[("/x", "first"), ("/x/", "second")]);
        assert_eq!(component(&r, "/x").as_deref(), Some("second"));
        assert_eq!(r.duplicates.len(), 1);
    }

    #[test]
    fn wildcard_headers() {
        let r = router(&[("/api/...", "api")]);
        let m = r
            .route(&RequestFacts {
                path: "/api/orgs/x",
                path_and_query: "/api/orgs/x?y=1",
                host: Some("localhost:3000"),
                client_addr: "127.0.0.1:5000",
            })
            .unwrap();
        assert_eq!(
            header(&m, "spin-full-url"),
            "http://localhost:3000/api/orgs/x?y=1"
        );
        assert_eq!(header(&m, "spin-path-info"), "/orgs/x");
        assert_eq!(header(&m, "spin-matched-route"), "/api/...");
        assert_eq!(header(&m, "spin-raw-component-route"), "/api/...");
        assert_eq!(header(&m, "spin-component-route"), "/api");
        assert_eq!(header(&m, "spin-base-path"), "/");
        assert_eq!(header(&m, "spin-client-addr"), "127.0.0.1:5000");
        let at_prefix = r.route(&facts("/api")).unwrap();
        assert_eq!(header(&at_prefix, "spin-path-info"), "");
        let trailing = r.route(&facts("/api/orgs/")).unwrap();
        assert_eq!(header(&trailing, "spin-path-info"), "/orgs/");
    }

    #[test]
    fn named_segment_headers() {
        let r = router(&[("/users/:user_id/...", "users")]);
        let m = r.route(&facts("/users/42/books/7")).unwrap();
        assert_eq!(header(&m, "spin-path-match-user-id"), "42");
        assert_eq!(header(&m, "spin-path-info"), "/books/7");
        assert_eq!(header(&m, "spin-component-route"), "/users/:user_id");
    }

    #[test]
    fn chained_requests_see_a_catch_all_route() {
        let headers = chained_headers("/health", "/health?x=1");
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("spin-full-url"), "http://localhost/health?x=1");
        assert_eq!(get("spin-path-info"), "/health");
        assert_eq!(get("spin-matched-route"), "/...");
        assert_eq!(get("spin-component-route"), "");
        assert_eq!(get("spin-client-addr"), "0.0.0.0:0");
    }
}
