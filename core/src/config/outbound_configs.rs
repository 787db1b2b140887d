//! Outbound configurations (R-OUT-1): what a flow's send call uses — the
//! channel type, the number it sends from, the template, and whether the
//! messages show on the customer's timeline. The id is what flows pass to
//! `POST /api/outbound/{configurationId}/send`.

use super::accounts::Account;
use super::{Ctx, Resource};
use crate::auth::Role;
use crate::channel::Channel;
use crate::entities::outbound_config::OutboundConfig;
use crate::error::Error;
use crate::input::Object;
use crate::phone::{DigitsNumber, E164};
use crate::providers::Provider;
use crate::store;
use crate::templates::{Template, CHANNEL_TYPES};
use serde::Serialize;

/// An outbound configuration as `POST /api/outbound-configs` takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboundConfigInput {
    /// Up to 100 characters.
    pub name: String,
    /// Whether the messages show on the customer's timeline; `false` if
    /// left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub show_on_timeline: bool,
    pub channel_type: Channel,
    /// The number to send from, a number of one of the organisation's
    /// accounts on `channel_type` (`+E.164`; SMS over TeleSign: digits).
    pub channel: String,
    /// The account that has `channel`; needed only when several do.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub account_id: String,
    /// A template of the organisation that serves `channel_type`.
    pub template_id: String,
}

impl Resource for OutboundConfig {
    type Input = OutboundConfigInput;

    const READERS: &'static [Role] = &[Role::Admin, Role::Flow];

    fn input(&self) -> OutboundConfigInput {
        OutboundConfigInput {
            name: self.name.clone(),
            show_on_timeline: self.show_on_timeline,
            channel_type: self.channel_type,
            channel: self.channel.clone(),
            account_id: self.account_id.clone(),
            template_id: self.template_id.clone(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        input.only(&[
            "name",
            "show_on_timeline",
            "channel_type",
            "channel",
            "account_id",
            "template_id",
        ])?;
        let name = input.name("name", 100)?;
        let channel_type = input
            .choice("channel_type", &CHANNEL_TYPES)?
            .and_then(Channel::parse)
            .ok_or_else(|| input.missing("channel_type"))?;
        let number = match channel_type {
            Channel::Sms => input.parsed("channel", sms_number)?,
            Channel::Whatsapp | Channel::Messenger | Channel::Gbm => {
                input.parsed("channel", E164::parse)?.to_string()
            }
        };
        let sender = sending_account(ctx, &input, channel_type, number)?;
        let template_id = input.required_str("template_id")?;
        let config = OutboundConfig {
            id,
            name,
            show_on_timeline: input.bool("show_on_timeline")?.unwrap_or(false),
            channel_type,
            channel: sender.channel,
            account_id: sender.account_id,
            template_id: template_id.to_owned(),
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        };
        let template: Template = store::load(ctx.kv(), ctx.org(), template_id)?.ok_or_else(|| {
            input.error(
                "template_id",
                "unknown_template",
                format!("no template with id {template_id} in this organisation; create it with POST /api/templates"),
            )
        })?;
        template
            .check_serves(&config)
            .map_err(|reason| input.error("template_id", "template_mismatch", reason))?;
        Ok(config)
    }
}

/// The account an outbound configuration sends from, and its number as
/// that account writes it.
struct SendingAccount {
    account_id: String,
    channel: String,
}

/// The account whose `number` the configuration sends from: the one the
/// input names, or else the only one that has it.
fn sending_account(
    ctx: &Ctx,
    input: &Object,
    channel_type: Channel,
    number: String,
) -> Result<SendingAccount, Error> {
    let provider = Provider::serving(channel_type)
        .map(Provider::as_str)
        .collect::<Vec<_>>()
        .join(" or ");
    let mut owners: Vec<SendingAccount> = store::list_all::<Account>(ctx.kv(), ctx.org())?
        .into_iter()
        .filter_map(|account| {
            Some(SendingAccount {
                // Kept as the account writes it, which is how the provider
                // expects it in a send.
                channel: account_number(&account, channel_type, &number)?,
                account_id: account.id,
            })
        })
        .collect();
    match (input.str("account_id")?, owners.len()) {
        (Some(wanted), _) => owners
            .into_iter()
            .find(|owner| owner.account_id == wanted)
            .ok_or_else(|| {
                input.error(
                    "account_id",
                    "unknown_account",
                    format!("{number} is not a number of a {provider} account with id {wanted}"),
                )
            }),
        (None, 1) => Ok(owners.remove(0)),
        (None, 0) => Err(input.error(
            "channel",
            "unknown_channel",
            format!("{number} is not a number of any {provider} account of this organisation; add it to one with PATCH /api/accounts/{{id}}"),
        )),
        (None, _) => Err(input.error(
            "account_id",
            "ambiguous_channel",
            format!("{number} belongs to several {provider} accounts; say which with \"account_id\""),
        )),
    }
}

/// An SMS number as written at TeleSign (digits) or Twilio (+E.164).
fn sms_number(text: &str) -> Result<String, String> {
    if text.starts_with('+') {
        E164::parse(text).map(|number| number.to_string())
    } else {
        DigitsNumber::parse(text).map(|number| number.to_string())
    }
}

/// `number` as `account` writes it, if it is one of the account's
/// addresses on `channel`; a leading `+` does not tell numbers apart.
fn account_number(account: &Account, channel: Channel, number: &str) -> Option<String> {
    let digits = |address: &str| address.trim_start_matches('+').to_owned();
    account
        .settings
        .addresses_on(channel)
        .into_iter()
        .find(|address| digits(address) == digits(number))
        .map(str::to_owned)
}
