//! `chaos-runner plan`: what a run would inject and check, resolved, without touching
//! anything.

use std::path::Path;
use std::sync::Arc;

use crate::faults::kube::KubeConnector;

use crate::exit::Outcome;
use crate::output::Format;
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
            .and_then(|slo| b.query(slo))
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
                l.scope_text(),
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

/// The load a run would drive, a line each: calls, flows, sessions.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/lobby-sessions-through-a-crash.yaml");
/// let exp = chaos_runner::spec::load_experiment(path.as_ref()).unwrap();
/// let lines = chaos_runner::plan::describe_load(exp.load.as_ref().unwrap());
/// assert!(lines[0].starts_with("40 calls/s by 20 players"), "{lines:?}");
/// assert!(lines.iter().any(|l| l.starts_with("500 WebSocket sessions")), "{lines:?}");
/// ```
pub fn describe_load(plan: &crate::spec::scenario::LoadPlan) -> Vec<String> {
    let spec = &plan.spec;
    let mut lines = Vec::new();
    if let (Some(scenario), Some(rate)) = (&plan.scenario, spec.rate) {
        lines.push(format!(
            "{rate} calls/s by {} players against {} (timeout {}, warmup {})",
            spec.players,
            spec.target,
            humantime::format_duration(spec.timeout),
            humantime::format_duration(spec.warmup)
        ));
        for flow in &scenario.flows {
            let steps: Vec<String> = flow
                .steps
                .iter()
                .map(|step| {
                    let name = &scenario.operations[step.operation].name;
                    match &step.repeat_while {
                        Some((at, value)) => {
                            format!("{name} while {at} = {value} (at most {})", step.max_repeats)
                        }
                        None => name.clone(),
                    }
                })
                .collect();
            lines.push(format!(
                "flow {} (weight {}): {}",
                flow.name,
                flow.weight,
                steps.join(", ")
            ));
        }
    }
    if let (Some(ws), Some(written)) = (&plan.websocket, &spec.websocket) {
        lines.push(format!(
            "{} WebSocket sessions at {} ({} opened per second)",
            ws.sessions, written.path, ws.connect_rate
        ));
        for m in &ws.messages {
            lines.push(format!(
                "message {} every {}{}",
                m.name,
                humantime::format_duration(m.every),
                m.reply_match
                    .as_ref()
                    .map(|p| format!(
                        ", answer matched by {p} within {}",
                        humantime::format_duration(m.timeout)
                    ))
                    .unwrap_or_default()
            ));
        }
    }
    lines
}

/// The plan of a validated experiment as JSON: every fault with its steps and, for
/// Kubernetes faults, the exact pods a run would hit now (`targets`); the load; the checks; and
/// warnings of what would stop a run in preflight. Injects nothing.
pub fn plan_value(exp: &ValidatedExperiment, kube: Arc<KubeConnector>) -> serde_json::Value {
    let s = &exp.experiment.spec;
    // What each fault can tell before a run (e.g. a kernel without netem); injects nothing.
    let mut context =
        crate::faults::FaultContext::new("plan", std::env::current_exe().unwrap_or_default());
    context.experiment = exp.experiment.metadata.name.clone();
    context.kube = kube;
    let faults: Vec<serde_json::Value> = exp
        .faults
        .iter()
        .map(|validated| {
            let (fault, steps) = (&validated.spec, &validated.steps);
            let step_time = step_time(fault.duration, steps.len());
            let targets = steps.first().and_then(|first| {
                crate::faults::build(&context, validated, first, fault.duration).targets()
            });
            serde_json::json!({
                "name": fault.name,
                "targets": targets.as_ref().and_then(|t| t.as_ref().ok()),
                "targets_error": targets.as_ref().and_then(|t| t.as_ref().err().map(|e| e.to_string())),
                // A pod pick is exact with a seed or `all`; a Service is named outright.
                "targets_exact": fault.selector.pods.as_ref().map(|p| {
                    p.seed.is_some() || p.mode == crate::spec::PodMode::All
                }).or(fault.selector.service.as_ref().map(|_| true)),
                "type": fault.fault_type.name(),
                "note": fault.selector.service.as_ref().map(|_| {
                    crate::faults::kube::db_proxy::OPEN_CONNECTIONS_NOTE
                }),
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
    let warnings: Vec<String> = exp
        .faults
        .iter()
        .filter_map(|fault| {
            let first = fault.steps.first()?;
            crate::faults::build(&context, fault, first, fault.spec.duration)
                .preflight()
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    let checks = |list: &[Check]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|c| {
                let (kind, what) = describe_check(c, exp);
                serde_json::json!({ "name": c.name, "kind": kind, "check": what, "for": c.for_checks })
            })
            .collect()
    };
    serde_json::json!({
        "command": "plan",
        "experiment": exp.experiment.metadata.name,
        "backend": match s.target.backend {
            crate::spec::Backend::Local => "local",
            crate::spec::Backend::Kubernetes => "kubernetes",
        },
        "check_interval": humantime::format_duration(s.check_interval).to_string(),
        "prometheus": s.prometheus.as_ref().map(|p| p.url.clone()),
        "load": exp.load.as_ref().map(describe_load),
        "steady_state": checks(&s.steady_state),
        "faults": faults,
        "abort_when": checks(&s.abort_when),
        "warnings": warnings,
    })
}

/// Prints the plan of the experiment loaded from `file`.
pub fn print(exp: &ValidatedExperiment, file: &Path, output: Format) -> Outcome {
    print_with(exp, file, output, Arc::new(KubeConnector::lazy()))
}

/// [`print()`] with a given Kubernetes client (used only by Kubernetes experiments, to list
/// the pods a run would hit).
pub fn print_with(
    exp: &ValidatedExperiment,
    file: &Path,
    output: Format,
    kube: Arc<KubeConnector>,
) -> Outcome {
    let plan = plan_value(exp, kube);
    let s = &exp.experiment.spec;
    let warnings: Vec<String> = plan["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    match output {
        Format::Json => println!("{plan}"),
        Format::Text => {
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
            if let Some(load) = &exp.load {
                println!("  load:");
                for line in describe_load(load) {
                    println!("    - {line}");
                }
            }
            println!("  steady state before and after:");
            for c in &s.steady_state {
                println!("    - {}: {}", c.name, describe_check(c, exp).1);
            }
            println!("  faults (injected together):");
            for (fault, steps) in exp.faults.iter().map(|f| (&f.spec, &f.steps)) {
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
                let entry = plan["faults"]
                    .as_array()
                    .and_then(|f| f.iter().find(|v| v["name"] == fault.name.as_str()));
                if let Some(note) = entry.and_then(|e| e["note"].as_str()) {
                    println!("      note: {note}");
                }
                if let Some(targets) = entry.and_then(|e| e["targets"].as_array()) {
                    let names: Vec<&str> = targets.iter().filter_map(|t| t.as_str()).collect();
                    let exact = entry.is_some_and(|e| e["targets_exact"] == true);
                    println!(
                        "      would hit now: {}{}",
                        names.join(", "),
                        if exact {
                            ""
                        } else {
                            " (an example: without `seed` a run picks at random)"
                        }
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
                    describe_check(c, exp).1
                );
            }
        }
    }
    Outcome::Passed
}
