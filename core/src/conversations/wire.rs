//! The agent API's bodies and answers (R-CONV-5, R-CONV-6) as types: the
//! server reads its request bodies into them and builds its answers from
//! them, the contract (`contract/`) documents them, and the end-to-end
//! tests send and read them, so a renamed field breaks the build or a test
//! rather than a client.
//!
//! Each body is read by its `read`, which names the fields the server
//! accepts; a test serializes a full value and reads it back through it,
//! so the names serde writes and the names the server reads are one list.

use super::reply::window_closes_at;
use super::{Conversation, State};
use crate::channel::Channel;
use crate::error::Error;
use crate::input::Object;
use crate::locale::Locale;
use crate::message::{Attachment, Message};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A conversation as the agent API shows it: every member is always
/// present, `null` when it has no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationView {
    pub id: String,
    pub state: State,
    pub channel: Channel,
    pub workstream_id: String,
    pub account_id: String,
    /// Ours: the number, page id or GBM agent the customer wrote to.
    pub channel_address: String,
    /// The customer's: a `+E.164` number, a PSID or a GBM conversation id.
    pub customer_address: String,
    pub contact_id: String,
    /// The name the channel gave the customer, if any.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub profile_name: Option<String>,
    /// The channel instance's language, for templates.
    pub language: Locale,
    /// The queue it waits in or was last routed to.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub queue_id: Option<String>,
    /// The agent that has it, or last had it.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub agent_id: Option<String>,
    /// The routing rule that chose the queue, `fallback` when none
    /// matched, `transfer` after a transfer to a queue.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub routed_by: Option<String>,
    /// The workstream's bot has it (R-CONV-7).
    pub with_bot: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub closed_at: Option<Timestamp>,
    /// When the customer last wrote.
    #[cfg_attr(feature = "openapi", schema(required = true, format = DateTime))]
    pub last_customer_message_at: Option<String>,
    /// On WhatsApp and Messenger, when the standard 24-hour window for
    /// free-form replies closes; `null` on channels without one (SMS,
    /// Business Messages) or before the customer wrote. After it, WhatsApp
    /// takes approved templates only.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reply_window_closes_at: Option<Timestamp>,
}

impl ConversationView {
    /// `conversation` as shown, the customer having last written at
    /// `last_customer` (as stored).
    pub fn of(conversation: &Conversation, last_customer: Option<&str>) -> ConversationView {
        let closes = last_customer
            .and_then(|at| crate::time::parse_rfc3339(at).ok())
            .and_then(|millis| window_closes_at(conversation.channel, millis))
            .map(Timestamp::from_millis);
        let c = conversation.clone();
        ConversationView {
            id: c.id,
            state: c.state,
            channel: c.channel,
            workstream_id: c.workstream_id,
            account_id: c.account_id,
            channel_address: c.channel_address,
            customer_address: c.customer_address,
            contact_id: c.contact_id,
            profile_name: c.profile_name,
            language: c.language,
            queue_id: c.queue_id,
            agent_id: c.agent_id,
            routed_by: c.routed_by,
            with_bot: c.with_bot,
            created_at: c.created_at,
            updated_at: c.updated_at,
            closed_at: c.closed_at,
            last_customer_message_at: last_customer.map(str::to_owned),
            reply_window_closes_at: closes,
        }
    }
}

/// `GET /api/conversations/{id}`: the conversation and a page of its
/// messages, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationRead {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page of messages; `null` on the last.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub messages_next_cursor: Option<String>,
}

/// A conversation action's body, and the path segment that names it
/// (`POST /api/conversations/{id}/{ACTION}`).
pub trait ActionBody: Serialize + Sized {
    const ACTION: &'static str;

    /// The body as the server reads it: unknown fields are refused.
    fn read(input: &Object) -> Result<Self, Error>;
}

/// `accept`: an agent takes an open conversation from its queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// An admin's key names the agent it accepts for; an agent's key leaves
    /// it out (or names its own agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl ActionBody for Accept {
    const ACTION: &'static str = "accept";

    fn read(input: &Object) -> Result<Accept, Error> {
        input.only(&["agent_id"])?;
        Ok(Accept {
            agent_id: input.str("agent_id")?.map(str::to_owned),
        })
    }
}

/// `resume`: an agent takes back a waiting or closed conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// An admin's key may name the agent (else the conversation's last
    /// agent); an agent's key leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl ActionBody for Resume {
    const ACTION: &'static str = "resume";

    fn read(input: &Object) -> Result<Resume, Error> {
        input.only(&["agent_id"])?;
        Ok(Resume {
            agent_id: input.str("agent_id")?.map(str::to_owned),
        })
    }
}

/// `transfer`: to another queue, routed there afresh, or to an agent.
/// Exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl ActionBody for Transfer {
    const ACTION: &'static str = "transfer";

    fn read(input: &Object) -> Result<Transfer, Error> {
        input.only(&["queue_id", "agent_id"])?;
        Ok(Transfer {
            queue_id: input.str("queue_id")?.map(str::to_owned),
            agent_id: input.str("agent_id")?.map(str::to_owned),
        })
    }
}

/// `wait`: the agent parks the conversation until the customer writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Wait {}

impl ActionBody for Wait {
    const ACTION: &'static str = "wait";

    fn read(input: &Object) -> Result<Wait, Error> {
        input.only(&[])?;
        Ok(Wait {})
    }
}

/// `close`: resolved; the customer's next message reopens it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Close {}

impl ActionBody for Close {
    const ACTION: &'static str = "close";

    fn read(input: &Object) -> Result<Close, Error> {
        input.only(&[])?;
        Ok(Close {})
    }
}

/// `link`: the customer is a known contact (R-CONV-2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The contact the conversation's address moves to.
    pub contact_id: String,
}

impl ActionBody for Link {
    const ACTION: &'static str = "link";

    fn read(input: &Object) -> Result<Link, Error> {
        input.only(&["contact_id"])?;
        Ok(Link {
            contact_id: input.required_str("contact_id")?.to_owned(),
        })
    }
}

/// `POST /api/conversations/{id}/messages`: free-form `text` (with
/// `attachments` where the channel sends agents' attachments), or a
/// `template_id` with the values its placeholders need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Up to 1,600 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// A template instead of `text`: rendered for the conversation's
    /// channel and language (or `locale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// `{{CustomerName}}`; by default the contact's name.
    #[serde(
        rename = "CustomerName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub customer_name: Option<String>,
    /// `{{CaseName}}`.
    #[serde(rename = "CaseName", default, skip_serializing_if = "Option::is_none")]
    pub case_name: Option<String>,
    /// The other placeholders' values, by name (`{{OrderId}}` or
    /// `{{contextitems.OrderId}}` read `OrderId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context_items: Option<Map<String, Value>>,
    /// The template version's language; by default the conversation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
}

impl ActionBody for Reply {
    const ACTION: &'static str = "messages";

    fn read(input: &Object) -> Result<Reply, Error> {
        input.only(&[
            "text",
            "attachments",
            "template_id",
            "CustomerName",
            "CaseName",
            "context_items",
            "locale",
        ])?;
        let owned = |text: Option<&str>| text.map(str::to_owned);
        Ok(Reply {
            text: owned(input.str("text")?),
            attachments: input
                .has("attachments")
                .then(|| read_attachments(input))
                .transpose()?,
            template_id: owned(input.str("template_id")?),
            customer_name: owned(input.str("CustomerName")?),
            case_name: owned(input.str("CaseName")?),
            context_items: input.object("context_items")?,
            locale: input
                .optional_parsed("locale", |text| Locale::parse(text).map_err(|e| e.message))?,
        })
    }
}

fn read_attachments(input: &Object) -> Result<Vec<Attachment>, Error> {
    input.objects("attachments", |item| {
        item.only(&["url", "content_type"])?;
        let url = item.required_str("url")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(item.error(
                "url",
                "invalid_url",
                "an attachment url must be an http(s) URL the provider can fetch",
            ));
        }
        Ok(Attachment {
            url: url.to_owned(),
            content_type: item.required_str("content_type")?.to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Serializes `full` and reads it back as the server does.
    fn read_back<B: ActionBody + PartialEq + std::fmt::Debug>(full: B) {
        let Value::Object(map) = serde_json::to_value(&full).unwrap() else {
            panic!("a body is a JSON object");
        };
        assert_eq!(B::read(&Object::root(&map)).unwrap(), full);
    }

    #[test]
    fn every_field_a_body_type_writes_is_one_the_server_reads() {
        let id = || Some("0123456789abcdef0123456789abcdef".to_owned());
        read_back(Accept { agent_id: id() });
        read_back(Resume { agent_id: id() });
        read_back(Transfer {
            queue_id: id(),
            agent_id: id(),
        });
        read_back(Wait {});
        read_back(Close {});
        read_back(Link {
            contact_id: id().unwrap(),
        });
        read_back(Reply {
            text: Some("Hello".into()),
            attachments: Some(vec![Attachment {
                url: "https://example.com/a.png".into(),
                content_type: "image/png".into(),
            }]),
            template_id: id(),
            customer_name: Some("Kari".into()),
            case_name: Some("Order 17".into()),
            context_items: json!({"OrderId": "17"}).as_object().cloned(),
            locale: Some(Locale::parse("nb-NO").unwrap()),
        });
    }

    #[test]
    fn a_field_the_types_do_not_write_is_refused() {
        let map = json!({"agent_id": "a", "note": "x"});
        let error = Accept::read(&Object::root(map.as_object().unwrap())).unwrap_err();
        assert_eq!(
            (error.code(), error.field()),
            ("unknown_field", Some("note"))
        );
    }
}
