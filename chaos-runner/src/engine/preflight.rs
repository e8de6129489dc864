//! Preflight: everything before a fault goes in. The experiment's services and supervised
//! commands start, its proxies open, the load warms up; then each fault checks it can run
//! here, every signal must answer, the steady state and the abort conditions must hold, and
//! the error-budget gate must let the run through. Nothing is injected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::events::{EmitExt, EventSink, Phase};
use crate::exit::Outcome;
use crate::faults;
use crate::load::LoadGenerator;
use crate::watch::Verdict;

use super::lines::{check_result, CheckKind};
use super::{wait_or_signal, PhaseResult, Run, Stop};

/// Refusals before anything starts (bad input: a declared port already taken, PostgreSQL
/// missing for a setup service).
pub(super) fn refuse_early(run: &Run<'_>) -> PhaseResult {
    let spec = run.spec();
    let refuse = |e: String| Stop::new(Outcome::InvalidInput, format!("{}: {e}", run.file));
    crate::setup::preflight_supervised(&spec.faults).map_err(|e| refuse(e.to_string()))?;
    if !spec.setup.is_empty() {
        crate::setup::preflight(&spec.setup).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

/// Starts what the run needs and checks that it may inject.
pub(super) async fn prepare(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let started = start_services(run, sink);
    // A signal that came while services or supervised commands started (those waits block
    // the runtime) ends the run now, whatever they returned.
    if let Some(why) = run.signals.interrupt.reason() {
        return Err(Stop::aborted(why));
    }
    started?;
    open_proxies(run)?;
    start_load(run, sink).await?;
    sink.phase(Phase::Preflight, "checking signals and steady state");
    check_faults(run)?;
    // The checks wait on Prometheus and probes: a signal meanwhile ends the run at once,
    // before anything is injected.
    let interrupt = run.signals.interrupt.clone();
    tokio::select! {
        checked = async {
            check_signals(run, sink).await?;
            check_error_budget(run, sink).await
        } => checked,
        why = interrupt.raised() => Err(Stop::aborted(why)),
    }
}

/// The setup services (journaled, in order), then the supervised commands
/// (`process: { command: ... }`), so the steady state can check them.
fn start_services(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let spec = &run.exp.experiment.spec;
    if !spec.setup.is_empty() {
        sink.phase(Phase::Setup, "starting services");
        let set = crate::setup::SetupSet::start(
            &spec.setup,
            &run.run_id,
            Some(run.journal_path.as_path()),
            &run.signals.interrupt,
            &mut |progress| sink.step(Phase::Setup, progress.to_string()),
        )
        .map_err(|e| Stop::aborted(format!("setup: {e}")))?;
        run.setup = Some(set);
    }
    let mut supervisors = BTreeMap::new();
    let outcome = start_supervised(run, &mut supervisors, sink);
    run.context.supervisors = Arc::new(supervisors);
    outcome
}

fn start_supervised(
    run: &Run<'_>,
    supervisors: &mut BTreeMap<String, Arc<crate::sys::supervisor::Supervisor>>,
    sink: &mut dyn EventSink,
) -> PhaseResult {
    for f in &run.spec().faults {
        let Some(mut command) = faults::supervised_command(&f.name, &f.selector) else {
            continue;
        };
        let here = std::env::current_dir().map_err(|e| {
            Stop::aborted(format!(
                "preflight: fault `{}`: current directory: {e}",
                f.name
            ))
        })?;
        let (program, mut launch) = faults::supervised_launch(&f.selector, &here);
        launch.interrupt = run.signals.interrupt.clone();
        if let Some(program) = program {
            command.argv[0] = program;
        }
        let supervisor =
            crate::setup::progress::start_supervised(command, launch, &mut |progress| {
                sink.step(Phase::Preflight, progress.to_string())
            })
            .map_err(|e| Stop::aborted(format!("preflight: fault `{}`: {e}", f.name)))?;
        supervisors.insert(f.name.clone(), Arc::new(supervisor));
    }
    Ok(())
}

/// The run's own proxies (`proxy: { listen, upstream }`) open before the load and the
/// steady state, so the service behind them sees a clean pass-through until a fault.
fn open_proxies(run: &Run<'_>) -> PhaseResult {
    for f in &run.spec().faults {
        let Some(p) = &f.selector.proxy else { continue };
        let (Some(listen), Some(upstream)) = (&p.listen, &p.upstream) else {
            continue;
        };
        run.context
            .proxies
            .ensure(listen, upstream, p.protocol.unwrap_or_default())
            .map_err(|e| {
                Stop::aborted(format!(
                    "preflight: fault `{}`: proxy on {listen}: {e}",
                    f.name
                ))
            })?;
    }
    Ok(())
}

/// The load runs from here to the end of the steady state after, so the preflight checks
/// already see its SLIs; it warms up first.
async fn start_load(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let spec = &run.exp.experiment.spec;
    let Some(plan) = &run.exp.load else {
        return Ok(());
    };
    let load_spec = &plan.spec;
    let longest = spec
        .steady_state
        .iter()
        .chain(&spec.abort_when)
        .filter_map(|c| c.load.as_ref().map(|l| l.window))
        .max()
        .unwrap_or(Duration::from_secs(10));
    let generator = LoadGenerator::start(plan, run.started, longest)
        .map_err(|e| Stop::aborted(format!("preflight: {e}")))?;
    let stats = generator.stats();
    for watch in run.steady.iter_mut().chain(run.abort.iter_mut()) {
        watch.attach_load(&stats);
    }
    run.load = Some(generator);
    // The step says it warms up: no phase line repeating it.
    sink.step(Phase::Preflight, load_line(load_spec));
    wait_or_signal(run, load_spec.warmup).await
}

/// The load in one line: `load started: 200 calls/s from 50 player(s) on
/// http://127.0.0.1:18080, warming up for 5s`.
fn load_line(load: &crate::spec::LoadSpec) -> String {
    let rate = load
        .rate
        .map(|r| format!("{r} calls/s from "))
        .unwrap_or_default();
    let sessions = load
        .websocket
        .as_ref()
        .map(|_| " with WebSocket sessions")
        .unwrap_or_default();
    format!(
        "load started: {rate}{} player(s){sessions} on {}, warming up for {}",
        load.players,
        crate::redact::credentials(&load.target),
        humantime::format_duration(load.warmup)
    )
}

/// Each fault checks it can run here (e.g. the kernel has the qdisc it needs).
fn check_faults(run: &Run<'_>) -> PhaseResult {
    for f in &run.exp.faults {
        let Some(first) = f.steps.first() else {
            continue;
        };
        faults::build(&run.context, f, first, f.spec.duration)
            .preflight()
            .map_err(|e| Stop::aborted(format!("preflight: {e}")))?;
    }
    Ok(())
}

/// Every signal answers and every check holds, before anything is touched. Every check is
/// evaluated (and recorded, and its result a line) even after the first that fails.
async fn check_signals(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let mut first = None;
    let count = run.steady.len() + run.abort.len();
    for i in 0..count {
        let watch = if i < run.steady.len() {
            &mut run.steady[i]
        } else {
            &mut run.abort[i - run.steady.len()]
        };
        let (verdict, obs) = watch
            .evaluate(run.prometheus.as_ref(), &run.http, "preflight", run.started)
            .await;
        let failed = obs.verdict != "ok";
        let error = obs.error.clone();
        let name = watch.name.clone();
        let kind = if i < run.steady.len() {
            CheckKind::Steady
        } else {
            CheckKind::Abort
        };
        sink.step(Phase::Preflight, check_result(kind, &obs));
        run.timeline.push(obs);
        if failed && first.is_none() {
            first = Some(match (verdict, error) {
                (Verdict::Breach(why), _) => Stop::failed(format!("preflight: {why}")),
                (_, Some(e)) => {
                    Stop::aborted(format!("preflight: signal `{name}` unavailable: {e}"))
                }
                _ => Stop::failed(format!("preflight: `{name}` does not hold")),
            });
        }
    }
    first.map_or(Ok(()), Err)
}

/// The error-budget gate: every SLO it names must have enough budget left.
///
/// The budget is the one `chaos-runner slo rules` records (`slo:error_budget:remaining`:
/// maintenance spends none, peak hours count their factor). When Prometheus does not
/// evaluate those rules, the same budget is computed from the SLI and the calendar, as
/// `chaos-runner gate` computes it.
async fn check_error_budget(run: &Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let spec = run.spec();
    let (Some(gate), Some(set), Some(p)) = (
        &spec.error_budget_gate,
        run.exp.slos.as_ref(),
        run.prometheus.as_ref(),
    ) else {
        return Ok(());
    };
    let aborted = |e: String| Stop::aborted(format!("error-budget gate: {e}"));
    for slo in set
        .spec
        .slos
        .iter()
        .filter(|s| gate.slos.is_empty() || gate.slos.contains(&s.name))
        .filter(|s| crate::gate::query::budget_query(set, s).is_some())
    {
        let crate::gate::budget::BudgetLeft {
            percent: left,
            source,
        } = crate::gate::budget::budget_left(p, set, slo, None)
            .await
            .map_err(aborted)?;
        let low = left.is_some_and(|left| left < gate.min_remaining_percent);
        sink.step(
            Phase::Preflight,
            format!(
                "error-budget gate: SLO `{}`: {} of its budget left (at least {}% needed): {}",
                slo.name,
                left.map_or("no data".to_owned(), |l| format!("{l:.1}%")),
                gate.min_remaining_percent,
                if low { "too low" } else { "ok" }
            ),
        );
        if let Some(left) = left.filter(|left| *left < gate.min_remaining_percent) {
            return Err(Stop::failed(format!(
                "error-budget gate: SLO `{}` has {left:.1}% of its budget left (< {}%), {source}",
                slo.name, gate.min_remaining_percent
            )));
        }
    }
    Ok(())
}
