//! Template text: `{{Placeholder}}` parsing and rendering (SPEC.md R-TPL-2, R-TPL-3).
//!
//! Text is parsed once, when a template is saved, so a typo such as
//! `{{CustomerName}` reaches its author with a position instead of reaching
//! contacts as stray braces; rendering then only looks values up. A placeholder
//! without a value is an error, never a blank (R-TPL-2): "Dear ," is worse than
//! no message. Values are inserted literally, so contact data cannot smuggle in
//! further placeholders.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// SPEC R-IN-5 / R-TPL-3: counted in Unicode scalar values (chars).
pub const SMS_MAX_CHARS: usize = 1600;

const CONTEXT_PREFIX: &str = "contextitems.";
const EXAMPLES: &str = "{{CustomerName}}, {{CaseName}} or {{contextitems.OrderId}}";

/// Template text whose placeholders are known to be well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    /// As written, without braces or surrounding whitespace.
    name: String,
    source: ValueSource,
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ValueSource {
    CustomerName,
    CaseName,
    ContextItem(String),
}

/// The contact data a template is rendered with.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderContext<'a> {
    pub customer_name: Option<&'a str>,
    pub case_name: Option<&'a str>,
    pub context_items: Option<&'a Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    /// Character (not byte) offset of the offending `{{`.
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// No value for the placeholder: never rendered as blank (R-TPL-2).
    Missing { placeholder: String },
    /// The contextitems value is an object or array, which has no text form.
    NotText { placeholder: String },
}

impl TemplateText {
    pub fn parse(source: &str) -> Result<TemplateText, TextError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            let start = source.len() - rest.len() + open;
            let error = |message: String| TextError {
                offset: source[..start].chars().count(),
                message,
            };
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .filter(|&close| !after[..close].contains("{{"))
                .ok_or_else(|| {
                    error(format!(
                        "\"{{{{\" is never closed by \"}}}}\": write placeholders such as {EXAMPLES}, or remove the braces"
                    ))
                })?;
            let placeholder = Placeholder::parse(after[..close].trim()).map_err(error)?;
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            parts.push(Part::Placeholder(placeholder));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(TemplateText {
            source: source.to_owned(),
            parts,
        })
    }

    /// The source.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Placeholder names as written (without braces/whitespace, e.g. "CustomerName", "contextitems.OrderId"), each once, in order of first appearance.
    pub fn placeholders(&self) -> Vec<&str> {
        self.distinct_placeholders()
            .into_iter()
            .map(|placeholder| placeholder.name.as_str())
            .collect()
    }

    pub fn render(&self, context: &RenderContext) -> Result<String, RenderError> {
        self.parts
            .iter()
            .try_fold(String::with_capacity(self.source.len()), |mut out, part| {
                match part {
                    Part::Literal(text) => out.push_str(text),
                    Part::Placeholder(placeholder) => out.push_str(&placeholder.value(context)?),
                }
                Ok(out)
            })
    }

    /// Twilio Content API variables for a WhatsApp template whose approved text is this one: the placeholders numbered "1", "2", … in order of first appearance, each with its rendered value. Returned as a serde_json::Map<String, Value> of strings (so it serializes as {"1":"Jane","2":"A-17"}).
    pub fn content_variables(
        &self,
        context: &RenderContext,
    ) -> Result<Map<String, Value>, RenderError> {
        self.distinct_placeholders()
            .into_iter()
            .zip(1usize..)
            .map(|(placeholder, number)| {
                let value = placeholder.value(context)?.into_owned();
                Ok((number.to_string(), Value::String(value)))
            })
            .collect()
    }

    fn distinct_placeholders(&self) -> Vec<&Placeholder> {
        self.parts.iter().fold(Vec::new(), |mut seen, part| {
            if let Part::Placeholder(placeholder) = part {
                if !seen.iter().any(|known| known.name == placeholder.name) {
                    seen.push(placeholder);
                }
            }
            seen
        })
    }
}

impl Placeholder {
    /// `name` is what stands between the braces, whitespace already trimmed.
    fn parse(name: &str) -> Result<Placeholder, String> {
        let prefixed = name.strip_prefix(CONTEXT_PREFIX);
        let key = prefixed.unwrap_or(name);
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() {
            return Err(format!(
                "the placeholder has no name: write one such as {EXAMPLES}"
            ));
        }
        if key.is_empty() {
            return Err(
                "{{contextitems.}} names no key: put the contextitems key after the dot, as in {{contextitems.OrderId}}".into(),
            );
        }
        if let Some(c) = key.chars().find(|&c| !allowed(c)) {
            return Err(format!(
                "{c:?} is not allowed in the placeholder name {name:?}: use only letters, digits, \"_\" and \"-\" after an optional \"{CONTEXT_PREFIX}\", as in {EXAMPLES}"
            ));
        }
        let source = match (prefixed, name) {
            (None, "CustomerName") => ValueSource::CustomerName,
            (None, "CaseName") => ValueSource::CaseName,
            _ => ValueSource::ContextItem(key.to_owned()),
        };
        Ok(Placeholder {
            name: name.to_owned(),
            source,
        })
    }

    fn value<'a>(&self, context: &RenderContext<'a>) -> Result<Cow<'a, str>, RenderError> {
        let missing = || RenderError::Missing {
            placeholder: self.name.clone(),
        };
        let text = match &self.source {
            ValueSource::CustomerName => context.customer_name.map(Cow::Borrowed),
            ValueSource::CaseName => context.case_name.map(Cow::Borrowed),
            ValueSource::ContextItem(key) => {
                match context.context_items.and_then(|items| items.get(key)) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(text)) => Some(Cow::Borrowed(text.as_str())),
                    Some(Value::Number(number)) => Some(Cow::Owned(number.to_string())),
                    Some(Value::Bool(flag)) => Some(Cow::Owned(flag.to_string())),
                    Some(Value::Array(_) | Value::Object(_)) => {
                        return Err(RenderError::NotText {
                            placeholder: self.name.clone(),
                        })
                    }
                }
            }
        };
        text.filter(|text| !text.is_empty()).ok_or_else(missing)
    }
}

impl RenderError {
    pub fn placeholder(&self) -> &str {
        match self {
            RenderError::Missing { placeholder } | RenderError::NotText { placeholder } => {
                placeholder
            }
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.placeholder();
        let key = name.strip_prefix(CONTEXT_PREFIX).unwrap_or(name);
        match (self, name) {
            (RenderError::Missing { .. }, "CustomerName" | "CaseName") => {
                write!(f, "no value for {{{{{name}}}}}: set {name} for the contact")
            }
            (RenderError::Missing { .. }, _) => write!(
                f,
                "no value for {{{{{name}}}}}: add \"{key}\" to the contact's contextitems"
            ),
            (RenderError::NotText { .. }, _) => write!(
                f,
                "{{{{{name}}}}} is an object or array in the contact's contextitems: make \"{key}\" a text, number or true/false value"
            ),
        }
    }
}

impl std::error::Error for RenderError {}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template text, character {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for TextError {}

/// The API shows the text as written.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TemplateText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Text with `{{Placeholder}}`s."))
            .examples([serde_json::json!(
                "Hi {{CustomerName}}, we opened case {{CaseName}} for you."
            )])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TemplateText {}

impl Serialize for TemplateText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for TemplateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        TemplateText::parse(&source).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(source: &str) -> TemplateText {
        TemplateText::parse(source).expect("test template is valid")
    }

    fn refusal(source: &str) -> TextError {
        TemplateText::parse(source).expect_err("template is invalid")
    }

    fn items(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn lists_placeholders_once_in_order_without_whitespace() {
        let template = text("Hi {{ CustomerName }}, {{contextitems.OrderId}} for {{CaseName}} {{CustomerName}} {{Due}}");
        assert_eq!(
            template.placeholders(),
            ["CustomerName", "contextitems.OrderId", "CaseName", "Due"]
        );
        assert_eq!(template.as_str(), "Hi {{ CustomerName }}, {{contextitems.OrderId}} for {{CaseName}} {{CustomerName}} {{Due}}");
    }

    #[test]
    fn lone_braces_are_literal_text() {
        let template = text("a { b } c }} d {");
        assert!(template.placeholders().is_empty());
        assert_eq!(
            template.render(&RenderContext::default()).ok(),
            Some("a { b } c }} d {".into())
        );
    }

    #[test]
    fn refuses_malformed_placeholders_saying_where_and_what_to_write() {
        for (source, offset, detail) in [
            (
                "Hi {{CustomerName",
                3,
                "\"{{\" is never closed by \"}}\": write placeholders such as {{CustomerName}}",
            ),
            ("Hi {{CustomerName}", 3, "never closed"),
            ("{{a {{b}}", 0, "never closed"),
            ("Hé {{", 3, "never closed"),
            (
                "x {{}}",
                2,
                "the placeholder has no name: write one such as {{CustomerName}}",
            ),
            ("{{  }}", 0, "has no name"),
            (
                "{{contextitems.}}",
                0,
                "put the contextitems key after the dot",
            ),
            (
                "ok {{Order Id}}",
                3,
                "' ' is not allowed in the placeholder name \"Order Id\": use only letters, digits",
            ),
            ("{{a.b}}", 0, "'.' is not allowed"),
            ("{{contextitems.contextitems.x}}", 0, "'.' is not allowed"),
            ("{{{x}}}", 0, "'{' is not allowed"),
        ] {
            let error = refusal(source);
            assert_eq!(error.offset, offset, "{source:?}: {error}");
            assert!(error.message.contains(detail), "{source:?}: {error}");
        }
        assert_eq!(
            refusal("Hi {{").to_string(),
            "template text, character 3: \"{{\" is never closed by \"}}\": write placeholders such as {{CustomerName}}, {{CaseName}} or {{contextitems.OrderId}}, or remove the braces"
        );
    }

    #[test]
    fn renders_every_value_source_literally() {
        let context_items = items(
            json!({"OrderId": "A-17", "Count": 42, "Paid": true, "Ratio": 1.5, "CustomerName": "ctx", "Raw": "{{CaseName}}"}),
        );
        let context = RenderContext {
            customer_name: Some("Jane"),
            case_name: Some("C-1"),
            context_items: Some(&context_items),
        };
        let template = text("{{CustomerName}}/{{ CaseName }}/{{contextitems.OrderId}}/{{OrderId}}/{{Count}}/{{Paid}}/{{Ratio}}/{{contextitems.CustomerName}}/{{Raw}}");
        assert_eq!(
            template.render(&context).ok(),
            Some("Jane/C-1/A-17/A-17/42/true/1.5/ctx/{{CaseName}}".into())
        );
    }

    fn missing(name: &str) -> RenderError {
        RenderError::Missing {
            placeholder: name.into(),
        }
    }

    #[test]
    fn refuses_missing_blank_and_structured_values_saying_what_to_supply() {
        let context_items = items(json!({"Null": null, "Blank": "", "List": [1], "Obj": {}}));
        let context = RenderContext {
            customer_name: Some(""),
            case_name: None,
            context_items: Some(&context_items),
        };
        let not_text = |name: &str| RenderError::NotText {
            placeholder: name.into(),
        };
        for (source, error, message) in [
            ("{{CustomerName}}", missing("CustomerName"), "no value for {{CustomerName}}: set CustomerName for the contact"),
            ("{{CaseName}}", missing("CaseName"), "no value for {{CaseName}}: set CaseName for the contact"),
            ("{{Null}}", missing("Null"), "no value for {{Null}}: add \"Null\" to the contact's contextitems"),
            ("{{contextitems.Blank}}", missing("contextitems.Blank"), "no value for {{contextitems.Blank}}: add \"Blank\" to the contact's contextitems"),
            ("{{Absent}}", missing("Absent"), "add \"Absent\""),
            ("{{List}}", not_text("List"), "{{List}} is an object or array in the contact's contextitems: make \"List\" a text, number or true/false value"),
            ("{{contextitems.Obj}}", not_text("contextitems.Obj"), "make \"Obj\" a text"),
        ] {
            let refused = text(source).render(&context).expect_err("cannot render");
            assert_eq!(refused, error, "{source}");
            assert_eq!(refused.placeholder(), error.placeholder());
            assert!(refused.to_string().contains(message), "{refused}");
        }
        let no_items = RenderContext {
            context_items: None,
            ..context
        };
        assert_eq!(
            text("{{OrderId}}").render(&no_items),
            Err(missing("OrderId"))
        );
    }

    #[test]
    fn content_variables_number_distinct_placeholders() {
        let context_items = items(json!({"OrderId": "A-17"}));
        let context = RenderContext {
            customer_name: Some("Jane"),
            case_name: None,
            context_items: Some(&context_items),
        };
        let template = text("Hi {{CustomerName}}, order {{OrderId}} ({{ CustomerName }})");
        let variables = template.content_variables(&context).map(Value::Object);
        assert_eq!(variables, Ok(json!({"1": "Jane", "2": "A-17"})));
        assert_eq!(
            text("{{CaseName}}").content_variables(&context),
            Err(missing("CaseName"))
        );
    }

    #[test]
    fn serde_uses_the_source_and_refuses_invalid_text() {
        let template = text("Hi {{ CustomerName }}");
        assert_eq!(
            serde_json::to_value(&template).ok(),
            Some(json!("Hi {{ CustomerName }}"))
        );
        assert_eq!(
            serde_json::from_value::<TemplateText>(json!("Hi {{ CustomerName }}")).ok(),
            Some(template)
        );
        let error = serde_json::from_value::<TemplateText>(json!("Hi {{")).expect_err("invalid");
        assert!(error.to_string().contains("character 3"), "{error}");
    }

    fn literal() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z {}]{0,8}"].prop_filter("literal text has no {{", |s| {
            !s.contains("{{") && !s.ends_with('{')
        })
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "\\{\\{[a-zA-Z]{0,3}\\}\\}",
            Just(String::new())
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("CustomerName".to_owned()),
            Just("CaseName".to_owned()),
            "[ab]{1,2}",
            "contextitems\\.[ab]{1,2}",
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(source in prop_oneof![any::<String>(), "[a-z{} .]{0,30}"]) {
            if let Ok(template) = TemplateText::parse(&source) {
                prop_assert_eq!(template.as_str(), source.as_str());
            }
        }

        #[test]
        fn render_inserts_values_or_names_the_first_missing(
            segments in proptest::collection::vec((literal(), name(), "[ \t]{0,2}"), 0..6),
            tail in literal(),
            customer in proptest::option::of(value()),
            case in proptest::option::of(value()),
            item_values in proptest::collection::btree_map("[ab]{1,2}", value(), 0..6),
        ) {
            let source = segments.iter().map(|(lit, name, pad)| format!("{lit}{{{{{pad}{name}{pad}}}}}")).collect::<String>() + &tail;
            let context_items: Map<String, Value> = item_values.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let lookup = |name: &str| -> Option<String> {
                match name {
                    "CustomerName" => customer.clone(),
                    "CaseName" => case.clone(),
                    other => context_items.get(other.trim_start_matches(CONTEXT_PREFIX)).and_then(Value::as_str).map(str::to_owned),
                }.filter(|v| !v.is_empty())
            };
            let expected = segments
                .iter()
                .try_fold(String::new(), |out, (lit, name, _)| match lookup(name) {
                    Some(value) => Ok(out + lit + &value),
                    None => Err(missing(name)),
                })
                .map(|out| out + &tail);
            let context = RenderContext {
                customer_name: customer.as_deref(),
                case_name: case.as_deref(),
                context_items: Some(&context_items),
            };
            let template = TemplateText::parse(&source);
            prop_assert!(template.is_ok(), "{:?}: {:?}", source, template);
            prop_assert_eq!(template.map(|t| t.render(&context)).ok(), Some(expected));
        }
    }
}
