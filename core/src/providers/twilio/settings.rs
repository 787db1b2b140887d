//! A Twilio account's fields (R-CFG-1): the Account SID, the auth token
//! (write-only; it also signs the webhooks), the WhatsApp numbers, the SMS
//! numbers and the shared keys Twilio may sign the webhooks with instead
//! (providers.md 1.3b; each secret write-only too).
//!
//! A number carries one channel on an account: a conversation is the
//! thread between our number and the customer's, and Twilio's callbacks
//! name only the numbers, so one number on both channels would join a
//! customer's WhatsApp and SMS messages into one thread.

use crate::auth::mask;
use crate::channel::Channel;
use crate::error::Error;
use crate::input::Object;
use crate::phone::E164;
use crate::providers::fields::{no_whitespace, unique};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub account_sid: String,
    pub auth_token: String,
    /// The WhatsApp numbers (stored as `numbers`, as before SMS came).
    pub numbers: Vec<Number>,
    /// Absent from accounts saved before SMS over Twilio existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sms_numbers: Vec<Number>,
    /// Absent from accounts saved before shared keys existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_keys: Vec<SharedKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TwilioNumber))]
pub struct Number {
    pub name: String,
    /// `+` and the digits, E.164 (`+14155238886`).
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^\\+[0-9]+$"))]
    pub number: E164,
}

/// A key Twilio signs webhooks with instead of the auth token, named by
/// the request's `X-Twilio-Webhooks-Signature-Settings` header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TwilioSharedKey))]
pub struct SharedKey {
    /// The key's id as Twilio shows it (e.g. `SK` and 32 hex digits).
    pub id: String,
    /// Write-only: shown masked. A key already held keeps its secret when
    /// an update leaves the secret out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub secret: String,
}

/// A Twilio account's fields as `POST /api/accounts` takes them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TwilioAccountInput))]
pub struct Input {
    /// `AC` and 32 hex digits, from the Twilio console.
    pub account_sid: String,
    /// Write-only.
    pub auth_token: String,
    /// The WhatsApp numbers.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub numbers: Vec<Number>,
    /// The SMS numbers; a number carries one channel on an account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sms_numbers: Vec<Number>,
    /// Keys Twilio may sign webhooks with instead of the auth token (at
    /// most 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shared_keys: Vec<SharedKey>,
}

/// A Twilio account's fields as the API shows them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TwilioAccountView))]
pub struct View {
    pub account_sid: String,
    /// Masked: `****` and at most the last four characters.
    pub auth_token: String,
    /// The WhatsApp numbers.
    pub numbers: Vec<Number>,
    pub sms_numbers: Vec<Number>,
    /// Each secret masked.
    pub shared_keys: Vec<SharedKey>,
    /// Where Twilio posts the account's callbacks.
    pub callback_url: String,
}

/// How many shared keys an account holds: enough to rotate them, and a
/// bound on the record every webhook reads.
pub const MAX_SHARED_KEYS: usize = 10;

pub const FIELDS: &[&str] = &[
    "account_sid",
    "auth_token",
    "numbers",
    "sms_numbers",
    "shared_keys",
];

impl Settings {
    pub(super) fn read(input: &Object, existing: Option<&Settings>) -> Result<Settings, Error> {
        let numbers = read_numbers(input, "numbers")?;
        let sms_numbers = read_numbers(input, "sms_numbers")?;
        if let Some(both) = sms_numbers
            .iter()
            .find(|sms| numbers.iter().any(|n| n.number == sms.number))
        {
            return Err(input.error(
                "sms_numbers",
                "number_on_both_channels",
                format!("{} is also one of the WhatsApp numbers; a number carries one channel on an account, so give SMS its own number or use a second account", both.number),
            ));
        }
        Ok(Settings {
            account_sid: input.parsed("account_sid", account_sid)?,
            auth_token: input.parsed("auth_token", no_whitespace("auth token"))?,
            numbers,
            sms_numbers,
            shared_keys: read_shared_keys(input, existing)?,
        })
    }

    pub(super) fn input(&self) -> Input {
        Input {
            account_sid: self.account_sid.clone(),
            auth_token: self.auth_token.clone(),
            numbers: self.numbers.clone(),
            sms_numbers: self.sms_numbers.clone(),
            shared_keys: self.shared_keys.clone(),
        }
    }

    pub(super) fn view(&self, callback_url: &str) -> View {
        View {
            account_sid: self.account_sid.clone(),
            auth_token: mask(&self.auth_token),
            numbers: self.numbers.clone(),
            sms_numbers: self.sms_numbers.clone(),
            shared_keys: self
                .shared_keys
                .iter()
                .map(|key| SharedKey {
                    id: key.id.clone(),
                    secret: mask(&key.secret),
                })
                .collect(),
            callback_url: callback_url.to_owned(),
        }
    }

    pub(super) fn addresses(&self) -> Vec<&str> {
        self.numbers
            .iter()
            .chain(&self.sms_numbers)
            .map(|n| n.number.as_str())
            .collect()
    }

    pub(super) fn channel_at(&self, address: &str) -> Option<Channel> {
        let on = |numbers: &[Number]| numbers.iter().any(|n| n.number.as_str() == address);
        if on(&self.numbers) {
            Some(Channel::Whatsapp)
        } else if on(&self.sms_numbers) {
            Some(Channel::Sms)
        } else {
            None
        }
    }
}

/// The numbers of the list `field` (absent: none), each named.
fn read_numbers(input: &Object, field: &str) -> Result<Vec<Number>, Error> {
    let numbers = input.objects(field, |n| {
        n.only(&["name", "number"])?;
        Ok(Number {
            name: n.name("name", 100)?,
            number: n.parsed("number", E164::parse)?,
        })
    })?;
    unique(input, field, numbers.iter().map(|n| n.number.as_str()))?;
    Ok(numbers)
}

/// The shared keys of `input`; a key the account already holds keeps its
/// secret when the input leaves the secret out, as a PATCH does with the
/// masked secrets it read.
fn read_shared_keys(input: &Object, existing: Option<&Settings>) -> Result<Vec<SharedKey>, Error> {
    let before = existing.map_or(&[][..], |e| e.shared_keys.as_slice());
    let keys = input.objects("shared_keys", |key| {
        key.only(&["id", "secret"])?;
        let id = key.parsed("id", shared_key_id)?;
        let secret = match key.optional_parsed("secret", no_whitespace("shared key's secret"))? {
            Some(secret) => secret,
            None => match before.iter().find(|b| b.id == id) {
                Some(before) => before.secret.clone(),
                None => return Err(key.missing("secret")),
            },
        };
        Ok(SharedKey { id, secret })
    })?;
    if keys.len() > MAX_SHARED_KEYS {
        return Err(input.error(
            "shared_keys",
            "too_many",
            format!("an account holds at most {MAX_SHARED_KEYS} shared keys; remove the ones Twilio no longer signs with"),
        ));
    }
    unique(input, "shared_keys", keys.iter().map(|k| k.id.as_str()))?;
    Ok(keys)
}

/// A shared key's id as the signature-settings header names it
/// (`key=<id>`). Twilio's documents show more than one form of these ids,
/// so any token that header can carry is taken: it only has to match.
fn shared_key_id(text: &str) -> Result<String, String> {
    let token = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if token && (1..=128).contains(&text.len()) {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a Twilio shared key id: paste the key's id as Twilio shows it (letters, digits, _, - and ., no spaces)"))
    }
}

/// A Twilio Account SID: `AC` and 32 hex digits.
fn account_sid(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("AC").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a Twilio Account SID: it is AC followed by 32 hex digits, as shown on the Twilio console"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const KEY_ID: &str = "SK0123456789abcdef0123456789abcdef";
    const OTHER_ID: &str = "SKfedcba9876543210fedcba9876543210";

    fn read(body: Value, existing: Option<&Settings>) -> Result<Settings, Error> {
        let mut input = json!({
            "account_sid": "AC00000000000000000000000000000000",
            "auth_token": "0123456789abcdef0123456789abcdef",
            "numbers": [],
        });
        input
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        Settings::read(&Object::root(input.as_object().unwrap()), existing)
    }

    #[test]
    fn a_shared_key_id_is_any_token_the_header_can_name() {
        for id in [KEY_ID, "webhooks_sharedkey_0a1b2c", "key-1.v2"] {
            assert_eq!(shared_key_id(id).as_deref(), Ok(id));
        }
        for id in ["", "a,b", "key=1", "with space"] {
            assert!(shared_key_id(id).is_err(), "{id:?} accepted");
        }
    }

    fn refusal(body: Value, existing: Option<&Settings>) -> (String, &'static str) {
        let error = read(body, existing).expect_err("refused");
        assert_eq!(error.status(), 422, "{error:?}");
        (error.field().unwrap_or_default().to_owned(), error.code())
    }

    #[test]
    fn shared_keys_are_kept_and_shown_masked() {
        let settings = read(
            json!({"shared_keys": [{"id": KEY_ID, "secret": "a-shared-key-secret-1234"}]}),
            None,
        )
        .unwrap();
        assert_eq!(settings.shared_keys.len(), 1);
        assert_eq!(settings.shared_keys[0].secret, "a-shared-key-secret-1234");
        let view = serde_json::to_value(settings.view("https://cb")).unwrap();
        assert_eq!(
            view["shared_keys"],
            json!([{"id": KEY_ID, "secret": "****1234"}])
        );
        assert!(!view.to_string().contains("a-shared-key-secret"));
        // None is none: an empty list, and nothing stored.
        let none = read(json!({}), None).unwrap();
        assert_eq!(
            serde_json::to_value(none.view("https://cb")).unwrap()["shared_keys"],
            json!([])
        );
        assert!(serde_json::to_value(&none)
            .unwrap()
            .get("shared_keys")
            .is_none());
    }

    #[test]
    fn a_key_sent_without_its_secret_keeps_the_one_it_had() {
        let existing = read(
            json!({"shared_keys": [{"id": KEY_ID, "secret": "first-secret"}]}),
            None,
        )
        .unwrap();
        let kept = read(
            json!({"shared_keys": [{"id": KEY_ID}, {"id": OTHER_ID, "secret": "second-secret"}]}),
            Some(&existing),
        )
        .unwrap();
        let secrets: Vec<(&str, &str)> = kept
            .shared_keys
            .iter()
            .map(|k| (k.id.as_str(), k.secret.as_str()))
            .collect();
        assert_eq!(
            secrets,
            [(KEY_ID, "first-secret"), (OTHER_ID, "second-secret")]
        );
        let rotated = read(
            json!({"shared_keys": [{"id": KEY_ID, "secret": "rotated"}]}),
            Some(&existing),
        )
        .unwrap();
        assert_eq!(rotated.shared_keys[0].secret, "rotated");
        // A new key needs its secret.
        assert_eq!(
            refusal(json!({"shared_keys": [{"id": OTHER_ID}]}), Some(&existing)),
            ("shared_keys[0].secret".to_owned(), "required")
        );
    }

    #[test]
    fn shared_keys_are_refused_by_field() {
        for id in ["SK01,SK02", "key=SK01", "SK 01"] {
            assert_eq!(
                refusal(json!({"shared_keys": [{"id": id, "secret": "s"}]}), None),
                ("shared_keys[0].id".to_owned(), "invalid_format"),
                "{id}"
            );
        }
        assert_eq!(
            refusal(json!({"shared_keys": [{"id": KEY_ID}]}), None),
            ("shared_keys[0].secret".to_owned(), "required")
        );
        assert_eq!(
            refusal(
                json!({"shared_keys": [{"id": KEY_ID, "secret": "has spaces"}]}),
                None
            )
            .1,
            "invalid_format"
        );
        assert_eq!(
            refusal(
                json!({"shared_keys": [{"id": KEY_ID, "secret": "s", "name": "x"}]}),
                None
            )
            .0,
            "shared_keys[0].name"
        );
        assert_eq!(
            refusal(
                json!({"shared_keys": [{"id": KEY_ID, "secret": "a"}, {"id": KEY_ID, "secret": "b"}]}),
                None
            ),
            ("shared_keys[1]".to_owned(), "duplicate")
        );
        let eleven: Vec<Value> = (0..=MAX_SHARED_KEYS)
            .map(|n| json!({"id": format!("SK{n:032x}"), "secret": "s"}))
            .collect();
        assert_eq!(
            refusal(json!({ "shared_keys": eleven }), None),
            ("shared_keys".to_owned(), "too_many")
        );
    }

    #[test]
    fn settings_stored_before_shared_keys_still_read() {
        let stored = json!({
            "account_sid": "AC00000000000000000000000000000000",
            "auth_token": "token",
            "numbers": [{"name": "Support", "number": "+14155238886"}],
        });
        let settings: Settings = serde_json::from_value(stored).unwrap();
        assert!(settings.shared_keys.is_empty());
    }

    #[test]
    fn sms_numbers_carry_sms_and_no_number_carries_both_channels() {
        let settings = read(
            json!({
                "numbers": [{"name": "WhatsApp", "number": "+14155238886"}],
                "sms_numbers": [{"name": "Texts", "number": "+14155550100"}],
            }),
            None,
        )
        .unwrap();
        assert_eq!(settings.channel_at("+14155238886"), Some(Channel::Whatsapp));
        assert_eq!(settings.channel_at("+14155550100"), Some(Channel::Sms));
        assert_eq!(settings.channel_at("+14155550199"), None);
        assert_eq!(settings.addresses(), ["+14155238886", "+14155550100"]);
        assert_eq!(
            serde_json::to_value(settings.view("https://cb")).unwrap()["sms_numbers"],
            json!([{"name": "Texts", "number": "+14155550100"}])
        );
        assert_eq!(
            refusal(
                json!({
                    "numbers": [{"name": "WhatsApp", "number": "+14155238886"}],
                    "sms_numbers": [{"name": "Texts", "number": "+14155238886"}],
                }),
                None
            ),
            ("sms_numbers".to_owned(), "number_on_both_channels")
        );
        assert_eq!(
            refusal(
                json!({"sms_numbers": [{"name": "Texts", "number": "14155550100"}]}),
                None
            )
            .1,
            "invalid_format"
        );
    }

    #[test]
    fn an_account_stored_before_sms_numbers_reads_as_whatsapp_only() {
        let stored = json!({
            "account_sid": "AC00000000000000000000000000000000",
            "auth_token": "0123456789abcdef0123456789abcdef",
            "numbers": [{"name": "Support", "number": "+14155238886"}],
        });
        let settings: Settings = serde_json::from_value(stored.clone()).unwrap();
        assert!(settings.sms_numbers.is_empty());
        assert_eq!(settings.channel_at("+14155238886"), Some(Channel::Whatsapp));
        // Saved again without SMS numbers, it is the same document.
        assert_eq!(serde_json::to_value(&settings).unwrap(), stored);
    }
}
