//! Facebook's Graph API (providers.md 3).

use super::*;

fn graph_error(message: &str, kind: &str, code: u32, subcode: Option<u32>) -> Reply {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "ASimulatedTrace",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    Reply::json(400, json!({ "error": error }))
}

/// The Graph API for one app and its pages: `GET /v21.0/{page}` with
/// `access_token` (a page's token) and `appsecret_proof` (hex HMAC-SHA256 of
/// the token keyed with the app secret) answers `{"id","name"}`.
pub fn graph(app_secret: &str, pages: &[(&str, &str, &str)]) -> Simulator {
    let secret = app_secret.to_owned();
    let pages: Vec<(String, String, String)> = pages
        .iter()
        .map(|(id, token, name)| (id.to_string(), token.to_string(), name.to_string()))
        .collect();
    Simulator::start(move |request| {
        let Some(token) = request.query_value("access_token") else {
            return graph_error(
                "An active access token must be used to query information about the current user.",
                "OAuthException",
                2500,
                None,
            );
        };
        let Some((token_page, _, _)) = pages.iter().find(|(_, known, _)| *known == token) else {
            return graph_error(
                "Invalid OAuth access token - Cannot parse access token",
                "OAuthException",
                190,
                None,
            );
        };
        let mut mac = hmac_sha256(secret.as_bytes());
        mac.update(token.as_bytes());
        let proof_matches = request
            .query_value("appsecret_proof")
            .and_then(|proof| hex_decode(&proof))
            .is_some_and(|proof| mac.verify_slice(&proof).is_ok());
        if !proof_matches {
            return graph_error(
                "Invalid appsecret_proof provided in the API argument",
                "GraphMethodException",
                100,
                None,
            );
        }
        let requested = request.path.strip_prefix("/v21.0/").unwrap_or("");
        match pages.iter().find(|(id, _, _)| id == requested) {
            Some((id, _, name)) if request.method == "GET" && id == token_page => {
                Reply::json(200, json!({"id": id, "name": name}))
            }
            _ => graph_error(
                &format!(
                    "Unsupported get request. Object with ID '{requested}' does not exist, \
                     cannot be loaded due to missing permissions, or does not support this \
                     operation."
                ),
                "GraphMethodException",
                100,
                Some(33),
            ),
        }
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [_, _] => u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}
