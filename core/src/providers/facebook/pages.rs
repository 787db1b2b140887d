//! A Facebook page can feed only one account: Facebook delivers a page's
//! events to every app that subscribes to it. The first account to save a
//! page claims it; any other gets no callback values for that page, and the
//! response says why (R-CFG-2). Claims are global, so a claim needs proof:
//! before a save claims a page whose token is new, Graph must say that the
//! token is that page's own (`/me` with the token answers the page's id).
//! Anyone can read a public page by its id; only the page's admins hold its
//! token. Without that proof one tenant could claim another's page first.
//!
//! Page tokens are due every 60 days (R-CFG-4): each connected page is
//! logged with its token's date, for the warnings.

use super::{check_page, FacebookPage, Settings};
use crate::config::{Ctx, Effects};
use crate::error::{Error, ProviderFailure};
use crate::ports::KeyValue;
use crate::providers::webhook::global_key;
use crate::providers::{api_base, Checked, CredentialCheck, PageValidation, Verdict};
use crate::store::{self, Claim, Log};
use serde::{Deserialize, Serialize};

/// Facebook asks for page tokens to be refreshed every 60 days (R-CFG-4).
pub const PAGE_TOKEN_REFRESH_DAYS: i64 = 60;
pub(crate) const DAY_MILLIS: i64 = 86_400_000;

/// A Facebook page token due for refresh (R-CFG-4), as `GET /api/warnings`
/// lists it; an account's read shows its `message`s.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

pub(crate) fn page_claim(page_id: &str) -> String {
    format!("fbpage/{page_id}")
}

/// Asks Graph about each page of `settings` whose token `previous` did not
/// have (a new page, or a new token; a confirmed one is not asked about
/// again), and refuses the save unless every such token is its page's own.
/// Runs before the save claims or writes anything.
pub(super) async fn confirm_new_tokens(
    ctx: &Ctx<'_>,
    settings: &Settings,
    previous: Option<&Settings>,
) -> Result<(), Error> {
    let confirmed = previous.map(|p| p.pages.as_slice()).unwrap_or_default();
    for (index, page) in settings.pages.iter().enumerate() {
        let known = confirmed
            .iter()
            .any(|old| old.page_id == page.page_id && old.access_token == page.access_token);
        if known {
            continue;
        }
        let check = check_page(
            ctx.ports.http,
            &api_base(ctx.ports.variables, "graph_api_base")?,
            &settings.app_secret,
            &page.page_id,
            &page.access_token,
        )
        .await;
        if let Some(refusal) = unconfirmed(&check, index, &page.page_id, &settings.app_id) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// Claims each page for `account_id` (withholding those another account
/// holds), records its token's date for the warnings, and gives back the
/// pages `previous` had that are gone.
pub(super) fn claim_pages(
    ctx: &Ctx,
    account_id: &str,
    settings: &mut Settings,
    previous: Option<&Settings>,
    effects: &mut Effects,
) -> Result<(), Error> {
    for page in settings.pages.iter_mut() {
        if claim_page(ctx, account_id, page, effects)? {
            let token = PageToken {
                account_id: account_id.to_owned(),
                token_set_at: page.token_set_at.clone(),
            };
            effects
                .writes
                .push((page_token_key(&page.page_id), store::encode(&token)));
        }
    }
    let previous_pages = previous.map(|p| p.pages.as_slice()).unwrap_or_default();
    for old in previous_pages.iter().filter(|old| old.withheld.is_none()) {
        if !settings
            .pages
            .iter()
            .any(|page| page.page_id == old.page_id)
        {
            effects.release(ctx, &page_claim(&old.page_id));
            effects.deletes.push(page_token_key(&old.page_id));
        }
    }
    Ok(())
}

/// Claims `page` for `account_id`: whether the account holds it, or why
/// not in `page.withheld`.
fn claim_page(
    ctx: &Ctx,
    account_id: &str,
    page: &mut FacebookPage,
    effects: &mut Effects,
) -> Result<bool, Error> {
    match effects.claim(ctx, page_claim(&page.page_id), account_id)? {
        // A save connecting it right now, or one that died doing so: the
        // page is nobody's yet, so nothing is withheld.
        Claim::Taken(None) => Err(Error::InProgress(format!(
            "another save is connecting page {} right now; retry after the Retry-After delay",
            page.page_id
        ))),
        Claim::Taken(Some(_)) => {
            page.withheld = Some(format!(
                "page {} is already connected to another account, which receives its messages; no callback values were generated for it here. Remove the page from that account first, then save this one again",
                page.page_id
            ));
            Ok(false)
        }
        Claim::Won(()) => {
            let log = page_log();
            let slot = log.reserve(ctx.kv())?;
            effects
                .writes
                .push((log.slot_key(slot), page.page_id.as_bytes().to_vec()));
            Ok(true)
        }
        Claim::Held => Ok(true),
    }
}

/// What deleting the account gives back: its pages' claims and token
/// records.
pub(super) fn released(settings: &Settings) -> Vec<String> {
    settings
        .pages
        .iter()
        .filter(|page| page.withheld.is_none())
        .flat_map(|page| {
            [
                store::owner_key(&page_claim(&page.page_id)),
                page_token_key(&page.page_id),
            ]
        })
        .collect()
}

/// The R-CFG-4 warnings of the account's pages, in `org`.
pub(super) fn token_warnings(
    settings: &Settings,
    org: &str,
    account_id: &str,
    now_millis: i64,
) -> Vec<PageTokenWarning> {
    settings
        .pages
        .iter()
        .filter_map(|page| {
            PageTokenWarning::due(
                org,
                account_id,
                &page.page_id,
                &page.token_set_at,
                now_millis,
            )
        })
        .collect()
}

/// Asks Graph about every page (R-CFG-3): an account with pages is as good
/// as its worst page.
pub(super) async fn check_pages(ctx: &Ctx<'_>, settings: &Settings) -> Result<Checked, Error> {
    let api_base = api_base(ctx.ports.variables, "graph_api_base")?;
    let mut pages = Vec::new();
    for page in &settings.pages {
        let result = check_page(
            ctx.ports.http,
            &api_base,
            &settings.app_secret,
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
    Ok(Checked {
        check: summarize_pages(&pages),
        pages,
    })
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
