//! Messaging accounts (R-CFG-1 … R-CFG-4): one per provider account, with
//! exactly the fields the seeds' admin pages ask for, secrets write-only.
//!
//! Each account has a global record `account/{id}` → its organisation and
//! webhook secret, so a webhook (whose URL carries only the account id)
//! finds its tenant and checks the provider's signature after one read; a
//! deleted account leaves a tombstone there, so its webhooks answer 410
//! Gone instead of looking like a typo (R-CFG-7).
//!
//! A Facebook page can feed only one account: Facebook delivers a page's
//! events to every app that subscribes to it. The first account to save a
//! page claims it; any other gets no callback values for that page, and the
//! response says why (R-CFG-2). Claims are global, so a claim needs proof:
//! before a save claims a page whose token is new, Graph must say that the
//! token is that page's own (`/me` with the token answers the page's id).
//! Anyone can read a public page by its id; only the page's admins hold its
//! token. Without that proof one tenant could claim another's page first.

use super::{in_use, Ctx, Effects, Resource, Save};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::{mask, Role};
use crate::entities::outbound_config::OutboundConfig;
use crate::entities::workstream::Workstream;
use crate::error::{Error, ProviderFailure};
use crate::input::Object;
use crate::phone::{DigitsNumber, E164};
use crate::ports::KeyValue;
use crate::providers::google::{self, ServiceAccount};
use crate::providers::{self, CredentialCheck, Verdict};
use crate::store::{self, Claim, Log};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Facebook asks for page tokens to be refreshed every 60 days (R-CFG-4).
pub const PAGE_TOKEN_REFRESH_DAYS: i64 = 60;
const DAY_MILLIS: i64 = 86_400_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub settings: Settings,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation: Option<Validation>,
}

/// The provider-specific fields, tagged by `provider`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum Settings {
    Telesign {
        customer_id: String,
        api_key: String,
        numbers: Vec<TelesignNumber>,
    },
    Twilio {
        account_sid: String,
        auth_token: String,
        numbers: Vec<WhatsAppNumber>,
    },
    Facebook {
        app_id: String,
        app_secret: String,
        /// Generated once; Facebook echoes it in the webhook handshake.
        verify_token: String,
        pages: Vec<FacebookPage>,
    },
    Gbm {
        partner_id: String,
        client_token: String,
        /// The service-account key JSON, as Google's console downloads it.
        service_account: String,
        brand_id: String,
        agent_id: String,
    },
}

pub const PROVIDERS: &[&str] = &["telesign", "twilio", "facebook", "gbm"];
const NUMBER_TYPES: &[&str] = &["long_code", "short_code", "toll_free"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelesignNumber {
    pub number: DigitsNumber,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhatsAppNumber {
    pub name: String,
    pub number: E164,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FacebookPage {
    pub name: String,
    pub page_id: String,
    pub access_token: String,
    /// When the token was set (RFC 3339): tokens are due every 60 days.
    pub token_set_at: String,
    /// Why this page gets no callback values, when another account has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
}

/// The outcome of the last `POST /api/accounts/{id}/validate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    pub status: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    pub message: String,
    pub checked_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageValidation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageValidation {
    pub page_id: String,
    pub status: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    pub message: String,
}

crate::document!(Account, "account");

impl Settings {
    pub fn provider(&self) -> &'static str {
        match self {
            Settings::Telesign { .. } => "telesign",
            Settings::Twilio { .. } => "twilio",
            Settings::Facebook { .. } => "facebook",
            Settings::Gbm { .. } => "gbm",
        }
    }

    /// The secret the provider signs this account's webhooks with
    /// (providers.md 1.3, 2.5, 3.2, 4.2).
    pub fn webhook_secret(&self) -> &str {
        match self {
            Settings::Telesign { api_key, .. } => api_key,
            Settings::Twilio { auth_token, .. } => auth_token,
            Settings::Facebook { app_secret, .. } => app_secret,
            Settings::Gbm { client_token, .. } => client_token,
        }
    }
}

impl Account {
    /// The Facebook pages (none for other providers).
    pub fn pages(&self) -> &[FacebookPage] {
        match &self.settings {
            Settings::Facebook { pages, .. } => pages,
            _ => &[],
        }
    }

    /// The addresses customers reach this account at: numbers, connected
    /// page ids, or the GBM agent id.
    pub fn addresses(&self) -> Vec<&str> {
        match &self.settings {
            Settings::Telesign { numbers, .. } => {
                numbers.iter().map(|n| n.number.as_str()).collect()
            }
            Settings::Twilio { numbers, .. } => numbers.iter().map(|n| n.number.as_str()).collect(),
            Settings::Facebook { pages, .. } => pages
                .iter()
                .filter(|page| page.withheld.is_none())
                .map(|page| page.page_id.as_str())
                .collect(),
            Settings::Gbm { agent_id, .. } => vec![agent_id.as_str()],
        }
    }

    pub fn callback_url(&self, ctx: &Ctx) -> String {
        format!(
            "{}/webhooks/{}/{}",
            ctx.public_base_url(),
            self.settings.provider(),
            self.id
        )
    }

    /// The R-CFG-4 warnings of this account's pages, in `org`.
    fn token_warnings(&self, org: &str, now_millis: i64) -> Vec<PageTokenWarning> {
        self.pages()
            .iter()
            .filter_map(|page| {
                PageTokenWarning::due(org, &self.id, &page.page_id, &page.token_set_at, now_millis)
            })
            .collect()
    }
}

/// A Facebook page token due for refresh (R-CFG-4), as `GET /api/warnings`
/// lists it; an account's read shows its `message`s.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PageTokenWarning {
    pub org_id: String,
    pub account_id: String,
    pub page_id: String,
    pub token_set_at: String,
    pub message: String,
}

impl PageTokenWarning {
    /// The warning for a page token set at `token_set_at`, once it is 60
    /// days old.
    fn due(
        org_id: &str,
        account_id: &str,
        page_id: &str,
        token_set_at: &str,
        now_millis: i64,
    ) -> Option<PageTokenWarning> {
        let set = crate::time::parse_rfc3339(token_set_at).ok()?;
        let age_days = (now_millis - set) / DAY_MILLIS;
        (age_days >= PAGE_TOKEN_REFRESH_DAYS).then(|| PageTokenWarning {
            org_id: org_id.to_owned(),
            account_id: account_id.to_owned(),
            page_id: page_id.to_owned(),
            token_set_at: token_set_at.to_owned(),
            message: format!(
                "the access token of Facebook page {page_id} was set {age_days} days ago: refresh it (Facebook page tokens are due every {PAGE_TOKEN_REFRESH_DAYS} days) and save it with PATCH /api/accounts/{account_id}"
            ),
        })
    }
}

/// Every connected page, for the operator's warnings, which span
/// organisations: the page ids in the order they were first connected (a
/// page connected again appears again), each with its token record while it
/// stays connected.
fn page_log() -> Log {
    Log::new("fbpages")
}

fn page_token_key(page_id: &str) -> String {
    format!("fbpage/{page_id}/token")
}

#[derive(Serialize, Deserialize)]
struct PageToken {
    account_id: String,
    token_set_at: String,
}

/// The organisation an account's global record names.
#[derive(Deserialize)]
struct AccountOwner {
    org: String,
}

/// The R-CFG-4 warnings of `org`'s accounts: its own account index and
/// documents, nothing of other organisations.
pub fn org_page_token_warnings(
    kv: &dyn KeyValue,
    org: &str,
    now_millis: i64,
) -> Result<Vec<PageTokenWarning>, Error> {
    Ok(store::list_all::<Account>(kv, org)?
        .iter()
        .flat_map(|account| account.token_warnings(org, now_millis))
        .collect())
}

/// The R-CFG-4 warnings of every organisation's connected pages, for the
/// operator: the log's count, then its entries, their token records and
/// their accounts' global records, one round trip each.
pub fn every_page_token_warning(
    kv: &dyn KeyValue,
    now_millis: i64,
) -> Result<Vec<PageTokenWarning>, Error> {
    let log = page_log();
    let mut pages: Vec<String> = log
        .read(kv, 1, log.len(kv)?)?
        .into_iter()
        .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    pages.sort();
    pages.dedup();
    let keys: Vec<String> = pages.iter().map(|page| page_token_key(page)).collect();
    let tokens: Vec<(&String, PageToken)> = pages
        .iter()
        .zip(kv.get_many(&keys)?)
        .filter_map(|(page_id, bytes)| Some((page_id, serde_json::from_slice(&bytes?).ok()?)))
        .collect();
    let accounts: Vec<String> = tokens
        .iter()
        .map(|(_, token)| global_key(&token.account_id))
        .collect();
    Ok(tokens
        .iter()
        .zip(kv.get_many(&accounts)?)
        .filter_map(|((page_id, token), owner)| {
            let owner: AccountOwner = serde_json::from_slice(&owner?).ok()?;
            PageTokenWarning::due(
                &owner.org,
                &token.account_id,
                page_id,
                &token.token_set_at,
                now_millis,
            )
        })
        .collect())
}

/// The global record a webhook reads first: the account's organisation,
/// provider and webhook secret, or its tombstone.
pub fn global_key(account_id: &str) -> String {
    format!("account/{account_id}")
}

fn page_claim(page_id: &str) -> String {
    format!("fbpage/{page_id}")
}

fn no_whitespace(what: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |text: &str| {
        if text.chars().any(char::is_whitespace) {
            Err(format!("the {what} contains spaces or line breaks; paste it exactly as the provider shows it"))
        } else {
            Ok(text.to_owned())
        }
    }
}

fn account_sid(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("AC").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a Twilio Account SID: it is AC followed by 32 hex digits, as shown on the Twilio console"))
    }
}

fn customer_id(text: &str) -> Result<String, String> {
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if shaped {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a TeleSign customer ID: it looks like FFFFFFFF-EEEE-DDDD-1234-AB1234567890 (from the TeleSign portal)"))
    }
}

fn telesign_api_key(text: &str) -> Result<String, String> {
    let base64 = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if base64 && text.len() >= 8 {
        Ok(text.to_owned())
    } else {
        Err("the TeleSign API key is the base64 text shown in the TeleSign portal (letters, digits, +, / and =)".into())
    }
}

fn digits(what: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |text: &str| {
        if !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(text.to_owned())
        } else {
            Err(format!("\"{text}\" is not a {what}: it is digits only"))
        }
    }
}

fn service_account(input: &Object) -> Result<String, Error> {
    // Accepted as the JSON object itself or as its text.
    let text = match input.object("service_account") {
        Ok(Some(object)) => Value::Object(object).to_string(),
        Ok(None) => return Err(input.missing("service_account")),
        Err(_) => input.required_str("service_account")?.to_owned(),
    };
    ServiceAccount::parse(&text)
        .map_err(|message| input.error("service_account", "invalid_format", message))?;
    Ok(text)
}

fn read_settings(ctx: &Ctx, input: &Object, existing: Option<&Account>) -> Result<Settings, Error> {
    let provider = input
        .choice("provider", PROVIDERS)?
        .ok_or_else(|| input.missing("provider"))?;
    if let Some(existing) = existing {
        if existing.settings.provider() != provider {
            return Err(input.error(
                "provider",
                "immutable",
                "an account's provider cannot change; create a new account instead",
            ));
        }
    }
    let common = ["provider", "name"];
    let allow = |fields: &[&str]| input.only(&[&common[..], fields].concat());
    Ok(match provider {
        "telesign" => {
            allow(&["customer_id", "api_key", "numbers"])?;
            let numbers = input.objects("numbers", |n| {
                n.only(&["number", "type", "description"])?;
                Ok(TelesignNumber {
                    number: n.parsed("number", DigitsNumber::parse)?,
                    kind: n
                        .choice("type", NUMBER_TYPES)?
                        .ok_or_else(|| n.missing("type"))?
                        .to_owned(),
                    description: n.str("description")?.unwrap_or_default().trim().to_owned(),
                })
            })?;
            unique(input, "numbers", numbers.iter().map(|n| n.number.as_str()))?;
            Settings::Telesign {
                customer_id: input.parsed("customer_id", customer_id)?,
                api_key: input.parsed("api_key", telesign_api_key)?,
                numbers,
            }
        }
        "twilio" => {
            allow(&["account_sid", "auth_token", "numbers"])?;
            let numbers = input.objects("numbers", |n| {
                n.only(&["name", "number"])?;
                Ok(WhatsAppNumber {
                    name: n.name("name", 100)?,
                    number: n.parsed("number", E164::parse)?,
                })
            })?;
            unique(input, "numbers", numbers.iter().map(|n| n.number.as_str()))?;
            Settings::Twilio {
                account_sid: input.parsed("account_sid", account_sid)?,
                auth_token: input.parsed("auth_token", no_whitespace("auth token"))?,
                numbers,
            }
        }
        "facebook" => {
            allow(&["app_id", "app_secret", "pages"])?;
            let previous_pages = existing.map(Account::pages).unwrap_or_default();
            let pages = input.objects("pages", |p| read_page(ctx, p, previous_pages))?;
            unique(input, "pages", pages.iter().map(|p| p.page_id.as_str()))?;
            let verify_token = match existing.map(|e| &e.settings) {
                Some(Settings::Facebook { verify_token, .. }) => verify_token.clone(),
                _ => ctx.ports.random.id128(),
            };
            Settings::Facebook {
                app_id: input.parsed("app_id", digits("Facebook app ID"))?,
                app_secret: input.parsed("app_secret", no_whitespace("app secret"))?,
                verify_token,
                pages,
            }
        }
        _ => {
            allow(&[
                "partner_id",
                "client_token",
                "service_account",
                "brand_id",
                "agent_id",
            ])?;
            Settings::Gbm {
                partner_id: input.parsed("partner_id", no_whitespace("partner ID"))?,
                client_token: input.parsed("client_token", no_whitespace("client token"))?,
                service_account: service_account(input)?,
                brand_id: input.parsed("brand_id", no_whitespace("brand ID"))?,
                agent_id: input.parsed("agent_id", no_whitespace("agent ID"))?,
            }
        }
    })
}

fn read_page(ctx: &Ctx, page: Object, previous: &[FacebookPage]) -> Result<FacebookPage, Error> {
    page.only(&["name", "page_id", "access_token", "token_set_at"])?;
    let page_id = page.parsed("page_id", digits("Facebook page ID"))?;
    let before = previous.iter().find(|p| p.page_id == page_id);
    let access_token = match (
        page.optional_parsed("access_token", no_whitespace("page access token"))?,
        before,
    ) {
        (Some(token), _) => token,
        (None, Some(before)) => before.access_token.clone(),
        (None, None) => return Err(page.missing("access_token")),
    };
    let token_set_at = match page.optional_parsed("token_set_at", crate::time::parse_rfc3339)? {
        Some(millis) if millis > ctx.ports.clock.now_millis() => {
            return Err(page.error(
                "token_set_at",
                "in_future",
                "\"token_set_at\" cannot be in the future",
            ))
        }
        Some(millis) => crate::time::rfc3339(millis),
        // A new token starts its 60 days now; an unchanged one keeps its date.
        None => match before {
            Some(before) if before.access_token == access_token => before.token_set_at.clone(),
            _ => ctx.now.to_string(),
        },
    };
    Ok(FacebookPage {
        name: page.name("name", 100)?,
        page_id,
        access_token,
        token_set_at,
        withheld: None,
    })
}

/// `/api/accounts` and `/api/accounts/{id}`: the generic routes, except
/// that a save first has Graph confirm the page tokens it brings.
pub async fn serve(ctx: &Ctx<'_>, request: &Request, id: Option<&str>) -> Result<Response, Error> {
    let Some(save) = Save::<Account>::read(ctx, request, id)? else {
        return super::serve::<Account>(ctx, request, id);
    };
    confirm_new_tokens(ctx, &save.document, save.existing.as_ref()).await?;
    save.commit(ctx)
}

/// Asks Graph about each page of `account` whose token `previous` did not
/// have (a new page, or a new token; a confirmed one is not asked about
/// again), and refuses the save unless every such token is its page's own.
/// Runs before the save claims or writes anything.
async fn confirm_new_tokens(
    ctx: &Ctx<'_>,
    account: &Account,
    previous: Option<&Account>,
) -> Result<(), Error> {
    let Settings::Facebook {
        app_id,
        app_secret,
        pages,
        ..
    } = &account.settings
    else {
        return Ok(());
    };
    let confirmed = previous.map(Account::pages).unwrap_or_default();
    for (index, page) in pages.iter().enumerate() {
        let known = confirmed
            .iter()
            .any(|old| old.page_id == page.page_id && old.access_token == page.access_token);
        if known {
            continue;
        }
        let check = providers::facebook::check_page(
            ctx.ports.http,
            &providers::api_base(ctx.ports.variables, "graph_api_base")?,
            app_secret,
            &page.page_id,
            &page.access_token,
        )
        .await;
        if let Some(refusal) = unconfirmed(&check, index, &page.page_id, app_id) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// Why Graph's answer `check` does not let page `page_id` (at `pages[index]`)
/// be claimed, if it does not.
fn unconfirmed(
    check: &CredentialCheck,
    index: usize,
    page_id: &str,
    app_id: &str,
) -> Option<Error> {
    match check.verdict {
        Verdict::Valid => None,
        Verdict::Invalid => Some(Error::invalid(
            format!("pages[{index}].access_token"),
            "page_token_mismatch",
            format!(
                "Facebook did not confirm that this is the access token of page {page_id}: {}. A page is connected only with its own page access token: paste page {page_id}'s token, issued to app {app_id}, and check that app_secret is that app's secret. Nothing was saved",
                check.message
            ),
        )),
        Verdict::Unreachable => Some(Error::Provider(ProviderFailure::Unreachable(format!(
                "Facebook's Graph API could not be asked whether this is the access token of page {page_id} ({}); nothing was saved, retry later",
                check.message
            )))),
    }
}

/// 422 when a list names the same number or page twice.
fn unique<'a>(
    input: &Object,
    field: &str,
    values: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    for (index, value) in values.enumerate() {
        if !seen.insert(value) {
            return Err(input.error(
                &format!("{field}[{index}]"),
                "duplicate",
                format!("{value} appears twice in \"{field}\""),
            ));
        }
    }
    Ok(())
}

impl Resource for Account {
    fn input(&self) -> Value {
        let mut fields = serde_json::to_value(&self.settings).expect("settings serialize");
        let object = fields.as_object_mut().expect("settings are an object");
        object.insert("name".into(), json!(self.name));
        object.remove("verify_token");
        if let Some(Value::Array(pages)) = object.get_mut("pages") {
            for page in pages {
                page.as_object_mut().map(|p| p.remove("withheld"));
            }
        }
        fields
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        Ok(Account {
            id,
            name: input.name("name", 100)?,
            settings: read_settings(ctx, &input, existing)?,
            created_at: existing.map_or_else(|| ctx.now.to_string(), |e| e.created_at.clone()),
            updated_at: ctx.now.to_string(),
            last_validation: existing.and_then(|e| e.last_validation.clone()),
        })
    }

    fn view(&self, ctx: &Ctx) -> Value {
        let callback_url = self.callback_url(ctx);
        let mut view = json!({
            "id": self.id,
            "name": self.name,
            "provider": self.settings.provider(),
        });
        let fields = match &self.settings {
            Settings::Telesign {
                customer_id,
                api_key,
                numbers,
            } => json!({
                "customer_id": customer_id,
                "api_key": mask(api_key),
                "numbers": numbers,
                "callback_url": callback_url,
            }),
            Settings::Twilio {
                account_sid,
                auth_token,
                numbers,
            } => json!({
                "account_sid": account_sid,
                "auth_token": mask(auth_token),
                "numbers": numbers,
                "callback_url": callback_url,
            }),
            Settings::Facebook {
                app_id,
                app_secret,
                verify_token,
                pages,
            } => json!({
                "app_id": app_id,
                "app_secret": mask(app_secret),
                "pages": pages.iter().map(|page| {
                    let callback = match &page.withheld {
                        None => json!({"callback_url": callback_url, "verify_token": verify_token}),
                        Some(reason) => json!({"callback_url": null, "verify_token": null, "callback_withheld": reason}),
                    };
                    let mut shown = json!({
                        "name": page.name,
                        "page_id": page.page_id,
                        "access_token": mask(&page.access_token),
                        "token_set_at": page.token_set_at,
                    });
                    merge_into(&mut shown, callback);
                    shown
                }).collect::<Vec<_>>(),
            }),
            Settings::Gbm {
                partner_id,
                client_token,
                service_account,
                brand_id,
                agent_id,
            } => json!({
                "partner_id": partner_id,
                "client_token": mask(client_token),
                "service_account": ServiceAccount::parse(service_account)
                    .map(|account| json!({"client_email": account.client_email, "private_key": "****"}))
                    .unwrap_or(json!("****")),
                "brand_id": brand_id,
                "agent_id": agent_id,
                "callback_url": callback_url,
            }),
        };
        merge_into(&mut view, fields);
        merge_into(
            &mut view,
            json!({
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "last_validation": self.last_validation,
                "warnings": self
                    .token_warnings(ctx.org(), ctx.ports.clock.now_millis())
                    .into_iter()
                    .map(|warning| warning.message)
                    .collect::<Vec<_>>(),
            }),
        );
        view
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        // The webhook secret rides along so that a webhook checks the
        // provider's signature after this one read, before reading anything
        // a forged request could make it read.
        effects.writes.push((
            global_key(&self.id),
            store::encode(&json!({
                "org": ctx.org(),
                "provider": self.settings.provider(),
                "secret": self.settings.webhook_secret(),
            })),
        ));
        if let Some(Account {
            settings: Settings::Gbm { .. },
            ..
        }) = previous
        {
            effects.deletes.push(google::token_cache_key(&self.id));
        }
        let kept = self
            .addresses()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        if let Some(previous) = previous {
            let dropped: Vec<&str> = previous
                .addresses()
                .into_iter()
                .filter(|a| !kept.iter().any(|k| k == a))
                .collect();
            refuse_if_routed(ctx, &self.id, &dropped)?;
        }
        if let Settings::Facebook { pages, .. } = &mut self.settings {
            for page in pages.iter_mut() {
                match effects.claim(ctx, page_claim(&page.page_id), &self.id)? {
                    // A save connecting it right now, or one that died doing
                    // so: the page is nobody's yet, so nothing is withheld.
                    Claim::Taken(None) => {
                        return Err(Error::InProgress(format!(
                            "another save is connecting page {} right now; retry after the Retry-After delay",
                            page.page_id
                        )))
                    }
                    Claim::Taken(Some(_)) => {
                        page.withheld = Some(format!(
                            "page {} is already connected to another account, which receives its messages; no callback values were generated for it here. Remove the page from that account first, then save this one again",
                            page.page_id
                        ));
                        continue;
                    }
                    Claim::Won(()) => {
                        let log = page_log();
                        let slot = log.reserve(ctx.kv())?;
                        effects
                            .writes
                            .push((log.slot_key(slot), page.page_id.as_bytes().to_vec()));
                    }
                    Claim::Held => {}
                }
                let token = PageToken {
                    account_id: self.id.clone(),
                    token_set_at: page.token_set_at.clone(),
                };
                effects
                    .writes
                    .push((page_token_key(&page.page_id), store::encode(&token)));
            }
            let previous_pages = previous.map(Account::pages).unwrap_or_default();
            for old in previous_pages.iter().filter(|old| old.withheld.is_none()) {
                if !pages.iter().any(|page| page.page_id == old.page_id) {
                    effects.release(ctx, &page_claim(&old.page_id));
                    effects.deletes.push(page_token_key(&old.page_id));
                }
            }
        }
        Ok(())
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        refuse_if_routed(ctx, &self.id, &self.addresses())?;
        if let Settings::Gbm { .. } = self.settings {
            return Ok(vec![google::token_cache_key(&self.id)]);
        }
        Ok(self
            .pages()
            .iter()
            .filter(|page| page.withheld.is_none())
            .flat_map(|page| {
                [
                    store::owner_key(&page_claim(&page.page_id)),
                    page_token_key(&page.page_id),
                ]
            })
            .collect())
    }

    fn after_delete(&self, ctx: &Ctx) -> Vec<(String, Vec<u8>)> {
        vec![(
            global_key(&self.id),
            store::encode(
                &json!({"org": ctx.org(), "provider": self.settings.provider(), "deleted_at": ctx.now}),
            ),
        )]
    }
}

fn merge_into(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// 409 while a workstream or an outbound configuration uses any of
/// `addresses` of the account.
fn refuse_if_routed(ctx: &Ctx, account_id: &str, addresses: &[&str]) -> Result<(), Error> {
    if addresses.is_empty() {
        return Ok(());
    }
    let mut users: Vec<String> = store::list_all::<Workstream>(ctx.kv(), ctx.org())?
        .into_iter()
        .flat_map(|workstream| {
            workstream
                .channels
                .iter()
                .filter(|c| c.account_id == account_id && addresses.contains(&c.address.as_str()))
                .map(|c| {
                    format!(
                        "workstream {} ({}) for {}",
                        workstream.id, workstream.name, c.address
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    users.extend(
        store::list_all::<OutboundConfig>(ctx.kv(), ctx.org())?
            .into_iter()
            .filter(|config| {
                config.account_id == account_id && addresses.contains(&config.channel.as_str())
            })
            .map(|config| {
                format!(
                    "outbound configuration {} ({}) for {}",
                    config.id, config.name, config.channel
                )
            }),
    );
    if users.is_empty() {
        Ok(())
    } else {
        Err(in_use(
            "this account",
            &users,
            "remove those channels from the workstreams and delete those outbound configurations first",
        ))
    }
}

/// `POST /api/accounts/{id}/validate` (R-CFG-3): asks the provider whether
/// the stored credentials work, and records the answer on the account.
pub async fn validate(ctx: &Ctx<'_>, request: &Request, id: &str) -> Result<Response, Error> {
    if request.method != Method::Post {
        return Ok(method_not_allowed(&["POST"]));
    }
    ctx.principal.require(&[Role::Admin])?;
    let mut account: Account = store::require(ctx.kv(), ctx.org(), id)?;
    let http = ctx.ports.http;
    let now = ctx.ports.clock.now_millis();
    let base = |name: &str| providers::api_base(ctx.ports.variables, name);
    let mut pages = Vec::new();
    let check: CredentialCheck = match &account.settings {
        Settings::Telesign {
            customer_id,
            api_key,
            ..
        } => {
            providers::telesign::check_credentials(
                http,
                &base("telesign_api_base")?,
                customer_id,
                api_key,
                now,
                &ctx.ports.random.uuid(),
            )
            .await
        }
        Settings::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            providers::twilio::check_credentials(
                http,
                &base("twilio_api_base")?,
                account_sid,
                auth_token,
            )
            .await
        }
        Settings::Facebook {
            app_secret,
            pages: configured,
            ..
        } => {
            let api_base = base("graph_api_base")?;
            for page in configured {
                let result = providers::facebook::check_page(
                    http,
                    &api_base,
                    app_secret,
                    &page.page_id,
                    &page.access_token,
                )
                .await;
                pages.push(PageValidation {
                    page_id: page.page_id.clone(),
                    status: result.verdict,
                    provider_status: result.provider_status,
                    message: result.message,
                });
            }
            summarize_pages(&pages)
        }
        Settings::Gbm {
            service_account, ..
        } => {
            let parsed = ServiceAccount::parse(service_account)
                .map_err(|message| Error::invalid("service_account", "invalid_format", message))?;
            providers::google::check_credentials(http, &base("google_oauth_base")?, &parsed, now)
                .await
        }
    };
    let validation = Validation {
        status: check.verdict,
        provider_status: check.provider_status,
        message: check.message,
        checked_at: ctx.now.to_string(),
        pages,
    };
    account.last_validation = Some(validation.clone());
    store::save(ctx.kv(), ctx.org(), &account, Vec::new())?;
    Ok(Response::json(200, &validation))
}

/// An account with pages is as good as its worst page.
fn summarize_pages(pages: &[PageValidation]) -> CredentialCheck {
    let worst = [Verdict::Invalid, Verdict::Unreachable]
        .into_iter()
        .find(|verdict| pages.iter().any(|page| page.status == *verdict))
        .unwrap_or(Verdict::Valid);
    let message = match (worst, pages.is_empty()) {
        (_, true) => "the account has no pages to check; add one with PATCH".to_owned(),
        (Verdict::Valid, false) => format!("all {} page(s) accepted their tokens", pages.len()),
        _ => pages
            .iter()
            .filter(|page| page.status == worst)
            .map(|page| format!("page {}: {}", page.page_id, page.message))
            .collect::<Vec<_>>()
            .join("; "),
    };
    CredentialCheck {
        verdict: if pages.is_empty() {
            Verdict::Invalid
        } else {
            worst
        },
        provider_status: pages
            .iter()
            .find(|page| page.status == worst)
            .and_then(|page| page.provider_status),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;
    use crate::memory::{block_on, reply, MapVariables, MemoryPorts, ScriptedHttp};
    use crate::ports::{OutboundError, Ports};

    const APP_SECRET: &str = "app-secret";

    /// Graph as seen by `/me`: token `T-{id}` (or `T-{id}-…`) is page `id`'s.
    fn graph() -> ScriptedHttp {
        ScriptedHttp::new(|request| {
            let token = request
                .url
                .split("access_token=")
                .nth(1)
                .and_then(|rest| rest.split('&').next())
                .unwrap_or("");
            match token.strip_prefix("T-") {
                Some(page) => {
                    let page = page.split('-').next().unwrap_or(page);
                    reply(200, &format!(r#"{{"id":"{page}","name":"Page {page}"}}"#))
                }
                None => reply(
                    400,
                    r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190}}"#,
                ),
            }
        })
    }

    fn ports_with(http: ScriptedHttp) -> MemoryPorts {
        MemoryPorts {
            http,
            variables: MapVariables::from([("graph_api_base", "https://graph.facebook.com")]),
            ..MemoryPorts::default()
        }
    }

    fn admin_of<'a>(ports: &'a Ports<'a>, org: char) -> Ctx<'a> {
        let now_millis = ports.clock.now_millis();
        Ctx {
            ports,
            principal: Principal {
                org: org.to_string().repeat(32),
                key_id: "1".repeat(32),
                role: Role::Admin,
                agent_id: None,
            },
            now: crate::time::Timestamp::from_millis(now_millis),
        }
    }

    fn call(ctx: &Ctx, method: Method, path: &str, body: Value) -> (u16, Value) {
        let mut request = Request::new(method, path);
        request.body = body.to_string().into_bytes();
        let id = path.strip_prefix("/api/accounts/");
        let response = block_on(serve(ctx, &request, id)).unwrap_or_else(Error::into_response);
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, body)
    }

    fn messenger(pages: &[(&str, &str)]) -> Value {
        json!({
            "provider": "facebook", "name": "Messenger", "app_id": "1", "app_secret": APP_SECRET,
            "pages": pages.iter().map(|(id, token)| json!({"name": "P", "page_id": id, "access_token": token})).collect::<Vec<_>>(),
        })
    }

    fn claim_holder(kv: &dyn KeyValue, page_id: &str) -> Option<String> {
        kv.get(&store::owner_key(&page_claim(page_id)))
            .unwrap()
            .as_deref()
            .and_then(store::holder)
    }

    #[test]
    fn a_page_is_claimed_only_with_its_own_token() {
        let memory = ports_with(graph());
        let ports = memory.ports();
        let (status, error) = call(
            &admin_of(&ports, 'a'),
            Method::Post,
            "/api/accounts",
            messenger(&[("42", "T-7")]),
        );
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"]["field"], "pages[0].access_token");
        assert_eq!(error["error"]["code"], "page_token_mismatch");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("belongs to page 7"), "{message}");
        assert_eq!(claim_holder(&memory.kv, "42"), None);
        let (status, _) = call(
            &admin_of(&ports, 'a'),
            Method::Post,
            "/api/accounts",
            messenger(&[("42", "nonsense")]),
        );
        assert_eq!(status, 422);
        assert!(store::list_all::<Account>(&memory.kv, &"a".repeat(32))
            .unwrap()
            .is_empty());

        let (status, account) = call(
            &admin_of(&ports, 'b'),
            Method::Post,
            "/api/accounts",
            messenger(&[("42", "T-42")]),
        );
        assert_eq!(status, 201, "{account}");
        assert!(account["pages"][0]["callback_url"].is_string(), "{account}");
        assert_eq!(
            claim_holder(&memory.kv, "42").as_deref(),
            account["id"].as_str()
        );
        let sent = memory.http.sent();
        assert!(sent[0].url.starts_with(
            "https://graph.facebook.com/v21.0/me?fields=id,name&access_token=T-7&appsecret_proof="
        ));
    }

    #[test]
    fn only_new_pages_and_new_tokens_are_asked_about() {
        let memory = ports_with(graph());
        let ports = memory.ports();
        let ctx = admin_of(&ports, 'a');
        let (status, account) = call(
            &ctx,
            Method::Post,
            "/api/accounts",
            messenger(&[("42", "T-42")]),
        );
        assert_eq!(status, 201);
        let path = format!("/api/accounts/{}", account["id"].as_str().unwrap());
        let asked = || memory.http.sent().len();
        assert_eq!(asked(), 1);
        let unchanged = [
            json!({"name": "Renamed"}),
            json!({"app_secret": "rotated-secret"}),
            json!({"pages": [{"name": "Renamed page", "page_id": "42"}]}),
        ];
        for patch in unchanged {
            assert_eq!(call(&ctx, Method::Patch, &path, patch).0, 200);
        }
        assert_eq!(asked(), 1, "a page kept as it was is not asked about");
        let added = messenger(&[("42", "T-42"), ("7", "T-7")])["pages"].clone();
        assert_eq!(
            call(&ctx, Method::Patch, &path, json!({ "pages": added })).0,
            200
        );
        assert_eq!(asked(), 2);
        assert!(memory.http.sent()[1].url.contains("access_token=T-7&"));
        let renewed = messenger(&[("42", "T-42-renewed"), ("7", "T-7")])["pages"].clone();
        assert_eq!(
            call(&ctx, Method::Patch, &path, json!({ "pages": renewed })).0,
            200
        );
        assert_eq!(asked(), 3);
        let stolen = messenger(&[("42", "T-9"), ("7", "T-7")])["pages"].clone();
        let (status, error) = call(&ctx, Method::Patch, &path, json!({ "pages": stolen }));
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (422, Some("pages[0].access_token"))
        );
    }

    #[test]
    fn an_unreachable_graph_refuses_the_save_with_a_502_and_changes_nothing() {
        let memory = ports_with(ScriptedHttp::new(|request| {
            Err(OutboundError(format!("{} timed out", request.url)))
        }));
        let ports = memory.ports();
        let (status, error) = call(
            &admin_of(&ports, 'a'),
            Method::Post,
            "/api/accounts",
            messenger(&[("42", "T-42")]),
        );
        assert_eq!(status, 502, "{error}");
        assert_eq!(error["error"]["code"], "provider_unreachable");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("retry later"), "{message}");
        assert!(
            !message.contains("T-42"),
            "the token is scrubbed: {message}"
        );
        assert_eq!(claim_holder(&memory.kv, "42"), None);
        assert!(store::list_all::<Account>(&memory.kv, &"a".repeat(32))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn warnings_show_an_admin_its_own_pages_and_the_operator_every_page() {
        let memory = ports_with(graph());
        let ports = memory.ports();
        for (org, page) in [('a', "41"), ('b', "42")] {
            let token = format!("T-{page}");
            let (status, _) = call(
                &admin_of(&ports, org),
                Method::Post,
                "/api/accounts",
                messenger(&[(page, &token)]),
            );
            assert_eq!(status, 201);
        }
        let now = ports.clock.now_millis();
        assert!(every_page_token_warning(&memory.kv, now)
            .unwrap()
            .is_empty());
        let later = now + 61 * DAY_MILLIS;
        let own = org_page_token_warnings(&memory.kv, &"a".repeat(32), later).unwrap();
        assert_eq!(
            own.iter()
                .map(|w| (w.org_id.as_str(), w.page_id.as_str()))
                .collect::<Vec<_>>(),
            [("a".repeat(32).as_str(), "41")]
        );
        assert!(own[0].message.contains("61 days"), "{}", own[0].message);
        let mut all: Vec<(String, String)> = every_page_token_warning(&memory.kv, later)
            .unwrap()
            .into_iter()
            .map(|w| (w.org_id, w.page_id))
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                ("a".repeat(32), "41".to_owned()),
                ("b".repeat(32), "42".to_owned())
            ]
        );
    }
}
