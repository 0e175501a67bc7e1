//! `[daemon]`: where tandem listens, where it keeps its state, and its operating limits. Every key
//! has a default, so a config without `[daemon]` runs a local daemon.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, de};
use tandem_connectors::units::HumanDuration;

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Address of the HTTP server (webhooks, health, metrics, admin API).
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    pub state: StateLocation,
    /// Bearer token for `/api/*`; `None` disables the admin API.
    pub admin_token: Option<SecretString>,
    /// How long `SIGTERM` waits for in-flight work before exiting.
    pub stop_timeout: HumanDuration,
    pub log_format: LogFormat,
    pub limits: LimitsConfig,
    pub delivery: DeliveryConfig,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state: StateLocation::default(),
            admin_token: None,
            stop_timeout: secs(30),
            log_format: LogFormat::default(),
            limits: LimitsConfig::default(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// Where the durable state lives: `sqlite:/path/tandem.db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    Sqlite(PathBuf),
}

impl Default for StateLocation {
    /// `$STATE_DIRECTORY/tandem.db` under systemd's `StateDirectory=`, else `/var/lib/tandem/tandem.db`.
    fn default() -> Self {
        // systemd joins several StateDirectory= entries with ':'; the first is ours.
        let dir = std::env::var_os("STATE_DIRECTORY")
            .and_then(|d| {
                d.to_str()
                    .and_then(|s| s.split(':').next())
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("/var/lib/tandem"));
        StateLocation::Sqlite(dir.join("tandem.db"))
    }
}

impl StateLocation {
    /// Resolves a relative path against the config file's directory, so the daemon's working
    /// directory never decides where the data goes.
    pub(crate) fn resolve_relative(&mut self, config_dir: &Path) {
        let StateLocation::Sqlite(p) = self;
        if p.is_relative() {
            let joined = config_dir.join(&*p);
            *p = std::path::absolute(&joined).unwrap_or(joined);
        }
    }
}

impl<'de> Deserialize<'de> for StateLocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix("sqlite:") {
            Some(path) if !path.trim().is_empty() => Ok(StateLocation::Sqlite(PathBuf::from(path))),
            Some(_) => Err(de::Error::custom(
                "sqlite: needs a path, e.g. \"sqlite:/var/lib/tandem/tandem.db\"",
            )),
            None => Err(de::Error::custom(format!(
                "unsupported state location {s:?}; write \"sqlite:/path/to/tandem.db\""
            ))),
        }
    }
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (journald adds timestamps).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[daemon.limits]`: bounds that protect the daemon from oversized or runaway input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted webhook body; an integer (bytes) or "512KiB", "1MiB".
    #[serde(deserialize_with = "byte_size")]
    pub max_body_bytes: usize,
    /// Submissions waiting for a commit before intake answers 503.
    pub max_pending_writes: usize,
    /// Whole request, from the end of its head to the answer (reading the body included); past
    /// it the answer is 408.
    pub request_timeout: HumanDuration,
    /// Longest wait for a complete request head (request line and headers), on a new connection
    /// and between two requests on a kept-alive one; past it the connection is closed.
    pub header_timeout: HumanDuration,
    /// Open HTTP connections at most; at the cap new connections wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1_048_576,
            max_pending_writes: 10_000,
            request_timeout: secs(10),
            header_timeout: secs(5),
            max_connections: 1024,
        }
    }
}

/// `[daemon.delivery]`: the retry schedule and parallelism of the delivery engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts before a delivery goes to the dead-letter list.
    pub max_attempts: u32,
    /// Age after which a delivery is dead-lettered regardless of attempts.
    pub max_age: HumanDuration,
    pub backoff_base: HumanDuration,
    pub backoff_max: HumanDuration,
    /// How long a claimed delivery stays claimed before another worker may take it.
    pub lease: HumanDuration,
    /// How long a worker waits for more rows to fill a batch.
    pub linger: HumanDuration,
    /// Concurrent batches per destination connector.
    pub concurrency: usize,
    /// Longest one vendor call may take before it counts as a transient failure.
    pub call_timeout: HumanDuration,
    /// How often a destination paused by 401/403 tries one delivery to see whether access is back.
    pub probe_interval: HumanDuration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 12,
            max_age: secs(3 * 86_400),
            backoff_base: secs(1),
            backoff_max: secs(600),
            lease: secs(120),
            linger: HumanDuration(Duration::from_millis(50)),
            concurrency: 4,
            call_timeout: secs(60),
            probe_interval: secs(60),
        }
    }
}

fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        de::Error::custom(format!(
            "{s:?} is not a socket address; write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::]:8080\""
        ))
    })
}

/// Accepts an integer number of bytes or a string with a unit (B, KiB, MiB, GiB, KB, MB, GB).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size in bytes, or a string like \"512KiB\" or \"1MiB\"")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom(format!("size {v} must not be negative")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom(format!("size {v} is too large")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            parse_byte_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

pub(crate) fn parse_byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 1048576, \"512KiB\" or \"1MiB\""))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_byte_size("512KiB"), Ok(524_288));
        assert_eq!(parse_byte_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_byte_size("100"), Ok(100));
        assert!(parse_byte_size("1 parsec").is_err());
        assert!(parse_byte_size("MiB").is_err());
    }

    #[test]
    fn defaults_match_the_documentation() {
        let d = DaemonConfig::default();
        assert_eq!(d.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(d.stop_timeout.to_string(), "30s");
        assert_eq!(d.limits.max_body_bytes, 1_048_576);
        assert_eq!(d.limits.header_timeout.to_string(), "5s");
        assert_eq!(d.limits.max_connections, 1024);
        assert_eq!(d.delivery.max_age.to_string(), "3d");
        assert_eq!(d.delivery.backoff_max.to_string(), "10m");
        assert_eq!(d.delivery.linger.to_string(), "50ms");
        assert!(d.admin_token.is_none());
    }

    #[test]
    fn relative_state_paths_follow_the_config_file() {
        let mut s = StateLocation::Sqlite("data/tandem.db".into());
        s.resolve_relative(Path::new("/etc/tandem"));
        assert_eq!(
            s,
            StateLocation::Sqlite("/etc/tandem/data/tandem.db".into())
        );
    }
}
