//! The service's settings: a YAML file (`--config FILE`) and `GAME_*` environment overrides.
//!
//! Unknown fields are refused; every error names the file, the field path and its line.

use resilience::ResiliencePolicyConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting of the service. Missing sections take the defaults shipped in
/// `game-server.yaml`.
///
/// ```
/// let config = game_server::config::Config::from_yaml("listen: 127.0.0.1:9000\n", "inline").unwrap();
/// assert_eq!(config.listen.port(), 9000);
/// assert_eq!(config.matchmaking.skill_band, 100);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP API listens on (loopback by default).
    pub listen: SocketAddr,
    /// PostgreSQL connection settings.
    pub database: DatabaseConfig,
    /// Directory of the write-behind spool file.
    pub spool_dir: PathBuf,
    /// The write-behind queue of saves acknowledged while the database is unavailable.
    pub write_behind: WriteBehindConfig,
    /// Last known saves kept in memory for reads while the database is unavailable.
    pub cache: CacheConfig,
    /// Matchmaking settings.
    pub matchmaking: MatchmakingConfig,
    /// Per-player rate limit (calls per second and burst, per player id).
    pub player_rate_limit: resilience::rate_limit::RateLimitConfig,
    /// The resilience policies around the database.
    pub policies: PoliciesConfig,
    /// Graceful shutdown bounds.
    pub shutdown: ShutdownConfig,
    /// The WebSocket lobby (`GET /v1/lobby/ws`).
    pub lobby: LobbyConfig,
}

/// PostgreSQL connection settings.
///
/// ```
/// let db = game_server::config::DatabaseConfig::default();
/// assert!(db.pool_size >= 1);
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A libpq-style URL (`postgres://user:password@host:port/db`) or key-value string.
    pub url: String,
    /// Connections kept at most.
    pub pool_size: u32,
    /// Time allowed to open one connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            pool_size: 8,
            connect_timeout: Duration::from_millis(500),
        }
    }
}

/// Write-behind queue settings.
///
/// ```
/// let wb = game_server::config::WriteBehindConfig::default();
/// assert_eq!(wb.max_queued, 10_000);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriteBehindConfig {
    /// The fallback itself: when false, a save the database does not take within the
    /// policy is refused with 503 instead of being queued.
    pub enabled: bool,
    /// Saves queued at most; beyond it a save is refused with 503.
    pub max_queued: usize,
    /// Saves written per flush round.
    pub flush_batch: usize,
    /// Pause after a flush round failed (the database is still unavailable).
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            enabled: true,
            max_queued: 10_000,
            flush_batch: 64,
            retry_interval: Duration::from_millis(250),
        }
    }
}

/// Read cache settings.
///
/// ```
/// assert_eq!(game_server::config::CacheConfig::default().max_entries, 100_000);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Players whose last save is kept at most.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 100_000,
        }
    }
}

/// Matchmaking settings.
///
/// ```
/// let m = game_server::config::MatchmakingConfig::default();
/// assert!(m.degraded_skill_band > m.skill_band);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchmakingConfig {
    /// Two players are paired when their ratings differ by at most this much.
    pub skill_band: u32,
    /// The band used when ratings cannot be read (database unavailable): the client's own
    /// skill is used, so the band is wider.
    pub degraded_skill_band: u32,
    /// How long a queued ticket waits for a match (and a matched ticket stays readable).
    #[serde(with = "humantime_serde")]
    pub ticket_ttl: Duration,
    /// Players waiting at most; beyond it queueing is refused with 503.
    pub max_waiting: usize,
}

impl Default for MatchmakingConfig {
    fn default() -> Self {
        MatchmakingConfig {
            skill_band: 100,
            degraded_skill_band: 300,
            ticket_ttl: Duration::from_secs(60),
            max_waiting: 10_000,
        }
    }
}

/// The resilience policies around the database (see the `resilience` crate's YAML format).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoliciesConfig {
    /// Player save writes (and the write-behind flusher).
    pub save_writes: ResiliencePolicyConfig,
    /// Player save reads.
    pub save_reads: ResiliencePolicyConfig,
    /// Rating reads and match records.
    pub matchmaking: ResiliencePolicyConfig,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        // The defaults shipped in game-server.yaml; parsing them cannot fail (tested).
        let parse = |text: &str| ResiliencePolicyConfig::from_yaml(text).unwrap_or_default();
        PoliciesConfig {
            save_writes: parse(DEFAULT_SAVE_WRITES),
            save_reads: parse(DEFAULT_SAVE_READS),
            matchmaking: parse(DEFAULT_MATCHMAKING),
        }
    }
}

const DEFAULT_SAVE_WRITES: &str = "
name: save_writes
timeout: { per_attempt: 200ms, overall: 400ms }
retry: { max_attempts: 2, base_backoff: 20ms, max_backoff: 100ms, budget: { ratio: 0.2, min_per_second: 10, window: 10s } }
circuit_breaker:
  window: { kind: count, size: 20 }
  failure_rate_threshold: 50
  minimum_calls: 5
  half_open_permits: 2
  open_backoff: { kind: exponential, start: 1s, max: 5s }
bulkhead: { max_concurrent: 16, max_queue: 64, max_wait: 100ms }
";

const DEFAULT_SAVE_READS: &str = "
name: save_reads
timeout: { per_attempt: 150ms, overall: 300ms }
retry: { max_attempts: 2, base_backoff: 20ms, max_backoff: 100ms, budget: { ratio: 0.2, min_per_second: 10, window: 10s } }
circuit_breaker:
  window: { kind: count, size: 20 }
  failure_rate_threshold: 50
  minimum_calls: 5
  half_open_permits: 2
  open_backoff: { kind: exponential, start: 1s, max: 5s }
bulkhead: { max_concurrent: 16, max_queue: 64, max_wait: 100ms }
";

const DEFAULT_MATCHMAKING: &str = "
name: matchmaking
timeout: { per_attempt: 100ms, overall: 200ms }
retry: { max_attempts: 2, base_backoff: 10ms, max_backoff: 50ms, budget: { ratio: 0.2, min_per_second: 10, window: 10s } }
circuit_breaker:
  window: { kind: count, size: 20 }
  failure_rate_threshold: 50
  minimum_calls: 5
  half_open_permits: 2
  open_backoff: { kind: exponential, start: 1s, max: 5s }
bulkhead: { max_concurrent: 16, max_queue: 64, max_wait: 50ms }
";

/// The WebSocket lobby's limits (section `lobby:`). Its keys are camelCase, as the
/// lobby's contract names them: `maxSessions`, `idleTimeout`.
///
/// ```
/// let config = game_server::config::Config::from_yaml("lobby: { maxSessions: 10, idleTimeout: 5s }\n", "inline").unwrap();
/// assert_eq!(config.lobby.max_sessions, 10);
/// assert_eq!(config.lobby.idle_timeout, std::time::Duration::from_secs(5));
/// let defaults = game_server::config::LobbyConfig::default();
/// assert_eq!(defaults.max_sessions, 200_000);
/// assert_eq!(defaults.idle_timeout, std::time::Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct LobbyConfig {
    /// Sessions open at most; beyond it an upgrade is refused with 503 and `Retry-After`.
    pub max_sessions: usize,
    /// A session that sends nothing (no message, not even a Ping frame) for this long is
    /// closed with code 1008 (policy violation).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for LobbyConfig {
    fn default() -> Self {
        LobbyConfig {
            max_sessions: 200_000,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Graceful shutdown bounds.
///
/// ```
/// let s = game_server::config::ShutdownConfig::default();
/// assert!(s.flush_timeout.as_secs() > 0);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Time in-flight requests get to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Time the write-behind queue gets to flush; what is left stays in the spool.
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 18080)),
            database: DatabaseConfig::default(),
            spool_dir: PathBuf::from("game-spool"),
            write_behind: WriteBehindConfig::default(),
            cache: CacheConfig::default(),
            matchmaking: MatchmakingConfig::default(),
            player_rate_limit: resilience::rate_limit::RateLimitConfig {
                per_second: 20.0,
                burst: 40,
                max_wait: Duration::ZERO,
            },
            policies: PoliciesConfig::default(),
            shutdown: ShutdownConfig::default(),
            lobby: LobbyConfig::default(),
        }
    }
}

/// A configuration problem: which source (file or environment variable), which field, which
/// line.
///
/// ```
/// let err = game_server::config::Config::from_yaml("listen: 127.0.0.1:1\nbogus: 2\n", "game.yaml").unwrap_err();
/// let text = err.to_string();
/// assert!(text.contains("game.yaml") && text.contains("line 2"), "{text}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A field is missing, unknown, of the wrong type or out of range.
    #[error("{origin}: field `{field}`{}: {message}", line_text(.line, .column))]
    Invalid {
        /// The file (or environment variable) the value came from.
        origin: String,
        /// Dotted field path (`policies.save_writes.retry.max_attempts`).
        field: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

fn line_text(line: &Option<usize>, column: &Option<usize>) -> String {
    match (*line, *column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl ConfigError {
    /// The dotted path of the field in error, if the error is about one.
    ///
    /// ```
    /// let err = game_server::config::Config::from_yaml("cache: { max_entries: 0 }\n", "f").unwrap_err();
    /// assert_eq!(err.field(), Some("cache.max_entries"));
    /// ```
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } => None,
        }
    }

    /// The 1-based line of the field in error, when known.
    ///
    /// ```
    /// let err = game_server::config::Config::from_yaml("cache:\n  max_entries: 0\n", "f").unwrap_err();
    /// assert_eq!(err.line(), Some(2));
    /// ```
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Read { .. } => None,
        }
    }
}

fn invalid(source: &str, text: &str, field: &str, message: impl Into<String>) -> ConfigError {
    let location = resilience::config::locate(text, field);
    ConfigError::Invalid {
        origin: source.to_owned(),
        field: field.to_owned(),
        line: location.map(|(l, _)| l),
        column: location.map(|(_, c)| c),
        message: message.into(),
    }
}

impl Config {
    /// Reads and checks a YAML config file.
    ///
    /// ```
    /// let err = game_server::config::Config::from_file(std::path::Path::new("/nonexistent.yaml")).unwrap_err();
    /// assert!(err.to_string().contains("/nonexistent.yaml"));
    /// ```
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Config::from_yaml(&text, &shown)
    }

    /// Parses and checks YAML text; `source` names it in errors.
    ///
    /// ```
    /// let err = game_server::config::Config::from_yaml(
    ///     "policies:\n  save_writes:\n    retry: { max_attempts: 0 }\n", "game.yaml",
    /// ).unwrap_err();
    /// assert_eq!(err.field(), Some("policies.save_writes.retry.max_attempts"));
    /// assert_eq!(err.line(), Some(3));
    /// ```
    pub fn from_yaml(text: &str, source: &str) -> Result<Config, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            // The policies' own loader: an error inside a policy names its field and line.
            resilience::config::from_yaml(text).map_err(|err| ConfigError::Invalid {
                origin: source.to_owned(),
                field: err.field().to_owned(),
                line: err.location().map(|(l, _)| l),
                column: err.location().map(|(_, c)| c),
                message: err.message().to_owned(),
            })?
        };
        config.validate(text, source)
    }

    /// Checks ranges and fills the policy names; `text` is used to find lines.
    fn validate(mut self, text: &str, source: &str) -> Result<Config, ConfigError> {
        let bad = |field: &str, message: &str| Err(invalid(source, text, field, message));
        if !(1..=256).contains(&self.database.pool_size) {
            return bad("database.pool_size", "must be between 1 and 256");
        }
        if self.database.connect_timeout.is_zero()
            || self.database.connect_timeout > Duration::from_secs(60)
        {
            return bad(
                "database.connect_timeout",
                "must be above zero and at most 60s",
            );
        }
        if let Err(e) = self.database.url.parse::<tokio_postgres::Config>() {
            // The parser's message names the option, never the password's value.
            return bad("database.url", &format!("not a PostgreSQL URL: {e}"));
        }
        if self.spool_dir.as_os_str().is_empty() {
            return bad("spool_dir", "must not be empty");
        }
        if !(1..=10_000_000).contains(&self.write_behind.max_queued) {
            return bad("write_behind.max_queued", "must be between 1 and 10000000");
        }
        if !(1..=10_000).contains(&self.write_behind.flush_batch) {
            return bad("write_behind.flush_batch", "must be between 1 and 10000");
        }
        if self.write_behind.retry_interval.is_zero()
            || self.write_behind.retry_interval > Duration::from_secs(60)
        {
            return bad(
                "write_behind.retry_interval",
                "must be above zero and at most 60s",
            );
        }
        if !(1..=100_000_000).contains(&self.cache.max_entries) {
            return bad("cache.max_entries", "must be between 1 and 100000000");
        }
        let mm = &self.matchmaking;
        if !(1..=1_000_000).contains(&mm.skill_band) {
            return bad("matchmaking.skill_band", "must be between 1 and 1000000");
        }
        if mm.degraded_skill_band < mm.skill_band || mm.degraded_skill_band > 1_000_000 {
            return bad(
                "matchmaking.degraded_skill_band",
                "must be at least skill_band and at most 1000000",
            );
        }
        if mm.ticket_ttl < Duration::from_secs(1) || mm.ticket_ttl > Duration::from_secs(3600) {
            return bad("matchmaking.ticket_ttl", "must be between 1s and 1h");
        }
        if !(1..=10_000_000).contains(&mm.max_waiting) {
            return bad("matchmaking.max_waiting", "must be between 1 and 10000000");
        }
        if let Err(e) = self.player_rate_limit.quota() {
            let field = e.field().replacen("rate_limit", "player_rate_limit", 1);
            return bad(&field, e.message());
        }
        for (key, policy) in [
            ("save_writes", &mut self.policies.save_writes),
            ("save_reads", &mut self.policies.save_reads),
            ("matchmaking", &mut self.policies.matchmaking),
        ] {
            if policy.name == "default" {
                policy.name = key.to_owned();
            }
            if let Err(e) = policy.validate() {
                let field = format!("policies.{key}.{}", e.field());
                return bad(&field, e.message());
            }
            if policy.classify.is_some() {
                return bad(
                    &format!("policies.{key}.classify"),
                    "these policies guard database calls, whose answers carry no HTTP status \
                     or gRPC code: every database error is a failure and is retried",
                );
            }
        }
        for (field, value) in [
            ("shutdown.drain_timeout", self.shutdown.drain_timeout),
            ("shutdown.flush_timeout", self.shutdown.flush_timeout),
        ] {
            if value > Duration::from_secs(600) {
                return bad(field, "must be at most 10m");
            }
        }
        if !(1..=10_000_000).contains(&self.lobby.max_sessions) {
            return bad("lobby.maxSessions", "must be between 1 and 10000000");
        }
        if self.lobby.idle_timeout < Duration::from_millis(100)
            || self.lobby.idle_timeout > Duration::from_secs(3600)
        {
            return bad("lobby.idleTimeout", "must be between 100ms and 1h");
        }
        Ok(self)
    }

    /// Applies `GAME_LISTEN`, `GAME_DATABASE_URL` and `GAME_SPOOL_DIR` from `lookup` (the
    /// process environment in `main`).
    ///
    /// ```
    /// let mut config = game_server::config::Config::default();
    /// config.apply_env(|name| (name == "GAME_LISTEN").then(|| "127.0.0.1:9999".to_owned())).unwrap();
    /// assert_eq!(config.listen.port(), 9999);
    /// assert!(config.apply_env(|name| (name == "GAME_LISTEN").then(|| "nope".to_owned())).is_err());
    /// ```
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let env_error = |name: &str, message: String| ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            field: name.to_owned(),
            line: None,
            column: None,
            message,
        };
        if let Some(listen) = lookup("GAME_LISTEN") {
            self.listen = listen
                .trim()
                .parse()
                .map_err(|e| env_error("GAME_LISTEN", format!("not an address:port: {e}")))?;
        }
        if let Some(url) = lookup("GAME_DATABASE_URL") {
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                env_error("GAME_DATABASE_URL", format!("not a PostgreSQL URL: {e}"))
            })?;
            self.database.url = url;
        }
        if let Some(dir) = lookup("GAME_SPOOL_DIR") {
            if dir.is_empty() {
                return Err(env_error("GAME_SPOOL_DIR", "must not be empty".to_owned()));
            }
            self.spool_dir = PathBuf::from(dir);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_parses_to_the_defaults() {
        let text = include_str!("../game-server.yaml");
        let config = Config::from_yaml(text, "game-server.yaml").unwrap();
        let defaults = Config::from_yaml("", "empty").unwrap();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.policies.save_writes, defaults.policies.save_writes);
        assert_eq!(config.policies.save_reads, defaults.policies.save_reads);
        assert_eq!(config.policies.matchmaking, defaults.policies.matchmaking);
        assert_eq!(config.policies.save_writes.name, "save_writes");
        assert_eq!(config.lobby.max_sessions, defaults.lobby.max_sessions);
        assert_eq!(config.lobby.idle_timeout, defaults.lobby.idle_timeout);
        // The built-in policy texts parse (Default would otherwise silently fall back).
        for text in [DEFAULT_SAVE_WRITES, DEFAULT_SAVE_READS, DEFAULT_MATCHMAKING] {
            ResiliencePolicyConfig::from_yaml(text).unwrap();
        }
    }

    #[test]
    fn status_rules_on_a_database_policy_are_refused_not_dropped() {
        let err = Config::from_yaml(
            "policies:\n  save_writes:\n    classify:\n      retry: { http: [503] }\n",
            "g.yaml",
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("policies.save_writes.classify"));
        assert_eq!(err.line(), Some(3), "{err}");
        assert!(err.to_string().contains("database"), "{err}");
    }

    #[test]
    fn errors_name_field_and_line() {
        let err = Config::from_yaml(
            "listen: 127.0.0.1:1\nmatchmaking:\n  skil_band: 3\n",
            "g.yaml",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("g.yaml"), "{text}");
        assert!(text.contains("matchmaking"), "{text}");
        assert_eq!(err.line(), Some(3), "{text}");

        let err = Config::from_yaml(
            "matchmaking:\n  skill_band: 500\n  degraded_skill_band: 10\n",
            "g",
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("matchmaking.degraded_skill_band"));
        assert_eq!(err.line(), Some(3));

        let err =
            Config::from_yaml("player_rate_limit: { per_second: 1, burst: 0 }\n", "g").unwrap_err();
        assert_eq!(err.field(), Some("player_rate_limit.burst"));
        assert_eq!(err.line(), Some(1));
    }

    #[test]
    fn lobby_section_is_checked_and_names_its_camel_case_fields() {
        let err = Config::from_yaml("listen: 127.0.0.1:1\nlobby:\n  maxSessions: 0\n", "g.yaml")
            .unwrap_err();
        assert_eq!(err.field(), Some("lobby.maxSessions"));
        assert_eq!(err.line(), Some(3), "{err}");
        let err = Config::from_yaml("lobby: { idleTimeout: 0s }\n", "g").unwrap_err();
        assert_eq!(err.field(), Some("lobby.idleTimeout"));
        assert_eq!(err.line(), Some(1), "{err}");
        let err = Config::from_yaml("lobby:\n  max_sessions: 5\n", "g").unwrap_err();
        assert!(err.to_string().contains("max_sessions"), "{err}");
        assert_eq!(err.line(), Some(2), "{err}");
        let config = Config::from_yaml("lobby:\n  idleTimeout: 250ms\n", "g").unwrap();
        assert_eq!(config.lobby.idle_timeout, Duration::from_millis(250));
        assert_eq!(config.lobby.max_sessions, 200_000);
    }

    #[test]
    fn env_overrides_and_redaction() {
        let mut config = Config::default();
        config
            .apply_env(|name| match name {
                "GAME_DATABASE_URL" => Some("postgres://u:secret@127.0.0.1:1/db".to_owned()),
                "GAME_SPOOL_DIR" => Some("/tmp/x".to_owned()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.spool_dir, PathBuf::from("/tmp/x"));
        assert!(!format!("{config:?}").contains("secret"));
    }
}
