//! Process faults: kill (SIGKILL or SIGTERM), pause (SIGSTOP until revert) and restart a
//! process found by pid file, executable name, listening port, or a command the runner
//! supervises.
//!
//! Refused targets: pid 1, the runner itself and its ancestors, kernel threads, and a
//! `name`/`port` matching more than `maxTargets` processes. Killing a process the runner
//! cannot restart needs `allowUnrevertable: true`, and the fault then reports itself as
//! not revertible. A pause is guarded by a watchdog child (`chaos-runner stress resume`)
//! that resumes the target when the pause's time is up or when the runner dies.

use crate::helper::HelperCommand;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{KillSignal, ProcessKillParams, ProcessRestartParams, ProcessSelector};
use crate::sys::child::{self, StressChild};
use crate::sys::proc;
use crate::sys::supervisor::{Supervisor, SupervisorError};

/// A process fault could not find, hit or release its targets.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The target is init.
    #[error("refusing to touch pid {0} (init)")]
    Init(u32),
    /// The target is the runner or one of its ancestors.
    #[error("refusing to touch pid {0}: it is the runner itself or one of its ancestors")]
    Ancestor(u32),
    /// The target is a kernel thread.
    #[error("refusing to touch pid {0}: it is a kernel thread")]
    KernelThread(u32),
    /// The pid file could not be read.
    #[error("pid file {file}: {source}")]
    PidFile {
        /// The pid file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pid file holds no process id.
    #[error("pid file {0} does not hold a process id")]
    NotAPid(String),
    /// The selector names no process.
    #[error("the selector names no process")]
    NoSelector,
    /// Nothing matches the selector.
    #[error("no running process matches {0}")]
    NoMatch(String),
    /// More processes match than the selector allows.
    #[error("{what} matches {} processes ({}), more than maxTargets {max}; raise `maxTargets` to hit them all", .pids.len(), pid_list(.pids))]
    TooMany {
        /// What the selector names (`name `x``).
        what: String,
        /// The matching processes.
        pids: Vec<u32>,
        /// The selector's `maxTargets`.
        max: usize,
    },
    /// A target ended while it was being looked at.
    #[error("process {0} vanished")]
    Vanished(u32),
    /// A target still runs after SIGKILL.
    #[error("a target survived SIGKILL")]
    SurvivedKill,
    /// A `command` selector without the runner's supervisor.
    #[error(
        "the `command` selector needs the runner's supervisor (started by `chaos-runner run`)"
    )]
    NoSupervisor,
    /// The supervised command is not running.
    #[error("the supervised command is not running")]
    NotRunning,
    /// The supervised command did not come back.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// A watchdog child could not be started or stopped.
    #[error(transparent)]
    Watchdog(#[from] child::ChildError),
    /// SIGSTOP could not be sent.
    #[error("SIGSTOP to {pid}: {source}")]
    Stop {
        /// The target.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The target did not stop after SIGSTOP.
    #[error("process {0} did not stop")]
    DidNotStop(u32),
    /// A paused target is still stopped after SIGCONT.
    #[error("a paused process is still stopped after SIGCONT")]
    StillPaused,
    /// This target is still stopped after SIGCONT.
    #[error("process {0} is still stopped after SIGCONT")]
    StillStopped(u32),
}

fn pid_list(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a process fault does.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `process-kill`.
    Kill(ProcessKillParams),
    /// `process-pause`.
    Pause,
    /// `process-restart`.
    Restart(ProcessRestartParams),
}

impl Action {
    fn type_name(self) -> &'static str {
        match self {
            Action::Kill(_) => "process-kill",
            Action::Pause => "process-pause",
            Action::Restart(_) => "process-restart",
        }
    }
}

/// A paused process and its watchdog, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedTarget {
    /// The paused process.
    pub pid: u32,
    /// Its start ticks.
    pub start_ticks: u64,
    /// The watchdog that resumes it (0 in the intent, journaled before it starts).
    pub watchdog_pid: u32,
    /// The watchdog's start ticks.
    pub watchdog_ticks: u64,
}

/// A process fault.
#[derive(Debug)]
pub struct ProcessFault {
    name: String,
    run_id: String,
    exe: PathBuf,
    action: Action,
    selector: ProcessSelector,
    supervisor: Option<Arc<Supervisor>>,
    duration: Duration,
    /// Processes hit (pid, start ticks).
    targets: Vec<(u32, u64)>,
    /// Pause targets resolved when the intent was journaled; `inject` hits exactly these.
    planned: std::sync::OnceLock<Vec<(u32, u64)>>,
    watchdogs: Vec<StressChild>,
    /// When a supervised target was killed and not yet seen ready again.
    down_since: Option<Instant>,
    revertible: bool,
    measurements: Vec<(String, String)>,
}

/// Whether `pid` is stopped (state `T`, from `/proc/<pid>/stat`).
pub fn is_stopped(pid: u32) -> bool {
    matches!(proc::stat(pid), Some(('T', _)))
}

/// Checks that `pid` may be hit: not pid 1, not the runner or one of its ancestors, not a
/// kernel thread.
///
/// ```
/// use chaos_runner::faults::local::process::refuse;
/// assert!(refuse(1).is_err());
/// assert!(refuse(std::process::id()).is_err());
/// ```
pub fn refuse(pid: u32) -> Result<(), ProcessError> {
    if pid <= 1 {
        return Err(ProcessError::Init(pid));
    }
    if proc::self_and_ancestors().contains(&pid) {
        return Err(ProcessError::Ancestor(pid));
    }
    if proc::is_kernel_thread(pid) {
        return Err(ProcessError::KernelThread(pid));
    }
    Ok(())
}

/// The processes `selector` names right now (without the supervised `command`, which
/// only its supervisor knows), after the refusals.
pub fn resolve(selector: &ProcessSelector) -> Result<Vec<(u32, u64)>, ProcessError> {
    let max = selector.max_targets.unwrap_or(1) as usize;
    let alive = |pid: &u32| proc::stat(*pid).is_some_and(|(s, _)| s != 'Z' && s != 'X');
    let (what, pids): (String, Vec<u32>) = if let Some(file) = &selector.pid_file {
        let text = std::fs::read_to_string(file).map_err(|source| ProcessError::PidFile {
            file: file.clone(),
            source,
        })?;
        let pid = text
            .trim()
            .parse::<u32>()
            .map_err(|_| ProcessError::NotAPid(file.clone()))?;
        (format!("pid file {file}"), vec![pid])
    } else if let Some(name) = &selector.name {
        let pids = proc::pids()
            .into_iter()
            .filter(|p| alive(p) && proc::names(*p).iter().any(|n| n == name))
            .collect();
        (format!("name `{name}`"), pids)
    } else if let Some(port) = selector.port {
        (format!("port {port}"), proc::listening_on(port))
    } else {
        return Err(ProcessError::NoSelector);
    };
    let pids: Vec<u32> = pids.into_iter().filter(alive).collect();
    if pids.is_empty() {
        return Err(ProcessError::NoMatch(what));
    }
    if pids.len() > max {
        return Err(ProcessError::TooMany { what, pids, max });
    }
    pids.into_iter()
        .map(|pid| {
            refuse(pid)?;
            let (_, ticks) = proc::stat(pid).ok_or(ProcessError::Vanished(pid))?;
            Ok((pid, ticks))
        })
        .collect()
}

/// Sends `signal` to every target; after SIGTERM, waits `grace` and then SIGKILLs
/// survivors. Returns once every target is gone (or an error naming a survivor).
fn kill_all(
    targets: &[(u32, u64)],
    signal: KillSignal,
    grace: Duration,
) -> Result<(), ProcessError> {
    for (pid, ticks) in targets {
        if proc::is_running(*pid, *ticks) {
            // A stopped process handles SIGTERM only once it runs again.
            if signal == KillSignal::Term {
                proc::signal(*pid, libc::SIGCONT);
            }
            proc::signal(*pid, signal.number());
        }
    }
    let all_gone = || targets.iter().all(|(p, t)| !proc::is_running(*p, *t));
    if signal == KillSignal::Term && !proc::wait_until(grace, all_gone) {
        for (pid, ticks) in targets {
            if proc::is_running(*pid, *ticks) {
                tracing::warn!(pid, "target outlived SIGTERM's grace; sending SIGKILL");
                proc::signal(*pid, libc::SIGKILL);
            }
        }
    }
    if proc::wait_until(Duration::from_secs(5), all_gone) {
        Ok(())
    } else {
        Err(ProcessError::SurvivedKill)
    }
}

impl ProcessFault {
    /// A process fault doing `action` on `selector` for at most `duration`. A `command`
    /// selector needs the run's `supervisor` for it.
    pub fn new(
        name: &str,
        run_id: &str,
        action: Action,
        selector: ProcessSelector,
        supervisor: Option<Arc<Supervisor>>,
        duration: Duration,
        exe: PathBuf,
    ) -> Self {
        ProcessFault {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            exe,
            action,
            selector,
            supervisor,
            duration,
            targets: Vec::new(),
            planned: std::sync::OnceLock::new(),
            watchdogs: Vec::new(),
            down_since: None,
            revertible: true,
            measurements: Vec::new(),
        }
    }

    /// The processes hit (pid, start ticks).
    pub fn targets(&self) -> &[(u32, u64)] {
        &self.targets
    }

    fn error(&self, revert: bool, reason: impl Into<String>) -> FaultError {
        let (fault, reason) = (self.name.clone(), reason.into());
        if revert {
            FaultError::Revert { fault, reason }
        } else {
            FaultError::Inject { fault, reason }
        }
    }

    fn supervised(&self) -> Result<&Arc<Supervisor>, ProcessError> {
        self.supervisor.as_ref().ok_or(ProcessError::NoSupervisor)
    }

    fn targets_now(&self) -> Result<Vec<(u32, u64)>, ProcessError> {
        if self.selector.command.is_some() {
            let sup = self.supervised()?;
            let (pid, ticks) = sup.current().ok_or(ProcessError::NotRunning)?;
            refuse(pid)?;
            Ok(vec![(pid, ticks)])
        } else {
            resolve(&self.selector)
        }
    }

    /// Kills the supervised target and, when `restart` (or policy `always`), waits until
    /// it is ready again, recording the outage.
    fn kill_supervised(
        &mut self,
        signal: KillSignal,
        grace: Duration,
        restart: bool,
    ) -> Result<(), ProcessError> {
        let sup = self.supervised()?.clone();
        let target = self.targets[0];
        let at = Instant::now();
        kill_all(&self.targets, signal, grace)?;
        sup.wait_exited(target.0, Duration::from_secs(5));
        let always = sup.spec().restart == crate::spec::RestartPolicy::Always;
        if restart || always {
            sup.request_start();
            let ready = sup.wait_ready(Some(target), sup.spec().ready_timeout)?;
            self.record_outage(ready.saturating_duration_since(at));
        } else {
            self.down_since = Some(at);
        }
        Ok(())
    }

    fn record_outage(&mut self, outage: Duration) {
        tracing::info!(fault = %self.name, outage_ms = outage.as_millis() as u64, "supervised command ready again");
        self.measurements
            .push(("outage_ms".into(), outage.as_millis().to_string()));
    }

    fn pause(&mut self) -> Result<Vec<PausedTarget>, ProcessError> {
        let mut paused = Vec::new();
        for (pid, ticks) in self.targets.clone() {
            // The watchdog first: whatever happens to the runner from here on, the target
            // is resumed.
            let resume = HelperCommand::Resume {
                pid,
                start_ticks: ticks,
                after: self.duration.max(Duration::from_millis(1)),
                run_id: self.run_id.clone(),
                fault: self.name.clone(),
            };
            let watchdog = StressChild::spawn(&self.exe, &resume, Vec::new())?;
            paused.push(PausedTarget {
                pid,
                start_ticks: ticks,
                watchdog_pid: watchdog.pid(),
                watchdog_ticks: watchdog.start_ticks,
            });
            self.watchdogs.push(watchdog);
            if !proc::signal(pid, libc::SIGSTOP) {
                return Err(ProcessError::Stop {
                    pid,
                    source: std::io::Error::last_os_error(),
                });
            }
            if !proc::wait_until(Duration::from_secs(2), || is_stopped(pid)) {
                return Err(ProcessError::DidNotStop(pid));
            }
        }
        Ok(paused)
    }

    fn resume(&mut self) -> Result<(), ProcessError> {
        for (pid, ticks) in &self.targets {
            if proc::is_running(*pid, *ticks) {
                proc::signal(*pid, libc::SIGCONT);
            }
        }
        for mut w in self.watchdogs.drain(..) {
            w.stop(libc::SIGTERM, Duration::from_secs(2))?;
        }
        let targets = self.targets.clone();
        if proc::wait_until(Duration::from_secs(2), || {
            targets
                .iter()
                .all(|(p, t)| !proc::is_running(*p, *t) || !is_stopped(*p))
        }) {
            Ok(())
        } else {
            Err(ProcessError::StillPaused)
        }
    }
}

impl Fault for ProcessFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let target = crate::spec::Selector {
            process: Some(self.selector.clone()),
            ..Default::default()
        }
        .summary();
        let what = match self.action {
            Action::Kill(p) => format!(
                "SIG{} {target}{}",
                p.signal.name(),
                if self.selector.command.is_some() {
                    match self.selector.restart.unwrap_or_default() {
                        crate::spec::RestartPolicy::Always => " (the supervisor restarts it)",
                        crate::spec::RestartPolicy::Never => " (started again on revert)",
                    }
                } else {
                    " (NOT revertible: the runner cannot restart it)"
                }
            ),
            Action::Pause => format!(
                "SIGSTOP {target} for at most {}, then SIGCONT",
                humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
            ),
            Action::Restart(p) => format!("SIG{} {target}, then start it again", p.signal.name()),
        };
        format!("{} `{}`: {what}", self.action.type_name(), self.name)
    }

    /// A pause journals its targets with the intent (their watchdogs are not started
    /// yet): if the runner and the watchdogs die between SIGSTOP and the journal's
    /// `injected` record, `recover` still knows what to resume.
    fn planned_record(&self) -> Option<FaultRecord> {
        if !matches!(self.action, Action::Pause) {
            return None;
        }
        let targets = self.targets_now().ok()?;
        let targets = self.planned.get_or_init(|| targets);
        Some(FaultRecord::ProcessPaused {
            targets: targets
                .iter()
                .map(|&(pid, start_ticks)| PausedTarget {
                    pid,
                    start_ticks,
                    watchdog_pid: 0,
                    watchdog_ticks: 0,
                })
                .collect(),
        })
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let supervised = self.selector.command.is_some();
        if let Action::Kill(p) = self.action {
            if !supervised && !p.allow_unrevertable {
                return Err(self.error(
                    false,
                    "killing a process the runner did not start cannot be reverted: set `allowUnrevertable: true` to allow it",
                ));
            }
        }
        if matches!(self.action, Action::Restart(_)) && !supervised {
            return Err(self.error(false, "process-restart needs a supervised `command`"));
        }
        self.targets = match self.planned.take() {
            Some(planned) => planned,
            None => self
                .targets_now()
                .map_err(|e| self.error(false, e.to_string()))?,
        };
        let pids: Vec<u32> = self.targets.iter().map(|(p, _)| *p).collect();
        tracing::info!(fault = %self.name, ?pids, action = self.action.type_name(), "hitting process(es)");
        self.measurements.push((
            "target_pids".into(),
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ));
        match self.action {
            Action::Kill(p) => {
                if supervised {
                    self.kill_supervised(p.signal, p.grace, false)
                        .map_err(|e| self.error(false, e.to_string()))?;
                } else {
                    self.revertible = false;
                    kill_all(&self.targets, p.signal, p.grace)
                        .map_err(|e| self.error(false, e.to_string()))?;
                }
                Ok(FaultRecord::ProcessKilled {
                    pids,
                    revertible: supervised,
                })
            }
            Action::Restart(p) => {
                self.kill_supervised(p.signal, p.grace, true)
                    .map_err(|e| self.error(false, e.to_string()))?;
                Ok(FaultRecord::ProcessKilled {
                    pids,
                    revertible: true,
                })
            }
            Action::Pause => match self.pause() {
                Ok(paused) => Ok(FaultRecord::ProcessPaused { targets: paused }),
                Err(e) => {
                    let _ = self.resume();
                    Err(self.error(false, e.to_string()))
                }
            },
        }
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        match self.action {
            Action::Pause => self.resume().map_err(|e| self.error(true, e.to_string())),
            Action::Kill(_) | Action::Restart(_) => {
                let Some(sup) = self.supervisor.clone() else {
                    return Ok(()); // unrevertable by request: nothing to do
                };
                if self.targets.is_empty() {
                    return Ok(());
                }
                if sup.current().is_none() {
                    sup.request_start();
                }
                let ready = sup
                    .wait_ready(None, sup.spec().ready_timeout)
                    .map_err(|e| self.error(true, e.to_string()))?;
                if let Some(since) = self.down_since.take() {
                    self.record_outage(ready.saturating_duration_since(since));
                }
                Ok(())
            }
        }
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        match self.action {
            Action::Pause => {
                if let Some((pid, _)) = self
                    .targets
                    .iter()
                    .find(|(p, t)| proc::is_running(*p, *t) && is_stopped(*p))
                {
                    return Err(self.error(true, format!("process {pid} is still stopped")));
                }
                if let Some(w) = self
                    .watchdogs
                    .iter()
                    .find(|w| proc::is_running(w.pid(), w.start_ticks))
                {
                    return Err(self.error(true, format!("watchdog {} still runs", w.pid())));
                }
                Ok(())
            }
            Action::Kill(_) | Action::Restart(_) => match &self.supervisor {
                Some(sup) if !self.targets.is_empty() && sup.current().is_none() => Err(self
                    .error(
                        true,
                        "the supervised command is not running again".to_owned(),
                    )),
                _ => Ok(()),
            },
        }
    }

    fn revertible(&self) -> bool {
        self.revertible
    }

    fn measurements(&self) -> Vec<(String, String)> {
        self.measurements.clone()
    }
}

/// Resumes what a dead run paused: SIGCONT each target still the same process, and stops
/// its watchdog (used by `recover`).
pub fn resume_from_journal(targets: &[PausedTarget]) -> Result<(), ProcessError> {
    for t in targets {
        if proc::is_running(t.pid, t.start_ticks) {
            proc::signal(t.pid, libc::SIGCONT);
        }
        if t.watchdog_pid == 0 {
            continue;
        }
        child::stop_if_ours(
            t.watchdog_pid,
            t.watchdog_ticks,
            libc::SIGTERM,
            Duration::from_secs(2),
        )?;
    }
    let still = targets
        .iter()
        .find(|t| proc::is_running(t.pid, t.start_ticks) && is_stopped(t.pid));
    match still {
        Some(t) if !proc::wait_until(Duration::from_secs(2), || !is_stopped(t.pid)) => {
            Err(ProcessError::StillStopped(t.pid))
        }
        _ => Ok(()),
    }
}
