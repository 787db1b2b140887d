//! The subset of Spin's manifest v2 (`spin.toml`) the dev host runs.
//!
//! Unknown keys that would change behaviour (a component's `files`, a trigger
//! `executor`, inline components) are refused with a message rather than
//! ignored, so the dev host never silently runs an app differently from Spin.
//! Keys that only matter to other tools (`build`, `description`, `authors`…)
//! are accepted and left alone.

use crate::variables::VariableDecl;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: toml::Value,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: TriggerTable,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TriggerTable {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
    #[serde(flatten)]
    pub others: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    pub route: RouteDecl,
    pub component: toml::Value,
    pub executor: Option<toml::Value>,
    pub static_response: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteDecl {
    Pattern(String),
    Private { private: bool },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    pub source: toml::Value,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub files: Option<toml::Value>,
    pub sqlite_databases: Option<toml::Value>,
    pub ai_models: Option<toml::Value>,
}

/// One HTTP trigger, checked.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub component: String,
    /// `None` for a private (`{ private = true }`) route.
    pub route: Option<String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid Spin manifest", path.display()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        if self.spin_manifest_version.as_integer() != Some(2) {
            bail!("only `spin_manifest_version = 2` is supported");
        }
        if let Some(kind) = self.trigger.others.keys().next() {
            bail!("trigger type `{kind}` is not supported by the dev host (HTTP triggers only)");
        }
        for (name, decl) in &self.variables {
            crate::variables::check_name(name)
                .with_context(|| format!("application variable `{name}`"))?;
            if decl.required == decl.default.is_some() {
                bail!("variable `{name}` must be `required` OR have a `default`");
            }
        }
        for (id, component) in &self.component {
            for (key, present) in [
                ("files", component.files.is_some()),
                ("sqlite_databases", component.sqlite_databases.is_some()),
                ("ai_models", component.ai_models.is_some()),
            ] {
                if present {
                    bail!("component `{id}` uses `{key}`, which the dev host does not support");
                }
            }
            if !component.source.is_str() {
                bail!("component `{id}`: only a local file path is supported as `source`");
            }
        }
        Ok(())
    }

    /// The HTTP triggers, each naming a declared component.
    pub fn triggers(&self) -> Result<Vec<Trigger>> {
        self.trigger
            .http
            .iter()
            .map(|t| {
                if t.executor.is_some() || t.static_response.is_some() {
                    bail!("HTTP trigger executors and static responses are not supported by the dev host");
                }
                let Some(component) = t.component.as_str() else {
                    bail!("inline trigger components are not supported; name a [component.<id>]");
                };
                if !self.component.contains_key(component) {
                    bail!("trigger names component `{component}`, which is not declared");
                }
                let route = match &t.route {
                    RouteDecl::Pattern(p) => Some(p.clone()),
                    RouteDecl::Private { private: true } => None,
                    RouteDecl::Private { private: false } => {
                        bail!("route must be a string pattern or '{{ private = true }}'")
                    }
                };
                Ok(Trigger {
                    component: component.to_owned(),
                    route,
                })
            })
            .collect()
    }
}

impl ComponentDecl {
    /// The Wasm file, resolved against the manifest's folder like Spin does.
    pub fn source_path(&self, manifest_dir: &Path) -> PathBuf {
        manifest_dir.join(self.source.as_str().unwrap_or_default())
    }
}
