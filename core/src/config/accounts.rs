//! Messaging accounts (R-CFG-1 … R-CFG-4): one per provider account, with
//! exactly the fields the seeds' admin pages ask for, secrets write-only.
//! What a provider's account holds, how it is checked and what saving it
//! claims is the provider's ([`crate::providers::Seam`]); this module keeps
//! what every account shares.
//!
//! Each account has a global record `account/{id}` → its organisation and
//! webhook secrets (the provider's secret, and any keys a request may name
//! instead: Twilio's shared keys), so a webhook (whose URL carries only the account id)
//! finds its tenant and checks the provider's signature after one read; a
//! deleted account leaves a tombstone there, so its webhooks answer 410
//! Gone instead of looking like a typo (R-CFG-7).

use super::{in_use, Ctx, Effects, Resource, Save};
use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::Role;
use crate::entities::outbound_config::OutboundConfig;
use crate::entities::workstream::Workstream;
use crate::error::Error;
use crate::input::Object;
use crate::ports::KeyValue;
use crate::providers::webhook::global_key;
use crate::providers::{self, PageValidation, Provider, Verdict};
use crate::store;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::providers::{PageTokenWarning, Settings, SettingsInput, SettingsView};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub settings: Settings,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validation: Option<Validation>,
}

/// The outcome of the last `POST /api/accounts/{id}/validate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Validation {
    pub status: Verdict,
    /// The HTTP status the provider answered, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    /// The provider's own words, secrets scrubbed.
    pub message: String,
    pub checked_at: Timestamp,
    /// Each page's own check, for Facebook accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageValidation>,
}

/// An account as `POST /api/accounts` takes it: its name and its
/// provider's fields, chosen by `provider` (which an update cannot change).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInput {
    /// Up to 100 characters.
    pub name: String,
    #[serde(flatten)]
    pub settings: SettingsInput,
}

/// An account as the API shows it: secrets masked, with the values to
/// enter at the provider (`callback_url`, Facebook's `verify_token`).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Account))]
pub struct AccountView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(flatten)]
    pub settings: SettingsView,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// `null` until the account is first validated.
    pub last_validation: Option<&'a Validation>,
    /// What an admin should fix, such as page tokens due for refresh.
    pub warnings: Vec<String>,
}

crate::document!(Account, "account");

impl Account {
    /// The addresses customers reach this account at: numbers, connected
    /// page ids, or the GBM agent id.
    pub fn addresses(&self) -> Vec<&str> {
        self.settings.addresses()
    }

    pub fn callback_url(&self, ctx: &Ctx) -> String {
        providers::callback_url(&ctx.public_base_url(), self.settings.provider(), &self.id)
    }

    /// The R-CFG-4 warnings of this account, in `org`.
    fn warnings(&self, org: &str, now_millis: i64) -> Vec<PageTokenWarning> {
        self.settings.warnings(org, &self.id, now_millis)
    }
}

/// The R-CFG-4 warnings of every organisation's accounts, for the
/// operator.
pub fn every_page_token_warning(
    kv: &dyn KeyValue,
    now_millis: i64,
) -> Result<Vec<PageTokenWarning>, Error> {
    providers::every_warning(kv, now_millis)
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
        .flat_map(|account| account.warnings(org, now_millis))
        .collect())
}

fn read_settings(ctx: &Ctx, input: &Object, existing: Option<&Account>) -> Result<Settings, Error> {
    let provider = input
        .choice("provider", Provider::NAMES)?
        .and_then(Provider::parse)
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
    provider.read_settings(ctx, input, existing.map(|e| &e.settings))
}

/// `/api/accounts` and `/api/accounts/{id}`: the generic routes, except
/// that a save first has the provider confirm what it brings (Graph, the
/// page tokens).
pub async fn serve(ctx: &Ctx<'_>, request: &Request, id: Option<&str>) -> Result<Response, Error> {
    let Some(save) = Save::<Account>::read(ctx, request, id)? else {
        return super::serve::<Account>(ctx, request, id);
    };
    let previous = save.existing.as_ref().map(|e| &e.settings);
    save.document.settings.confirm(ctx, previous).await?;
    save.commit(ctx)
}

impl Resource for Account {
    type Input = AccountInput;

    fn input(&self) -> AccountInput {
        AccountInput {
            name: self.name.clone(),
            settings: self.settings.input(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        Ok(Account {
            id,
            name: input.name("name", 100)?,
            settings: read_settings(ctx, &input, existing)?,
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
            last_validation: existing.and_then(|e| e.last_validation.clone()),
        })
    }

    fn view(&self, ctx: &Ctx) -> Value {
        let view = AccountView {
            id: &self.id,
            name: &self.name,
            settings: self.settings.view(&self.callback_url(ctx)),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_validation: self.last_validation.as_ref(),
            warnings: self
                .warnings(ctx.org(), ctx.ports.clock.now_millis())
                .into_iter()
                .map(|warning| warning.message)
                .collect(),
        };
        serde_json::to_value(view).expect("accounts serialize to JSON")
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        previous: Option<&Self>,
        effects: &mut Effects,
    ) -> Result<(), Error> {
        if let Some(previous) = previous {
            let kept = self.addresses();
            let dropped: Vec<&str> = previous
                .addresses()
                .into_iter()
                .filter(|a| !kept.contains(a))
                .collect();
            refuse_if_routed(ctx, &self.id, &dropped)?;
        }
        let previous = previous.map(|p| &p.settings);
        self.settings.on_save(ctx, &self.id, previous, effects)?;
        // The webhook secrets ride along so that a webhook checks the
        // provider's signature after this one read, before reading anything
        // a forged request could make it read; and the account itself, so
        // that a message needs no second read for it (every change to an
        // account's settings is a save, which writes both).
        let mut record = json!({
            "org": ctx.org(),
            "provider": self.settings.provider(),
            "secret": self.settings.webhook_secret(),
            "account": self,
        });
        let keys = self.settings.webhook_keys();
        if !keys.is_empty() {
            record["keys"] = json!(keys);
        }
        effects
            .writes
            .push((global_key(&self.id), store::encode(&record)));
        Ok(())
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        refuse_if_routed(ctx, &self.id, &self.addresses())?;
        Ok(self.settings.on_delete(&self.id))
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
    let checked = account.settings.check_credentials(ctx).await?;
    let validation = Validation {
        status: checked.check.verdict,
        provider_status: checked.check.provider_status,
        message: checked.check.message,
        checked_at: ctx.now,
        pages: checked.pages,
    };
    account.last_validation = Some(validation.clone());
    store::save(ctx.kv(), ctx.org(), &account, Vec::new())?;
    Ok(Response::json(200, &validation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Principal;
    use crate::memory::{block_on, reply, MapVariables, MemoryPorts, ScriptedHttp};
    use crate::ports::{OutboundError, Ports};
    use crate::providers::facebook::{page_claim, DAY_MILLIS};

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

    #[test]
    fn a_stored_account_reads_and_writes_back_the_same() {
        let stored = r#"{"id":"a0000000000000000000000000000000","name":"SMS","provider":"telesign","customer_id":"customer","api_key":"a2V5","numbers":[{"number":"14252306549","type":"long_code","description":""}],"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-02T00:00:00.000Z","last_validation":{"status":"valid","provider_status":200,"message":"The credentials work.","checked_at":"2026-01-02T00:00:00.250Z"}}"#;
        let account: Account = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&account).unwrap(), stored);
    }
}
