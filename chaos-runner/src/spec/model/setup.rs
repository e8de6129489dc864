//! Services an experiment starts and tears down itself (`spec.setup`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A service of `spec.setup`: exactly one of `postgres` (built in) or `command`.
///
/// ```
/// let s: chaos_runner::spec::SetupService = serde_json::from_value(serde_json::json!(
///     {"name": "web", "command": ["python3", "-m", "http.server", "18081"], "readyPort": 18081})).unwrap();
/// assert_eq!(s.ready_timeout, std::time::Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupService {
    /// Lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// A PostgreSQL server in a temporary directory.
    #[serde(default)]
    pub postgres: Option<PostgresSetup>,
    /// An argument vector (no shell), started in the service's temporary directory
    /// unless `cwd` says otherwise; `CHAOS_SETUP_DIR` holds that directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra environment variables of `command`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of `command`.
    #[serde(default)]
    pub cwd: Option<String>,
    /// `command` is ready once a GET of this URL answers 2xx.
    #[serde(default)]
    pub ready_http: Option<String>,
    /// `command` is ready once this local TCP port accepts connections; the runner
    /// refuses to start when the port is already in use.
    #[serde(default)]
    pub ready_port: Option<u16>,
    /// How long the service may take to become ready (1s to 30m).
    #[serde(default = "default_setup_ready_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ready_timeout: Duration,
}

fn default_setup_ready_timeout() -> Duration {
    Duration::from_secs(120)
}

/// A PostgreSQL server the runner creates (`initdb` in a temporary directory), starts on
/// `127.0.0.1:port` and gives an empty `database` (user `postgres`, trust auth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresSetup {
    /// TCP port on 127.0.0.1; the runner refuses to start when it is in use.
    pub port: u16,
    /// Database created for the run.
    pub database: String,
    /// Major version (`/usr/lib/postgresql/<version>/bin`); the newest installed when
    /// absent.
    #[serde(default)]
    pub version: Option<u32>,
}
