//! `chaos-runner exporter`: the runs' live faults as Prometheus metrics, read from the run
//! journals at every scrape, so a dashboard marks chaos runs on its time axis and an alert
//! can catch a fault a dead runner left behind.
//!
//! Series (one per run with live faults; none when nothing is live):
//! - `chaos_runner_faults_live{experiment, run_id}`: faults recorded as injected (or about
//!   to be) and not reverted;
//! - `chaos_runner_faults_orphaned{experiment, run_id}`: of those, the ones whose runner
//!   process is gone: `chaos-runner recover` reverts them (they also expire by themselves).
//!
//! Reading the journals rather than asking the runner means the exporter outlives runs,
//! needs no connection to them, and shows exactly what `recover` would act on.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::exit::Outcome;
use crate::journal::{live_faults, JournalError, LiveFault};
use crate::output::Format;

/// The labels of a run's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RunLabels {
    experiment: String,
    run_id: String,
}

/// The metrics page (OpenMetrics text) for the journals under `state_dir`.
///
/// ```
/// let dir = std::env::temp_dir().join("exporter-doc-empty");
/// let page = chaos_runner::exporter::metrics_page(&dir).unwrap();
/// assert_eq!(page, "# EOF\n", "nothing is live: no series");
/// ```
pub fn metrics_page(state_dir: &Path) -> Result<String, JournalError> {
    let live = live_faults(state_dir)?;
    Ok(encode_page(&live, |f| {
        f.runner_pid.is_some_and(crate::recover::runner_alive)
    }))
}

fn encode_page(live: &[LiveFault], runner_alive: impl Fn(&LiveFault) -> bool) -> String {
    let mut per_run: BTreeMap<RunLabels, (i64, i64)> = BTreeMap::new();
    for fault in live {
        let counts = per_run
            .entry(RunLabels {
                experiment: fault.experiment.clone(),
                run_id: fault.run_id.clone(),
            })
            .or_default();
        counts.0 += 1;
        if !runner_alive(fault) {
            counts.1 += 1;
        }
    }
    let live_family = Family::<RunLabels, Gauge>::default();
    let orphaned_family = Family::<RunLabels, Gauge>::default();
    for (labels, (live, orphaned)) in per_run {
        live_family.get_or_create(&labels).set(live);
        orphaned_family.get_or_create(&labels).set(orphaned);
    }
    let mut registry = Registry::with_prefix("chaos_runner");
    registry.register(
        "faults_live",
        "Faults of a run recorded as injected and not yet reverted",
        live_family,
    );
    registry.register(
        "faults_orphaned",
        "Live faults whose runner process is gone (chaos-runner recover reverts them)",
        orphaned_family,
    );
    let mut page = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut page, &registry);
    page
}

/// Serves `GET /metrics` on `listen` until SIGINT or SIGTERM; says where in `output`'s
/// form (a line of text, or one JSON object).
pub fn serve(listen: SocketAddr, state_dir: PathBuf, output: Format) -> Outcome {
    let Some(runtime) = crate::output::runtime_or_report() else {
        return Outcome::Aborted;
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: --listen: cannot listen on {listen}: {e}");
                return Outcome::InvalidInput;
            }
        };
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let state_dir = state_dir.clone();
                async move { page_response(&state_dir) }
            }),
        );
        let bound = listener.local_addr().unwrap_or(listen);
        let url = format!("http://{bound}/metrics");
        match output {
            Format::Text => println!("exporter serving {url}"),
            Format::Json => println!(
                "{}",
                serde_json::json!({ "command": "exporter", "metrics": url })
            ),
        }
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await;
        match served {
            Ok(()) => Outcome::Passed,
            Err(e) => {
                eprintln!("error: the exporter stopped: {e}");
                Outcome::Aborted
            }
        }
    })
}

fn page_response(state_dir: &Path) -> axum::response::Response {
    use axum::response::IntoResponse;
    match metrics_page(state_dir) {
        Ok(page) => (
            [(
                http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            page,
        )
            .into_response(),
        // A scrape that fails says why (Prometheus shows it on its targets page).
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Resolves at the first SIGINT or SIGTERM (never if they cannot be watched).
pub(crate) async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(run: &str, name: &str, pid: u32) -> LiveFault {
        LiveFault {
            journal: PathBuf::from(format!("/state/runs/{run}.jsonl")),
            run_id: run.to_owned(),
            experiment: "db-latency".to_owned(),
            fault: name.to_owned(),
            record: None,
            runner_pid: Some(pid),
        }
    }

    #[test]
    fn one_series_per_run_counting_its_live_and_orphaned_faults() {
        let live = [
            fault("r1", "a", 1),
            fault("r1", "b", 1),
            fault("r2", "c", 2),
        ];
        let page = encode_page(&live, |f| f.runner_pid == Some(1));
        assert!(
            page.contains(r#"chaos_runner_faults_live{experiment="db-latency",run_id="r1"} 2"#),
            "{page}"
        );
        assert!(
            page.contains(r#"chaos_runner_faults_orphaned{experiment="db-latency",run_id="r1"} 0"#),
            "{page}"
        );
        assert!(
            page.contains(r#"chaos_runner_faults_orphaned{experiment="db-latency",run_id="r2"} 1"#),
            "{page}"
        );
    }
}
