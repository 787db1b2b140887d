//! The send call's body (R-OUT-2): `{"ContactList": […]}` with the seed's
//! field names, plus `send_at` or `delay_seconds` to schedule it (R-OUT-7).
//!
//! The body as a whole is checked first, and a body that is not a contact
//! list is refused with nothing sent. Contacts are then checked one by one
//! when their batch runs: a bad contact fails alone (R-OUT-4), named by its
//! index in the list (`ContactList[3].tocontactid`).

use crate::entities::outbound_config::OutboundConfig;
use crate::error::Error;
use crate::input::Object;
use crate::locale::Locale;
use crate::phone::E164;
use crate::templates::CHANNEL_TYPES;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The seed's per-request limit, which is also the batch size (R-OUT-3).
pub const BATCH_SIZE: usize = 100;
/// Contacts one call may carry; larger lists are split by the caller.
pub const MAX_CONTACTS: usize = 10_000;
/// How far ahead a send may be scheduled.
pub const MAX_DELAY_SECONDS: i64 = 366 * 24 * 3600;

/// The fields of [`SendRequest`] and [`Contact`], which the server reads
/// leniently (a contact is checked as its batch runs); a unit test keeps
/// them and the types the same.
const BODY_FIELDS: &[&str] = &["ContactList", "send_at", "delay_seconds"];
const CONTACT_FIELDS: &[&str] = &[
    "tocontactid",
    "channelid",
    "optin",
    "locale",
    "contextitems",
    "entityrelationshipname",
    "msdyn_ocoutboundconfigurationid",
    "CustomerName",
    "CaseName",
];

/// The send call's body as a caller writes it: the contract's schema, and
/// what typed callers (the end-to-end tests) build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    /// One to 10,000 contacts, sent in batches of 100.
    #[serde(rename = "ContactList")]
    pub contact_list: Vec<Contact>,
    /// Schedules the call for this time (RFC 3339, at most 366 days ahead):
    /// the answer is `202` with a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2026-12-01T08:00:00Z"))]
    pub send_at: Option<String>,
    /// Schedules the call this many seconds from now (not with `send_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 31_622_400))]
    pub delay_seconds: Option<i64>,
}

/// One contact of `ContactList`, in the seed's field names (case-sensitive).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = OutboundContact))]
pub struct Contact {
    /// The customer's phone number, `+E.164`.
    #[cfg_attr(feature = "openapi", schema(example = "+4790000001"))]
    pub tocontactid: String,
    /// `sms` or `whatsapp` (any case): the configuration's channel type.
    #[cfg_attr(feature = "openapi", schema(example = "sms"))]
    pub channelid: String,
    /// `false`: do not contact (the contact is `skipped`).
    pub optin: bool,
    /// The language to render in, e.g. `nb-NO`; falls back to `nb`, then
    /// the template's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Values for the template's `{{Key}}` / `{{contextitems.Key}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub contextitems: Option<Map<String, Value>>,
    /// What the activity is about (e.g. `incident`); required when the
    /// configuration shows messages on the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entityrelationshipname: Option<String>,
    /// Must equal the path's configuration id when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msdyn_ocoutboundconfigurationid: Option<String>,
    /// Fills `{{CustomerName}}`; names a contact created for a new number.
    #[serde(rename = "CustomerName")]
    pub customer_name: String,
    /// Fills `{{CaseName}}`.
    #[serde(rename = "CaseName")]
    pub case_name: String,
}

/// A send call's body, checked as a whole.
#[derive(Debug, Clone)]
pub struct SendBody {
    pub contacts: Vec<Value>,
    /// When to send, for a scheduled call.
    pub send_at_millis: Option<i64>,
}

fn not_a_contact_list(message: impl Into<String>) -> Error {
    Error::malformed("not_a_contact_list", message.into())
}

/// A body that would send, for the errors that say what a body looks like.
const EXAMPLE_BODY: &str = "send {\"ContactList\": [{\"tocontactid\": \"+4712345678\", \"channelid\": \"sms\", \"optin\": true, \"CustomerName\": \"Kari\", \"CaseName\": \"CAS-1\"}]}";

impl SendBody {
    pub fn parse(body: &[u8], now_millis: i64) -> Result<SendBody, Error> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err(not_a_contact_list(format!(
                "the body is not a JSON object; {EXAMPLE_BODY}"
            )));
        };
        if let Some(unknown) = map.keys().find(|key| !BODY_FIELDS.contains(&key.as_str())) {
            return Err(not_a_contact_list(format!(
                "unknown field \"{unknown}\"; the body has {} (field names are case-sensitive)",
                BODY_FIELDS.join(", ")
            )));
        }
        let contacts = contact_list(&map)?;
        let send_at_millis = scheduled_millis(&Object::root(&map), now_millis)?;
        Ok(SendBody {
            contacts,
            send_at_millis,
        })
    }
}

/// `ContactList`, refused whole when it is not a list of one to
/// [`MAX_CONTACTS`] entries; the entries themselves are checked as their
/// batch runs.
fn contact_list(body: &Map<String, Value>) -> Result<Vec<Value>, Error> {
    let contacts = match body.get("ContactList") {
        Some(Value::Array(contacts)) => contacts.clone(),
        Some(_) => {
            return Err(not_a_contact_list(format!(
                "\"ContactList\" must be an array of contacts; {EXAMPLE_BODY}"
            )))
        }
        None => {
            return Err(not_a_contact_list(format!(
                "the body has no \"ContactList\"; {EXAMPLE_BODY}"
            )))
        }
    };
    if contacts.is_empty() {
        return Err(not_a_contact_list(
            "\"ContactList\" is empty: there is nobody to send to",
        ));
    }
    if contacts.len() > MAX_CONTACTS {
        return Err(Error::TooLarge {
            field: Some("ContactList".into()),
            code: "too_many_contacts",
            message: format!(
                "\"ContactList\" has {} contacts; one call takes at most {MAX_CONTACTS}: split the list over several calls",
                contacts.len()
            ),
        });
    }
    Ok(contacts)
}

/// When a scheduled call sends: `send_at`, or `delay_seconds` from now;
/// `None` sends now.
fn scheduled_millis(fields: &Object<'_>, now_millis: i64) -> Result<Option<i64>, Error> {
    let send_at = fields.optional_parsed("send_at", crate::time::parse_rfc3339)?;
    let delay = fields.integer("delay_seconds", 0..=MAX_DELAY_SECONDS)?;
    Ok(match (send_at, delay) {
        (Some(_), Some(_)) => {
            return Err(fields.error(
                "delay_seconds",
                "conflicting_schedule",
                "give either \"send_at\" or \"delay_seconds\", not both",
            ))
        }
        (Some(at), None) if at > now_millis + MAX_DELAY_SECONDS * 1000 => {
            return Err(fields.error(
                "send_at",
                "too_far_ahead",
                "\"send_at\" may be at most 366 days ahead",
            ))
        }
        (Some(at), None) => Some(at),
        (None, Some(seconds)) => Some(now_millis + seconds * 1000),
        (None, None) => None,
    })
}

/// One contact of the list, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The position in `ContactList`.
    pub index: usize,
    pub to: E164,
    pub opt_in: bool,
    pub locale: Option<Locale>,
    pub context_items: Map<String, Value>,
    pub entity_relationship: Option<String>,
    pub customer_name: String,
    pub case_name: String,
}

/// Checks the contact at `index` against the configuration it is sent with.
pub fn recipient(index: usize, value: &Value, config: &OutboundConfig) -> Result<Recipient, Error> {
    let path = format!("ContactList[{index}]");
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            path.clone(),
            "wrong_type",
            format!(
                "\"{path}\" must be an object with the fields {}",
                CONTACT_FIELDS.join(", ")
            ),
        ));
    };
    let fields = Object::at(map, &path);
    fields.only(CONTACT_FIELDS)?;
    let to = fields.parsed("tocontactid", E164::parse)?;
    check_channel(&fields, config)?;
    let opt_in = fields
        .bool("optin")?
        .ok_or_else(|| fields.missing("optin"))?;
    let locale = fields.optional_parsed("locale", |tag| {
        Locale::parse(tag).map_err(|error| error.message)
    })?;
    let context_items = fields.object("contextitems")?.unwrap_or_default();
    let entity_relationship = entity_relationship(&fields, config)?;
    check_configuration_id(&fields, config)?;
    Ok(Recipient {
        index,
        to,
        opt_in,
        locale,
        context_items,
        entity_relationship,
        customer_name: fields.required_str("CustomerName")?.to_owned(),
        case_name: fields.required_str("CaseName")?.to_owned(),
    })
}

/// The configuration decides the channel; a contact's `channelid` only
/// confirms it, and one naming another channel is refused rather than sent
/// by a channel it did not ask for.
fn check_channel(fields: &Object<'_>, config: &OutboundConfig) -> Result<(), Error> {
    let channel = fields.required_str("channelid")?;
    if channel.eq_ignore_ascii_case(config.channel_type.as_str()) {
        return Ok(());
    }
    let code = if CHANNEL_TYPES
        .iter()
        .any(|c| channel.eq_ignore_ascii_case(c))
    {
        "channel_mismatch"
    } else {
        "invalid_choice"
    };
    Err(fields.error(
        "channelid",
        code,
        format!(
            "\"channelid\" is \"{channel}\" but outbound configuration {} sends by {}; use a configuration for that channel",
            config.id, config.channel_type
        ),
    ))
}

/// `entityrelationshipname`, trimmed; required when the configuration
/// shows messages on the timeline, which needs the activity's relationship.
fn entity_relationship(
    fields: &Object<'_>,
    config: &OutboundConfig,
) -> Result<Option<String>, Error> {
    match fields.str("entityrelationshipname")? {
        Some(name) if !name.trim().is_empty() => Ok(Some(name.trim().to_owned())),
        _ if config.show_on_timeline => Err(fields.error(
            "entityrelationshipname",
            "required",
            format!(
                "outbound configuration {} shows messages on the timeline, so each contact needs \"entityrelationshipname\" (the activity relationship, e.g. the case)",
                config.id
            ),
        )),
        _ => Ok(None),
    }
}

/// A contact may repeat its configuration's id; one naming another
/// configuration was meant for another call.
fn check_configuration_id(fields: &Object<'_>, config: &OutboundConfig) -> Result<(), Error> {
    if let Some(id) = fields.str("msdyn_ocoutboundconfigurationid")? {
        if id != config.id {
            return Err(fields.error(
                "msdyn_ocoutboundconfigurationid",
                "configuration_mismatch",
                format!(
                    "\"msdyn_ocoutboundconfigurationid\" is {id} but the call is for configuration {}; they must be the same",
                    config.id
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(show_on_timeline: bool) -> OutboundConfig {
        OutboundConfig {
            id: "c".repeat(32),
            name: "Case created".into(),
            show_on_timeline,
            channel_type: crate::channel::Channel::Sms,
            channel: "4712345678".into(),
            account_id: "a".repeat(32),
            template_id: "t".repeat(32),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        }
    }

    fn contact() -> Value {
        json!({
            "tocontactid": "+4798765432", "channelid": "SMS", "optin": true,
            "locale": "nb-NO", "contextitems": {"OrderId": "A-1"},
            "entityrelationshipname": "incident", "CustomerName": "Kari", "CaseName": "CAS-1",
        })
    }

    fn refusal(value: Value, show_on_timeline: bool) -> (String, &'static str) {
        let error = recipient(3, &value, &config(show_on_timeline)).unwrap_err();
        (error.field().unwrap_or_default().to_owned(), error.code())
    }

    fn without(field: &str) -> Value {
        let mut value = contact();
        value.as_object_mut().unwrap().remove(field);
        value
    }

    fn with(field: &str, new: Value) -> Value {
        let mut value = contact();
        value[field] = new;
        value
    }

    #[test]
    fn reads_the_seeds_fields() {
        let read = recipient(0, &contact(), &config(true)).unwrap();
        assert_eq!(read.to.as_str(), "+4798765432");
        assert_eq!(read.locale.unwrap().as_str(), "nb-NO");
        assert_eq!(read.context_items["OrderId"], "A-1");
        assert_eq!(read.entity_relationship.as_deref(), Some("incident"));
        assert_eq!(
            (read.customer_name.as_str(), read.case_name.as_str()),
            ("Kari", "CAS-1")
        );
        assert!(read.opt_in);
    }

    #[test]
    fn names_the_field_a_contact_fails_on() {
        let at = |field: &str| format!("ContactList[3].{field}");
        assert_eq!(
            refusal(without("tocontactid"), false),
            (at("tocontactid"), "required")
        );
        assert_eq!(
            refusal(with("tocontactid", json!("4798765432")), false),
            (at("tocontactid"), "invalid_format")
        );
        assert_eq!(
            refusal(with("channelid", json!("whatsapp")), false),
            (at("channelid"), "channel_mismatch")
        );
        assert_eq!(
            refusal(with("channelid", json!("fax")), false),
            (at("channelid"), "invalid_choice")
        );
        assert_eq!(refusal(without("optin"), false), (at("optin"), "required"));
        assert_eq!(
            refusal(with("optin", json!("yes")), false),
            (at("optin"), "wrong_type")
        );
        assert_eq!(
            refusal(with("locale", json!("no_such locale")), false).1,
            "invalid_format"
        );
        assert_eq!(
            refusal(without("CustomerName"), false),
            (at("CustomerName"), "required")
        );
        assert_eq!(
            refusal(without("CaseName"), false),
            (at("CaseName"), "required")
        );
        assert_eq!(
            refusal(with("customername", json!("x")), false),
            (at("customername"), "unknown_field")
        );
        assert_eq!(
            refusal(
                with("msdyn_ocoutboundconfigurationid", json!("other")),
                false
            ),
            (
                at("msdyn_ocoutboundconfigurationid"),
                "configuration_mismatch"
            )
        );
        assert_eq!(
            refusal(json!("+4798765432"), false),
            ("ContactList[3]".to_owned(), "wrong_type")
        );
        // Only a configuration shown on the timeline needs the relationship.
        assert!(recipient(0, &without("entityrelationshipname"), &config(false)).is_ok());
        assert_eq!(
            refusal(without("entityrelationshipname"), true),
            (at("entityrelationshipname"), "required")
        );
    }

    /// The typed body and the fields the server reads are the same: a
    /// field renamed in one place only breaks this test.
    #[test]
    fn the_typed_request_is_what_the_server_reads() {
        let every_field = Contact {
            msdyn_ocoutboundconfigurationid: Some(config(true).id),
            ..serde_json::from_value(contact()).unwrap()
        };
        let delayed = SendRequest {
            contact_list: vec![every_field],
            send_at: None,
            delay_seconds: Some(60),
        };
        let at = SendRequest {
            send_at: Some("2026-01-01T00:00:00Z".into()),
            delay_seconds: None,
            ..delayed.clone()
        };
        let mut body_fields = std::collections::BTreeSet::new();
        for request in [delayed, at] {
            let value = serde_json::to_value(&request).unwrap();
            body_fields.extend(value.as_object().unwrap().keys().cloned());
            let body = SendBody::parse(value.to_string().as_bytes(), 1_767_000_000_000).unwrap();
            assert!(body.send_at_millis.is_some());
            let read = recipient(0, &body.contacts[0], &config(true)).unwrap();
            assert_eq!(read.customer_name, "Kari");
            let contact_fields: Vec<&String> =
                body.contacts[0].as_object().unwrap().keys().collect();
            assert_eq!(contact_fields.len(), CONTACT_FIELDS.len());
        }
        assert_eq!(body_fields.len(), BODY_FIELDS.len());
    }

    #[test]
    fn a_body_that_is_not_a_contact_list_is_a_400() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"ContactList\": {}}",
            b"{\"ContactList\": []}",
            b"{\"contactlist\": [{}]}",
        ] {
            let error = SendBody::parse(body, 0).unwrap_err();
            assert_eq!(
                (error.status(), error.code()),
                (400, "not_a_contact_list"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let many = json!({"ContactList": vec![json!({}); MAX_CONTACTS + 1]});
        assert_eq!(
            SendBody::parse(many.to_string().as_bytes(), 0)
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn a_schedule_is_a_time_or_a_delay() {
        let list = json!([{}]);
        let parse = |extra: Value| {
            let mut body = json!({"ContactList": list});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            SendBody::parse(body.to_string().as_bytes(), 1_767_000_000_000)
        };
        assert_eq!(parse(json!({})).unwrap().send_at_millis, None);
        assert_eq!(
            parse(json!({"delay_seconds": 60})).unwrap().send_at_millis,
            Some(1_767_000_060_000)
        );
        assert_eq!(
            parse(json!({"send_at": "2026-01-01T00:00:00Z"}))
                .unwrap()
                .send_at_millis,
            Some(1_767_225_600_000)
        );
        assert_eq!(
            parse(json!({"send_at": "tomorrow"})).unwrap_err().code(),
            "invalid_format"
        );
        assert_eq!(
            parse(json!({"send_at": "2028-01-01T00:00:00Z"}))
                .unwrap_err()
                .code(),
            "too_far_ahead"
        );
        assert_eq!(
            parse(json!({"delay_seconds": -1})).unwrap_err().field(),
            Some("delay_seconds")
        );
        assert_eq!(
            parse(json!({"send_at": "2026-01-01T00:00:00Z", "delay_seconds": 5}))
                .unwrap_err()
                .code(),
            "conflicting_schedule"
        );
    }
}
