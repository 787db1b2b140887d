//! Workstreams (R-CFG-5) and their channel instances (R-CFG-6).
//!
//! A workstream serves one channel type. Its channel instances are the
//! numbers, pages or GBM agents it answers, each with a language and its
//! behaviours. An address can belong to one workstream only, or inbound
//! routing would be ambiguous: each instance claims
//! `org/{org}/channel/{account}/{address}`, and the claim's owner key — the
//! workstream id — is the direct lookup inbound messages use.
//!
//! A workstream may have a bot (R-CONV-7). Its calls are signed with a
//! secret Switchboard makes (see `conversations::bot`): an admin never
//! chooses it, so it is never weak, and it is shown once — in the response
//! of the save that made it, or of `rotate-bot-secret` — and masked in
//! every read after.

use super::accounts::Account;
use super::queues::require_queue;
use super::{Ctx, Effects, Resource};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::Role;
use crate::channel::Channel;
use crate::entities::workstream::{
    channel_claim, Bot, ChannelInstance, Conditions, ContactField, Distribution, RoutingRule,
    Workstream,
};
use crate::error::Error;
use crate::input::Object;
use crate::locale::Locale;
use crate::providers::{Provider, ReplyWindow};
use crate::store::{self, Claim};
use serde::Serialize;
use serde_json::{json, Value};

fn read_channel(ctx: &Ctx, channel: Channel, item: Object) -> Result<ChannelInstance, Error> {
    item.only(&[
        "account_id",
        "address",
        "language",
        "customer_attachments",
        "agent_attachments",
        "human_agent_tag",
    ])?;
    let account_id = item.required_str("account_id")?;
    let account: Account = store::load(ctx.kv(), ctx.org(), account_id)?
        .filter(|account: &Account| account.settings.provider().serves(channel))
        .ok_or_else(|| {
            let provider = Provider::serving(channel)
                .map(Provider::as_str)
                .collect::<Vec<_>>()
                .join(" or ");
            item.error(
                "account_id",
                "unknown_account",
                format!("no {provider} account with id {account_id} in this organisation; a {channel} workstream needs one (POST /api/accounts)"),
            )
        })?;
    let address = item.required_str("address")?;
    if account.settings.channel_at(address) != Some(channel) {
        let what = account.settings.address_kind();
        return Err(item.error(
            "address",
            "unknown_address",
            format!(
                "\"{address}\" is not {what} on {channel} ({})",
                account.settings.addresses_on(channel).join(", ")
            ),
        ));
    }
    let human_agent_tag = item.bool("human_agent_tag")?.unwrap_or(false);
    if human_agent_tag && ReplyWindow::on(channel).human_agent_hours.is_none() {
        return Err(item.error(
            "human_agent_tag",
            "not_allowed",
            "human_agent_tag is a Facebook behaviour; leave it out for other channels",
        ));
    }
    Ok(ChannelInstance {
        account_id: account_id.to_owned(),
        address: address.to_owned(),
        language: item.parsed("language", |text| {
            Locale::parse(text).map_err(|e| e.message)
        })?,
        customer_attachments: item.bool("customer_attachments")?.unwrap_or(false),
        agent_attachments: item.bool("agent_attachments")?.unwrap_or(false),
        human_agent_tag,
    })
}

fn read_rule(ctx: &Ctx, channels: &[ChannelInstance], rule: Object) -> Result<RoutingRule, Error> {
    rule.only(&["name", "queue", "conditions"])?;
    let queue = rule.required_str("queue")?;
    require_queue(ctx, &rule, "queue", queue)?;
    let conditions = rule
        .nested("conditions", |c| {
            c.only(&["channel", "language", "keywords", "contact_field"])?;
            let channel = c.str("channel")?.map(str::to_owned);
            if let Some(address) = &channel {
                if !channels.iter().any(|instance| &instance.address == address) {
                    return Err(c.error(
                        "channel",
                        "unknown_channel",
                        format!(
                            "\"{address}\" is not the address of one of this workstream's channels"
                        ),
                    ));
                }
            }
            let keywords: Vec<String> = c
                .strings("keywords")?
                .into_iter()
                .map(|k| k.trim().to_lowercase())
                .collect();
            if keywords.iter().any(String::is_empty) {
                return Err(c.error("keywords", "empty_keyword", "keywords cannot be empty"));
            }
            let contact_field = c.nested("contact_field", |f| {
                f.only(&["name", "equals"])?;
                Ok(ContactField {
                    name: f.name("name", 100)?,
                    equals: f.required_str("equals")?.to_owned(),
                })
            })?;
            Ok(Conditions {
                channel,
                language: c
                    .optional_parsed("language", |t| Locale::parse(t).map_err(|e| e.message))?,
                keywords,
                contact_field,
            })
        })?
        .ok_or_else(|| rule.missing("conditions"))?;
    if conditions.channel.is_none()
        && conditions.language.is_none()
        && conditions.keywords.is_empty()
        && conditions.contact_field.is_none()
    {
        return Err(rule.error(
            "conditions",
            "empty_conditions",
            "a routing rule needs at least one condition (channel, language, keywords or contact_field); what no rule matches goes to fallback_queue",
        ));
    }
    Ok(RoutingRule {
        name: rule.str("name")?.unwrap_or_default().trim().to_owned(),
        queue: queue.to_owned(),
        conditions,
    })
}

/// The bot a save leaves: the URL given, keeping the stored secret, or
/// with a new one when the workstream had no bot.
fn read_bot(
    ctx: &Ctx,
    input: &Object,
    existing: Option<&Workstream>,
) -> Result<Option<Bot>, Error> {
    let Some(url) = input.optional_parsed("bot_url", bot_url)? else {
        return Ok(None);
    };
    Ok(Some(match existing.and_then(|e| e.bot.as_ref()) {
        Some(stored) => stored.moved_to(url),
        None => Bot::new(url, ctx.ports.random),
    }))
}

/// A body carrying `bot_secret` (say, a read sent back) is told where
/// secrets come from, rather than that the field is unknown.
fn refuse_bot_secret(input: &Object) -> Result<(), Error> {
    if input.has("bot_secret") {
        return Err(input.error(
            "bot_secret",
            "read_only",
            "bot_secret is made by Switchboard and shown once; leave it out (POST /api/workstreams/<id>/rotate-bot-secret makes a new one)",
        ));
    }
    Ok(())
}

fn bot_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or("");
    if rest.is_empty() || rest.starts_with('/') || text.chars().any(char::is_whitespace) {
        Err(format!("\"{text}\" is not an http(s) URL; give the bot's webhook, e.g. https://bot.example.com/switchboard"))
    } else {
        Ok(text.to_owned())
    }
}

/// A workstream as `POST /api/workstreams` takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkstreamInput {
    /// Up to 100 characters.
    pub name: String,
    /// The channel type it serves; an update cannot change it.
    pub channel: Channel,
    /// The queue of what no routing rule matches.
    pub fallback_queue: String,
    /// `round_robin` if left out.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub distribution: Distribution,
    /// The bot that sees new conversations first (http or https). Setting
    /// it on a workstream without a bot makes a `bot_secret`, shown once
    /// in this save's response; `null` removes the bot.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub bot_url: Option<String>,
    /// Tried in order; the first whose conditions all hold picks the queue.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub routing_rules: Vec<RoutingRule>,
    /// The numbers, pages or GBM agents it answers; each belongs to one
    /// workstream.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub channels: Vec<ChannelInstance>,
}

impl Resource for Workstream {
    type Input = WorkstreamInput;

    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> WorkstreamInput {
        WorkstreamInput {
            name: self.name.clone(),
            channel: self.channel,
            fallback_queue: self.fallback_queue.clone(),
            distribution: self.distribution,
            bot_url: self.bot.as_ref().map(|bot| bot.url.clone()),
            routing_rules: self.routing_rules.clone(),
            channels: self.channels.clone(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        refuse_bot_secret(&input)?;
        input.only(&[
            "name",
            "channel",
            "fallback_queue",
            "distribution",
            "bot_url",
            "routing_rules",
            "channels",
        ])?;
        let name = input.name("name", 100)?;
        let channel = input
            .choice("channel", &Channel::NAMES)?
            .and_then(Channel::parse)
            .ok_or_else(|| input.missing("channel"))?;
        if let Some(existing) = existing {
            if existing.channel != channel {
                return Err(input.error(
                    "channel",
                    "immutable",
                    "a workstream's channel type cannot change; create another workstream",
                ));
            }
        }
        let fallback_queue = input.required_str("fallback_queue")?;
        require_queue(ctx, &input, "fallback_queue", fallback_queue)?;
        let channels = input.objects("channels", |item| read_channel(ctx, channel, item))?;
        for (index, instance) in channels.iter().enumerate() {
            if channels[..index]
                .iter()
                .any(|c| c.account_id == instance.account_id && c.address == instance.address)
            {
                return Err(input.error(
                    &format!("channels[{index}]"),
                    "duplicate",
                    format!("{} appears twice in \"channels\"", instance.address),
                ));
            }
        }
        let routing_rules =
            input.objects("routing_rules", |rule| read_rule(ctx, &channels, rule))?;
        Ok(Workstream {
            id,
            name,
            channel,
            fallback_queue: fallback_queue.to_owned(),
            distribution: input.one_of("distribution")?.unwrap_or_default(),
            bot: read_bot(ctx, &input, existing)?,
            routing_rules,
            channels,
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    fn view(&self, _ctx: &Ctx) -> Value {
        let mut view = serde_json::to_value(self).expect("documents serialize to JSON");
        if let Some(bot) = &self.bot {
            view["bot_secret"] = json!(bot.shown_secret());
        }
        view
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        for (index, instance) in self.channels.iter().enumerate() {
            let name = channel_claim(ctx.org(), &instance.account_id, &instance.address);
            if let Claim::Taken(holder) = effects.claim(ctx, name, &self.id)? {
                let whom = holder.map_or_else(
                    || "another request saving right now".to_owned(),
                    |id| format!("workstream {id}"),
                );
                return Err(Error::Conflict {
                    field: Some(format!("channels[{index}].address")),
                    code: "channel_in_use",
                    message: format!(
                        "{} is already a channel of {whom}; remove it there first",
                        instance.address
                    ),
                });
            }
        }
        for old in previous.map(|p| p.channels.as_slice()).unwrap_or_default() {
            if !self
                .channels
                .iter()
                .any(|c| c.account_id == old.account_id && c.address == old.address)
            {
                effects.release(
                    ctx,
                    &channel_claim(ctx.org(), &old.account_id, &old.address),
                );
            }
        }
        Ok(())
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        Ok(self
            .channels
            .iter()
            .map(|c| store::owner_key(&channel_claim(ctx.org(), &c.account_id, &c.address)))
            .collect())
    }
}

/// `POST /api/workstreams/{id}/rotate-bot-secret` (admin): a new secret for
/// the workstream's bot, shown in this response only. The old one signs
/// nothing from now on, so the bot should take the new one at once.
pub fn rotate_bot_secret(ctx: &Ctx, request: &Request, id: &str) -> Result<Response, Error> {
    if request.method != Method::Post {
        return Ok(method_not_allowed(&["POST"]));
    }
    ctx.principal.require(Workstream::WRITERS)?;
    let existing: Workstream = store::require(ctx.kv(), ctx.org(), id)?;
    let Some(bot) = &existing.bot else {
        return Err(Error::conflict(
            "no_bot",
            format!("workstream {id} has no bot to rotate a secret for; set its bot_url with PATCH /api/workstreams/{id}, which makes a secret"),
        ));
    };
    let mut rotated = existing.clone();
    rotated.bot = Some(bot.rotated(ctx.ports.random));
    rotated.updated_at = ctx.now;
    let saved = super::write(ctx, rotated, Some(&existing))?;
    Ok(Response::json(200, &saved.view(ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::mask;
    use crate::auth::Principal;
    use crate::entities::queue::Queue;
    use crate::memory::MemoryPorts;
    use crate::time::Timestamp;

    fn admin<'a>(ports: &'a crate::ports::Ports<'a>) -> Ctx<'a> {
        Ctx {
            ports,
            principal: Principal {
                org: "0".repeat(32),
                key_id: "1".repeat(32),
                role: Role::Admin,
                agent_id: None,
            },
            now: Timestamp::from_millis(1_767_225_600_000),
        }
    }

    /// `method path` with a JSON `body`: the status and the answer.
    fn call(ctx: &Ctx, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = Request::new(method, path);
        request.body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let response = match request.segments()[..] {
            ["api", "queues"] => super::super::serve::<Queue>(ctx, &request, None),
            ["api", "workstreams"] => super::super::serve::<Workstream>(ctx, &request, None),
            ["api", "workstreams", id] => {
                super::super::serve::<Workstream>(ctx, &request, Some(id))
            }
            ["api", "workstreams", id, "rotate-bot-secret"] => rotate_bot_secret(ctx, &request, id),
            _ => panic!("no route {path}"),
        }
        .unwrap_or_else(Error::into_response);
        let answer = serde_json::from_slice(&response.body).unwrap_or_default();
        (response.status, answer)
    }

    #[test]
    fn a_bot_secret_is_shown_by_the_save_that_made_it_and_masked_after() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let ctx = admin(&ports);
        let (_, queue) = call(
            &ctx,
            Method::Post,
            "/api/queues",
            Some(json!({"name": "q"})),
        );
        let body = json!({
            "name": "w", "channel": "whatsapp", "fallback_queue": queue["id"],
            "bot_url": "https://bot.example.com/sb", "channels": [],
        });
        let (status, created) = call(&ctx, Method::Post, "/api/workstreams", Some(body));
        assert_eq!(status, 201, "{created}");
        let secret = created["bot_secret"].as_str().unwrap().to_owned();
        assert!(
            secret.starts_with("sbbot_") && secret.len() == 70,
            "{secret}"
        );
        let path = format!("/api/workstreams/{}", created["id"].as_str().unwrap());
        let masked = json!(mask(&secret));
        assert_eq!(call(&ctx, Method::Get, &path, None).1["bot_secret"], masked);

        // Another URL keeps the secret; a read sent back is refused.
        let moved = json!({"bot_url": "https://bot.example.com/v2"});
        let (status, patched) = call(&ctx, Method::Patch, &path, Some(moved));
        assert_eq!((status, &patched["bot_secret"]), (200, &masked));
        let (status, refused) = call(
            &ctx,
            Method::Patch,
            &path,
            Some(json!({"bot_secret": "mine"})),
        );
        assert_eq!(
            (status, &refused["error"]["code"]),
            (422, &json!("read_only"))
        );

        // Rotated: a new secret, shown this once.
        let rotate = format!("{path}/rotate-bot-secret");
        let (status, rotated) = call(&ctx, Method::Post, &rotate, None);
        assert_eq!(status, 200, "{rotated}");
        let new_secret = rotated["bot_secret"].as_str().unwrap();
        assert_ne!(new_secret, secret);
        let stored: Workstream =
            store::require(ctx.kv(), ctx.org(), rotated["id"].as_str().unwrap()).unwrap();
        assert_eq!(stored.bot.unwrap().secret, new_secret);

        // Without a bot, no secret; a new bot gets a new one.
        let (_, removed) = call(&ctx, Method::Patch, &path, Some(json!({"bot_url": null})));
        assert!(removed.get("bot_secret").is_none(), "{removed}");
        let (status, refused) = call(&ctx, Method::Post, &rotate, None);
        assert_eq!((status, &refused["error"]["code"]), (409, &json!("no_bot")));
        let again = json!({"bot_url": "https://bot.example.com/sb"});
        let (_, added) = call(&ctx, Method::Patch, &path, Some(again));
        let added = added["bot_secret"].as_str().unwrap();
        assert!(added != secret && added != new_secret && !added.starts_with("****"));
    }
}
