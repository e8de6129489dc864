//! `chaos-runner gate SLOFILE`: load and check the set, ask Prometheus, print the answer
//! (a small table, or JSON), exit with the decision's code.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use super::{evaluate, render_text, select, GateOptions, GateReport};
use crate::exit::Outcome;
use crate::output::{load_slo_or_report, Format};
use crate::spec::{PrometheusSource, SloSet};
use crate::watch::prometheus::Prometheus;

/// Where Prometheus is and how to reach it (`--prometheus`, `--prometheus-token-*`,
/// `--query-timeout`).
#[derive(Debug, Clone)]
pub struct PrometheusFlags {
    /// Base URL.
    pub url: String,
    /// Environment variable holding a bearer token.
    pub token_env: Option<String>,
    /// File holding a bearer token.
    pub token_file: Option<String>,
    /// Timeout of one query (the period's figures read 30 days of history).
    pub timeout: Duration,
}

impl PrometheusFlags {
    /// A client, or why the flags cannot make one (names the flag).
    pub fn client(&self) -> Result<Prometheus, String> {
        Prometheus::new(&PrometheusSource {
            url: self.url.clone(),
            bearer_token_env: self.token_env.clone(),
            bearer_token_file: self.token_file.clone(),
            timeout: self.timeout,
            fail_after: 1,
        })
        .map_err(|e| format!("--prometheus: {e}"))
    }
}

/// Loads the set and builds the client: what `gate` and `gate serve` need before they
/// ask anything. Prints the problems and returns `None` on bad input.
fn prepare(file: &Path, prometheus: &PrometheusFlags) -> Option<Prepared> {
    let set = load_slo_or_report(file)?;
    match prometheus.client() {
        Ok(client) => Some(Prepared { set, client }),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// A checked SLO set and its Prometheus client.
struct Prepared {
    set: SloSet,
    client: Prometheus,
}

/// Runs the gate once and prints its answer.
pub fn run(
    file: &Path,
    prometheus: &PrometheusFlags,
    options: &GateOptions,
    format: Format,
) -> Outcome {
    let Some(Prepared { set, client }) = prepare(file, prometheus) else {
        return Outcome::InvalidInput;
    };
    let slos = match select(&set, &options.slos) {
        Ok(slos) => slos,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Outcome::InvalidInput;
        }
    };
    let Some(runtime) = crate::output::runtime_or_report() else {
        return Outcome::Gate(super::Decision::Unknown);
    };
    let report: GateReport = runtime.block_on(evaluate(&set, &slos, &client, options));
    match format {
        Format::Text => {
            let colour = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
            print!("{}", render_text(&report, colour));
        }
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot write JSON: {e}"),
        },
    }
    Outcome::Gate(report.decision)
}

/// Where `gate serve`'s own bearer token comes from (never from a flag's value: it would
/// show in `ps`).
#[derive(Debug, Clone, Default)]
pub struct TokenSource {
    /// An environment variable holding it.
    pub env: Option<String>,
    /// A file holding it.
    pub file: Option<std::path::PathBuf>,
}

impl TokenSource {
    fn read(&self) -> Result<Option<String>, String> {
        let token = if let Some(var) = &self.env {
            std::env::var(var).map_err(|_| format!("--token-env: {var} is not set"))?
        } else if let Some(file) = &self.file {
            std::fs::read_to_string(file)
                .map_err(|e| format!("--token-file: cannot read {}: {e}", file.display()))?
        } else {
            return Ok(None);
        };
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err("the bearer token is empty".into());
        }
        Ok(Some(token))
    }
}

/// `gate serve`: checks everything, then serves until SIGINT/SIGTERM.
pub fn serve(
    file: &Path,
    prometheus: &PrometheusFlags,
    listen: std::net::SocketAddr,
    token: &TokenSource,
    cache: Duration,
) -> Outcome {
    let Some(Prepared { set, client }) = prepare(file, prometheus) else {
        return Outcome::InvalidInput;
    };
    // Callers pick SLOs per request; the set must hold at least one with a budget.
    if let Err(e) = select(&set, &[]) {
        eprintln!("error: {}: {e}", file.display());
        return Outcome::InvalidInput;
    }
    let token = match token.read() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::InvalidInput;
        }
    };
    let Some(runtime) = crate::output::runtime_or_report() else {
        return Outcome::Aborted;
    };
    let options = super::serve::ServeOptions {
        listen,
        token,
        cache,
    };
    match runtime.block_on(super::serve::serve(set, client, options)) {
        Ok(()) => Outcome::Passed,
        Err(e @ super::serve::ServeError::Bind(..)) => {
            eprintln!("error: {e}");
            Outcome::InvalidInput
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Aborted
        }
    }
}
