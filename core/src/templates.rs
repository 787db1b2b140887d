//! Message templates (SPEC.md R-TPL) and the templates component's routes.
//!
//! A template is for SMS, WhatsApp or both, with a default locale and
//! localized versions. A WhatsApp version may only go out as free-form text
//! inside the 24-hour session; outside it, and for outbound, WhatsApp needs
//! the version Meta approved, sent by its Twilio Content SID. So a version
//! carries `approved` and `content_sid` beside its text, and rendering for
//! WhatsApp walks the fallback chain over approved versions only.

use crate::api::{method_not_allowed, Method, Request, Response};
use crate::auth::Role;
use crate::channel::Channel;
use crate::config::{in_use, serve, Ctx, Resource};
use crate::entities::outbound_config::OutboundConfig;
use crate::error::Error;
use crate::input::{self, Object};
use crate::locale::{fallback_chain, Locale};
use crate::message::Rendered;
use crate::ports::Ports;
use crate::store;
use crate::template_text::{RenderContext, RenderError, TemplateText, SMS_MAX_CHARS};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The channels templates are for: those outbound sends on.
pub const CHANNELS: [Channel; 2] = [Channel::Sms, Channel::Whatsapp];

/// Their stored spellings, for inputs that choose one.
pub const CHANNEL_TYPES: [&str; 2] = [CHANNELS[0].as_str(), CHANNELS[1].as_str()];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub id: String,
    pub name: String,
    pub channel_types: Vec<Channel>,
    pub default_locale: Locale,
    /// The text of each locale.
    pub versions: BTreeMap<Locale, Version>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One locale's text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    pub text: TemplateText,
    /// WhatsApp: this text is the one Meta approved.
    #[serde(default)]
    pub approved: bool,
    /// WhatsApp: Twilio's Content SID (`HX` + 32 hex) of the approved text;
    /// given exactly when `approved` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^HX[0-9a-fA-F]{32}$"))]
    pub content_sid: Option<String>,
}

crate::document!(Template, "template");

/// A template as `POST /api/templates` takes it.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateInput {
    /// Up to 100 characters.
    pub name: String,
    /// `sms`, `whatsapp` or both.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub channel_types: Vec<Channel>,
    /// A locale that has a version: every rendering can fall back to it.
    pub default_locale: Locale,
    /// At least one; placeholders are `{{CustomerName}}`, `{{CaseName}}`
    /// and the contact's `contextitems` keys.
    pub versions: BTreeMap<Locale, VersionInput>,
}

/// A locale's version as given: its text alone, or the text with its
/// WhatsApp approval (`approved` and `content_sid` come together).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum VersionInput {
    Text(TemplateText),
    Full(Version),
}

/// `POST /api/templates/{id}/render`'s body: one contact's values.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderRequest {
    /// `sms` or `whatsapp`; default: the template's first channel type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<Channel>,
    /// The contact's locale; falls back to its language, then the
    /// template's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(
        default,
        rename = "CustomerName",
        skip_serializing_if = "Option::is_none"
    )]
    pub customer_name: Option<String>,
    #[serde(default, rename = "CaseName", skip_serializing_if = "Option::is_none")]
    pub case_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub contextitems: Option<serde_json::Map<String, Value>>,
}

/// [`RenderRequest`]'s fields, as the handler reads them; a unit test keeps
/// the two the same.
const RENDER_FIELDS: &[&str] = &[
    "channel_type",
    "locale",
    "CustomerName",
    "CaseName",
    "contextitems",
];

/// Why a template cannot be rendered for one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    ChannelNotAllowed { channel_type: Channel },
    NoApprovedVersion { tried: Vec<Locale> },
    Placeholder(RenderError),
    SmsTooLong { characters: usize },
}

impl RenderFailure {
    pub fn code(&self) -> &'static str {
        match self {
            RenderFailure::ChannelNotAllowed { .. } => "channel_not_allowed",
            RenderFailure::NoApprovedVersion { .. } => "no_approved_version",
            RenderFailure::Placeholder(RenderError::Missing { .. }) => "missing_placeholder",
            RenderFailure::Placeholder(RenderError::NotText { .. }) => "placeholder_not_text",
            RenderFailure::SmsTooLong { .. } => "sms_too_long",
        }
    }

    /// The request field to fix.
    pub fn field(&self) -> &str {
        match self {
            RenderFailure::ChannelNotAllowed { .. } => "channel_type",
            RenderFailure::NoApprovedVersion { .. } => "locale",
            RenderFailure::Placeholder(error) => match error.placeholder() {
                "CustomerName" => "CustomerName",
                "CaseName" => "CaseName",
                _ => "contextitems",
            },
            RenderFailure::SmsTooLong { .. } => "text",
        }
    }
}

impl fmt::Display for RenderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderFailure::ChannelNotAllowed { channel_type } => {
                write!(f, "this template is not for {channel_type}")
            }
            RenderFailure::NoApprovedVersion { tried } => {
                write!(
                f,
                "no WhatsApp-approved version for {}; mark a version approved with its Content SID",
                tried.iter().map(Locale::as_str).collect::<Vec<_>>().join(", ")
            )
            }
            RenderFailure::Placeholder(error) => write!(f, "{error}"),
            RenderFailure::SmsTooLong { characters } => write!(
                f,
                "the rendered SMS has {characters} characters; SMS allows at most {SMS_MAX_CHARS}"
            ),
        }
    }
}

impl Template {
    /// Whether this template can serve `config`.
    pub fn check_serves(&self, config: &OutboundConfig) -> Result<(), String> {
        if !self.allows(config.channel_type) {
            let channel_types: Vec<&str> = self.channel_types.iter().map(|c| c.as_str()).collect();
            return Err(format!(
                "template {} is not for {} (its channel types: {})",
                self.id,
                config.channel_type,
                channel_types.join(", ")
            ));
        }
        // Outbound WhatsApp goes outside any session, so every contact must
        // be able to fall back to an approved text.
        let default_approved = self
            .versions
            .get(&self.default_locale)
            .is_some_and(|version| version.approved);
        if config.channel_type == Channel::Whatsapp && !default_approved {
            return Err(format!(
                "template {}'s default-locale version ({}) is not WhatsApp-approved; mark it approved with its Content SID",
                self.id, self.default_locale
            ));
        }
        Ok(())
    }

    /// Renders for one contact (R-TPL-2): the contact's locale, then its
    /// language, then the default locale; for WhatsApp, approved versions only.
    pub fn render(
        &self,
        channel_type: Channel,
        requested: Option<&Locale>,
        context: &RenderContext,
    ) -> Result<Rendered, RenderFailure> {
        if !self.allows(channel_type) {
            return Err(RenderFailure::ChannelNotAllowed { channel_type });
        }
        let whatsapp = channel_type == Channel::Whatsapp;
        let chain = fallback_chain(requested, &self.default_locale);
        let (locale, version) = chain
            .iter()
            .find_map(|locale| {
                let version = self.versions.get(locale)?;
                (!whatsapp || version.approved).then_some((locale, version))
            })
            .ok_or_else(|| RenderFailure::NoApprovedVersion {
                tried: chain.clone(),
            })?;
        let text = version
            .text
            .render(context)
            .map_err(RenderFailure::Placeholder)?;
        let characters = text.chars().count();
        if channel_type == Channel::Sms && characters > SMS_MAX_CHARS {
            return Err(RenderFailure::SmsTooLong { characters });
        }
        let content_variables = match whatsapp {
            true => Some(
                version
                    .text
                    .content_variables(context)
                    .map_err(RenderFailure::Placeholder)?,
            ),
            false => None,
        };
        Ok(Rendered {
            channel_type,
            locale: locale.clone(),
            text,
            characters,
            content_sid: if whatsapp {
                version.content_sid.clone()
            } else {
                None
            },
            content_variables,
        })
    }

    pub fn allows(&self, channel_type: Channel) -> bool {
        self.channel_types.contains(&channel_type)
    }
}

fn content_sid(text: &str) -> Result<String, String> {
    let hex = text.strip_prefix("HX").unwrap_or("");
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("\"{text}\" is not a Twilio Content SID: it is HX followed by 32 hex digits (Twilio console, Content Template Builder)"))
    }
}

fn read_versions(input: &Object, whatsapp: bool) -> Result<BTreeMap<Locale, Version>, Error> {
    let map = input.object("versions")?.unwrap_or_default();
    if map.is_empty() {
        return Err(input.error(
            "versions",
            "required",
            "\"versions\" needs at least one localized text, e.g. {\"en-US\": \"Hello {{CustomerName}}\"}",
        ));
    }
    let mut versions = BTreeMap::new();
    for (tag, value) in &map {
        let path = input.path_of(&format!("versions.{tag}"));
        let locale = Locale::parse(tag)
            .map_err(|e| Error::invalid(path.clone(), "invalid_locale", e.message))?;
        let version = read_version(value, &path, whatsapp)?;
        if versions.insert(locale.clone(), version).is_some() {
            return Err(Error::invalid(
                path,
                "duplicate",
                format!("two versions are for locale {locale}"),
            ));
        }
    }
    Ok(versions)
}

/// One locale's version, at `path`: its text alone, or an object that may
/// also carry a WhatsApp approval.
fn read_version(value: &Value, path: &str, whatsapp: bool) -> Result<Version, Error> {
    match value {
        Value::String(text) => Ok(Version {
            text: TemplateText::parse(text).map_err(|e| invalid_text(path, e))?,
            approved: false,
            content_sid: None,
        }),
        Value::Object(fields) => read_version_object(&Object::at(fields, path), whatsapp),
        _ => Err(Error::invalid(
            path,
            "wrong_type",
            format!("\"{path}\" must be the text, or {{\"text\", \"approved\", \"content_sid\"}}"),
        )),
    }
}

/// `{"text", "approved", "content_sid"}`: Twilio sends an approved
/// WhatsApp template by its Content SID, so approval and SID come together.
fn read_version_object(fields: &Object, whatsapp: bool) -> Result<Version, Error> {
    fields.only(&["text", "approved", "content_sid"])?;
    let text_path = fields.path_of("text");
    let approved = fields.bool("approved")?.unwrap_or(false);
    let content_sid = fields.optional_parsed("content_sid", content_sid)?;
    if (approved || content_sid.is_some()) && !whatsapp {
        return Err(fields.error("approved", "not_allowed", "approval and Content SIDs are for WhatsApp templates; add \"whatsapp\" to channel_types"));
    }
    if approved != content_sid.is_some() {
        return Err(fields.error(
            "content_sid",
            "approval_incomplete",
            "an approved WhatsApp version carries the Content SID Twilio gave the approved text, and only an approved one does: give both \"approved\": true and \"content_sid\", or neither",
        ));
    }
    Ok(Version {
        text: TemplateText::parse(fields.required_str("text")?)
            .map_err(|e| invalid_text(&text_path, e))?,
        approved,
        content_sid,
    })
}

fn invalid_text(path: &str, error: crate::template_text::TextError) -> Error {
    Error::invalid(path, "invalid_template_text", error.to_string())
}

impl Resource for Template {
    type Input = TemplateInput;

    const READERS: &'static [Role] = &[Role::Admin, Role::Agent];

    fn input(&self) -> TemplateInput {
        let versions = self
            .versions
            .iter()
            .map(|(locale, version)| (locale.clone(), VersionInput::Full(version.clone())));
        TemplateInput {
            name: self.name.clone(),
            channel_types: self.channel_types.clone(),
            default_locale: self.default_locale.clone(),
            versions: versions.collect(),
        }
    }

    fn build(ctx: &Ctx, id: String, input: Object, existing: Option<&Self>) -> Result<Self, Error> {
        input.only(&["name", "channel_types", "default_locale", "versions"])?;
        let name = input.name("name", 100)?;
        let mut channel_types: Vec<Channel> = Vec::new();
        for (index, text) in input.strings("channel_types")?.into_iter().enumerate() {
            let channel = Channel::parse(text)
                .filter(|channel| CHANNELS.contains(channel))
                .ok_or_else(|| {
                    input.error(
                        &format!("channel_types[{index}]"),
                        "invalid_choice",
                        format!("templates are for sms and whatsapp only (got \"{text}\")"),
                    )
                })?;
            if !channel_types.contains(&channel) {
                channel_types.push(channel);
            }
        }
        if channel_types.is_empty() {
            return Err(input.error(
                "channel_types",
                "required",
                "\"channel_types\" needs sms, whatsapp or both",
            ));
        }
        let default_locale = input.parsed("default_locale", |t| {
            Locale::parse(t).map_err(|e| e.message)
        })?;
        let versions = read_versions(&input, channel_types.contains(&Channel::Whatsapp))?;
        if !versions.contains_key(&default_locale) {
            return Err(input.error(
                "default_locale",
                "missing_default_version",
                format!("\"versions\" has no text for the default locale {default_locale}; every rendering can fall back to it"),
            ));
        }
        Ok(Template {
            id,
            name,
            channel_types,
            default_locale,
            versions,
            created_at: ctx.created_at(existing.map(|e| e.created_at)),
            updated_at: ctx.now,
        })
    }

    fn on_save(
        &mut self,
        ctx: &Ctx,
        previous: Option<&Self>,
        _effects: &mut crate::config::Effects,
    ) -> Result<(), Error> {
        if previous.is_some() {
            // An outbound configuration relies on the channel and approval it
            // was saved with.
            for config in users(ctx, &self.id)? {
                if let Err(reason) = self.check_serves(&config) {
                    return Err(Error::conflict(
                        "in_use",
                        format!(
                            "outbound configuration {} ({}) uses this template: {reason}",
                            config.id, config.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_delete(&self, ctx: &Ctx) -> Result<Vec<String>, Error> {
        let names: Vec<String> = users(ctx, &self.id)?
            .iter()
            .map(|config| format!("outbound configuration {} ({})", config.id, config.name))
            .collect();
        if names.is_empty() {
            Ok(Vec::new())
        } else {
            Err(in_use(
                "this template",
                &names,
                "delete them or point them at another template first",
            ))
        }
    }
}

fn users(ctx: &Ctx, template_id: &str) -> Result<Vec<OutboundConfig>, Error> {
    Ok(store::list_all::<OutboundConfig>(ctx.kv(), ctx.org())?
        .into_iter()
        .filter(|config| config.template_id == template_id)
        .collect())
}

/// The templates component: `/api/templates/...`.
pub fn handle(request: &Request, ports: &Ports) -> Response {
    route(request, ports).unwrap_or_else(Error::into_response)
}

fn route(request: &Request, ports: &Ports) -> Result<Response, Error> {
    let ctx = Ctx::authenticate(request, ports)?;
    match request.segments()[..] {
        ["api", "templates"] => serve::<Template>(&ctx, request, None),
        ["api", "templates", id] => serve::<Template>(&ctx, request, Some(id)),
        ["api", "templates", id, "render"] => render(&ctx, request, id),
        _ => Err(Error::no_route(&request.path)),
    }
}

/// `POST /api/templates/{id}/render` (R-TPL-3): a preview for one contact.
fn render(ctx: &Ctx, request: &Request, id: &str) -> Result<Response, Error> {
    if request.method != Method::Post {
        return Ok(method_not_allowed(&["POST"]));
    }
    // A preview shows nothing the template itself does not.
    ctx.principal.require(Template::READERS)?;
    let template: Template = store::require(ctx.kv(), ctx.org(), id)?;
    let body = input::json_object(&request.body)?;
    let fields = Object::root(&body);
    fields.only(RENDER_FIELDS)?;
    let channel_type = fields
        .choice("channel_type", &CHANNEL_TYPES)?
        .and_then(Channel::parse)
        .unwrap_or(template.channel_types[0]);
    let locale = fields.optional_parsed("locale", |t| Locale::parse(t).map_err(|e| e.message))?;
    let context_items = fields.object("contextitems")?;
    let context = RenderContext {
        customer_name: fields.str("CustomerName")?,
        case_name: fields.str("CaseName")?,
        context_items: context_items.as_ref(),
    };
    let rendered = template
        .render(channel_type, locale.as_ref(), &context)
        .map_err(|failure| Error::invalid(failure.field(), failure.code(), failure.to_string()))?;
    Ok(Response::json(200, &rendered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(versions: &[(&str, &str, bool)]) -> Template {
        Template {
            id: "t".into(),
            name: "n".into(),
            channel_types: vec![Channel::Sms, Channel::Whatsapp],
            default_locale: Locale::parse("en").unwrap(),
            versions: versions
                .iter()
                .map(|(locale, text, approved)| {
                    (
                        Locale::parse(locale).unwrap(),
                        Version {
                            text: TemplateText::parse(text).unwrap(),
                            approved: *approved,
                            content_sid: approved.then(|| format!("HX{}", "a".repeat(32))),
                        },
                    )
                })
                .collect(),
            created_at: crate::time::Timestamp::from_millis(0),
            updated_at: crate::time::Timestamp::from_millis(0),
        }
    }

    /// The typed render body and the fields the handler reads are the
    /// same: every field of a full body is read, and no other is.
    #[test]
    fn the_typed_render_request_is_what_the_handler_reads() {
        let full = RenderRequest {
            channel_type: Some(Channel::Sms),
            locale: Some("nb-NO".into()),
            customer_name: Some("Kari".into()),
            case_name: Some("CAS-1".into()),
            contextitems: Some(serde_json::Map::from_iter([(
                "OrderId".into(),
                "A-1".into(),
            )])),
        };
        let value = serde_json::to_value(&full).unwrap();
        let fields = value.as_object().unwrap();
        assert!(Object::root(fields).only(RENDER_FIELDS).is_ok());
        assert_eq!(fields.len(), RENDER_FIELDS.len());
    }

    /// What a template's `input()` gives is what its stored versions were.
    #[test]
    fn the_input_of_a_template_writes_its_versions_as_objects() {
        let t = template(&[("en", "Hi", true), ("nb", "Hei", false)]);
        let input = serde_json::to_value(t.input()).unwrap();
        assert_eq!(
            input["versions"],
            serde_json::to_value(&t.versions).unwrap()
        );
        assert_eq!(
            input["channel_types"],
            serde_json::json!(["sms", "whatsapp"])
        );
    }

    fn named(name: &str) -> RenderContext<'_> {
        RenderContext {
            customer_name: Some(name),
            ..Default::default()
        }
    }

    /// A template as stored before its channel types were typed: it reads,
    /// and writes back byte for byte.
    #[test]
    fn stored_documents_read_and_write_back_unchanged() {
        let stored = r#"{"id":"e0000000000000000000000000000000","name":"Case update","channel_types":["whatsapp","sms"],"default_locale":"en","versions":{"en":{"text":"Hi {{CustomerName}}","approved":true,"content_sid":"HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"nb":{"text":"Hei {{CustomerName}}","approved":false}},"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-02T00:00:00.000Z"}"#;
        let template: Template = serde_json::from_str(stored).unwrap();
        assert_eq!(template.channel_types, [Channel::Whatsapp, Channel::Sms]);
        assert_eq!(serde_json::to_string(&template).unwrap(), stored);
    }

    #[test]
    fn falls_back_from_locale_to_language_to_default() {
        let t = template(&[
            ("en", "Hi {{CustomerName}}", true),
            ("nb", "Hei {{CustomerName}}", false),
        ]);
        let nb_no = Locale::parse("nb-NO").unwrap();
        let sms = t
            .render(Channel::Sms, Some(&nb_no), &named("Kari"))
            .unwrap();
        assert_eq!((sms.locale.as_str(), sms.text.as_str()), ("nb", "Hei Kari"));
        // WhatsApp skips the unapproved Norwegian text.
        let whatsapp = t
            .render(Channel::Whatsapp, Some(&nb_no), &named("Kari"))
            .unwrap();
        assert_eq!(
            (whatsapp.locale.as_str(), whatsapp.text.as_str()),
            ("en", "Hi Kari")
        );
        assert_eq!(whatsapp.content_variables.unwrap()["1"], "Kari");
    }

    #[test]
    fn refuses_missing_values_and_long_sms() {
        let t = template(&[("en", "Hi {{CustomerName}}", true)]);
        let missing = t
            .render(Channel::Sms, None, &RenderContext::default())
            .unwrap_err();
        assert_eq!(
            (missing.code(), missing.field()),
            ("missing_placeholder", "CustomerName")
        );
        let long = "x".repeat(SMS_MAX_CHARS);
        let too_long = t.render(Channel::Sms, None, &named(&long)).unwrap_err();
        assert_eq!(
            too_long,
            RenderFailure::SmsTooLong {
                characters: SMS_MAX_CHARS + 3
            }
        );
        let unapproved = template(&[("en", "Hi", false)]);
        assert_eq!(
            unapproved
                .render(Channel::Whatsapp, None, &named("x"))
                .unwrap_err()
                .code(),
            "no_approved_version"
        );
    }
}
