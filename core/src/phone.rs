//! Phone numbers in the two spellings the providers use (SPEC.md R-CFG-1).
//!
//! TeleSign wants digits only, country code first (`14252306549`); WhatsApp
//! through Twilio wants E.164 with its `+` (`+14155238886`). Each is its own
//! type so one can never be passed where the other is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `+` then 7 to 15 digits, the first not 0 (ITU-T E.164).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    pub fn parse(text: &str) -> Result<E164, String> {
        let refuse = |why: &str| {
            format!("\"{text}\" is not an E.164 number ({why}); write it as + and the country code and number, digits only, e.g. +14155238886")
        };
        let digits = text
            .strip_prefix('+')
            .ok_or_else(|| refuse("it must start with +"))?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse("only digits may follow the +"));
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(refuse("it needs 7 to 15 digits"));
        }
        if digits.starts_with('0') {
            return Err(refuse("country codes never start with 0"));
        }
        Ok(E164(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Digits only, no `+`, spaces or punctuation; 3 to 15 of them, so that
/// short codes (`4442`) fit as well as full numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DigitsNumber(String);

impl DigitsNumber {
    pub fn parse(text: &str) -> Result<DigitsNumber, String> {
        if (3..=15).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(DigitsNumber(text.to_owned()))
        } else {
            Err(format!(
                "\"{text}\" is not a TeleSign number: write digits only, country code first, no +, spaces or special characters (e.g. 14252306549)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_type {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<$name, String> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_type!(E164);
string_type!(DigitsNumber);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_needs_the_plus_and_digits() {
        assert!(E164::parse("+14155238886").is_ok());
        for bad in [
            "14155238886",
            "+1 415 523 8886",
            "+0123456789",
            "+123",
            "whatsapp:+14155238886",
            "",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn telesign_numbers_are_digits_only() {
        assert!(DigitsNumber::parse("14252306549").is_ok());
        assert!(DigitsNumber::parse("4442").is_ok());
        for bad in ["+14252306549", "1 425 230 6549", "(425)2306549", "12", ""] {
            let error = DigitsNumber::parse(bad).unwrap_err();
            assert!(error.contains("digits only"), "{bad}: {error}");
        }
    }
}
