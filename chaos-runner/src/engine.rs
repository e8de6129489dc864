//! The run lifecycle: preflight → inject (journal first) → hold while watching abort
//! conditions → revert → verify → steady state after → report.
//!
//! Faults are reverted on every exit path: the end of the hold, an abort condition, an
//! error, SIGINT/SIGTERM (handled for the whole run, so a second signal cannot cut the
//! revert short) and a panic (the live set reverts on drop). The runtime is single-threaded
//! on the main thread, so a stress child's parent-death signal is tied to the runner's life.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::Output;
use crate::exit::Outcome;
use crate::faults::{self, Fault, FaultContext};
use crate::interrupt::Interrupt;
use crate::journal::{self, Event, Journal};
use crate::load::LoadGenerator;
use crate::report::{FaultReport, FaultWindow, Measurement, RunReport};
use crate::spec::{self, FaultParams, FaultSpec, ValidatedExperiment};
use crate::watch::indicator::IndicatorWatcher;
use crate::watch::prometheus::Prometheus;
use crate::watch::{Observation, Verdict, Watch};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where journals live.
    pub state_dir: PathBuf,
    /// Revert an earlier run's live faults first instead of refusing to start.
    pub recover_first: bool,
    /// Text or JSON.
    pub output: Output,
    /// The Kubernetes client for Kubernetes faults (connected on first use when `None`).
    pub kube: Option<std::sync::Arc<faults::kube::KubeConnector>>,
}

/// A fault of the experiment while the run holds it.
struct Active {
    name: String,
    spec: FaultSpec,
    steps: Vec<FaultParams>,
    duration: Duration,
    current: Option<usize>,
    live: Option<Box<dyn Fault>>,
    report: FaultReport,
}

/// The faults live right now, with the journal; reverts everything it still holds when
/// dropped, so even a panic puts the system back.
struct LiveSet {
    faults: Vec<Active>,
    journal: Journal,
    started: Instant,
}

impl LiveSet {
    /// Reverts one fault's current step, retrying, then verifies; journals the result.
    fn revert_one(&mut self, index: usize) {
        let fault = &mut self.faults[index];
        let Some(mut live_fault) = fault.live.take() else {
            return;
        };
        let mut last_error = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            match live_fault
                .revert()
                .and_then(|()| live_fault.verify_reverted())
            {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if let Some(w) = fault.report.windows.last_mut() {
            w.end_ms
                .get_or_insert(self.started.elapsed().as_millis() as u64);
        }
        fault.report.measurements.extend(
            live_fault
                .measurements()
                .into_iter()
                .map(|(name, value)| Measurement { name, value }),
        );
        let event = match &last_error {
            None => Event::Reverted {
                fault: fault.name.clone(),
            },
            Some(error) => {
                fault.report.reverted = false;
                fault.report.errors.push(error.clone());
                Event::RevertFailed {
                    fault: fault.name.clone(),
                    error: error.clone(),
                }
            }
        };
        if let Err(e) = self.journal.append(event) {
            fault.report.errors.push(e.to_string());
        }
    }

    fn revert_all(&mut self) {
        for i in 0..self.faults.len() {
            self.revert_one(i);
        }
    }
}

impl Drop for LiveSet {
    fn drop(&mut self) {
        self.revert_all();
    }
}

fn run_id(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{name}-{now}-{:04x}", rand::random::<u16>())
}

/// Closes, in their journals, the faults of dead runs that provably ended with their
/// runner (each with a note, and a line saying so); returns the ones that may still be live.
fn close_what_ended(live: Vec<journal::LiveFault>) -> Vec<journal::LiveFault> {
    let mut still_live = Vec::new();
    for fault in live {
        let Some(note) = crate::recover::provably_gone(&fault) else {
            still_live.push(fault);
            continue;
        };
        let closed = Journal::open(&fault.journal).and_then(|mut j| {
            j.append(Event::Gone {
                fault: fault.fault.clone(),
                note: note.clone(),
            })
        });
        match closed {
            Ok(()) => eprintln!(
                "note: fault `{}` of run {} is gone ({note}); closed in its journal",
                fault.fault, fault.run_id
            ),
            Err(e) => {
                eprintln!("warning: {e}");
                still_live.push(fault);
            }
        }
    }
    still_live
}

/// Runs the experiment in `file`.
pub fn run(file: &Path, options: RunOptions) -> Outcome {
    let Some(exp) = crate::cli::load_or_report(file) else {
        return Outcome::InvalidInput;
    };
    match journal::live_faults(&options.state_dir).map(close_what_ended) {
        Ok(live) if !live.is_empty() => {
            if options.recover_first {
                let lazy = faults::kube::KubeConnector::lazy();
                let recovered = crate::recover::run_with(
                    &options.state_dir,
                    Output::Text,
                    options.kube.as_deref().unwrap_or(&lazy),
                );
                if recovered != Outcome::Passed {
                    return recovered;
                }
            } else {
                for f in &live {
                    eprintln!(
                        "error: fault `{}` of run {} is still live (journal {})",
                        f.fault,
                        f.run_id,
                        f.journal.display()
                    );
                }
                eprintln!("refusing to start: run `chaos-runner recover` first, or pass --recover");
                return Outcome::InvalidInput;
            }
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::InvalidInput;
        }
    }
    let prometheus = match &exp.experiment.spec.prometheus {
        Some(source) => match Prometheus::new(source) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {}: spec.prometheus: {e}", file.display());
                return Outcome::InvalidInput;
            }
        },
        None => None,
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find the runner's own binary: {e}");
            return Outcome::InvalidInput;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Outcome::InvalidInput;
        }
    };
    runtime.block_on(lifecycle(
        &file.display().to_string(),
        exp,
        prometheus,
        exe,
        options,
    ))
}

struct Progress {
    /// Rewrite one status line (stderr is a terminal and the output is text).
    enabled: bool,
    /// Print events (indicator changes) as lines of their own (text output).
    events: bool,
    /// Colour events (a terminal, and `NO_COLOR` unset).
    color: bool,
}

impl Progress {
    fn line(&self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K{text}");
        }
    }
    /// A line that stays on screen: clears the status line first when there is one.
    fn event(&self, text: &str) {
        if !self.events {
            return;
        }
        let clear = if self.enabled { "\r\x1b[2K" } else { "" };
        if self.color {
            eprintln!("{clear}\x1b[33m{text}\x1b[0m");
        } else {
            eprintln!("{clear}{text}");
        }
    }
    fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

async fn evaluate_all(
    watches: &mut [Watch],
    prometheus: Option<&Prometheus>,
    http: &reqwest::Client,
    phase: &'static str,
    started: Instant,
    timeline: &mut Vec<Observation>,
) -> Option<Verdict> {
    let mut first_bad = None;
    for watch in watches.iter_mut() {
        let (verdict, observation) = watch.evaluate(prometheus, http, phase, started).await;
        timeline.push(observation);
        if matches!(verdict, Verdict::Breach(_) | Verdict::SourceDown(_)) && first_bad.is_none() {
            first_bad = Some(verdict);
        }
    }
    first_bad
}

async fn lifecycle(
    file: &str,
    exp: ValidatedExperiment,
    prometheus: Option<Prometheus>,
    exe: PathBuf,
    options: RunOptions,
) -> Outcome {
    let started = Instant::now();
    let spec = &exp.experiment.spec;
    let name = exp.experiment.metadata.name.clone();
    let run_id = run_id(&name);
    let http = reqwest::Client::new();
    let fail_after = spec.prometheus.as_ref().map_or(3, |p| p.fail_after);
    let slos = exp.slos.as_ref();
    let mut steady: Vec<Watch> = spec
        .steady_state
        .iter()
        .map(|c| Watch::new(c, slos, 1))
        .collect();
    let mut abort: Vec<Watch> = spec
        .abort_when
        .iter()
        .map(|c| Watch::new(c, slos, fail_after))
        .collect();
    let mut timeline = Vec::new();
    let terminal = std::io::stderr().is_terminal();
    let progress = Progress {
        enabled: options.output == Output::Text && terminal,
        events: options.output == Output::Text,
        color: terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    // Tokio's streams serve the awaits; `interrupt` serves the blocking waits (setup and
    // supervised commands becoming ready), where tokio's driver does not run.
    let (mut sigint, mut sigterm, interrupt) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        Interrupt::install(),
    ) {
        (Ok(i), Ok(t), Ok(flag)) => (i, t, flag),
        _ => {
            eprintln!("error: cannot install signal handlers; refusing to inject");
            return Outcome::InvalidInput;
        }
    };

    let mut outcome = Outcome::Passed;
    let mut reason = String::from("steady state held and every fault was reverted");
    // The journal comes first: setup services and faults are both recorded in it.
    let journal = match Journal::create(&options.state_dir, &run_id).and_then(|mut j| {
        j.append(Event::RunStarted {
            experiment: name.clone(),
            pid: std::process::id(),
        })
        .map(|()| j)
    }) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::InvalidInput;
        }
    };
    let journal_path = journal.path().to_owned();
    let mut journal = Some(journal);
    let end_journal = |code: u8| {
        if let Err(e) = Journal::open(&journal_path)
            .and_then(|mut j| j.append(Event::RunEnded { exit_code: code }))
        {
            eprintln!("warning: {e}");
        }
    };
    // Setup services: refused before anything starts when a declared port is taken or
    // PostgreSQL is missing; started (and journaled) in order; torn down on every exit
    // path (the set tears down when dropped).
    let mut setup = None;
    if let Err(e) = crate::setup::preflight_supervised(&spec.faults) {
        eprintln!("error: {file}: {e}");
        end_journal(Outcome::InvalidInput.code());
        return Outcome::InvalidInput;
    }
    if !spec.setup.is_empty() {
        if let Err(e) = crate::setup::preflight(&spec.setup) {
            eprintln!("error: {file}: {e}");
            end_journal(Outcome::InvalidInput.code());
            return Outcome::InvalidInput;
        }
        progress.line("[setup] starting services");
        match crate::setup::SetupSet::start(
            &spec.setup,
            &run_id,
            Some(journal_path.as_path()),
            &interrupt,
        ) {
            Ok(set) => setup = Some(set),
            Err(e) => {
                outcome = Outcome::Aborted;
                reason = format!("setup: {e}");
            }
        }
    }
    // Supervised commands (`process: { command: ... }`) start before the preflight, so the
    // steady state can check them; they stop when the run ends.
    let mut supervisors = std::collections::BTreeMap::new();
    for f in &spec.faults {
        if outcome != Outcome::Passed {
            break;
        }
        let Some(mut command) = faults::supervised_command(&f.name, &f.selector) else {
            continue;
        };
        let here = match std::env::current_dir() {
            Ok(dir) => dir,
            Err(e) => {
                outcome = Outcome::Aborted;
                reason = format!("preflight: fault `{}`: current directory: {e}", f.name);
                break;
            }
        };
        let (program, mut launch) = faults::supervised_launch(&f.selector, &here);
        launch.interrupt = interrupt.clone();
        if let Some(program) = program {
            command.argv[0] = program;
        }
        progress.line(&format!(
            "[preflight] starting `{}`",
            command.argv.join(" ")
        ));
        match faults::local::supervisor::Supervisor::start_with(command, launch) {
            Ok(s) => {
                supervisors.insert(f.name.clone(), std::sync::Arc::new(s));
            }
            Err(e) => {
                outcome = Outcome::Aborted;
                reason = format!("preflight: fault `{}`: {e}", f.name);
                break;
            }
        }
    }
    // A signal that came while services or supervised commands started (the waits above
    // block the runtime) ends the run now, whatever those waits returned.
    if let Some(why) = interrupt.reason() {
        outcome = Outcome::Aborted;
        reason = why;
    }
    let mut context = FaultContext::new(run_id.clone(), exe);
    context.supervisors = std::sync::Arc::new(supervisors);
    context.experiment = name.clone();
    if let Some(kube) = &options.kube {
        context.kube = kube.clone();
    }

    // The run's own proxies (`proxy: { listen, upstream }`) open before the load and the
    // steady state, so the service behind them sees a clean pass-through until a fault.
    for f in &spec.faults {
        if outcome != Outcome::Passed {
            break;
        }
        let Some(p) = &f.selector.proxy else { continue };
        let (Some(listen), Some(upstream)) = (&p.listen, &p.upstream) else {
            continue;
        };
        if let Err(e) = context
            .proxies
            .ensure(listen, upstream, p.protocol.unwrap_or_default())
        {
            outcome = Outcome::Aborted;
            reason = format!("preflight: fault `{}`: proxy on {listen}: {e}", f.name);
        }
    }

    // The load generator runs from here to the end of the steady state after, so the
    // preflight checks already see its SLIs.
    let mut load = None;
    if let (Some(load_spec), Outcome::Passed) = (&spec.load, outcome) {
        let longest = spec
            .steady_state
            .iter()
            .chain(&spec.abort_when)
            .filter_map(|c| c.load.as_ref().map(|l| l.window))
            .max()
            .unwrap_or(Duration::from_secs(10));
        match LoadGenerator::start(load_spec, started, longest) {
            Ok(generator) => {
                let stats = generator.stats();
                for watch in steady.iter_mut().chain(abort.iter_mut()) {
                    watch.attach_load(&stats);
                }
                load = Some(generator);
                progress.line(&format!(
                    "[preflight] load warming up for {}",
                    humantime::format_duration(load_spec.warmup)
                ));
                tokio::select! {
                    _ = sigint.recv() => {
                        outcome = Outcome::Aborted;
                        reason = "interrupted (SIGINT)".into();
                    }
                    _ = sigterm.recv() => {
                        outcome = Outcome::Aborted;
                        reason = "terminated (SIGTERM)".into();
                    }
                    _ = tokio::time::sleep(load_spec.warmup) => {}
                }
            }
            Err(e) => {
                outcome = Outcome::Aborted;
                reason = format!("preflight: {e}");
            }
        }
    }
    let load_stats = load.as_ref().map(LoadGenerator::stats);

    // Preflight: every signal answers and the steady state holds, before anything is touched.
    progress.line("[preflight] checking signals and steady state");
    // Each fault checks it can run here (e.g. the kernel has the qdisc it needs).
    if outcome == Outcome::Passed {
        for (f, steps) in spec.faults.iter().zip(&exp.steps) {
            let Some(first) = steps.first() else { continue };
            if let Err(e) = faults::build(&context, f, first, f.duration).preflight() {
                outcome = Outcome::Aborted;
                reason = format!("preflight: {e}");
                break;
            }
        }
    }
    let preflight_checks = if outcome == Outcome::Passed {
        steady.len() + abort.len()
    } else {
        0
    };
    for watch in steady
        .iter_mut()
        .chain(abort.iter_mut())
        .take(preflight_checks)
    {
        let (verdict, obs) = watch
            .evaluate(prometheus.as_ref(), &http, "preflight", started)
            .await;
        let failed = obs.verdict != "ok";
        let error = obs.error.clone();
        timeline.push(obs);
        if failed && outcome == Outcome::Passed {
            (outcome, reason) = match (verdict, error) {
                (Verdict::Breach(why), _) => (Outcome::Failed, format!("preflight: {why}")),
                (_, Some(e)) => (
                    Outcome::Aborted,
                    format!("preflight: signal `{}` unavailable: {e}", watch.name),
                ),
                _ => (
                    Outcome::Failed,
                    format!("preflight: `{}` does not hold", watch.name),
                ),
            };
        }
    }
    if outcome == Outcome::Passed {
        if let (Some(gate), Some(set), Some(p)) =
            (&spec.error_budget_gate, slos, prometheus.as_ref())
        {
            for slo in set
                .spec
                .slos
                .iter()
                .filter(|s| gate.slos.is_empty() || gate.slos.contains(&s.name))
            {
                let Some(query) = slo.remaining_budget_query() else {
                    continue;
                };
                match p.instant(&query).await {
                    Ok(Some(left)) if left < gate.min_remaining_percent => {
                        outcome = Outcome::Failed;
                        reason = format!(
                            "error-budget gate: SLO `{}` has {left:.1}% of its budget left (< {}%)",
                            slo.name, gate.min_remaining_percent
                        );
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        outcome = Outcome::Aborted;
                        reason = format!("error-budget gate: {e}");
                        break;
                    }
                }
            }
        }
    }

    // Indicators are read on a task of their own: a slow endpoint never delays an abort.
    let no_indicators = [];
    let indicators = IndicatorWatcher::start(
        if outcome == Outcome::Passed {
            &spec.indicators
        } else {
            &no_indicators
        },
        prometheus.clone(),
        started,
        spec.check_interval,
    );
    let mut faults_report = Vec::new();
    let mut aborted_at_ms = None;
    if let (Outcome::Passed, Some(journal)) = (outcome, journal.take()) {
        let mut live = LiveSet {
            faults: spec
                .faults
                .iter()
                .zip(&exp.steps)
                .map(|(f, steps)| Active {
                    name: f.name.clone(),
                    spec: f.clone(),
                    steps: steps.clone(),
                    duration: f.duration,
                    current: None,
                    live: None,
                    report: FaultReport {
                        name: f.name.clone(),
                        steps: Vec::new(),
                        reverted: true,
                        errors: Vec::new(),
                        revertible: true,
                        measurements: Vec::new(),
                        windows: Vec::new(),
                    },
                })
                .collect(),
            journal,
            started,
        };
        let hold_start = tokio::time::Instant::now();
        let mut ticker = tokio::time::interval(spec.check_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'hold: loop {
            // Move each fault to the ramp step its elapsed time calls for.
            let elapsed = hold_start.elapsed();
            let mut next_boundary = None::<Duration>;
            for i in 0..live.faults.len() {
                let f = &live.faults[i];
                let step_time = spec::step_time(f.duration, f.steps.len());
                let wanted = (elapsed < f.duration).then(|| {
                    ((elapsed.as_nanos() / step_time.as_nanos().max(1)) as usize)
                        .min(f.steps.len() - 1)
                });
                if let Some(step) = wanted {
                    let boundary = step_time * (step as u32 + 1);
                    next_boundary = Some(next_boundary.map_or(boundary, |b| b.min(boundary)));
                }
                if wanted == f.current {
                    continue;
                }
                live.revert_one(i);
                live.faults[i].current = wanted;
                let Some(step) = wanted else { continue };
                let f = &live.faults[i];
                let remaining = f.duration.saturating_sub(elapsed);
                let mut injected_fault =
                    faults::build(&context, &f.spec, &f.steps[step], remaining);
                let intent = Event::Intent {
                    fault: f.name.clone(),
                    description: injected_fault.describe(),
                    record: injected_fault.planned_record(),
                };
                if let Err(e) = live.journal.append(intent) {
                    outcome = Outcome::Aborted;
                    reason = format!("journal: {e}");
                    break 'hold;
                }
                match injected_fault.inject() {
                    Ok(record) => {
                        let description = injected_fault.describe();
                        let f = &mut live.faults[i];
                        f.report.revertible &= injected_fault.revertible();
                        f.report
                            .steps
                            .push(format!("{description} (from {} ms)", elapsed.as_millis()));
                        f.live = Some(injected_fault);
                        f.report.windows.push(FaultWindow {
                            start_ms: started.elapsed().as_millis() as u64,
                            end_ms: None,
                        });
                        let injected = Event::Injected {
                            fault: f.name.clone(),
                            record,
                        };
                        if let Err(e) = live.journal.append(injected) {
                            outcome = Outcome::Aborted;
                            reason = format!("journal: {e}");
                            break 'hold;
                        }
                    }
                    Err(e) => {
                        // Nothing went in: close the intent so no later run sees it as live.
                        let _ = live.journal.append(Event::Reverted {
                            fault: live.faults[i].name.clone(),
                        });
                        outcome = Outcome::Aborted;
                        reason = e.to_string();
                        break 'hold;
                    }
                }
            }
            let Some(boundary) = next_boundary else {
                break; // every fault has run its course
            };
            let latest: Vec<String> = abort
                .iter()
                .map(|w| {
                    let last = timeline
                        .iter()
                        .rev()
                        .find(|o: &&Observation| o.check == w.name);
                    format!(
                        "{}={}",
                        w.name,
                        last.and_then(|o| o.value)
                            .map_or("-".into(), |v| format!("{v:.3}"))
                    )
                })
                .collect();
            let load_line = load_stats
                .as_ref()
                .map(|l| format!(" | {}", l.progress()))
                .unwrap_or_default();
            for change in indicators.take_fresh().iter().filter(|c| c.announce) {
                progress.event(&format!("[hold] {change}"));
            }
            let indicator_line = match indicators.summary() {
                summary if summary.is_empty() => String::new(),
                summary => format!(" | {summary}"),
            };
            progress.line(&format!(
                "[hold] {} | {:.0}s left | {}{load_line}{indicator_line}",
                live.faults
                    .iter()
                    .filter_map(|f| f.current.map(|s| format!(
                        "{} step {}/{}",
                        f.name,
                        s + 1,
                        f.steps.len()
                    )))
                    .collect::<Vec<_>>()
                    .join(", "),
                boundary.saturating_sub(elapsed).as_secs_f64().max(0.0),
                latest.join(" "),
            ));
            tokio::select! {
                _ = sigint.recv() => {
                    outcome = Outcome::Aborted;
                    reason = "interrupted (SIGINT)".into();
                    break;
                }
                _ = sigterm.recv() => {
                    outcome = Outcome::Aborted;
                    reason = "terminated (SIGTERM)".into();
                    break;
                }
                _ = tokio::time::sleep_until(hold_start + boundary) => {}
                _ = ticker.tick() => {
                    let bad = tokio::select! {
                        bad = evaluate_all(&mut abort, prometheus.as_ref(), &http, "hold", started, &mut timeline) => bad,
                        _ = sigint.recv() => Some(Verdict::SourceDown("interrupted (SIGINT)".into())),
                        _ = sigterm.recv() => Some(Verdict::SourceDown("terminated (SIGTERM)".into())),
                    };
                    if let Some(verdict) = bad {
                        outcome = Outcome::Aborted;
                        reason = match verdict {
                            Verdict::Breach(why) => format!("abort condition breached: {why}"),
                            Verdict::SourceDown(why) => why,
                            _ => String::new(),
                        };
                        break;
                    }
                }
            }
        }
        if outcome == Outcome::Aborted {
            aborted_at_ms = Some(started.elapsed().as_millis() as u64);
        }
        progress.line("[revert] removing faults");
        live.revert_all();
        if live.faults.iter().any(|f| !f.report.reverted) {
            outcome = Outcome::NotReverted;
            reason = "a fault could not be reverted; see the report".into();
        }
        faults_report = live.faults.iter().map(|f| f.report.clone()).collect();
        if outcome == Outcome::Passed {
            progress.line("[after] checking steady state");
            if let Some(Verdict::Breach(why) | Verdict::SourceDown(why)) = evaluate_all(
                &mut steady,
                prometheus.as_ref(),
                &http,
                "after",
                started,
                &mut timeline,
            )
            .await
            {
                outcome = Outcome::Failed;
                reason = format!("steady state after: {why}");
            }
        }
        for change in indicators.take_fresh().iter().filter(|c| c.announce) {
            progress.event(&format!("[after] {change}"));
        }
        // `live` drops here with nothing left to revert.
    }
    let load_report = load.as_mut().map(LoadGenerator::stop);
    drop(load);
    for supervisor in context.supervisors.values() {
        supervisor.stop();
    }
    if let Some(mut set) = setup.take() {
        progress.line("[setup] stopping services");
        let problems = set.teardown();
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("error: {p}");
            }
            if outcome != Outcome::NotReverted {
                outcome = Outcome::NotReverted;
                reason = format!("setup teardown: {}", problems.join("; "));
            }
        }
    }
    drop(journal);
    end_journal(outcome.code());
    progress.done();

    let indicator_changes = indicators.stop().await;
    let report = RunReport {
        run_id: run_id.clone(),
        experiment: name,
        description: exp.experiment.metadata.description.clone(),
        outcome: match outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::InvalidInput => "invalid_input",
            Outcome::NotReverted => "not_reverted",
        }
        .into(),
        exit_code: outcome.code(),
        reason,
        duration_ms: started.elapsed().as_millis() as u64,
        faults: faults_report,
        timeline,
        load: load_report,
        aborted_at_ms,
        indicators: indicator_changes,
    };
    let written = report
        .write(Path::new(&spec.report.dir), &spec.report.formats)
        .unwrap_or_else(|e| {
            eprintln!("error: cannot write the report to {}: {e}", spec.report.dir);
            Vec::new()
        });
    match options.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "command": "run",
                "run_id": report.run_id,
                "experiment": report.experiment,
                "outcome": report.outcome,
                "exit_code": report.exit_code,
                "reason": report.reason,
                "reports": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })
        ),
        Output::Text => {
            let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
            let (on, off) = match (color, outcome) {
                (false, _) => ("", ""),
                (true, Outcome::Passed) => ("\x1b[32m", "\x1b[0m"),
                (true, _) => ("\x1b[31m", "\x1b[0m"),
            };
            println!(
                "{on}{}{off}: {} (exit {})",
                report.outcome, report.reason, report.exit_code
            );
            for path in &written {
                println!("report: {}", path.display());
            }
        }
    }
    outcome
}
