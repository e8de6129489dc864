//! `chaos-runner plan`: what a run would inject and check, resolved, without touching
//! anything.

use std::path::Path;

use crate::cli::Output;
use crate::exit::Outcome;
use crate::spec::{step_time, Check, ValidatedExperiment};

/// One check as the run would perform it.
fn describe_check(check: &Check, exp: &ValidatedExperiment) -> (String, String) {
    if let Some(p) = &check.prometheus {
        (
            "prometheus".into(),
            format!(
                "breach when ({}) {} {} (empty result: {:?})",
                p.query,
                p.breach_when.symbol(),
                p.threshold,
                p.on_empty
            ),
        )
    } else if let Some(b) = &check.slo_burn_rate {
        let query = exp
            .slos
            .as_ref()
            .and_then(|set| set.spec.slos.iter().find(|s| s.name == b.slo))
            .and_then(|slo| slo.burn_rate_query(b.window))
            .unwrap_or_default();
        (
            "slo-burn-rate".into(),
            format!("breach when ({query}) > {}", b.max_burn_rate),
        )
    } else if let Some(h) = &check.host {
        (
            "host".into(),
            format!(
                "breach when {:?} {} {} (read from /proc on this machine)",
                h.metric,
                h.breach_when.symbol(),
                h.threshold
            ),
        )
    } else if let Some(l) = &check.load {
        (
            "load".into(),
            format!(
                "breach when client-side {}{} over the last {} {} {} (empty window: {:?})",
                l.sli.name(),
                l.operation
                    .map(|o| format!(" of `{}`", o.name()))
                    .unwrap_or_default(),
                humantime::format_duration(l.window),
                l.breach_when.symbol(),
                l.threshold,
                l.on_empty
            ),
        )
    } else if let Some(h) = &check.http {
        (
            "http".into(),
            format!(
                "GET {} expecting {}{}{}",
                h.url,
                h.expect_status,
                h.max_latency
                    .map(|d| format!(" within {}", humantime::format_duration(d)))
                    .unwrap_or_default(),
                h.body_contains
                    .as_ref()
                    .map(|b| format!(" with body containing {b:?}"))
                    .unwrap_or_default()
            ),
        )
    } else {
        (String::new(), String::new())
    }
}

/// Prints the plan of `file`.
pub fn print(file: &Path, output: Output) -> Outcome {
    let Some(exp) = crate::cli::load_or_report(file) else {
        return Outcome::InvalidInput;
    };
    let s = &exp.experiment.spec;
    let faults: Vec<serde_json::Value> = s
        .faults
        .iter()
        .zip(&exp.steps)
        .map(|(fault, steps)| {
            let step_time = step_time(fault.duration, steps.len());
            serde_json::json!({
                "name": fault.name,
                "type": fault.fault_type.name(),
                "selector": fault.selector,
                "duration": humantime::format_duration(fault.duration).to_string(),
                "steps": steps.iter().map(|p| serde_json::json!({
                    "parameters": p,
                    "summary": p.summary(),
                    "hold": humantime::format_duration(step_time).to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // What each fault can tell before a run (e.g. a kernel without netem); injects nothing.
    let context =
        crate::faults::FaultContext::new("plan", std::env::current_exe().unwrap_or_default());
    let warnings: Vec<String> = s
        .faults
        .iter()
        .zip(&exp.steps)
        .filter_map(|(fault, steps)| {
            let first = steps.first()?;
            crate::faults::build(&context, fault, first, fault.duration)
                .preflight()
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    let checks = |list: &[Check]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|c| {
                let (kind, what) = describe_check(c, &exp);
                serde_json::json!({ "name": c.name, "kind": kind, "check": what, "for": c.for_checks })
            })
            .collect()
    };
    let plan = serde_json::json!({
        "command": "plan",
        "experiment": exp.experiment.metadata.name,
        "backend": "local",
        "check_interval": humantime::format_duration(s.check_interval).to_string(),
        "prometheus": s.prometheus.as_ref().map(|p| p.url.clone()),
        "steady_state": checks(&s.steady_state),
        "faults": faults,
        "abort_when": checks(&s.abort_when),
        "warnings": warnings,
    });
    match output {
        Output::Json => println!("{plan}"),
        Output::Text => {
            println!(
                "plan for {} ({})",
                exp.experiment.metadata.name,
                file.display()
            );
            println!("  nothing is injected by `plan`");
            for w in &warnings {
                println!("  WARNING: a run would stop in preflight: {w}");
            }
            if let Some(p) = &s.prometheus {
                println!("  prometheus: {}", p.url);
            }
            println!("  steady state before and after:");
            for c in &s.steady_state {
                println!("    - {}: {}", c.name, describe_check(c, &exp).1);
            }
            println!("  faults (injected together):");
            for (fault, steps) in s.faults.iter().zip(&exp.steps) {
                let step_time = step_time(fault.duration, steps.len());
                for (i, p) in steps.iter().enumerate() {
                    println!(
                        "    - {} step {}/{}: {} on {}: {} for {}",
                        fault.name,
                        i + 1,
                        steps.len(),
                        fault.fault_type.name(),
                        fault.selector.summary(),
                        p.summary(),
                        humantime::format_duration(step_time)
                    );
                }
            }
            println!(
                "  abort when (checked every {}):",
                humantime::format_duration(s.check_interval)
            );
            for c in &s.abort_when {
                println!(
                    "    - {} ({} in a row): {}",
                    c.name,
                    c.for_checks,
                    describe_check(c, &exp).1
                );
            }
        }
    }
    Outcome::Passed
}
