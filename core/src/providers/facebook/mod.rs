//! Facebook Messenger (providers.md 3): the page-token check, webhook
//! signatures and events, and the Send API.
//!
//! Asking Graph who the token is (`/me`) proves three things the Send API
//! needs, and that the admin saving it holds the page: the token is alive
//! (else Graph error 190), it belongs to this page (`/me` of a page token is
//! that page), and the app secret matches the app the token was issued to
//! (every call carries `appsecret_proof`, which apps requiring it refuse
//! without and Graph checks when present). Reading the page by its id would
//! prove none of the middle: any token may read a public page.
//!
//! Webhooks are signed with the app secret over the raw body, so the
//! signature is checked on the bytes as received, before any parsing. One
//! POST may batch events of several pages; they are flattened here into
//! typed [`Event`]s so the rest of the core never sees Graph's field names,
//! and kinds the gateway does not handle are skipped rather than refused:
//! a refused delivery is redelivered and can get the webhook disabled.
//!
//! A new customer's name is read once from Graph's User Profile API
//! (`profile.rs`), best effort and time-boxed.
//!
//! Sending maps Graph's answers onto the decisions the caller has to make:
//! done, outside the messaging window (only the customer writing again
//! reopens it), retry later, or refused for good. Every message is scrubbed
//! of the page token, the app secret and the proof, which hosts and Graph
//! may quote back.

mod credentials;
mod pages;
mod profile;
mod send;
mod settings;
mod webhook;

pub use credentials::*;
pub use pages::{every_page_token_warning, PageTokenWarning};
#[cfg(test)]
pub(crate) use pages::{page_claim, DAY_MILLIS};
pub use send::*;
pub use settings::{FacebookPage, Input, Settings, View};
pub use webhook::*;

use super::{endpoint, http_status, json, scrub, text, verdict_for};
use super::{receipt_status, Checked, DeliveryStatus, Provider, Seam};
use super::{retry_after, CredentialCheck, ReplyWindow, SendOutcome, Verdict};
use crate::api::Method;
use crate::api::{Request, Response};
use crate::channel::Channel;
use crate::config::{Ctx, Effects};
use crate::encoding::{hex, percent_encode};
use crate::error::Error;
use crate::input::Object;
use crate::message::Attachment;
use crate::ports::{KeyValue, Ports};
use crate::ports::{OutboundError, OutboundHttp, OutboundRequest, OutboundResponse};
use crate::providers::webhook::{echo, Signer};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

impl Seam for Settings {
    const PROVIDER: Provider = Provider::Facebook;
    const DISPLAY_NAME: &'static str = "Facebook";
    const FIELDS: &'static [&'static str] = settings::FIELDS;
    const CHANNELS: &'static [Channel] = &[Channel::Messenger];
    const API_BASES: &'static [(&'static str, &'static str)] = &[("facebook", "graph_api_base")];
    const ADDRESS_KIND: &'static str = "the page id of one of the account's connected pages";

    /// Messenger takes free-form messages for 24 hours after the customer's
    /// last message, and a human agent's reply with the HUMAN_AGENT tag for 7
    /// days.
    fn reply_window(_channel: Channel) -> ReplyWindow {
        ReplyWindow {
            free_form_hours: Some(24),
            human_agent_hours: Some(7 * 24),
            refused_by: "Facebook refused the message: ",
            closed: "Messenger's window for replies closed at {closed_at} (24 hours after the customer's last message, or 7 days for a human agent when the channel's human_agent_tag is on); wait for the customer to write",
        }
    }

    fn delivery_status(word: &str) -> DeliveryStatus {
        receipt_status(word)
    }

    fn read(ctx: &Ctx, input: &Object, existing: Option<&Self>) -> Result<Self, Error> {
        Settings::read(ctx, input, existing)
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
        &self.app_secret
    }

    fn addresses(&self) -> Vec<&str> {
        Settings::addresses(self)
    }

    async fn confirm(&self, ctx: &Ctx<'_>, previous: Option<&Self>) -> Result<(), Error> {
        pages::confirm_new_tokens(ctx, self, previous).await
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        account_id: &str,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        pages::claim_pages(ctx, account_id, self, previous, effects)
    }

    fn on_delete(&self, _account_id: &str) -> Vec<String> {
        pages::released(self)
    }

    fn warnings(&self, org: &str, account_id: &str, now_millis: i64) -> Vec<PageTokenWarning> {
        pages::token_warnings(self, org, account_id, now_millis)
    }

    fn every_warning(kv: &dyn KeyValue, now_millis: i64) -> Result<Vec<PageTokenWarning>, Error> {
        every_page_token_warning(kv, now_millis)
    }

    async fn check_credentials(&self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
        pages::check_pages(ctx, self).await
    }

    async fn send(
        &self,
        ports: &Ports<'_>,
        outgoing: &super::Outgoing<'_>,
    ) -> Result<SendOutcome, Error> {
        send::message(self, ports, outgoing).await
    }

    async fn customer_name(
        &self,
        ports: &Ports<'_>,
        thread: crate::message::Thread<'_>,
    ) -> Option<String> {
        profile::customer_name(self, ports, thread).await
    }

    type Unverified = ();
    const METHODS: &'static [&'static str] = &["GET", "POST"];
    const SIGNATURE_HEADER: &'static str = "X-Hub-Signature-256";
    const BATCHES: bool = true;

    fn unverified(_request: &Request) {}

    fn handshake(
        _: &(),
        request: &Request,
        signer: &Signer,
        account: &dyn Fn() -> Result<super::Settings, Error>,
    ) -> Option<Result<Response, Error>> {
        webhook::handshake(request, signer, account)
    }

    fn signed(_: &(), request: &Request, _ports: &Ports<'_>, signer: &Signer) -> bool {
        webhook::signed(request, &signer.secret)
    }

    fn events(_: (), request: &Request) -> Result<Vec<super::Event>, Error> {
        webhook::events(request)
    }

    fn accepted() -> Response {
        echo("EVENT_RECEIVED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::reply;
    use crate::memory::{block_on, ScriptedHttp};

    pub(super) const SECRET: &str = "test_app_secret";
    pub(super) const PAGE: &str = "1234567890";
    pub(super) const TOKEN: &str = "EAAB-page-token";
    pub(super) const PROOF: &str =
        "994b311bb2e1401230d8d552c85ddcdb449baf2a63cf64585ed949addde6fb70";

    pub(super) fn check(http: &ScriptedHttp, token: &str) -> CredentialCheck {
        block_on(check_page(
            http,
            "https://graph.facebook.com/",
            SECRET,
            PAGE,
            token,
        ))
    }

    #[test]
    fn the_proof_is_hex_hmac_sha256_of_the_token() {
        assert_eq!(appsecret_proof(SECRET, TOKEN), PROOF);
    }

    #[test]
    fn asks_whose_token_it_is_with_the_proof() {
        let http =
            ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890","name":"Acme Support"}"#));
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Valid,
                provider_status: Some(200),
                message: "page 1234567890 \"Acme Support\"".into(),
            }
        );
        let sent = http.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, Method::Get);
        assert_eq!(
            sent[0].url,
            format!(
                "https://graph.facebook.com/v21.0/me?fields=id,name\
                 &access_token=EAAB-page-token&appsecret_proof={PROOF}"
            )
        );
        assert!(sent[0].headers.is_empty());
        assert!(sent[0].body.is_empty());
    }

    #[test]
    fn the_token_is_url_encoded() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"1234567890"}"#));
        check(&http, "a+b/c=");
        assert!(http.sent()[0].url.contains("&access_token=a%2Bb%2Fc%3D&"));
    }

    #[test]
    fn a_token_of_another_page_is_invalid() {
        let http = ScriptedHttp::new(|_| reply(200, r#"{"id":"999","name":"Other"}"#));
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "the token belongs to page 999 \"Other\", not 1234567890: \
             paste the access token of page 1234567890"
        );
    }

    #[test]
    fn a_bad_token_is_invalid_with_graphs_message() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AbC"}}"#,
            )
        });
        assert_eq!(
            check(&http, TOKEN),
            CredentialCheck {
                verdict: Verdict::Invalid,
                provider_status: Some(400),
                message: "Invalid OAuth access token - Cannot parse access token (Graph error 190)"
                    .into(),
            }
        );
    }

    #[test]
    fn a_bad_proof_or_expired_token_is_invalid() {
        let http = ScriptedHttp::new(|_| {
            reply(
                400,
                r#"{"error":{"message":"Invalid appsecret_proof provided in the API argument","type":"GraphMethodException","code":100}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(result.verdict, Verdict::Invalid);
        assert_eq!(
            result.message,
            "Invalid appsecret_proof provided in the API argument (Graph error 100)"
        );
        let http = ScriptedHttp::new(|_| {
            reply(
                401,
                r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}"#,
            )
        });
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Invalid, Some(401))
        );
        assert!(result.message.ends_with("(Graph error 190/463)"));
    }

    #[test]
    fn rate_limits_server_errors_and_network_errors_are_unreachable() {
        let http = ScriptedHttp::new(|_| {
            reply(
                403,
                r#"{"error":{"message":"Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}"#,
            )
        });
        assert_eq!(check(&http, TOKEN).verdict, Verdict::Unreachable);
        let http = ScriptedHttp::new(|_| reply(503, "Service Unavailable"));
        let result = check(&http, TOKEN);
        assert_eq!(
            (
                result.verdict,
                result.provider_status,
                result.message.as_str()
            ),
            (Verdict::Unreachable, Some(503), "HTTP 503")
        );
        let http =
            ScriptedHttp::new(|request| Err(OutboundError(format!("{} timed out", request.url))));
        let result = check(&http, TOKEN);
        assert_eq!(
            (result.verdict, result.provider_status),
            (Verdict::Unreachable, None)
        );
        assert!(!result.message.contains(TOKEN), "{}", result.message);
        assert!(!result.message.contains(PROOF), "{}", result.message);
        assert!(result
            .message
            .contains("access_token=[redacted]&appsecret_proof=[redacted]"));
    }

    pub(super) fn image(url: &str) -> Attachment {
        Attachment {
            url: url.into(),
            content_type: "image/*".into(),
        }
    }
}
