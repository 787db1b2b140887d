//! Locales (BCP 47 tags such as `nb-NO`) and the fallback chain of SPEC.md R-TPL-2.
//!
//! Contacts arrive with whatever spelling their source system used (`nb_no`,
//! `NB-no`) while templates are keyed by locale. Parsing into one normalized
//! [`Locale`] at the edge means a lookup never misses because of case or
//! separator, and nothing downstream re-checks a tag. Only the part of BCP 47
//! that messaging needs is accepted (language, script, region, variants);
//! extensions and private-use tags are refused rather than half understood.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Longer input is refused before its parts are examined.
const MAX_LEN: usize = 35;
const EXAMPLES: &str = r#"expected a BCP 47 tag such as "en", "nb-NO" or "pl-PL""#;

/// A normalized BCP 47 tag: language lowercase, script Titlecase, region
/// uppercase, variants lowercase, parts joined by `-` (`zh-Hant-TW`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, example = "nb-NO")
)]
pub struct Locale(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocaleError {
    pub message: String,
}

/// Where a part after the language belongs; BCP 47 fixes this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Script,
    Region,
    Variant,
}

impl Locale {
    pub fn parse(input: &str) -> Result<Locale, LocaleError> {
        let refuse = |detail: String| LocaleError {
            message: format!("{} is not a locale: {detail}; {EXAMPLES}", quoted(input)),
        };
        if input.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if let Some(c) = input.chars().find(|&c| !allowed(c)) {
            return Err(refuse(format!(
                "{c:?} is not allowed, only letters, digits and \"-\""
            )));
        }
        if input.len() > MAX_LEN {
            return Err(refuse(format!(
                "it has {} characters, at most {MAX_LEN} are allowed",
                input.len()
            )));
        }
        let mut subtags = input.split(['-', '_']);
        let language = subtags.next().unwrap_or_default();
        if !((2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(refuse(format!(
                "it must start with a 2- or 3-letter language such as \"nb\", not {language:?}"
            )));
        }
        subtags
            .try_fold((language.to_ascii_lowercase(), None), |(tag, last), subtag| {
                let (slot, normalized) = classify(subtag).ok_or_else(|| {
                    refuse(if subtag.is_empty() {
                        "it has an empty part; separate parts with a single \"-\"".into()
                    } else {
                        format!("{subtag:?} is not a script (4 letters), region (2 letters or 3 digits) or variant (5-8 letters or digits)")
                    })
                })?;
                if last.is_some_and(|last| slot <= last && slot != Slot::Variant) {
                    return Err(refuse(format!(
                        "{subtag:?} is out of place: a tag has at most one script and one region, in the order language-script-region-variant"
                    )));
                }
                Ok((format!("{tag}-{normalized}"), Some(slot)))
            })
            .map(|(tag, _)| Locale(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language without region/script: `nb-NO` -> `nb`; `en` -> `en`.
    pub fn language(&self) -> Locale {
        Locale(self.0.split('-').next().unwrap_or_default().to_owned())
    }
}

/// Recognizes and normalizes one part after the language; subtags here are
/// already known to be ASCII letters and digits.
fn classify(subtag: &str) -> Option<(Slot, String)> {
    let letters = subtag.bytes().all(|b| b.is_ascii_alphabetic());
    let digits = subtag.bytes().all(|b| b.is_ascii_digit());
    let starts_with_digit = subtag.bytes().next().is_some_and(|b| b.is_ascii_digit());
    match subtag.len() {
        4 if letters => Some((Slot::Script, titlecase(subtag))),
        2 if letters => Some((Slot::Region, subtag.to_ascii_uppercase())),
        3 if digits => Some((Slot::Region, subtag.to_owned())),
        4 if starts_with_digit => Some((Slot::Variant, subtag.to_ascii_lowercase())),
        5..=8 => Some((Slot::Variant, subtag.to_ascii_lowercase())),
        _ => None,
    }
}

fn titlecase(subtag: &str) -> String {
    subtag
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The input as shown in an error: quoted, escaped, and cut short if huge.
fn quoted(input: &str) -> String {
    match input.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => format!("{:?}…", &input[..cut]),
        None => format!("{input:?}"),
    }
}

/// SPEC R-TPL-2: the contact's locale, then its language without region, then the template's default locale; duplicates removed, order kept.
pub fn fallback_chain(requested: Option<&Locale>, default: &Locale) -> Vec<Locale> {
    requested
        .into_iter()
        .flat_map(|locale| [locale.clone(), locale.language()])
        .chain(std::iter::once(default.clone()))
        .fold(Vec::new(), |mut chain, locale| {
            if !chain.contains(&locale) {
                chain.push(locale);
            }
            chain
        })
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for LocaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LocaleError {}

impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Locale::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn locale(tag: &str) -> Locale {
        Locale::parse(tag).expect("test tag is valid")
    }

    fn refusal(input: &str) -> String {
        Locale::parse(input).expect_err("input is invalid").message
    }

    #[test]
    fn accepts_and_normalizes_tags() {
        for (input, normalized) in [
            ("en", "en"),
            ("nb-NO", "nb-NO"),
            ("nb_no", "nb-NO"),
            ("NB-no", "nb-NO"),
            ("pl-PL", "pl-PL"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("sr-LATN", "sr-Latn"),
            ("de-CH-1996", "de-CH-1996"),
            ("sl-Rozaj-biske", "sl-rozaj-biske"),
            ("yue", "yue"),
        ] {
            assert_eq!(locale(input).as_str(), normalized, "{input}");
        }
    }

    #[test]
    fn refuses_a_bad_region_saying_which_part() {
        assert_eq!(
            refusal("nb-NOR"),
            r#""nb-NOR" is not a locale: "NOR" is not a script (4 letters), region (2 letters or 3 digits) or variant (5-8 letters or digits); expected a BCP 47 tag such as "en", "nb-NO" or "pl-PL""#
        );
    }

    #[test]
    fn refuses_malformed_tags() {
        for (input, detail) in [
            ("", "it is empty"),
            (" en", r#"' ' is not allowed"#),
            ("en ", r#"' ' is not allowed"#),
            ("en.US", r#"'.' is not allowed"#),
            ("e", r#"2- or 3-letter language such as "nb", not "e""#),
            ("english", r#"not "english""#),
            ("12-US", r#"not "12""#),
            ("en-", "empty part"),
            ("en--US", "empty part"),
            ("en-US-GB", r#""GB" is out of place"#),
            ("en-US-Latn", r#""Latn" is out of place"#),
            ("en-x-private", r#""x" is not a script"#),
            ("en-abcdefghi", r#""abcdefghi" is not a script"#),
            (
                "en-US-variant1-variant2-variant3-variant4",
                "at most 35 are allowed",
            ),
        ] {
            let message = refusal(input);
            assert!(message.contains(detail), "{input:?}: {message}");
            assert!(message.ends_with(EXAMPLES), "{input:?}: {message}");
        }
    }

    #[test]
    fn language_drops_script_region_and_variants() {
        assert_eq!(locale("nb-NO").language(), locale("nb"));
        assert_eq!(locale("zh-Hant-TW").language(), locale("zh"));
        assert_eq!(locale("en").language(), locale("en"));
    }

    #[test]
    fn serde_uses_the_normalized_string_and_refuses_invalid_tags() {
        assert_eq!(
            serde_json::to_string(&locale("nb_no")).ok(),
            Some(r#""nb-NO""#.into())
        );
        assert_eq!(
            serde_json::from_str::<Locale>(r#""pl_pl""#).ok(),
            Some(locale("pl-PL"))
        );
        let error = serde_json::from_str::<Locale>(r#""nb-NOR""#).expect_err("invalid");
        assert!(error.to_string().contains("is not a locale"), "{error}");
        assert_eq!(locale("sr-latn").to_string(), "sr-Latn");
    }

    #[test]
    fn fallback_chain_follows_r_tpl_2() {
        let chain = |requested: Option<&str>, default: &str| {
            let requested = requested.map(locale);
            fallback_chain(requested.as_ref(), &locale(default))
                .iter()
                .map(Locale::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(chain(Some("nb-NO"), "en"), ["nb-NO", "nb", "en"]);
        assert_eq!(chain(Some("nb"), "en"), ["nb", "en"]);
        assert_eq!(chain(Some("en-GB"), "en"), ["en-GB", "en"]);
        assert_eq!(chain(Some("nb-NO"), "nb-NO"), ["nb-NO", "nb"]);
        assert_eq!(chain(None, "pl-PL"), ["pl-PL"]);
    }

    fn tag_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9_ -]{0,40}",
            "[a-zA-Z]{2,3}([-_][a-zA-Z]{4})?([-_]([a-zA-Z]{2}|[0-9]{3}))?([-_][0-9][a-z0-9]{3}|[-_][a-z]{5,8})?",
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepted_tags_are_normalized(input in tag_like()) {
            if let Ok(parsed) = Locale::parse(&input) {
                prop_assert_eq!(Locale::parse(parsed.as_str()), Ok(parsed.clone()));
                prop_assert!(parsed.as_str().starts_with(parsed.language().as_str()));
                prop_assert!(parsed.as_str().len() <= MAX_LEN);
            }
        }

        #[test]
        fn fallback_chain_is_requested_then_language_then_default(
            requested in proptest::option::of(tag_like()),
            default in tag_like(),
        ) {
            let requested = requested.and_then(|tag| Locale::parse(&tag).ok());
            let default = Locale::parse(&default).unwrap_or_else(|_| locale("en"));
            let mut expected: Vec<Locale> = Vec::new();
            let candidates = requested.iter().flat_map(|r| [r.clone(), r.language()]);
            for candidate in candidates.chain([default.clone()]) {
                if !expected.contains(&candidate) {
                    expected.push(candidate);
                }
            }
            let chain = fallback_chain(requested.as_ref(), &default);
            prop_assert_eq!(&chain, &expected);
            prop_assert!(!chain.is_empty());
            prop_assert_eq!(chain.iter().filter(|l| **l == default).count(), 1);
            if let Some(requested) = &requested {
                prop_assert_eq!(&chain[0], requested);
            }
        }
    }
}
