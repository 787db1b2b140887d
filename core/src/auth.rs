//! Tenancy and access (SPEC.md R-TEN): organisations, API keys and roles.
//!
//! An API key reads `sb_{org}_{key id}_{secret}`. Carrying the organisation
//! and key id in the token makes authentication one direct read of the key's
//! document (`org/{org}/api_key/{id}`), which holds only the SHA-256 of the
//! whole token (R-TEN-3): the token itself is shown once, at creation, and
//! never stored. A key of another organisation finds nothing under this
//! organisation's prefix, which is why foreign ids answer 404, never 403.

use crate::api::Request;
use crate::error::Error;
use crate::input::Word;
use crate::ports::{KeyValue, Randomness, Variables};
use crate::store;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Configures the organisation.
    Admin,
    /// Works conversations as one agent.
    Agent,
    /// Calls the outbound API only.
    Flow,
}

impl Word for Role {
    const ALL: &'static [Role] = &[Role::Admin, Role::Agent, Role::Flow];

    fn word(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Flow => "flow",
        }
    }
}

/// An API key as stored: never the token, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub token_sha256: String,
    /// The token's last four characters, to tell keys apart in listings.
    pub hint: String,
    pub created_at: Timestamp,
}

crate::document!(ApiKey, "api_key");

/// What an API key is, as the API shows it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ApiKey))]
pub struct ApiKeyView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    /// The agent an `agent` key acts as; absent for other roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<&'a str>,
    /// The token (`sb_{org}_{key id}_{secret}`) in the create response
    /// only: keep it, it is shown nowhere else. Masked afterwards
    /// (`****` and its last four characters).
    pub key: String,
    pub created_at: Timestamp,
}

impl ApiKey {
    /// Makes a new key; the returned token is the only copy there will be.
    pub fn issue(
        random: &dyn Randomness,
        org: &str,
        name: String,
        role: Role,
        agent_id: Option<String>,
        created_at: Timestamp,
    ) -> (ApiKey, String) {
        let id = random.id128();
        let token = format!("sb_{org}_{id}_{}", random.id128());
        let key = ApiKey {
            id,
            name,
            role,
            agent_id,
            token_sha256: sha256_hex(&token),
            hint: token[token.len() - 4..].to_owned(),
            created_at,
        };
        (key, token)
    }

    pub fn view(&self, token: Option<&str>) -> ApiKeyView<'_> {
        ApiKeyView {
            id: &self.id,
            name: &self.name,
            role: self.role,
            agent_id: self.agent_id.as_deref(),
            key: token.map_or_else(|| mask_hint(&self.hint), str::to_owned),
            created_at: self.created_at,
        }
    }
}

/// `****6549`: how every secret reads back (R-TEN-4).
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    // Short secrets show nothing of themselves.
    if chars.len() < 8 {
        return "****".into();
    }
    mask_hint(&chars[chars.len() - 4..].iter().collect::<String>())
}

fn mask_hint(hint: &str) -> String {
    format!("****{hint}")
}

pub fn sha256_hex(text: &str) -> String {
    crate::encoding::hex(&Sha256::digest(text.as_bytes()))
}

/// Equality that takes the same time wherever the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller behind a valid API key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: String,
    pub key_id: String,
    pub role: Role,
    pub agent_id: Option<String>,
}

impl Principal {
    /// 403 unless the key has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Error> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|role| role.word()).collect();
        Err(Error::forbidden(
            "forbidden",
            format!("this route needs a key with role {}", names.join(" or ")),
        ))
    }
}

fn unauthorized(message: &str) -> Error {
    Error::Unauthorized(message.into())
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Finds the organisation and role of the request's API key (one read).
pub fn authenticate(request: &Request, kv: &dyn KeyValue) -> Result<Principal, Error> {
    let token = bearer(request).ok_or_else(|| {
        unauthorized("send an API key as \"Authorization: Bearer sb_…\"; an admin creates keys with POST /api/keys")
    })?;
    let refused = || unauthorized("this API key is not valid: it was revoked or mistyped");
    let mut parts = token.splitn(4, '_');
    let (Some("sb"), Some(org), Some(key_id), Some(_)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    let key: ApiKey = store::load(kv, org, key_id)?.ok_or_else(refused)?;
    if !constant_time_eq(sha256_hex(token).as_bytes(), key.token_sha256.as_bytes()) {
        return Err(refused());
    }
    Ok(Principal {
        org: org.to_owned(),
        key_id: key.id,
        role: key.role,
        agent_id: key.agent_id,
    })
}

/// A bearer token of the app's own, set by whoever runs it as a Spin
/// variable. Each opens one door: a scheduler holds the token that sends
/// due jobs, not the one that creates organisations.
struct AppToken {
    variable: &'static str,
    /// What the token opens, as messages name it.
    opens: &'static str,
    /// The code of the 403 while the variable is empty.
    closed: &'static str,
}

/// The Spin variables holding the operator's and the scheduler's tokens.
pub const OPERATOR_TOKEN_VARIABLE: &str = "admin_token";
pub const DISPATCH_TOKEN_VARIABLE: &str = "dispatch_token";

/// Creates organisations (R-TEN-2).
const OPERATOR: AppToken = AppToken {
    variable: OPERATOR_TOKEN_VARIABLE,
    opens: "the operator API",
    closed: "operator_api_disabled",
};

/// Runs `POST /api/outbound/dispatch`, and nothing else.
const DISPATCHER: AppToken = AppToken {
    variable: DISPATCH_TOKEN_VARIABLE,
    opens: "the dispatch of scheduled jobs",
    closed: "dispatch_disabled",
};

/// Checks the operator token (Spin variable `admin_token`, R-TEN-2).
pub fn require_operator(request: &Request, variables: &dyn Variables) -> Result<(), Error> {
    require_token(&OPERATOR, request, variables)
}

/// Checks the scheduler's token (Spin variable `dispatch_token`).
pub fn require_dispatcher(request: &Request, variables: &dyn Variables) -> Result<(), Error> {
    require_token(&DISPATCHER, request, variables)
}

/// An empty variable keeps the door closed: there is no default credential.
fn require_token(
    token: &AppToken,
    request: &Request,
    variables: &dyn Variables,
) -> Result<(), Error> {
    let AppToken {
        variable,
        opens,
        closed,
    } = token;
    let expected = variables.get(variable).unwrap_or_default();
    if expected.is_empty() {
        return Err(Error::forbidden(
            closed,
            format!("{opens} is off: set the Spin variable {variable} (SPIN_VARIABLE_{}) to a secret and send it as \"Authorization: Bearer <token>\"", variable.to_ascii_uppercase())),
        );
    }
    match bearer(request) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(unauthorized(&format!("{opens} needs the token in the Spin variable {variable} as \"Authorization: Bearer <token>\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Method;
    use crate::memory::{MapVariables, MemoryKeyValue, SeededRandomness};

    fn with_bearer(token: &str) -> Request {
        let mut request = Request::new(Method::Get, "/api/queues");
        request
            .headers
            .push(("authorization".into(), format!("Bearer {token}")));
        request
    }

    #[test]
    fn a_key_authenticates_by_its_hash_only() {
        let kv = MemoryKeyValue::default();
        let org = "0".repeat(32);
        let (key, token) = ApiKey::issue(
            &SeededRandomness::new(1),
            &org,
            "ci".into(),
            Role::Flow,
            None,
            Timestamp::from_millis(0),
        );
        assert!(!crate::store::encode(&key)
            .windows(token.len())
            .any(|w| w == token.as_bytes()));
        store::insert(&kv, &org, &key, vec![]).unwrap();
        let principal = authenticate(&with_bearer(&token), &kv).unwrap();
        assert_eq!(
            (principal.org.as_str(), principal.role),
            (org.as_str(), Role::Flow)
        );
        let mut forged = token.clone();
        forged.pop();
        forged.push('x');
        assert_eq!(
            authenticate(&with_bearer(&forged), &kv)
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            authenticate(&Request::new(Method::Get, "/"), &kv)
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(principal.require(&[Role::Admin]).unwrap_err().status(), 403);
    }

    #[test]
    fn the_operator_api_is_closed_without_a_token() {
        let unset = MapVariables::default();
        assert_eq!(
            require_operator(&with_bearer(""), &unset)
                .unwrap_err()
                .code(),
            "operator_api_disabled"
        );
        let set = MapVariables::from([("admin_token", "s3cret")]);
        assert!(require_operator(&with_bearer("s3cret"), &set).is_ok());
        assert_eq!(
            require_operator(&with_bearer("s3cre"), &set)
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn the_dispatch_token_and_the_operator_token_open_one_door_each() {
        let both = MapVariables::from([("admin_token", "operator"), ("dispatch_token", "cron")]);
        assert!(require_dispatcher(&with_bearer("cron"), &both).is_ok());
        assert!(require_operator(&with_bearer("operator"), &both).is_ok());
        let refused = require_dispatcher(&with_bearer("operator"), &both).unwrap_err();
        assert_eq!(refused.status(), 401);
        assert!(
            refused.message().contains("dispatch_token"),
            "{}",
            refused.message()
        );
        assert_eq!(
            require_operator(&with_bearer("cron"), &both)
                .unwrap_err()
                .status(),
            401
        );
        let closed = MapVariables::from([("admin_token", "operator")]);
        let refused = require_dispatcher(&with_bearer("operator"), &closed).unwrap_err();
        assert_eq!(
            (refused.status(), refused.code()),
            (403, "dispatch_disabled")
        );
        assert!(refused.message().contains("SPIN_VARIABLE_DISPATCH_TOKEN"));
    }

    #[test]
    fn masks_show_at_most_the_last_four_characters() {
        assert_eq!(mask("14252306549"), "****6549");
        assert_eq!(mask("short"), "****");
    }
}
