//! Reading JSON request bodies field by field.
//!
//! Every write in the API goes through [`Object`], so every refusal has the
//! shape R-CFG-8 fixes and names the exact field, nested paths included
//! (`numbers[1].number`). Unknown fields are refused rather than ignored: a
//! typo such as `"capcity"` would otherwise silently keep the old value.

use crate::error::Error;
use serde_json::{Map, Value};

/// A closed set of values the API spells as words (a role, a presence):
/// reading them and naming them in a refusal use the one list.
pub trait Word: Copy + 'static {
    const ALL: &'static [Self];
    /// The word the API and the stored documents use, as serde writes it.
    fn word(self) -> &'static str;
}

/// Parses a request body that must be a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    let malformed = |message: String| Error::malformed("malformed_json", message);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed(
            "the request body must be a JSON object, e.g. {\"name\": \"Support\"}".into(),
        )),
        Err(error) => Err(malformed(format!(
            "the request body is not valid JSON ({error}); send a JSON object with content-type application/json"
        ))),
    }
}

/// A JSON object being read, with its position in the request for messages.
#[derive(Clone, Copy)]
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Object<'a> {
    pub fn root(map: &'a Map<String, Value>) -> Object<'a> {
        Object { map, path: "" }
    }

    /// An object found at `path` by a reader that walks the JSON itself.
    pub fn at(map: &'a Map<String, Value>, path: &'a str) -> Object<'a> {
        Object { map, path }
    }

    /// The full path of a field of this object, e.g. `pages[0].page_id`.
    pub fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub fn has(&self, name: &str) -> bool {
        !matches!(self.map.get(name), None | Some(Value::Null))
    }

    /// Refuses fields this object does not define.
    pub fn only(&self, known: &[&str]) -> Result<(), Error> {
        match self.map.keys().find(|key| !known.contains(&key.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(Error::invalid(
                self.path_of(unknown),
                "unknown_field",
                format!(
                    "unknown field \"{unknown}\"; the fields here are: {}",
                    known.join(", ")
                ),
            )),
        }
    }

    fn value(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|value| !value.is_null())
    }

    fn wrong_type(&self, name: &str, expected: &str) -> Error {
        Error::invalid(
            self.path_of(name),
            "wrong_type",
            format!("\"{}\" must be {expected}", self.path_of(name)),
        )
    }

    pub fn missing(&self, name: &str) -> Error {
        Error::invalid(
            self.path_of(name),
            "required",
            format!("\"{}\" is required", self.path_of(name)),
        )
    }

    /// An error about this field's value, for rules beyond its type.
    pub fn error(&self, name: &str, code: &'static str, message: impl Into<String>) -> Error {
        Error::invalid(self.path_of(name), code, message)
    }

    pub fn str(&self, name: &str) -> Result<Option<&'a str>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.wrong_type(name, "a string")),
        }
    }

    pub fn required_str(&self, name: &str) -> Result<&'a str, Error> {
        match self.str(name)? {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err(self.missing(name)),
        }
    }

    /// A display name: required, trimmed, 1 to `max` characters.
    pub fn name(&self, name: &str, max: usize) -> Result<String, Error> {
        let text = self.required_str(name)?.trim();
        if text.chars().count() > max {
            return Err(self.error(
                name,
                "too_long",
                format!("\"{}\" is longer than {max} characters", self.path_of(name)),
            ));
        }
        Ok(text.to_owned())
    }

    /// A required string turned into a typed value by `parse`, whose error
    /// message is reported as the field's `invalid_format`.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, Error> {
        let text = self.required_str(name)?;
        parse(text).map_err(|message| self.error(name, "invalid_format", message))
    }

    pub fn optional_parsed<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        if self.has(name) {
            self.parsed(name, parse).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.wrong_type(name, "true or false")),
        }
    }

    /// An integer within `range`.
    pub fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, Error> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        match self.value(name) {
            None => Ok(None),
            Some(value) => match value.as_i64() {
                Some(number) if range.contains(&number) => Ok(Some(number)),
                _ => Err(self.wrong_type(name, &expected)),
            },
        }
    }

    /// One of a fixed set of strings.
    /// One of the words of `T`, refused by the same rule as [`Object::choice`].
    pub fn one_of<T: Word>(&self, name: &str) -> Result<Option<T>, Error> {
        let words: Vec<&'static str> = T::ALL.iter().map(|value| value.word()).collect();
        Ok(self
            .choice(name, &words)?
            .and_then(|word| T::ALL.iter().copied().find(|value| value.word() == word)))
    }

    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, Error> {
        let Some(text) = self.str(name)? else {
            return Ok(None);
        };
        choices
            .iter()
            .copied()
            .find(|choice| *choice == text)
            .map(Some)
            .ok_or_else(|| {
                self.error(
                    name,
                    "invalid_choice",
                    format!(
                        "\"{}\" must be one of: {} (got \"{text}\")",
                        self.path_of(name),
                        choices.join(", ")
                    ),
                )
            })
    }

    pub fn object(&self, name: &str) -> Result<Option<Map<String, Value>>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(self.wrong_type(name, "a JSON object")),
        }
    }

    /// The elements of an array field (empty when absent).
    pub fn array(&self, name: &str) -> Result<&'a [Value], Error> {
        match self.value(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.wrong_type(name, "an array")),
        }
    }

    /// An array of strings.
    pub fn strings(&self, name: &str) -> Result<Vec<&'a str>, Error> {
        self.array(name)?
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| self.wrong_type(name, "an array of strings"))
            })
            .collect()
    }

    /// Reads each element of an array of objects with `read`, which gets the
    /// element's path (`pages[2]`) for its messages.
    pub fn objects<T>(
        &self,
        name: &str,
        mut read: impl FnMut(Object<'_>) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        self.array(name)?
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let path = format!("{}[{index}]", self.path_of(name));
                match item {
                    Value::Object(map) => read(Object { map, path: &path }),
                    _ => Err(Error::invalid(
                        path.clone(),
                        "wrong_type",
                        format!("\"{path}\" must be a JSON object"),
                    )),
                }
            })
            .collect()
    }

    /// Reads a nested object field with `read`.
    pub fn nested<T>(
        &self,
        name: &str,
        read: impl FnOnce(Object<'_>) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let path = self.path_of(name);
                read(Object { map, path: &path }).map(Some)
            }
            Some(_) => Err(self.wrong_type(name, "a JSON object")),
        }
    }
}

/// Applies a PATCH body to a stored document: each top-level field in the
/// patch replaces the stored one (`null` removes it). The result is then read
/// like a create, so an update obeys exactly the same rules.
pub fn merge(stored: &Value, patch: Map<String, Value>) -> Map<String, Value> {
    let mut merged = stored.as_object().cloned().unwrap_or_default();
    for (name, value) in patch {
        if value.is_null() {
            merged.remove(&name);
        } else {
            merged.insert(name, value);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn malformed_bodies_are_400s() {
        assert_eq!(json_object(b"{nope").unwrap_err().status(), 400);
        assert_eq!(json_object(b"[1]").unwrap_err().code(), "malformed_json");
        assert!(json_object(b"{}").is_ok());
    }

    #[test]
    fn nested_errors_name_the_full_path() {
        let body = map(json!({"pages": [{"page_id": "1"}, {"page_id": 7}]}));
        let error = Object::root(&body)
            .objects("pages", |page| {
                page.required_str("page_id").map(str::to_owned)
            })
            .unwrap_err();
        assert_eq!(error.field(), Some("pages[1].page_id"));
        assert_eq!(error.code(), "wrong_type");
    }

    #[test]
    fn unknown_fields_and_bad_choices_are_refused_by_name() {
        let body = map(json!({"capcity": 3, "presence": "sleeping"}));
        let object = Object::root(&body);
        assert_eq!(
            object.only(&["capacity", "presence"]).unwrap_err().field(),
            Some("capcity")
        );
        let error = object
            .choice("presence", &["available", "busy"])
            .unwrap_err();
        assert_eq!(error.code(), "invalid_choice");
        assert!(error.message().contains("available, busy"));
    }

    #[test]
    fn names_are_trimmed_required_and_bounded() {
        let body = map(json!({"a": "  Support ", "b": "   ", "c": "xxxxxx"}));
        let object = Object::root(&body);
        assert_eq!(object.name("a", 10).unwrap(), "Support");
        assert_eq!(object.name("b", 10).unwrap_err().code(), "required");
        assert_eq!(object.name("c", 5).unwrap_err().code(), "too_long");
        assert_eq!(object.name("d", 5).unwrap_err().code(), "required");
    }

    #[test]
    fn merge_replaces_top_level_fields_and_null_removes() {
        let stored = json!({"name": "a", "bot_url": "https://x", "capacity": 2});
        let merged = merge(&stored, map(json!({"name": "b", "bot_url": null})));
        assert_eq!(Value::Object(merged), json!({"name": "b", "capacity": 2}));
    }
}
