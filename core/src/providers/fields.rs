//! Checks shared by the providers' account fields, so each rule reads the
//! same for every provider.

use crate::error::Error;
use crate::input::Object;

/// A credential pasted from a provider's console: it never has spaces.
pub fn no_whitespace(what: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |text: &str| {
        if text.chars().any(char::is_whitespace) {
            Err(format!("the {what} contains spaces or line breaks; paste it exactly as the provider shows it"))
        } else {
            Ok(text.to_owned())
        }
    }
}

/// A numeric id (Facebook's app and page ids).
pub fn digits(what: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |text: &str| {
        if !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(text.to_owned())
        } else {
            Err(format!("\"{text}\" is not a {what}: it is digits only"))
        }
    }
}

/// 422 when a list names the same number or page twice.
pub fn unique<'a>(
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
