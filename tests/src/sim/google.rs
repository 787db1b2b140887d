//! Google's OAuth token endpoint (providers.md 4.4).

use super::*;

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(
        400,
        json!({"error": error, "error_description": description}),
    )
}

/// Checks a service-account JWT as Google's token endpoint does: RS256
/// signature by the account's key, `iss`, `aud`, a scope, and a lifetime of
/// at most an hour. `iat` is not compared with a clock: tests move the app's.
fn verify_assertion(
    assertion: &str,
    public_key: &RsaPublicKey,
    client_email: &str,
    audience: &str,
) -> Result<(), Reply> {
    let malformed = || oauth_error("invalid_grant", "Invalid JWT: malformed token.");
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(malformed());
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (header_json, claims) = (
        decode(header).ok_or_else(malformed)?,
        decode(claims).ok_or_else(malformed)?,
    );
    if header_json["alg"] != "RS256" {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: unsupported algorithm.",
        ));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    let signed = assertion.rsplit_once('.').map_or("", |(signed, _)| signed);
    let digest = Sha256::digest(signed.as_bytes());
    if public_key
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &signature)
        .is_err()
    {
        return Err(oauth_error("invalid_grant", "Invalid JWT Signature."));
    }
    if claims["iss"] != client_email {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid grant: account not found",
        ));
    }
    if claims["aud"] != audience {
        return Err(oauth_error(
            "invalid_grant",
            &format!("Invalid JWT: Failed audience check. The expected audience is {audience}."),
        ));
    }
    if claims["scope"].as_str().is_none_or(str::is_empty) {
        return Err(oauth_error(
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 3600 => Ok(()),
        _ => Err(oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        )),
    }
}

/// Google's OAuth token endpoint for one service account: `POST /token` with
/// form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`,
/// whose `aud` must be this simulator's own `{base}/token`.
pub fn google_oauth(client_email: &str, public_key_pem: &str) -> Simulator {
    let client_email = client_email.to_owned();
    let public_key =
        RsaPublicKey::from_public_key_pem(public_key_pem).expect("an SPKI PEM public key");
    let issued = AtomicU64::new(0);
    Simulator::start_knowing_base(move |base| {
        let audience = format!("{base}/token");
        move |request| {
            if request.method != "POST" || request.path != "/token" {
                return Reply::json(
                    404,
                    json!({"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}),
                );
            }
            let grant_type = request.form_value("grant_type").unwrap_or_default();
            if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
                return oauth_error(
                    "unsupported_grant_type",
                    &format!("Invalid grant_type: {grant_type}"),
                );
            }
            let assertion = request.form_value("assertion").unwrap_or_default();
            if let Err(refusal) =
                verify_assertion(&assertion, &public_key, &client_email, &audience)
            {
                return refusal;
            }
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            Reply::json(
                200,
                json!({
                    "access_token": format!("ya29.test-{n}"),
                    "expires_in": 3599,
                    "token_type": "Bearer",
                }),
            )
        }
    })
}
