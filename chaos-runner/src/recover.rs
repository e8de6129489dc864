//! `chaos-runner recover`: reverts what crashed or killed runs left live.

use std::path::Path;

use crate::cli::Output;
use crate::exit::Outcome;
use crate::faults::kube::KubeConnector;
use crate::faults::revert_from_journal_with;
use crate::journal::{self, Event, Journal};

/// Reverts every live fault in the journals under `state_dir`, journaling each revert.
/// Exit: 0 when nothing is left live, 4 when a fault could not be reverted.
pub fn run(state_dir: &Path, output: Output) -> Outcome {
    run_with(state_dir, output, &KubeConnector::lazy())
}

/// [`run`] with a given Kubernetes client (used only for Kubernetes faults; a lazy one
/// connects from the kubeconfig or in-cluster service account when first needed).
pub fn run_with(state_dir: &Path, output: Output, kube: &KubeConnector) -> Outcome {
    let live = match journal::live_faults(state_dir) {
        Ok(live) => live,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::NotReverted;
        }
    };
    let mut results = Vec::new();
    for fault in &live {
        let result =
            revert_from_journal_with(&fault.run_id, &fault.fault, fault.record.as_ref(), kube);
        let event = match &result {
            Ok(()) => Event::Reverted {
                fault: fault.fault.clone(),
            },
            Err(e) => Event::RevertFailed {
                fault: fault.fault.clone(),
                error: e.to_string(),
            },
        };
        let journaled = Journal::open(&fault.journal).and_then(|mut j| j.append(event));
        if let Err(e) = &journaled {
            eprintln!("warning: {e}");
        }
        results.push((fault, result.map_err(|e| e.to_string())));
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    match output {
        Output::Text => {
            if results.is_empty() {
                println!("nothing to recover in {}", state_dir.display());
            }
            for (fault, result) in &results {
                match result {
                    Ok(()) => println!("reverted: {} (run {})", fault.fault, fault.run_id),
                    Err(e) => {
                        eprintln!("NOT REVERTED: {} (run {}): {e}", fault.fault, fault.run_id)
                    }
                }
            }
        }
        Output::Json => {
            let faults: Vec<serde_json::Value> = results
                .iter()
                .map(|(f, r)| {
                    serde_json::json!({
                        "run_id": f.run_id,
                        "fault": f.fault,
                        "reverted": r.is_ok(),
                        "error": r.as_ref().err(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "command": "recover", "reverted_all": failed == 0, "faults": faults })
            );
        }
    }
    if failed == 0 {
        Outcome::Passed
    } else {
        Outcome::NotReverted
    }
}
