//! Spin variables: application variables with providers, and the component
//! variables that are templates over them.
//!
//! Resolution order is Spin's: an explicit value (Spin's `--variable`), then
//! the environment (`SPIN_VARIABLE_<NAME>`), then the manifest default. A
//! required variable that nothing provides stops start-up, naming it.

use anyhow::{bail, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// Spin's name rule: lower-case letters, digits and `_`, starting with a
/// letter, not ending with `_`, no `__`.
pub fn check_name(name: &str) -> Result<()> {
    let Some(first) = name.chars().next() else {
        bail!("variable names must not be empty");
    };
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        bail!("{name:?}: invalid character {bad:?}. Variable names may contain only lower-case letters, numbers, and underscores.");
    }
    if !first.is_ascii_lowercase() {
        bail!("{name:?}: variable names must start with a letter");
    }
    if name.ends_with('_') || name.contains("__") {
        bail!("{name:?}: variable names must not end with '_' or contain '__'");
    }
    Ok(())
}

/// A variable as `spin.toml` declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    // Accepted because Spin accepts them; the dev host never prints variable
    // values, so a secret needs no handling of its own.
    #[serde(default)]
    #[allow(dead_code)]
    pub secret: bool,
    #[allow(dead_code)]
    pub description: Option<String>,
}

/// The application variables' resolved values.
pub struct AppVariables {
    values: HashMap<String, String>,
}

impl AppVariables {
    /// `explicit` plays the part of Spin's `--variable name=value`; `env` is
    /// the process environment (passed in so tests need not mutate it).
    pub fn resolve(
        declared: &BTreeMap<String, VariableDecl>,
        explicit: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AppVariables> {
        if let Some(unknown) = explicit.keys().find(|k| !declared.contains_key(*k)) {
            bail!("variable `{unknown}` is set but not declared in the manifest's [variables]");
        }
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, decl) in declared {
            let value = explicit
                .get(name)
                .cloned()
                .or_else(|| env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())))
                .or_else(|| decl.default.clone());
            match value {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            let hints: Vec<String> = missing
                .iter()
                .map(|n| format!("SPIN_VARIABLE_{}", n.to_ascii_uppercase()))
                .collect();
            bail!(
                "no value for required variable(s) {}: set {} in the environment or pass --variable NAME=VALUE",
                missing.join(", "),
                hints.join(", ")
            );
        }
        Ok(AppVariables { values })
    }

    /// Expands `{{ name }}` references in a template.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("invalid variable template {template:?}: unclosed '{{{{'");
            };
            let name = after[..end].trim();
            match self.values.get(name) {
                Some(value) => out.push_str(value),
                None => bail!("invalid variable template {template:?}: unknown variable {name:?}"),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>, required: bool) -> VariableDecl {
        VariableDecl {
            default: default.map(str::to_owned),
            required,
            secret: false,
            description: None,
        }
    }

    #[test]
    fn names_follow_spins_rule() {
        assert!(check_name("api_key2").is_ok());
        for bad in ["API_KEY", "2key", "key_", "a__b", "", "a-b"] {
            assert!(check_name(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn explicit_beats_env_beats_default() {
        let declared = BTreeMap::from([
            ("a".to_string(), decl(Some("default"), false)),
            ("b".to_string(), decl(Some("default"), false)),
            ("c".to_string(), decl(Some("default"), false)),
        ]);
        let explicit = HashMap::from([("a".to_string(), "explicit".to_string())]);
        let env =
            |k: &str| (k == "SPIN_VARIABLE_A" || k == "SPIN_VARIABLE_B").then(|| "env".to_string());
        let vars = AppVariables::resolve(&declared, &explicit, &env).unwrap();
        assert_eq!(
            vars.expand("{{a}}/{{ b }}/{{c}}").unwrap(),
            "explicit/env/default"
        );
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let declared = BTreeMap::from([("admin_token".to_string(), decl(None, true))]);
        let error = AppVariables::resolve(&declared, &HashMap::new(), &|_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("admin_token"), "{error}");
        assert!(error.contains("SPIN_VARIABLE_ADMIN_TOKEN"), "{error}");
    }

    #[test]
    fn templates_name_unknown_variables() {
        let vars = AppVariables::resolve(&BTreeMap::new(), &HashMap::new(), &|_| None).unwrap();
        assert!(vars.expand("{{ nope }}").is_err());
        assert_eq!(vars.expand("plain").unwrap(), "plain");
    }
}
