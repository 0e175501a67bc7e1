//! The config file: loading, secret references and validation with precise errors.
//!
//! [`Config::load`] reads the TOML once keeping byte spans, resolves `${env:…}`, `${file:…}` and
//! `${cred:…}` references, deserializes each section on its own, then checks the whole (flows
//! against connectors, templates, limits). Every problem comes back at once, each with file, line,
//! column, dotted key path and, where one helps, a hint. Secret values never appear in errors.
//!
//! - [`error`]: [`ConfigError`] and its `file:line:col: key: message — hint: …` format.
//! - `document`: spans, key paths, per-section deserialization.
//! - `secrets`: secret references.
//! - [`daemon`], [`flow`]: the typed sections; `connectors`: `[connectors.NAME]`.
//! - `validate`: cross-section checks.

pub mod attribution;
mod connectors;
pub mod daemon;
mod document;
pub mod error;
pub mod flow;
mod secrets;
mod validate;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use tandem_connectors::ConnectorKind;
use toml::de::{DeTable, DeValue};

pub use attribution::{AttributionConfig, MilestoneMap};
pub use connectors::{CANONICAL_FIELDS, known_kinds};
pub use daemon::{DaemonConfig, DeliveryConfig, LimitsConfig, LogFormat, StateLocation};
pub use error::{ConfigError, ConfigErrors};
pub use flow::{FieldMapping, FlowConfig, OnConflict};

use error::{Reporter, did_you_mean};

/// Where the config is read from when nothing else says.
pub const DEFAULT_PATH: &str = "/etc/tandem/tandem.toml";

const TOP_LEVEL: &[&str] = &["daemon", "connectors", "flows", "attribution"];

/// A loaded, fully validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from, as given.
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub connectors: BTreeMap<String, ConnectorKind>,
    pub flows: BTreeMap<String, FlowConfig>,
    /// The closed loop, when configured.
    pub attribution: Option<AttributionConfig>,
}

impl Config {
    /// Reads, parses, resolves secrets and validates `path`, reporting every problem at once.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = (e.kind() == std::io::ErrorKind::NotFound)
                .then(|| "pass --config PATH or set TANDEM_CONFIG".to_string());
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                column: None,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
                hint,
            }])
        })?;
        Self::from_str_at(&text, path)
    }

    /// Like [`Config::load`] for text already in memory; `path` names it in messages and anchors
    /// relative paths (`${file:…}`, `state`).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut rep = Reporter::new(path.to_path_buf(), text);
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // Recovery guesses after the first syntax error would only add confusing follow-ups
            // in other sections, so stop at syntax.
            for e in syntax {
                rep.push(e.span(), "", format!("syntax error: {}", e.message()), None);
            }
            return Err(ConfigErrors(rep.finish()));
        }
        let mut root = root.into_inner();
        let dir = config_dir(path);
        let redactor = secrets::resolve_all(&mut root, &dir, &mut rep);
        let result = build(&root, path, &dir, &mut rep);
        let errors: Vec<ConfigError> = rep
            .finish()
            .into_iter()
            .map(|mut e| {
                e.message = redactor.scrub(&e.message);
                e.hint = e.hint.map(|h| redactor.scrub(&h));
                e
            })
            .collect();
        match result {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// `--config`, else `$TANDEM_CONFIG`, else `$CONFIGURATION_DIRECTORY/tandem.toml` (systemd's
    /// `ConfigurationDirectory=`), else `/etc/tandem/tandem.toml`.
    pub fn resolve_path(cli: Option<PathBuf>) -> PathBuf {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        cli.or_else(|| env("TANDEM_CONFIG").map(PathBuf::from))
            .or_else(|| {
                env("CONFIGURATION_DIRECTORY").and_then(|d| {
                    // systemd joins several directories with ':'; the first is ours.
                    let d = d.to_str()?.split(':').next()?.to_owned();
                    Some(PathBuf::from(d).join("tandem.toml"))
                })
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }
}

/// Human output for `tandem check`.
pub fn check_report(result: &Result<Config, ConfigErrors>) -> String {
    match result {
        Ok(c) => {
            let n = c.connectors.len();
            let m = c.flows.len();
            let attribution = c
                .attribution
                .as_ref()
                .map(|a| {
                    format!(
                        "; attribution from {} to {} destination{}",
                        a.from,
                        a.to.len(),
                        if a.to.len() == 1 { "" } else { "s" }
                    )
                })
                .unwrap_or_default();
            format!(
                "config OK: {n} connector{}, {m} flow{}{attribution}",
                if n == 1 { "" } else { "s" },
                if m == 1 { "" } else { "s" }
            )
        }
        Err(e) => e.to_string(),
    }
}

fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Typed sections plus cross-checks; `None` when some section could not be used at all.
fn build(root: &DeTable<'_>, path: &Path, dir: &Path, rep: &mut Reporter<'_>) -> Option<Config> {
    let mut ok = true;
    let mut daemon = DaemonConfig::default();
    let mut connectors = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let mut flows = BTreeMap::new();
    let mut attribution = None;
    for (key, value) in root.iter() {
        match key.get_ref().as_ref() {
            "daemon" => match document::section::<DaemonConfig>(value, "daemon", rep) {
                Some(d) => daemon = d,
                None => ok = false,
            },
            "connectors" => {
                let Some(table) = tables_of(value, "connectors", "[connectors.NAME]", rep) else {
                    ok = false;
                    continue;
                };
                for (name, v) in table.iter() {
                    let name_str = name.get_ref().to_string();
                    declared.insert(name_str.clone());
                    match connectors::connector(&name_str, v, name.span(), rep) {
                        Some(c) => {
                            connectors.insert(name_str, c);
                        }
                        None => ok = false,
                    }
                }
            }
            "flows" => {
                let Some(table) = tables_of(value, "flows", "[flows.NAME]", rep) else {
                    ok = false;
                    continue;
                };
                for (name, v) in table.iter() {
                    let prefix = format!("flows.{}", name.get_ref());
                    match document::section::<FlowConfig>(v, &prefix, rep) {
                        Some(f) => {
                            flows.insert(name.get_ref().to_string(), f);
                        }
                        None => ok = false,
                    }
                }
            }
            "attribution" => {
                match document::section::<AttributionConfig>(value, "attribution", rep) {
                    Some(a) => attribution = Some(a),
                    None => ok = false,
                }
            }
            other => {
                let hint = match did_you_mean(other, TOP_LEVEL.iter().copied()) {
                    Some(close) => format!(
                        "did you mean [{close}]? top-level tables: daemon, connectors, flows, attribution"
                    ),
                    None => "top-level tables: daemon, connectors, flows, attribution".to_string(),
                };
                rep.push(Some(key.span()), other, "unknown top-level key", Some(hint));
                ok = false;
            }
        }
    }
    daemon.state.resolve_relative(dir);
    validate::daemon(&daemon, root, rep);
    validate::flows(&flows, &connectors, &declared, root, rep);
    if let Some(a) = &attribution {
        validate::attribution(a, &connectors, &declared, root, rep);
    }
    ok.then(|| Config {
        path: path.to_path_buf(),
        daemon,
        connectors,
        flows,
        attribution,
    })
}

/// The table under a top-level key that must hold `[KEY.NAME]` tables.
fn tables_of<'a, 'i>(
    value: &'a toml::Spanned<DeValue<'i>>,
    key: &str,
    shape: &str,
    rep: &mut Reporter<'_>,
) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            rep.push(
                Some(value.span()),
                key,
                format!("expected tables, found a {}", other.type_str()),
                Some(format!("write each one as {shape}")),
            );
            None
        }
    }
}
