//! `allowed_outbound_hosts`, parsed and matched the way Spin does.
//!
//! An entry is `<scheme>://<host>[:<port>]`: the scheme is required (`*` for
//! any), the host may be `*` or `*.domain` (any subdomain, at any depth, not
//! the domain itself), the port a number, `*` or a half-open range `a..b`;
//! without a port the scheme's default applies. Entries may be `{{ var }}`
//! templates; one that expands to nothing (or a bare `http://`) is skipped.

use crate::variables::AppVariables;
use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Subdomains(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` for `*://`.
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "redis" => 6379,
        "postgres" => 5432,
        "mysql" => 3306,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let Some((scheme, rest)) = entry.split_once("://") else {
            bail!("{entry:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        if scheme.is_empty() || !(scheme == "*" || scheme.chars().all(|c| c.is_ascii_alphabetic()))
        {
            bail!("{entry:?} has an invalid scheme");
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            bail!("{entry:?} must not contain a path");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                (host, Some(port))
            }
            _ => (authority, None),
        };
        if host.is_empty() {
            bail!("{entry:?} has no host");
        }
        let host = match host {
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Subdomains(h[2..].to_ascii_lowercase()),
            h if h.contains('*') => {
                bail!("{entry:?}: '*' may only stand for a whole host or leading labels")
            }
            h => HostPattern::Exact(h.to_ascii_lowercase()),
        };
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(p) => match p.split_once("..") {
                Some((start, end)) => PortPattern::Range(
                    start
                        .parse()
                        .with_context(|| format!("{entry:?}: bad port range"))?,
                    end.parse()
                        .with_context(|| format!("{entry:?}: bad port range"))?,
                ),
                None => {
                    let port: u16 = p.parse().with_context(|| format!("{entry:?}: bad port"))?;
                    PortPattern::Range(port, port + 1)
                }
            },
            None => match default_port(scheme) {
                Some(port) => PortPattern::Range(port, port + 1),
                None => bail!("{entry:?}: scheme {scheme:?} has no default port; add one"),
            },
        };
        Ok(AllowedHost {
            scheme: (scheme != "*").then(|| scheme.to_ascii_lowercase()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(start, end) => (start..end).contains(&port),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// One component's allowed destinations.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl AllowedHosts {
    pub fn parse(entries: &[String], variables: &AppVariables) -> Result<AllowedHosts> {
        let mut allowed = Vec::new();
        for entry in entries {
            let expanded = variables.expand(entry)?;
            if expanded.is_empty() || expanded == "http://" || expanded == "https://" {
                continue;
            }
            allowed.push(AllowedHost::parse(&expanded)?);
        }
        Ok(AllowedHosts(allowed))
    }

    /// `port` is the explicit port, or `None` for the scheme's default.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.0.iter().any(|a| a.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let vars = AppVariables::resolve(&BTreeMap::new(), &HashMap::new(), &|_| None).unwrap();
        AllowedHosts::parse(
            &entries.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &vars,
        )
        .unwrap()
    }

    #[test]
    fn exact_hosts_use_default_ports() {
        let h = hosts(&["https://api.twilio.com"]);
        assert!(h.allows("https", "api.twilio.com", None));
        assert!(h.allows("https", "API.twilio.com", Some(443)));
        assert!(!h.allows("https", "api.twilio.com", Some(8443)));
        assert!(!h.allows("http", "api.twilio.com", None));
        assert!(!h.allows("https", "evil.com", None));
    }

    #[test]
    fn wildcards_and_ranges() {
        let h = hosts(&[
            "http://*.spin.internal",
            "*://127.0.0.1:4000..4002",
            "http://localhost:*",
        ]);
        assert!(h.allows("http", "admin.spin.internal", None));
        assert!(h.allows("http", "a.b.spin.internal", None));
        assert!(!h.allows("http", "spin.internal", None));
        assert!(h.allows("https", "127.0.0.1", Some(4001)));
        assert!(!h.allows("https", "127.0.0.1", Some(4002)));
        assert!(h.allows("http", "localhost", Some(9)));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "api.twilio.com",
            "ftp://x",
            "http://x/path",
            "http://x:port",
            "*",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
