//! The provider seam: everything the core needs from a provider, behind one
//! trait ([`Seam`]), with one folder per provider and one list of them
//! (the `providers!` list). The rest of the core never names a provider: it asks
//! [`Provider`] and [`Settings`], whose dispatch the list generates.
//!
//! Each folder holds the provider's account settings and their checks
//! (`settings.rs`), its webhook's signature and parsing into [`Event`]s
//! (`webhook.rs`, driven by the one pipeline in [`crate::webhooks`]), its
//! sender (`send.rs`), its credential check (`credentials.rs`), and in
//! `mod.rs` its delivery-status order and reply window; what their webhook
//! parts share is in [`webhook`]. Each builds the exact requests its
//! provider expects (providers.md); the host hands in the time, nonces and
//! the HTTP port, so every request is deterministic and the tests pin it
//! byte for byte.
//!
//! A credential check has three outcomes because they call for different
//! actions: the provider refused the credentials (the user must fix them),
//! accepted them, or could not be asked (try again later; nothing is known
//! about them). Messages carry the provider's own words so the user sees
//! what the provider saw, with every secret of the request scrubbed out
//! first: hosts and providers may quote a URL or a header back in an error.

pub mod facebook;
pub mod fields;
pub mod google;
pub mod telesign;
pub mod twilio;
pub mod webhook;

use crate::api::{Request, Response};
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::encoding::percent_encode;
use crate::error::Error;
use crate::input::Object;
use crate::message::{Author, Content, Inbound, Thread, Window};
use crate::ports::OutboundError;
use crate::ports::{KeyValue, Ports};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
pub use facebook::PageTokenWarning;
use serde::Serialize;
use webhook::{invalid_callback, Signer, WebhookKey};

/// The providers: the one list a new provider joins. Each entry names the
/// variant, the module folder (whose `Settings` implements [`Seam`]) and
/// the spelling stored in accounts, keys and webhook URLs.
macro_rules! providers {
    // `tt`, not `literal`: a `literal` fragment reaches derive macros
    // wrapped in a group that utoipa does not read as a rename.
    ($($variant:ident => $module:ident = $spelling:tt,)*) => {
        /// A provider, as stored.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
        pub enum Provider {
            $(#[serde(rename = $spelling)] $variant,)*
        }

        /// An account's provider-specific fields as a create body takes
        /// them, tagged by `provider`.
        #[derive(Debug, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(tag = "provider")]
        pub enum SettingsInput {
            $(#[serde(rename = $spelling)] $variant($module::Input),)*
        }

        /// An account's provider-specific fields as the API shows them,
        /// secrets masked, tagged by `provider`.
        #[derive(Debug, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(tag = "provider")]
        pub enum SettingsView {
            $(#[serde(rename = $spelling)] $variant($module::View),)*
        }

        /// An account's provider-specific fields, tagged by `provider` as
        /// stored (the account document flattens them).
        #[derive(Debug, Clone, Serialize, serde::Deserialize)]
        #[serde(tag = "provider")]
        pub enum Settings {
            $(#[serde(rename = $spelling)] $variant($module::Settings),)*
        }

        impl Provider {
            pub const ALL: &'static [Provider] = &[$(Provider::$variant,)*];

            /// The stored spellings, for inputs that choose one.
            pub const NAMES: &'static [&'static str] = &[$($spelling,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Provider::$variant => $spelling,)*
                }
            }

            /// The provider's name as people write it, for messages.
            pub fn display_name(self) -> &'static str {
                match self {
                    $(Provider::$variant => <$module::Settings as Seam>::DISPLAY_NAME,)*
                }
            }

            /// Whether this provider's accounts carry `channel`.
            pub fn serves(self, channel: Channel) -> bool {
                match self {
                    $(Provider::$variant => <$module::Settings as Seam>::serves(channel),)*
                }
            }

            /// When free-form messages may reach a customer on `channel`
            /// through this provider (R-CONV-6).
            pub fn reply_window(self, channel: Channel) -> ReplyWindow {
                match self {
                    $(Provider::$variant => <$module::Settings as Seam>::reply_window(channel),)*
                }
            }

            /// Where one of this provider's status words stands in a sent
            /// message's life.
            pub fn delivery_status(self, word: &str) -> DeliveryStatus {
                match self {
                    $(Provider::$variant => <$module::Settings as Seam>::delivery_status(word),)*
                }
            }

            /// Runs `task` with this provider's [`Seam`].
            pub async fn run<T: SeamTask>(self, task: T) -> T::Output {
                match self {
                    $(Provider::$variant => task.run::<$module::Settings>().await,)*
                }
            }

            /// Reads an account's settings of this provider from `input`;
            /// `existing` is the account's current settings, if any, of the
            /// same provider.
            pub fn read_settings(
                self,
                ctx: &Ctx,
                input: &Object,
                existing: Option<&Settings>,
            ) -> Result<Settings, Error> {
                match self {
                    $(Provider::$variant => {
                        let fields = [&["provider", "name"][..], <$module::Settings as Seam>::FIELDS].concat();
                        input.only(&fields)?;
                        let existing = existing.and_then(<$module::Settings as Variant>::of);
                        Ok(Settings::$variant(<$module::Settings as Seam>::read(ctx, input, existing)?))
                    })*
                }
            }
        }

        /// Every organisation's account warnings, for the operator
        /// (R-CFG-4).
        pub fn every_warning(kv: &dyn KeyValue, now_millis: i64) -> Result<Vec<PageTokenWarning>, Error> {
            let mut warnings = Vec::new();
            $(warnings.extend(<$module::Settings as Seam>::every_warning(kv, now_millis)?);)*
            Ok(warnings)
        }

        /// The Spin variable holding each API base the providers call, by
        /// the name logs use.
        pub fn api_bases() -> Vec<(&'static str, &'static str)> {
            [$(<$module::Settings as Seam>::API_BASES,)*].concat()
        }

        impl Settings {
            pub fn provider(&self) -> Provider {
                match self {
                    $(Settings::$variant(_) => Provider::$variant,)*
                }
            }

            /// The secret the provider signs this account's webhooks with
            /// (providers.md 1.3, 2.5, 3.2, 4.2).
            pub fn webhook_secret(&self) -> &str {
                match self {
                    $(Settings::$variant(settings) => settings.webhook_secret(),)*
                }
            }

            /// The other secrets the provider may sign this account's
            /// webhooks with, each named by the request (Twilio's shared
            /// keys, providers.md 1.3b).
            pub fn webhook_keys(&self) -> Vec<WebhookKey> {
                match self {
                    $(Settings::$variant(settings) => settings.webhook_keys(),)*
                }
            }

            /// The addresses customers reach the account at.
            pub fn addresses(&self) -> Vec<&str> {
                match self {
                    $(Settings::$variant(settings) => settings.addresses(),)*
                }
            }

            /// The channel customers reach the account on at `address`, if
            /// it is one of the account's.
            pub fn channel_at(&self, address: &str) -> Option<Channel> {
                match self {
                    $(Settings::$variant(settings) => settings.channel_at(address),)*
                }
            }

            /// What one of [`Settings::addresses`] is, for messages.
            pub fn address_kind(&self) -> &'static str {
                match self {
                    $(Settings::$variant(_) => <$module::Settings as Seam>::ADDRESS_KIND,)*
                }
            }

            /// The settings as a create body takes them, secrets included.
            pub fn input(&self) -> SettingsInput {
                match self {
                    $(Settings::$variant(settings) => SettingsInput::$variant(settings.input()),)*
                }
            }

            /// The settings as an account's read shows them, secrets masked.
            pub fn view(&self, callback_url: &str) -> SettingsView {
                match self {
                    $(Settings::$variant(settings) => SettingsView::$variant(settings.view(callback_url)),)*
                }
            }

            /// The provider-specific part of saving an account.
            pub fn on_save(
                &mut self,
                ctx: &Ctx,
                account_id: &str,
                previous: Option<&Settings>,
                effects: &mut Effects,
            ) -> Result<(), Error> {
                match self {
                    $(Settings::$variant(settings) => {
                        let previous = previous.and_then(<$module::Settings as Variant>::of);
                        settings.on_save(ctx, account_id, previous, effects)
                    })*
                }
            }

            /// Checks what a save brings with the provider, before the save
            /// claims or writes anything; `previous` is the account's
            /// settings before it.
            pub async fn confirm(&self, ctx: &Ctx<'_>, previous: Option<&Settings>) -> Result<(), Error> {
                match self {
                    $(Settings::$variant(settings) => {
                        let previous = previous.and_then(<$module::Settings as Variant>::of);
                        settings.confirm(ctx, previous).await
                    })*
                }
            }

            /// The account's warnings (R-CFG-4), in `org`.
            pub fn warnings(&self, org: &str, account_id: &str, now_millis: i64) -> Vec<PageTokenWarning> {
                match self {
                    $(Settings::$variant(settings) => settings.warnings(org, account_id, now_millis),)*
                }
            }

            /// What deleting the account deletes besides its document.
            pub fn on_delete(&self, account_id: &str) -> Vec<String> {
                match self {
                    $(Settings::$variant(settings) => settings.on_delete(account_id),)*
                }
            }

            /// Asks the provider whether the credentials work (R-CFG-3).
            pub async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
                match self {
                    $(Settings::$variant(settings) => settings.check_credentials(ctx).await,)*
                }
            }

            /// A new customer's name, asked of the provider (best effort).
            pub async fn customer_name(&self, ports: &Ports<'_>, thread: Thread<'_>) -> Option<String> {
                match self {
                    $(Settings::$variant(settings) => settings.customer_name(ports, thread).await,)*
                }
            }

            /// Sends `outgoing` through the account.
            pub async fn send(
                &self,
                ports: &Ports<'_>,
                outgoing: &Outgoing<'_>,
            ) -> Result<SendOutcome, Error> {
                match self {
                    $(Settings::$variant(settings) => settings.send(ports, outgoing).await,)*
                }
            }
        }

        $(impl Variant for $module::Settings {
            fn of(settings: &Settings) -> Option<&Self> {
                if let Settings::$variant(settings) = settings {
                    Some(settings)
                } else {
                    None
                }
            }
        })*
    };
}

providers! {
    Telesign => telesign = "telesign",
    Twilio => twilio = "twilio",
    Facebook => facebook = "facebook",
    Google => google = "gbm",
}

impl Provider {
    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL
            .iter()
            .copied()
            .find(|provider| provider.as_str() == text)
    }

    /// The providers whose accounts carry `channel`.
    pub fn serving(channel: Channel) -> impl Iterator<Item = Provider> {
        Provider::ALL
            .iter()
            .copied()
            .filter(move |provider| provider.serves(channel))
    }

    /// Whether the status word `status` is further along than `current`:
    /// status callbacks arrive out of order and must never move a message
    /// back, and an unknown word never wins.
    pub fn moves_forward(self, current: Option<&str>, status: &str) -> bool {
        let current = current.map_or(DeliveryStatus::Unknown, |word| self.delivery_status(word));
        self.delivery_status(status) > current
    }
}

impl Settings {
    /// The account's addresses that carry `channel`.
    pub fn addresses_on(&self, channel: Channel) -> Vec<&str> {
        self.addresses()
            .into_iter()
            .filter(|address| self.channel_at(address) == Some(channel))
            .collect()
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the core asks of a provider, implemented by its account settings
/// (`providers/<name>/`): the account's fields and their validation, the
/// webhook's signature check and parsing into [`Event`]s, the sender, the
/// credential check, the delivery-status order and the reply window. The
/// core never matches on a provider: it asks this.
/// A provider's settings among [`Settings`]' variants.
pub trait Variant: Sized {
    /// These settings, if `settings` are this provider's.
    fn of(settings: &Settings) -> Option<&Self>;
}

/// Work written once for every provider's [`Seam`], for a provider known
/// only at run time ([`Provider::run`]): how the webhook pipeline above
/// the seam runs for the provider a URL names, without the seam naming it.
#[allow(async_fn_in_trait)]
pub trait SeamTask {
    type Output;
    async fn run<S: Seam>(self) -> Self::Output;
}

#[allow(async_fn_in_trait)]
pub trait Seam: Variant {
    const PROVIDER: Provider;
    /// The provider's name as people write it.
    const DISPLAY_NAME: &'static str;
    /// An account's input fields besides `provider` and `name`.
    const FIELDS: &'static [&'static str];
    /// What an address of the account is, for messages.
    const ADDRESS_KIND: &'static str;
    /// The channels the provider's accounts carry; an account's address
    /// carries the first unless [`Seam::channel_at`] says otherwise.
    const CHANNELS: &'static [Channel];
    /// The Spin variables holding the provider's API bases, each with the
    /// name logs give the calls to it.
    const API_BASES: &'static [(&'static str, &'static str)];

    fn serves(channel: Channel) -> bool {
        Self::CHANNELS.contains(&channel)
    }
    fn reply_window(channel: Channel) -> ReplyWindow;
    fn delivery_status(word: &str) -> DeliveryStatus;

    // ---- account settings
    /// The account's fields as a create body takes them, secrets included.
    type Input: Serialize;
    /// The account's fields as the API shows them, secrets masked.
    type View: Serialize;
    fn read(ctx: &Ctx, input: &Object, existing: Option<&Self>) -> Result<Self, Error>;
    fn input(&self) -> Self::Input;
    fn view(&self, callback_url: &str) -> Self::View;
    fn webhook_secret(&self) -> &str;
    /// Secrets the provider may sign with instead, each named by the
    /// request; they ride in the account's global record with the secret.
    fn webhook_keys(&self) -> Vec<WebhookKey> {
        Vec::new()
    }
    fn addresses(&self) -> Vec<&str>;
    /// The channel `address` carries, if it is one of the account's.
    fn channel_at(&self, address: &str) -> Option<Channel> {
        self.addresses()
            .contains(&address)
            .then_some(Self::CHANNELS[0])
    }
    fn on_save(
        &mut self,
        _ctx: &Ctx,
        _account_id: &str,
        _previous: Option<&Self>,
        _effects: &mut Effects,
    ) -> Result<(), Error> {
        Ok(())
    }
    fn on_delete(&self, _account_id: &str) -> Vec<String> {
        Vec::new()
    }
    async fn confirm(&self, _ctx: &Ctx<'_>, _previous: Option<&Self>) -> Result<(), Error> {
        Ok(())
    }
    fn warnings(&self, _org: &str, _account_id: &str, _now_millis: i64) -> Vec<PageTokenWarning> {
        Vec::new()
    }
    /// The warnings of every organisation's accounts, for the operator.
    fn every_warning(_kv: &dyn KeyValue, _now_millis: i64) -> Result<Vec<PageTokenWarning>, Error> {
        Ok(Vec::new())
    }

    // ---- credentials and sending
    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error>;
    async fn send(&self, ports: &Ports<'_>, outgoing: &Outgoing<'_>) -> Result<SendOutcome, Error>;
    /// The name of a new customer whose messages carry none, asked of the
    /// provider once, after their first message is stored: `None` when the
    /// provider cannot tell, could not be asked, or was slow. Bounded in
    /// time: the provider waits for the webhook's answer meanwhile.
    async fn customer_name(&self, _ports: &Ports<'_>, _thread: Thread<'_>) -> Option<String> {
        None
    }

    // ---- webhook (driven by [`crate::webhooks`])
    /// What is read of a request before its signature is checked, so the
    /// check and the parse share one pass.
    type Unverified;
    /// The methods the webhook answers.
    const METHODS: &'static [&'static str] = &["POST"];
    /// The header whose signature is checked, for the 403.
    const SIGNATURE_HEADER: &'static str;
    /// One request carries events for addresses of other accounts too
    /// (Facebook delivers a page's events to every app subscribed to it):
    /// the account is always read, those events are skipped, and an event
    /// refused for good does not refuse the others.
    const BATCHES: bool = false;

    fn unverified(request: &Request) -> Self::Unverified;
    /// The answer to a subscription handshake, if the request is one:
    /// checked right after the account's global record is read. `account`
    /// reads the account's settings (one more read), for a handshake that
    /// checks against them.
    fn handshake(
        _unverified: &Self::Unverified,
        _request: &Request,
        _signer: &Signer,
        _account: &dyn Fn() -> Result<Settings, Error>,
    ) -> Option<Result<Response, Error>> {
        None
    }
    /// Whether the request is signed with one of the signer's secrets.
    fn signed(
        unverified: &Self::Unverified,
        request: &Request,
        ports: &Ports<'_>,
        signer: &Signer,
    ) -> bool;
    fn events(unverified: Self::Unverified, request: &Request) -> Result<Vec<Event>, Error>;
    /// Fills in the address of a message whose callback did not name it,
    /// from the account.
    fn complete(inbound: &mut Inbound, account_id: &str, _settings: &Self) -> Result<(), Error> {
        Err(invalid_callback(format!(
            "the callback names no address of account {account_id} ({}); nothing was stored",
            inbound.provider_message_id
        )))
    }
    /// The answer to a callback that was taken.
    fn accepted() -> Response;
}

/// What a webhook request tells the core, once verified and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A customer's message.
    Message(Inbound),
    /// A status of one of our messages, by the provider's id for it.
    Status {
        message_id: String,
        status: String,
        error_code: Option<String>,
        /// Our address the message went from, when the callback says.
        channel_address: Option<String>,
    },
    /// A receipt that covers every message we sent on a thread up to a
    /// time (Messenger's watermarks).
    Watermark {
        channel_address: String,
        customer_address: String,
        watermark_millis: i64,
        status: &'static str,
    },
    /// Nothing to store (our own sends echoed, typing).
    Nothing,
}

impl Event {
    /// Our address the event concerns, when it names one.
    pub fn channel_address(&self) -> Option<&str> {
        match self {
            Event::Message(inbound) => Some(&inbound.channel_address),
            Event::Status {
                channel_address, ..
            } => channel_address.as_deref(),
            Event::Watermark {
                channel_address, ..
            } => Some(channel_address),
            Event::Nothing => None,
        }
    }
}

/// A message for a provider to send.
pub struct Outgoing<'a> {
    pub account_id: &'a str,
    pub thread: Thread<'a>,
    pub content: &'a Content,
    pub author: Author,
    pub window: Window,
}

/// The outcome of a credential check, with each page's for accounts that
/// have pages.
pub struct Checked {
    pub check: CredentialCheck,
    pub pages: Vec<PageValidation>,
}

impl From<CredentialCheck> for Checked {
    fn from(check: CredentialCheck) -> Checked {
        Checked {
            check,
            pages: Vec::new(),
        }
    }
}

/// The outcome of one page's credential check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageValidation {
    pub page_id: String,
    pub status: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    pub message: String,
}

/// Where the provider posts an account's callbacks.
pub fn callback_url(public_base_url: &str, provider: Provider, account_id: &str) -> String {
    format!("{public_base_url}/webhooks/{provider}/{account_id}")
}

/// When free-form messages may reach a customer, counted from the
/// customer's last message, and what a refusal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyWindow {
    /// How long free-form messages may go out; `None`: any time.
    pub free_form_hours: Option<i64>,
    /// How long a human agent's reply may still go out, tagged, after the
    /// free-form window closed (Messenger's HUMAN_AGENT tag).
    pub human_agent_hours: Option<i64>,
    /// How a refusal that comes from the provider starts.
    pub refused_by: &'static str,
    /// What a refusal says; `{closed_at}` stands for when it closed.
    pub closed: &'static str,
}

impl ReplyWindow {
    /// A channel without a window: messages may go out at any time.
    pub const NONE: ReplyWindow = ReplyWindow {
        free_form_hours: None,
        human_agent_hours: None,
        refused_by: "The provider refused the message: ",
        closed:
            "the channel's window for replies closed at {closed_at}; wait for the customer to write",
    };

    /// When free-form messages may reach a customer on `channel`: the rule
    /// of the providers that carry it.
    pub fn on(channel: Channel) -> ReplyWindow {
        Provider::serving(channel)
            .next()
            .map_or(ReplyWindow::NONE, |provider| provider.reply_window(channel))
    }
}

/// Where a message we sent stands, in the order a message moves through:
/// a status only ever moves forward (`>`). Each provider maps its own
/// status words onto it; the words themselves are what is stored and
/// shown. Words a provider does not send for our messages are `Unknown`,
/// the lowest, so they never win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    Unknown,
    /// Handed over, outcome not yet known (TeleSign's `pending`).
    Pending,
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    PartiallyDelivered,
    Delivered,
    Read,
    /// Settled for good: failed, or (for providers that report no more
    /// than that) delivered. Final states never overwrite each other.
    Final,
}

/// Whether the provider accepted the credentials (`valid`), refused them
/// (`invalid`: fix them), or could not be asked (`unreachable`: try again
/// later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Invalid,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialCheck {
    pub verdict: Verdict,
    /// HTTP status the provider answered, if any
    pub provider_status: Option<u16>,
    /// the provider's own message (e.g. Twilio's `message`, Graph's
    /// error.message, TeleSign's status.description / errors[].description,
    /// Google's error_description), or the network error; never a secret
    pub message: String,
}

impl CredentialCheck {
    /// A check whose message is scrubbed of every non-empty secret, as sent
    /// and percent-encoded.
    fn new(
        verdict: Verdict,
        provider_status: Option<u16>,
        message: impl Into<String>,
        secrets: &[&str],
    ) -> CredentialCheck {
        CredentialCheck {
            verdict,
            provider_status,
            message: scrub(message, secrets),
        }
    }

    /// The request got no HTTP answer.
    fn unreachable(error: &OutboundError, secrets: &[&str]) -> CredentialCheck {
        CredentialCheck::new(Verdict::Unreachable, None, error.to_string(), secrets)
    }
}

/// `message` with every non-empty secret, as sent and percent-encoded,
/// replaced by `[redacted]`.
fn scrub(message: impl Into<String>, secrets: &[&str]) -> String {
    let mut message = message.into();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        message = message
            .replace(*secret, "[redacted]")
            .replace(&percent_encode(secret), "[redacted]");
    }
    message
}

/// What an HTTP status alone says about credentials: 1xx/3xx/5xx never
/// reached the provider's credential check and 429 was turned away before
/// it, so only 2xx and the other 4xx are answers about the credentials.
fn verdict_for(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Valid,
        429 => Verdict::Unreachable,
        400..=499 => Verdict::Invalid,
        _ => Verdict::Unreachable,
    }
}

/// The body as JSON, if it is JSON.
fn json(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// The string at `pointer` (RFC 6901) in `value`, if it is a non-empty string.
fn text<'a>(value: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .filter(|text| !text.is_empty())
}

/// The message for an answer that carried no provider message.
fn http_status(status: u16) -> String {
    format!("HTTP {status}")
}

/// A provider's API origin from its Spin variable (e.g. `twilio_api_base`).
pub fn api_base(variables: &dyn crate::ports::Variables, name: &str) -> Result<String, Error> {
    variables
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Misconfigured(format!(
                "the Spin variable {name} is not set; the operator must set it"
            ))
        })
}

/// What became of a message handed to a provider's send API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The provider took the message: its id for it, and its first status.
    Sent { id: String, status: String },
    /// The channel's window for this message is closed (Twilio 63016,
    /// Graph 10/2018278).
    OutsideWindow { message: String },
    /// HTTP 429 or the provider's rate-limit error; `retry_after_seconds` from the Retry-After header when present.
    RateLimited {
        retry_after_seconds: Option<u64>,
        message: String,
    },
    /// Any other refusal: the HTTP status, the provider's error code and message.
    Rejected {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// No HTTP answer (network / host policy).
    Unreachable { message: String },
}

/// Sends `request` and reads the provider's answer with `read`; a request
/// that got no answer is [`SendOutcome::Unreachable`]. Either way, nothing
/// of `secrets` is left in a message.
async fn send_and_read(
    http: &dyn crate::ports::OutboundHttp,
    request: crate::ports::OutboundRequest,
    secrets: &[&str],
    read: impl FnOnce(&crate::ports::OutboundResponse, &[&str]) -> SendOutcome,
) -> SendOutcome {
    match http.send(request).await {
        Ok(response) => read(&response, secrets),
        Err(error) => SendOutcome::Unreachable {
            message: scrub(error.to_string(), secrets),
        },
    }
}

/// `Retry-After` in seconds; the HTTP-date form is not read (it would need
/// the clock) and counts as absent.
pub(crate) fn retry_after(headers: &[(String, String)]) -> Option<u64> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Where a Messenger or Business Messages message is, by its receipts:
/// `sent` < `delivered` < `read`. Receipts arrive out of order, so a status
/// only ever moves up this order.
pub fn receipt_status(status: &str) -> DeliveryStatus {
    match status {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        _ => DeliveryStatus::Unknown,
    }
}

/// `base` without its trailing `/`s, followed by `path`.
fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters:
/// safe in a path segment, a query value and a form value alike.
/// `Authorization: Basic …` (RFC 7617) with the password used verbatim.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_has_a_provider() {
        for channel in Channel::ALL {
            assert!(Provider::serving(channel).next().is_some(), "{channel}");
        }
    }

    #[test]
    fn basic_auth_matches_telesigns_sdk_vector() {
        assert_eq!(
            basic_auth(
                "FFFFFFFF-EEEE-DDDD-1234-AB1234567890",
                "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw=="
            ),
            "Basic RkZGRkZGRkYtRUVFRS1ERERELTEyMzQtQUIxMjM0NTY3ODkwOkVYQU1QTEUtLS0tVEU4c1RnZzQ1eXVzdW1vTjZCWXNCVmtoK3lSSjVjemdzbkNlaFphT1lsZFBKZG1GaDZOZVg4a3VuWjJ6VTFZV2FVdy8wd1Y2eGZ3PT0="
        );
    }

    #[test]
    fn statuses_map_to_verdicts() {
        assert_eq!(verdict_for(200), Verdict::Valid);
        assert_eq!(verdict_for(204), Verdict::Valid);
        assert_eq!(verdict_for(401), Verdict::Invalid);
        assert_eq!(verdict_for(404), Verdict::Invalid);
        assert_eq!(verdict_for(429), Verdict::Unreachable);
        assert_eq!(verdict_for(503), Verdict::Unreachable);
        assert_eq!(verdict_for(302), Verdict::Unreachable);
    }

    #[test]
    fn messages_never_carry_a_secret() {
        let check = CredentialCheck::new(
            Verdict::Unreachable,
            None,
            "GET https://x/?access_token=a%2Bb and a+b and hunter2",
            &["a+b", "hunter2", ""],
        );
        assert_eq!(
            check.message,
            "GET https://x/?access_token=[redacted] and [redacted] and [redacted]"
        );
    }
}
