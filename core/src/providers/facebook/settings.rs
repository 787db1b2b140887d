//! A Facebook account's fields (R-CFG-1, R-CFG-2): the app, its secret
//! (write-only; it also signs the webhooks), the verify token generated for
//! the subscription handshake, and the connected pages with their tokens.

use crate::auth::mask;
use crate::config::Ctx;
use crate::error::Error;
use crate::input::Object;
use crate::providers::fields::{digits, no_whitespace, unique};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub app_id: String,
    pub app_secret: String,
    /// Generated once; Facebook echoes it in the webhook handshake.
    pub verify_token: String,
    pub pages: Vec<FacebookPage>,
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

/// A Facebook account's fields as `POST /api/accounts` takes them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = FacebookAccountInput))]
pub struct Input {
    /// The app's numeric ID.
    pub app_id: String,
    /// Write-only; it also signs the webhooks.
    pub app_secret: String,
    /// The pages to connect; each page belongs to one account.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub pages: Vec<PageInput>,
}

/// A page as an account's input takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = FacebookPageInput))]
pub struct PageInput {
    pub name: String,
    /// The page's numeric ID.
    pub page_id: String,
    /// The page access token; write-only. An update may leave it out for a
    /// page the account already has, which keeps its token.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub access_token: String,
    /// When the token was made (RFC 3339, not in the future): tokens are
    /// due for refresh after 60 days. Left out, a new token counts from now.
    #[cfg_attr(feature = "openapi", schema(required = false, format = DateTime))]
    pub token_set_at: String,
}

/// A Facebook account's fields as the API shows them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = FacebookAccountView))]
pub struct View {
    pub app_id: String,
    /// Masked: `****` and at most the last four characters.
    pub app_secret: String,
    pub pages: Vec<PageView>,
}

/// A connected page as the API shows it, with what to enter in the app's
/// webhook settings.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = FacebookPageView))]
pub struct PageView {
    pub name: String,
    pub page_id: String,
    /// Masked: `****` and at most the last four characters.
    pub access_token: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub token_set_at: String,
    /// `null` when the callback is withheld.
    pub callback_url: Option<String>,
    /// What Facebook echoes in the subscription handshake; `null` when
    /// the callback is withheld.
    pub verify_token: Option<String>,
    /// Why this page gets no callback: another account has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_withheld: Option<String>,
}

pub const FIELDS: &[&str] = &["app_id", "app_secret", "pages"];

impl Settings {
    pub(super) fn read(
        ctx: &Ctx,
        input: &Object,
        existing: Option<&Settings>,
    ) -> Result<Settings, Error> {
        let previous_pages = existing.map(|e| e.pages.as_slice()).unwrap_or_default();
        let pages = input.objects("pages", |p| read_page(ctx, p, previous_pages))?;
        unique(input, "pages", pages.iter().map(|p| p.page_id.as_str()))?;
        let verify_token = match existing {
            Some(existing) => existing.verify_token.clone(),
            None => ctx.ports.random.id128(),
        };
        Ok(Settings {
            app_id: input.parsed("app_id", digits("Facebook app ID"))?,
            app_secret: input.parsed("app_secret", no_whitespace("app secret"))?,
            verify_token,
            pages,
        })
    }

    /// The connected pages' ids: a withheld page is another account's.
    pub(super) fn addresses(&self) -> Vec<&str> {
        self.pages
            .iter()
            .filter(|page| page.withheld.is_none())
            .map(|page| page.page_id.as_str())
            .collect()
    }

    pub(super) fn input(&self) -> Input {
        Input {
            app_id: self.app_id.clone(),
            app_secret: self.app_secret.clone(),
            pages: self
                .pages
                .iter()
                .map(|page| PageInput {
                    name: page.name.clone(),
                    page_id: page.page_id.clone(),
                    access_token: page.access_token.clone(),
                    token_set_at: page.token_set_at.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn view(&self, callback_url: &str) -> View {
        View {
            app_id: self.app_id.clone(),
            app_secret: mask(&self.app_secret),
            pages: self
                .pages
                .iter()
                .map(|page| page.view(callback_url, &self.verify_token))
                .collect(),
        }
    }
}

impl FacebookPage {
    /// The page as shown: its callback values, unless another account has
    /// the page.
    fn view(&self, callback_url: &str, verify_token: &str) -> PageView {
        let shown = self.withheld.is_none();
        PageView {
            name: self.name.clone(),
            page_id: self.page_id.clone(),
            access_token: mask(&self.access_token),
            token_set_at: self.token_set_at.clone(),
            callback_url: shown.then(|| callback_url.to_owned()),
            verify_token: shown.then(|| verify_token.to_owned()),
            callback_withheld: self.withheld.clone(),
        }
    }
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
