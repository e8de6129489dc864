//! The run lifecycle, in phases: preflight → inject (journal first) and hold while watching
//! the abort conditions → revert and verify → steady state after → report. Each phase is a
//! function of its own that returns how the run stops (a `Stop`); the first stop wins,
//! except that a fault left in place (or a service that would not stop) always has the
//! last word.
//!
//! Faults are reverted on every exit path: the end of the hold, an abort condition, an
//! error, SIGINT/SIGTERM (handled for the whole run, so a second signal cannot cut the
//! revert short) and a panic (the live set reverts on drop). The runtime is single-threaded
//! on the main thread, so a stress child's parent-death signal is tied to the runner's life.
//! The engine never prints: it emits each [`RunEvent`] to an
//! [`EventSink`].

mod hold;
mod lines;
mod live;
mod preflight;
mod ramp;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::events::{EmitExt, EventSink, Level, Phase, RunEvent};
use crate::exit::Outcome;
use crate::faults::{self, FaultContext};
use crate::interrupt::Interrupt;
use crate::journal::{self, Event, Journal};
use crate::load::LoadGenerator;
use crate::report::RunReport;
use crate::spec::{self, ValidatedExperiment};
use crate::watch::indicator::IndicatorWatcher;
use crate::watch::prometheus::Prometheus;
use crate::watch::{Observation, Verdict, Watch};

use live::{Active, LiveSet};

/// An instant a run must end by, and why.
///
/// ```
/// let d = chaos_runner::engine::Deadline {
///     at: std::time::Instant::now() + std::time::Duration::from_secs(600),
///     reason: "blackout peak hours 18:00-22:00 begins".into(),
/// };
/// assert!(d.reason.contains("blackout"));
/// ```
#[derive(Debug, Clone)]
pub struct Deadline {
    /// When.
    pub at: Instant,
    /// Why, as the run's abort reason.
    pub reason: String,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where journals live.
    pub state_dir: PathBuf,
    /// Revert an earlier run's live faults first instead of refusing to start.
    pub recover_first: bool,
    /// The Kubernetes client for Kubernetes faults (connected on first use when `None`).
    pub kube: Option<std::sync::Arc<faults::kube::KubeConnector>>,
    /// When the run must end whatever it is doing (a GameDay reaching a blackout): its
    /// faults are reverted and it ends aborted, with the reason given.
    pub deadline: Option<Deadline>,
}

/// How a run stops before, or at, its natural end: the outcome and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stop {
    outcome: Outcome,
    reason: String,
}

impl Stop {
    fn new(outcome: Outcome, reason: impl Into<String>) -> Stop {
        Stop {
            outcome,
            reason: reason.into(),
        }
    }
    fn aborted(reason: impl Into<String>) -> Stop {
        Stop::new(Outcome::Aborted, reason)
    }
    fn failed(reason: impl Into<String>) -> Stop {
        Stop::new(Outcome::Failed, reason)
    }
}

/// What a phase returns: go on, or stop the run.
type PhaseResult = Result<(), Stop>;

/// SIGINT and SIGTERM for the awaits, and the flag that serves the blocking waits (setup
/// and supervised commands becoming ready), where tokio's driver does not run.
struct Signals {
    sigint: Signal,
    sigterm: Signal,
    interrupt: Interrupt,
    deadline: Option<Deadline>,
}

impl Signals {
    fn install(deadline: Option<Deadline>) -> std::io::Result<Signals> {
        Ok(Signals {
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
            interrupt: Interrupt::install()?,
            deadline,
        })
    }

    /// Waits for either signal or the deadline; the stop it means.
    async fn stopped(&mut self) -> Stop {
        let deadline = async {
            match &self.deadline {
                Some(d) => {
                    tokio::time::sleep_until(d.at.into()).await;
                    d.reason.clone()
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.sigint.recv() => Stop::aborted("interrupted (SIGINT)"),
            _ = self.sigterm.recv() => Stop::aborted("terminated (SIGTERM)"),
            reason = deadline => Stop::aborted(reason),
        }
    }
}

/// One run's state, shared by its phases.
struct Run<'a> {
    /// The experiment file, for messages.
    file: String,
    exp: &'a ValidatedExperiment,
    run_id: String,
    started: Instant,
    prometheus: Option<Prometheus>,
    http: reqwest::Client,
    /// The steady-state checks (before and after).
    steady: Vec<Watch>,
    /// The abort conditions (before and while the faults hold).
    abort: Vec<Watch>,
    /// Every check evaluation, in order.
    timeline: Vec<Observation>,
    signals: Signals,
    journal_path: PathBuf,
    /// What the faults are built with (supervised commands and proxies included).
    context: FaultContext,
    /// The experiment's own services, torn down at the end whatever happened.
    setup: Option<crate::setup::SetupSet>,
    /// The built-in load, stopped at the end.
    load: Option<LoadGenerator>,
}

impl Run<'_> {
    fn spec(&self) -> &spec::ExperimentSpec {
        &self.exp.experiment.spec
    }
}

/// Evaluates `watches` (the steady state or the abort conditions) once, recording each
/// observation in `timeline`; the first breach or unavailable source.
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

fn run_id(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{name}-{now}-{:04x}", rand::random::<u16>())
}

/// Closes, in their journals, the faults of dead runs that provably ended with their
/// runner (each with a note, and a line saying so); returns the ones that may still be live.
fn close_what_ended(
    live: Vec<journal::LiveFault>,
    sink: &mut dyn EventSink,
) -> Vec<journal::LiveFault> {
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
            Ok(()) => sink.message(
                Level::Note,
                format!(
                    "fault `{}` of run {} is gone ({note}); closed in its journal",
                    fault.fault, fault.run_id
                ),
            ),
            Err(e) => {
                sink.message(Level::Warning, e.to_string());
                still_live.push(fault);
            }
        }
    }
    still_live
}

/// Runs the experiment in `file`, telling `sink` what happens.
///
/// Exit outcomes: `InvalidInput` only for bad input (the file, its Prometheus settings, an
/// earlier run's fault still live without `recover_first`); a failure of this machine
/// before anything is touched (the state directory, signal handlers, the runtime) aborts.
pub fn run(file: &Path, options: RunOptions, sink: &mut dyn EventSink) -> Outcome {
    let exp = match spec::load_experiment(file) {
        Ok(exp) => exp,
        Err(errors) => {
            for e in &errors.0 {
                sink.error(e.to_string());
            }
            return Outcome::InvalidInput;
        }
    };
    match journal::live_faults(&options.state_dir).map(|live| close_what_ended(live, sink)) {
        Ok(live) if !live.is_empty() => {
            if options.recover_first {
                let owned: Vec<_> = live.iter().filter(|f| owner_running(f)).collect();
                if !owned.is_empty() {
                    for f in &owned {
                        sink.error(format!(
                            "fault `{}` of run {} is live and its run is still running (pid {}): \
                             it reverts its own faults",
                            f.fault,
                            f.run_id,
                            f.runner_pid.unwrap_or_default()
                        ));
                    }
                    sink.error(
                        "refusing to start: --recover only reverts what dead runs left; wait \
                         for that run, or stop it (it reverts on SIGTERM)",
                    );
                    return Outcome::InvalidInput;
                }
                if let Err(outcome) = recover_first(&options, sink) {
                    return outcome;
                }
            } else {
                for f in &live {
                    sink.error(format!(
                        "fault `{}` of run {} is still live (journal {})",
                        f.fault,
                        f.run_id,
                        f.journal.display()
                    ));
                }
                sink.error(
                    "refusing to start: run `chaos-runner recover` first, or pass --recover",
                );
                return Outcome::InvalidInput;
            }
        }
        Ok(_) => {}
        Err(e) => {
            sink.error(e.to_string());
            return Outcome::Aborted;
        }
    }
    let prometheus = match &exp.experiment.spec.prometheus {
        Some(source) => match Prometheus::new(source) {
            Ok(p) => Some(p),
            Err(e) => {
                sink.error(format!("{}: spec.prometheus: {e}", file.display()));
                return Outcome::InvalidInput;
            }
        },
        None => None,
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            sink.error(format!("cannot find the runner's own binary: {e}"));
            return Outcome::Aborted;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            sink.error(format!("cannot start the runtime: {e}"));
            return Outcome::Aborted;
        }
    };
    runtime.block_on(lifecycle(
        &file.display().to_string(),
        &exp,
        prometheus,
        exe,
        options,
        sink,
    ))
}

/// `--recover`: reverts what earlier runs left live before this one starts; `Err` with
/// the outcome to end on when something is still live.
/// Whether the run that owns `fault` is still running: its runner's pid is alive and is a
/// chaos-runner (a pid reused by another program after a crash does not count).
fn owner_running(fault: &journal::LiveFault) -> bool {
    let Some(pid) = fault.runner_pid.filter(|p| *p != std::process::id()) else {
        return false;
    };
    crate::recover::runner_alive(pid)
        && crate::sys::proc::cmdline(pid).is_some_and(|args| {
            args.first()
                .is_some_and(|exe| exe.ends_with("chaos-runner"))
        })
}

fn recover_first(options: &RunOptions, sink: &mut dyn EventSink) -> Result<(), Outcome> {
    let lazy = faults::kube::KubeConnector::lazy();
    let kube = options.kube.as_deref().unwrap_or(&lazy);
    let mut warnings = Vec::new();
    let results = crate::recover::revert_all(&options.state_dir, kube, |w| warnings.push(w));
    for warning in warnings {
        sink.message(Level::Warning, warning);
    }
    let results = results.map_err(|e| {
        sink.error(e.to_string());
        Outcome::NotReverted
    })?;
    let mut still_live = false;
    for crate::recover::Recovery { fault, result } in results {
        match result {
            Ok(()) => sink.message(
                Level::Note,
                format!("reverted: {} (run {})", fault.fault, fault.run_id),
            ),
            Err(e) => {
                still_live = true;
                sink.error(format!(
                    "NOT REVERTED: {} (run {}): {e}",
                    fault.fault, fault.run_id
                ));
            }
        }
    }
    if still_live {
        Err(Outcome::NotReverted)
    } else {
        Ok(())
    }
}

async fn lifecycle(
    file: &str,
    exp: &ValidatedExperiment,
    prometheus: Option<Prometheus>,
    exe: PathBuf,
    options: RunOptions,
    sink: &mut dyn EventSink,
) -> Outcome {
    let started = Instant::now();
    let spec = &exp.experiment.spec;
    let name = exp.experiment.metadata.name.clone();
    let run_id = run_id(&name);
    let Ok(signals) = Signals::install(options.deadline.clone()) else {
        sink.error("cannot install signal handlers; refusing to inject");
        return Outcome::Aborted;
    };
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
            sink.error(e.to_string());
            return Outcome::Aborted;
        }
    };
    let fail_after = spec.prometheus.as_ref().map_or(3, |p| p.fail_after);
    let slos = exp.slos.as_ref();
    let mut context = FaultContext::new(run_id.clone(), exe);
    context.experiment = name.clone();
    if let Some(kube) = &options.kube {
        context.kube = kube.clone();
    }
    let mut run = Run {
        file: file.to_owned(),
        exp,
        run_id,
        started,
        prometheus,
        http: reqwest::Client::new(),
        steady: spec
            .steady_state
            .iter()
            .map(|c| Watch::new(c, slos, 1))
            .collect(),
        abort: spec
            .abort_when
            .iter()
            .map(|c| Watch::new(c, slos, fail_after))
            .collect(),
        timeline: Vec::new(),
        signals,
        journal_path: journal.path().to_owned(),
        context,
        setup: None,
        load: None,
    };

    // Refused before anything starts: ends the journal, writes no report.
    if let Err(stop) = preflight::refuse_early(&run) {
        sink.error(stop.reason);
        end_journal(&run.journal_path, stop.outcome, sink);
        return stop.outcome;
    }
    let mut stop = preflight::prepare(&mut run, sink).await.err();

    // Indicators are read on a task of their own: a slow endpoint never delays an abort.
    let indicators = IndicatorWatcher::start(
        if stop.is_none() {
            &spec.indicators
        } else {
            &[]
        },
        run.prometheus.clone(),
        started,
        spec.check_interval,
    );
    let mut faults_report = Vec::new();
    let mut aborted_at_ms = None;
    let mut journal = Some(journal);
    if let (None, Some(journal)) = (&stop, journal.take()) {
        let mut live = LiveSet {
            faults: exp.faults.iter().map(Active::new).collect(),
            journal,
            started,
        };
        stop = hold::hold(&mut run, &mut live, &indicators, sink)
            .await
            .err();
        if matches!(&stop, Some(s) if s.outcome == Outcome::Aborted) {
            aborted_at_ms = Some(started.elapsed().as_millis() as u64);
        }
        sink.phase(Phase::Revert, "removing faults");
        live.revert_all();
        for line in live
            .faults
            .iter()
            .filter_map(|f| lines::revert_result(&f.report))
        {
            sink.step(Phase::Revert, line);
        }
        if live.any_not_reverted() {
            stop = Some(Stop::new(
                Outcome::NotReverted,
                "a fault could not be reverted; see the report",
            ));
        }
        faults_report = live.faults.iter().map(|f| f.report.clone()).collect();
        if stop.is_none() {
            stop = after(&mut run, sink).await.err();
        }
        for change in indicators.take_fresh().iter().filter(|c| c.announce) {
            sink.emit(RunEvent::Notice {
                phase: Phase::After,
                text: change.to_string(),
            });
        }
        // `live` drops here with nothing left to revert.
    }
    let load_report = run.load.as_mut().map(LoadGenerator::stop);
    run.load = None;
    if let Some(left) = stop_services(&mut run, sink) {
        if !matches!(&stop, Some(s) if s.outcome == Outcome::NotReverted) {
            stop = Some(left);
        }
    }
    drop(journal);
    let stop = stop.unwrap_or_else(|| {
        Stop::new(
            Outcome::Passed,
            "steady state held and every fault was reverted",
        )
    });
    end_journal(&run.journal_path, stop.outcome, sink);

    let report = RunReport {
        run_id: run.run_id.clone(),
        experiment: name,
        description: exp.experiment.metadata.description.clone(),
        outcome: outcome_name(stop.outcome).into(),
        exit_code: stop.outcome.code(),
        reason: stop.reason,
        duration_ms: started.elapsed().as_millis() as u64,
        faults: faults_report,
        timeline: std::mem::take(&mut run.timeline),
        load: load_report,
        aborted_at_ms,
        indicators: indicators.stop().await,
    };
    let written = report
        .write(Path::new(&spec.report.dir), &spec.report.formats)
        .unwrap_or_else(|e| {
            sink.error(format!(
                "cannot write the report to {}: {e}",
                spec.report.dir
            ));
            Vec::new()
        });
    sink.emit(RunEvent::Finished {
        report: Box::new(report),
        written,
    });
    stop.outcome
}

/// The steady state after the faults: it must hold again.
async fn after(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    sink.phase(Phase::After, "checking steady state");
    let verdict = evaluate_all(
        &mut run.steady,
        run.prometheus.as_ref(),
        &run.http,
        "after",
        run.started,
        &mut run.timeline,
    )
    .await;
    let evaluated = run.timeline.len().saturating_sub(run.steady.len());
    for obs in &run.timeline[evaluated..] {
        sink.step(
            Phase::After,
            lines::check_result(lines::CheckKind::Steady, obs),
        );
    }
    match verdict {
        Some(Verdict::Breach(why) | Verdict::SourceDown(why)) => {
            Err(Stop::failed(format!("steady state after: {why}")))
        }
        _ => Ok(()),
    }
}

/// Stops the supervised commands and tears the setup services down; a service left
/// behind is a stop of its own (`NotReverted`).
fn stop_services(run: &mut Run<'_>, sink: &mut dyn EventSink) -> Option<Stop> {
    for (fault, supervisor) in run.context.supervisors.iter() {
        supervisor.stop();
        // Stopped with the services, at the end of the run.
        sink.step(
            Phase::Setup,
            format!(
                "stopped `{}` (fault `{fault}`)",
                supervisor.spec().argv.join(" ")
            ),
        );
    }
    let mut set = run.setup.take()?;
    sink.phase(Phase::Setup, "stopping services");
    let names = set.names();
    let problems = set.teardown();
    for name in names.iter().rev() {
        let named = format!("`{name}`");
        if !problems.iter().any(|p| p.contains(&named)) {
            sink.step(Phase::Setup, format!("stopped {named}"));
        }
    }
    if problems.is_empty() {
        return None;
    }
    for p in &problems {
        sink.error(p.to_string());
    }
    Some(Stop::new(
        Outcome::NotReverted,
        format!("setup teardown: {}", problems.join("; ")),
    ))
}

fn end_journal(path: &Path, outcome: Outcome, sink: &mut dyn EventSink) {
    if let Err(e) = Journal::open(path).and_then(|mut j| {
        j.append(Event::RunEnded {
            exit_code: outcome.code(),
        })
    }) {
        sink.message(Level::Warning, e.to_string());
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Aborted => "aborted",
        Outcome::InvalidInput => "invalid_input",
        Outcome::NotReverted => "not_reverted",
        Outcome::Gate(decision) => decision.name(),
    }
}

/// The time a phase waits for before it goes on: `duration`, cut short by a signal.
async fn wait_or_signal(run: &mut Run<'_>, duration: Duration) -> PhaseResult {
    tokio::select! {
        stop = run.signals.stopped() => Err(stop),
        _ = tokio::time::sleep(duration) => Ok(()),
    }
}
