//! Parameters and selector checks of the process faults: kill, pause, restart.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::{only, CheckParams, Problems};
use crate::spec::model::{FaultType, ProcessSelector, Selector};

/// The signal a kill sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KillSignal {
    /// SIGKILL: no handler runs (the default).
    #[default]
    #[serde(rename = "KILL")]
    Kill,
    /// SIGTERM: the target may shut down cleanly; SIGKILL follows after `grace`.
    #[serde(rename = "TERM")]
    Term,
}

impl KillSignal {
    /// The signal number.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::KillSignal::Term.number(), libc::SIGTERM);
    /// ```
    pub fn number(self) -> libc::c_int {
        match self {
            KillSignal::Kill => libc::SIGKILL,
            KillSignal::Term => libc::SIGTERM,
        }
    }

    /// The name as written (`KILL`, `TERM`).
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::KillSignal::Kill.name(), "KILL");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "KILL",
            KillSignal::Term => "TERM",
        }
    }
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

/// `process-kill` parameters.
///
/// ```
/// let p: chaos_runner::spec::ProcessKillParams =
///     serde_json::from_value(serde_json::json!({"signal": "TERM"})).unwrap();
/// assert!(!p.allow_unrevertable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessKillParams {
    /// `KILL` (default) or `TERM`.
    #[serde(default)]
    pub signal: KillSignal,
    /// After `TERM`, how long to wait before SIGKILL (default 5s, at most 5 min).
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub grace: Duration,
    /// Allow killing a process the runner did not start and so cannot restart (`pidFile`,
    /// `name`, `port`); the report then says the fault was not revertible.
    #[serde(default)]
    pub allow_unrevertable: bool,
}

impl CheckParams for ProcessKillParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_grace(self.grace, at, problems);
    }
}

/// `process-pause` parameters (none yet: the pause lasts the fault's duration).
///
/// ```
/// let _: chaos_runner::spec::ProcessPauseParams =
///     serde_json::from_value(serde_json::json!({})).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessPauseParams {}

impl CheckParams for ProcessPauseParams {
    fn check(&self, _at: &str, _problems: &mut Problems) {}
}

/// `process-restart` parameters.
///
/// ```
/// let p: chaos_runner::spec::ProcessRestartParams =
///     serde_json::from_value(serde_json::json!({})).unwrap();
/// assert_eq!(p.signal, chaos_runner::spec::KillSignal::Term);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessRestartParams {
    /// `TERM` (default) or `KILL`.
    #[serde(default = "term")]
    pub signal: KillSignal,
    /// After `TERM`, how long to wait before SIGKILL (default 5s, at most 5 min).
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub grace: Duration,
}

fn term() -> KillSignal {
    KillSignal::Term
}

impl CheckParams for ProcessRestartParams {
    fn check(&self, at: &str, problems: &mut Problems) {
        check_grace(self.grace, at, problems);
    }
}

fn check_grace(grace: Duration, at: &str, problems: &mut Problems) {
    problems.check(
        grace <= Duration::from_secs(300),
        format!("{at}.grace"),
        "must be at most 5m",
    );
}

/// Whether `selector` names a command the runner supervises (and so can restart).
pub(crate) fn is_supervised(selector: &Selector) -> bool {
    selector
        .process
        .as_ref()
        .is_some_and(|p| p.command.is_some())
}

/// Process faults take `process:` with exactly one of `pidFile`, `name`, `port`,
/// `command`; `process-restart` only a `command`.
pub(super) fn check_process_selector(
    fault_type: FaultType,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    only(selector, at, &["process"], problems);
    let Some(p) = &selector.process else {
        problems.check(
            false,
            at.to_owned(),
            "needs `process:` with one of pidFile, name, port, command",
        );
        return;
    };
    let here = format!("{at}.process");
    let ProcessSelector {
        pid_file,
        name,
        port,
        command,
        restart,
        ready_port,
        ready_http,
        ready_timeout,
        env,
        cwd,
        max_targets,
    } = p;
    let given = [
        pid_file.is_some(),
        name.is_some(),
        port.is_some(),
        command.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    problems.check(
        given == 1,
        here.clone(),
        "needs exactly one of pidFile, name, port, command",
    );
    if let Some(file) = pid_file {
        problems.check(
            file.starts_with('/'),
            format!("{here}.pidFile"),
            "must be an absolute path",
        );
    }
    if let Some(name) = name {
        problems.check(
            !name.is_empty() && name.len() <= 255 && !name.contains('/'),
            format!("{here}.name"),
            "must be an executable name (no `/`), 1 to 255 characters",
        );
    }
    if let Some(port) = port {
        problems.check(*port != 0, format!("{here}.port"), "must be 1 to 65535");
    }
    if let Some(argv) = command {
        problems.check(
            argv.first().is_some_and(|a| !a.is_empty()),
            format!("{here}.command"),
            "must be a non-empty argument vector (no shell)",
        );
    }
    let supervised = command.is_some();
    for (field, present) in [
        ("restart", restart.is_some()),
        ("readyPort", ready_port.is_some()),
        ("readyHttp", ready_http.is_some()),
        ("readyTimeout", ready_timeout.is_some()),
        ("env", !env.is_empty()),
        ("cwd", cwd.is_some()),
    ] {
        problems.check(
            supervised || !present,
            format!("{here}.{field}"),
            "only applies to a supervised `command`",
        );
    }
    if let Some(port) = ready_port {
        problems.check(
            *port != 0,
            format!("{here}.readyPort"),
            "must be 1 to 65535",
        );
    }
    if let Some(t) = ready_timeout {
        problems.check(
            *t >= Duration::from_millis(100) && *t <= Duration::from_secs(1800),
            format!("{here}.readyTimeout"),
            "must be between 100ms and 30m",
        );
    }
    if let Some(url) = ready_http {
        problems.check(
            crate::spec::validate::is_http_url(url),
            format!("{here}.readyHttp"),
            "must be an http:// or https:// URL with a host",
        );
    }
    for key in env.keys() {
        problems.check(
            is_env_name(key),
            format!("{here}.env.{key}"),
            "must be a variable name (letters, digits, underscores, not starting with a digit)",
        );
    }
    if let Some(dir) = cwd {
        problems.check(
            !dir.trim().is_empty(),
            format!("{here}.cwd"),
            "must not be empty",
        );
    }
    if let Some(max) = max_targets {
        problems.check(
            name.is_some() || port.is_some(),
            format!("{here}.maxTargets"),
            "only applies to `name` or `port`",
        );
        problems.check(
            (1..=64).contains(max),
            format!("{here}.maxTargets"),
            "must be between 1 and 64",
        );
    }
    if fault_type == FaultType::ProcessRestart {
        problems.check(
            supervised,
            here,
            "process-restart needs a supervised `command` (the runner can only restart what it started)",
        );
    }
}

/// Whether `key` can name an environment variable: letters, digits and underscores, not
/// starting with a digit.
fn is_env_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|ch: char| ch.is_ascii_digit())
        && key
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// A kill of a process nobody can restart needs `allowUnrevertable: true`.
pub(super) fn check_kill_with_selector(
    params: &ProcessKillParams,
    selector: &Selector,
    at: &str,
    problems: &mut Problems,
) {
    problems.check(
        is_supervised(selector) || params.allow_unrevertable,
        format!("{at}.allowUnrevertable"),
        "killing a process the runner did not start cannot be reverted: set `allowUnrevertable: true` to allow it",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(process: ProcessSelector) -> Vec<String> {
        let selector = Selector {
            process: Some(process),
            ..Default::default()
        };
        let mut problems = Problems::default();
        check_process_selector(
            FaultType::ProcessKill,
            &selector,
            "spec.faults[0].selector",
            &mut problems,
        );
        problems.found().iter().map(|(f, _)| f.clone()).collect()
    }

    fn command(argv: &[&str]) -> Option<Vec<String>> {
        Some(argv.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn a_command_takes_env_cwd_and_ready_http() {
        let fields = problems_of(ProcessSelector {
            command: command(&["game-server"]),
            env: [("GAME_LISTEN".to_owned(), "127.0.0.1:1".to_owned())].into(),
            cwd: Some(".".into()),
            ready_http: Some("http://127.0.0.1:18080/healthz".into()),
            ready_timeout: Some(Duration::from_secs(1200)),
            ..Default::default()
        });
        assert!(fields.is_empty(), "{fields:?}");
    }

    #[test]
    fn env_cwd_and_ready_http_need_a_command() {
        let fields = problems_of(ProcessSelector {
            port: Some(8080),
            env: [("A".to_owned(), "1".to_owned())].into(),
            cwd: Some("/tmp".into()),
            ready_http: Some("http://127.0.0.1:8080/".into()),
            ..Default::default()
        });
        for field in ["env", "cwd", "readyHttp"] {
            let want = format!("spec.faults[0].selector.process.{field}");
            assert!(fields.contains(&want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn bad_env_names_cwd_and_urls_are_refused_by_field() {
        let fields = problems_of(ProcessSelector {
            command: command(&["game-server"]),
            env: [
                ("1ST".to_owned(), "x".to_owned()),
                ("A-B".to_owned(), "x".to_owned()),
                ("OK_1".to_owned(), "x".to_owned()),
            ]
            .into(),
            cwd: Some("  ".into()),
            ready_http: Some("ftp://127.0.0.1/".into()),
            ready_timeout: Some(Duration::from_secs(1801)),
            ..Default::default()
        });
        let here = "spec.faults[0].selector.process";
        let mut want: Vec<String> = ["env.1ST", "env.A-B", "cwd", "readyHttp", "readyTimeout"]
            .iter()
            .map(|f| format!("{here}.{f}"))
            .collect();
        want.sort();
        let mut got = fields.clone();
        got.sort();
        assert_eq!(got, want);
    }
}
