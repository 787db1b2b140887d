//! Twilio Programmable Messaging (WhatsApp and SMS): everything the gateway
//! exchanges with Twilio, in one place because it all hangs on one account's
//! SID and auth token (providers.md 1).
//!
//! - The credential check reads the account resource: it is free, needs the
//!   same Basic credentials as sending, answers 401 for a wrong token and 404
//!   for a SID the token does not belong to, and its `status` tells a
//!   suspended or closed account (whose credentials authenticate but cannot
//!   send) from an active one.
//! - Webhooks are signed with the auth token, or with a shared key the
//!   request names (HMAC-SHA256 then), over the URL Twilio was
//!   configured with, which behind a proxy or port mapping is not always the
//!   URL the request arrived on; so validation tries the URL with and without
//!   its port as Twilio's SDKs do, and signs the string verbatim (no case or
//!   percent normalisation), since that is what Twilio signed.
//! - Callbacks are parsed into typed messages and status updates here, so the
//!   rest of the core never sees Twilio's parameter names. Status callbacks
//!   arrive out of order, so its `Seam::delivery_status` gives the order a message's
//!   status may only move forward in.
//! - Sending maps Twilio's answers onto the decisions the caller has to make:
//!   done, needs a template (outside WhatsApp's 24-hour window), retry later
//!   (rate limited, or no answer at all), or refused for good. Every message
//!   is scrubbed of the auth token, which hosts and Twilio may echo.

mod credentials;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use send::*;
pub use settings::{Input, Number, Settings, SharedKey, View, MAX_SHARED_KEYS};
pub use webhook::*;

use super::{basic_auth, endpoint, http_status, json, scrub, text, verdict_for};
use super::{retry_after, CredentialCheck, SendOutcome, Verdict};
use super::{Checked, DeliveryStatus, Event, Provider, ReplyWindow, Seam};
use crate::api::Method;
use crate::api::{Request, Response};
use crate::auth::constant_time_eq;
use crate::channel::Channel;
use crate::config::Ctx;
use crate::encoding::form_pairs;
use crate::encoding::{form_encode, percent_encode};
use crate::error::Error;
use crate::input::Object;
use crate::ports::Ports;
use crate::ports::{OutboundHttp, OutboundRequest, OutboundResponse};
use crate::providers::webhook::{Signer, WebhookKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// How Twilio marks a WhatsApp address (`whatsapp:+15551234567`); an SMS
/// address is the bare number.
const WHATSAPP_PREFIX: &str = "whatsapp:";

fn whatsapp_window() -> ReplyWindow {
    ReplyWindow {
        free_form_hours: Some(24),
        human_agent_hours: None,
        refused_by: "WhatsApp refused the message: ",
        closed: "the 24-hour window for free-form WhatsApp messages closed at {closed_at}, 24 hours after the customer's last message; send an approved template instead ({\"template_id\": …}) or wait for the customer to write",
    }
}

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Twilio;
    const DISPLAY_NAME: &'static str = "Twilio";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNELS: &'static [Channel] = &[Channel::Whatsapp, Channel::Sms];
    const API_BASES: &'static [(&'static str, &'static str)] = &[("twilio", "twilio_api_base")];
    const ADDRESS_KIND: &'static str = "one of the account's numbers";

    /// WhatsApp takes free-form messages for 24 hours after the customer's
    /// last message; after that only approved templates. SMS has no window.
    fn reply_window(channel: Channel) -> ReplyWindow {
        match channel {
            Channel::Whatsapp => whatsapp_window(),
            Channel::Sms | Channel::Messenger | Channel::Gbm => ReplyWindow::NONE,
        }
    }

    /// Where `status` stands in a sent message's life (providers.md 1.2), so a
    /// late callback cannot move it back: apply an update only if it is
    /// further along than the stored one. `accepted` < `scheduled` < `queued` <
    /// `sending` < `sent` < `partially_delivered` < `delivered` < `read` <
    /// `failed` = `undelivered` = `canceled` (terminal). Unknown statuses and
    /// the inbound-only `receiving`/`received` are unknown: they never win.
    fn delivery_status(status: &str) -> DeliveryStatus {
        match status {
            "accepted" => DeliveryStatus::Accepted,
            "scheduled" => DeliveryStatus::Scheduled,
            "queued" => DeliveryStatus::Queued,
            "sending" => DeliveryStatus::Sending,
            "sent" => DeliveryStatus::Sent,
            "partially_delivered" => DeliveryStatus::PartiallyDelivered,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "failed" | "undelivered" | "canceled" => DeliveryStatus::Final,
            _ => DeliveryStatus::Unknown,
        }
    }

    fn read(_ctx: &Ctx, input: &Object, existing: Option<&Self>) -> Result<Self, Error> {
        Settings::read(input, existing)
    }

    type Input = Input;
    type View = View;

    fn input(&self) -> Input {
        Settings::input(self)
    }

    fn view(&self, callback_url: &str) -> View {
        Settings::view(self, callback_url)
    }

    fn webhook_secret(&self) -> &str {
        &self.auth_token
    }

    fn webhook_keys(&self) -> Vec<WebhookKey> {
        self.shared_keys
            .iter()
            .map(|key| WebhookKey {
                id: key.id.clone(),
                secret: key.secret.clone(),
            })
            .collect()
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    fn channel_at(&self, address: &str) -> Option<Channel> {
        Settings::channel_at(self, address)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
        let api_base = super::api_base(ctx.ports.variables, "twilio_api_base")?;
        let check = check_credentials(
            ctx.ports.http,
            &api_base,
            &self.account_sid,
            &self.auth_token,
        )
        .await;
        Ok(check.into())
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, Error> {
        send::message(self, ports, outgoing).await
    }

    type Unverified = Vec<(String, String)>;
    const SIGNATURE_HEADER: &'static str = "X-Twilio-Signature";

    fn unverified(request: &Request) -> Self::Unverified {
        form_pairs(&String::from_utf8_lossy(&request.body))
    }

    fn signed(
        params: &Self::Unverified,
        request: &Request,
        ports: &Ports<'_>,
        signer: &Signer,
    ) -> bool {
        webhook::signed(params, request, ports, signer)
    }

    fn events(params: Self::Unverified, _request: &Request) -> Result<Vec<Event>, Error> {
        webhook::events(&params)
    }

    fn accepted() -> Response {
        webhook::twiml()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};
    use crate::ports::OutboundError;

    pub(super) const SID: &str = "AC00000000000000000000000000000000";
    pub(super) const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    pub(super) fn check(http: &ScriptedHttp) -> CredentialCheck {
        block_on(check_credentials(
            http,
            "https://api.twilio.com/",
            SID,
            TOKEN,
        ))
    }

    #[test]
    fn reads_the_account_with_basic_auth() {
        let http = ScriptedHttp::new(|_| {
            reply(
                200,
                r#"{"sid":"AC00000000000000000000000000000000","friendly_name":"Acme","status":"active"}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "Twilio account \"Acme\" is active".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            "https://api.twilio.com/2010-04-01/Accounts/AC00000000000000000000000000000000.json"
        );
        assert_eq!(
            sent[0].headers,
            vec![(
                "Authorization".to_owned(),
                "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==".to_owned()
            )]
        );
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn a_suspended_account_is_invalid() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"friendly_name":"Acme","status":"suspended"}"#));
        let result = check(&http);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Twilio account \"Acme\" is suspended: reactivate it in the Twilio console"
        );
    }

    #[test]
    fn a_wrong_token_or_sid_is_invalid_with_twilios_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#,
            )
        });
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(401),
                message: "Authenticate (Twilio error 20003)".into(),
            }
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                404,
                r#"{"code":20404,"message":"The requested resource /2010-04-01/Accounts/AC0.json was not found","status":404}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(404))
        );
        assert!(result
            .message
            .ends_with("was not found (Twilio error 20404)"));
    }

    #[test]
    fn server_errors_rate_limits_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| reply(503, ""));
        let result = check(&http);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            )
        });
        let result = check(&http);
        assert_eq!(
            (result.verdict, result.message.as_str()),
            (
                Verdict::Unreachable,
                "Too Many Requests (Twilio error 20429)"
            )
        );
        let http = ScriptedHttp::new(|_| Err(OutboundError("dns lookup failed".into())));
        assert_eq!(
            check(&http),
            CredentialCheck {
                verdict: Verdict::Unreachable,
                provider_status: None,
                message: "outbound HTTP failed: dns lookup failed".into(),
            }
        );
    }

    #[test]
    fn an_echoed_token_is_scrubbed() {
        let http = ScriptedHttp::new(|request| {
            Err(OutboundError(format!("{} {TOKEN} refused", request.url)))
        });
        let result = check(&http);
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(result.message.contains("[redacted] refused"));
    }

    pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }
}
