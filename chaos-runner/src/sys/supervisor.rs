//! A supervised command: the runner starts it for the run (argument vector, no shell),
//! restarts it when it exits (policy `always`) and says when it is ready (its
//! `readyPort` accepts connections). Process faults on a `command` selector act on its
//! current process; the supervisor measures how long it was out.
//!
//! The command gets a parent-death signal (SIGTERM) tied to the supervisor's thread, so
//! it ends with the runner even when the runner is SIGKILLed.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::proc;
use crate::interrupt::Interrupt;
use crate::spec::RestartPolicy;

/// What the supervisor runs and how.
#[derive(Debug, Clone)]
pub struct SupervisedCommand {
    /// The fault it serves (for logs).
    pub name: String,
    /// Argument vector; the first is the program.
    pub argv: Vec<String>,
    /// Restart on exit or not.
    pub restart: RestartPolicy,
    /// Ready once this local TCP port accepts connections.
    pub ready_port: Option<u16>,
    /// How long a start may take to become ready.
    pub ready_timeout: Duration,
}

/// How a supervised command is launched beyond its argument vector (the run's `setup`
/// services use these; process faults take the defaults).
#[derive(Debug, Clone)]
pub struct Launch {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (the runner's own when `None`).
    pub cwd: Option<PathBuf>,
    /// File receiving stdout and stderr (discarded when `None`).
    pub log: Option<PathBuf>,
    /// Ready once a GET of this URL answers 2xx (checked after `ready_port`, if any).
    pub ready_http: Option<String>,
    /// The signal asking the command to stop (SIGKILL follows after 3 s).
    pub stop_signal: libc::c_int,
    /// Ends the wait for the first start's readiness when SIGINT or SIGTERM comes (the
    /// command is then stopped); the default never fires.
    pub interrupt: Interrupt,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            env: Vec::new(),
            cwd: None,
            log: None,
            ready_http: None,
            stop_signal: libc::SIGTERM,
            interrupt: Interrupt::default(),
        }
    }
}

/// The supervised command failed to start or become ready.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// It did not become ready in time.
    #[error("supervised command `{command}` was not ready within {timeout:?}{last}")]
    NotReady {
        /// The command.
        command: String,
        /// The wait.
        timeout: Duration,
        /// The last start error, if any.
        last: String,
    },
    /// It exited before it was ready and its policy does not restart it.
    #[error("supervised command `{command}` exited before it was ready ({status})")]
    Exited {
        /// The command.
        command: String,
        /// How it ended, e.g. `exit status: 1`.
        status: ExitStatus,
    },
    /// The supervisor has been stopped.
    #[error("the supervisor of `{0}` is stopped")]
    Stopped(String),
    /// A stop signal came while the command was starting; it has been stopped.
    #[error("supervised command `{command}` was stopped while starting: {reason}")]
    Interrupted {
        /// The command.
        command: String,
        /// `interrupted (SIGINT)` or `terminated (SIGTERM)`.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct State {
    child: Option<Child>,
    /// The current process and its start ticks.
    current: Option<(u32, u64)>,
    ready: bool,
    /// When the current process became ready.
    ready_at: Option<Instant>,
    /// Start it (again) when not running, whatever the policy.
    start_requested: bool,
    stopping: bool,
    starts: u32,
    last_error: Option<String>,
    /// How the last process that ended ended.
    last_exit: Option<ExitStatus>,
    /// How many processes have ended.
    exits: u32,
}

#[derive(Debug)]
struct Shared {
    spec: SupervisedCommand,
    launch: Launch,
    state: Mutex<State>,
    changed: Condvar,
}

/// A running supervisor. Dropping it stops the command.
#[derive(Debug)]
pub struct Supervisor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn(spec: &SupervisedCommand, launch: &Launch) -> std::io::Result<Child> {
    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    match &launch.log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    if let Some(dir) = &launch.cwd {
        command.current_dir(dir);
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and takes no pointers.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
            Ok(())
        });
    }
    command.spawn()
}

fn port_open(port: u16) -> bool {
    let addrs: [SocketAddr; 2] = [
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    ];
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
}

fn http_ok(url: &str) -> bool {
    ureq::get(url)
        .timeout(Duration::from_millis(500))
        .call()
        .is_ok_and(|r| (200..300).contains(&r.status()))
}

fn run(shared: Arc<Shared>) {
    let mut last_start = None::<Instant>;
    loop {
        let mut state = lock(&shared);
        if state.stopping {
            if let Some(mut child) = state.child.take() {
                let pid = child.id();
                proc::signal(pid, libc::SIGCONT);
                proc::signal(pid, shared.launch.stop_signal);
                if !proc::wait_until(Duration::from_secs(3), || {
                    matches!(child.try_wait(), Ok(Some(_)))
                }) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            state.current = None;
            state.ready = false;
            shared.changed.notify_all();
            return;
        }
        if let Some(child) = state.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                tracing::info!(command = %shared.spec.name, %status, "supervised command exited");
                state.child = None;
                state.current = None;
                state.ready = false;
                state.ready_at = None;
                state.last_exit = Some(status);
                state.exits += 1;
                shared.changed.notify_all();
            }
        }
        let wants_start = state.start_requested || shared.spec.restart == RestartPolicy::Always;
        let backoff_over = last_start.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if state.child.is_none() && wants_start && backoff_over {
            last_start = Some(Instant::now());
            match spawn(&shared.spec, &shared.launch) {
                Ok(child) => {
                    let pid = child.id();
                    let ticks = proc::stat(pid).map(|(_, t)| t).unwrap_or(0);
                    state.child = Some(child);
                    state.current = Some((pid, ticks));
                    state.start_requested = false;
                    state.starts += 1;
                    tracing::info!(command = %shared.spec.name, pid, "supervised command started");
                }
                Err(e) => state.last_error = Some(e.to_string()),
            }
        }
        let check_port = match (state.child.is_some(), state.ready) {
            (true, false) => Some(shared.spec.ready_port),
            _ => None,
        };
        drop(state);
        if let Some(port) = check_port {
            let ready = port.is_none_or(port_open)
                && shared.launch.ready_http.as_deref().is_none_or(http_ok);
            if ready {
                let mut state = lock(&shared);
                if state.child.is_some() {
                    state.ready = true;
                    state.ready_at = Some(Instant::now());
                    shared.changed.notify_all();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Supervisor {
    /// Starts `spec` and waits until it is ready.
    pub fn start(spec: SupervisedCommand) -> Result<Supervisor, SupervisorError> {
        Supervisor::start_with(spec, Launch::default())
    }

    /// Starts `spec` launched as `launch` says and waits until it is ready.
    pub fn start_with(
        spec: SupervisedCommand,
        launch: Launch,
    ) -> Result<Supervisor, SupervisorError> {
        Supervisor::start_watching(spec, launch, &mut |_| {})
    }

    /// [`Supervisor::start_with`] that calls `waiting` with the time waited so far while it
    /// waits for the command to become ready (at least every 50 ms), so the caller can say
    /// it is still waiting.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chaos_runner::sys::supervisor::{Launch, SupervisedCommand, Supervisor};
    /// let spec = SupervisedCommand {
    ///     name: "sleeper".into(),
    ///     argv: vec!["sleep".into(), "5".into()],
    ///     restart: chaos_runner::spec::RestartPolicy::Never,
    ///     ready_port: None,
    ///     ready_timeout: Duration::from_secs(5),
    /// };
    /// let mut longest = Duration::ZERO;
    /// let supervisor =
    ///     Supervisor::start_watching(spec, Launch::default(), &mut |waited| longest = waited)
    ///         .unwrap();
    /// supervisor.stop();
    /// assert!(longest < Duration::from_secs(5));
    /// ```
    pub fn start_watching(
        spec: SupervisedCommand,
        launch: Launch,
        waiting: &mut dyn FnMut(Duration),
    ) -> Result<Supervisor, SupervisorError> {
        let shared = Arc::new(Shared {
            spec,
            launch,
            state: Mutex::new(State {
                start_requested: true,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("supervisor".into())
                .spawn(move || run(shared))
                .map_err(|e| SupervisorError::NotReady {
                    command: String::new(),
                    timeout: Duration::ZERO,
                    last: format!(": cannot start a thread: {e}"),
                })?
        };
        let supervisor = Supervisor {
            shared,
            thread: Mutex::new(Some(thread)),
        };
        let interrupt = supervisor.shared.launch.interrupt.clone();
        supervisor.wait(
            None,
            supervisor.shared.spec.ready_timeout,
            &interrupt,
            waiting,
        )?;
        Ok(supervisor)
    }

    /// The command as configured.
    pub fn spec(&self) -> &SupervisedCommand {
        &self.shared.spec
    }

    /// The current process (pid, start ticks), if it runs.
    pub fn current(&self) -> Option<(u32, u64)> {
        let state = lock(&self.shared);
        state
            .current
            .filter(|(pid, ticks)| proc::is_running(*pid, *ticks))
    }

    /// How many times the command was started.
    pub fn starts(&self) -> u32 {
        lock(&self.shared).starts
    }

    /// Asks for a start when the command is not running (whatever the restart policy).
    pub fn request_start(&self) {
        lock(&self.shared).start_requested = true;
    }

    /// Waits until a process other than `not` is running and ready; returns when it
    /// became ready. Fails at once with [`SupervisorError::Exited`] when the command has
    /// exited and nothing will start it again (policy `never`, no start requested).
    pub fn wait_ready(
        &self,
        not: Option<(u32, u64)>,
        timeout: Duration,
    ) -> Result<Instant, SupervisorError> {
        self.wait(not, timeout, &Interrupt::default(), &mut |_| {})
    }

    /// [`Supervisor::wait_ready`] that also ends when `interrupt` fires (checked at least
    /// every 50 ms), calling `waiting` with the time waited so far at each check.
    fn wait(
        &self,
        not: Option<(u32, u64)>,
        timeout: Duration,
        interrupt: &Interrupt,
        waiting: &mut dyn FnMut(Duration),
    ) -> Result<Instant, SupervisorError> {
        let began = Instant::now();
        let deadline = began + timeout;
        let mut state = lock(&self.shared);
        loop {
            if state.stopping {
                return Err(SupervisorError::Stopped(self.shared.spec.name.clone()));
            }
            if let Some(reason) = interrupt.reason() {
                return Err(SupervisorError::Interrupted {
                    command: self.shared.spec.argv.join(" "),
                    reason,
                });
            }
            if state.ready && state.current.is_some() && state.current != not {
                if let Some(at) = state.ready_at {
                    return Ok(at);
                }
            }
            // Exited, and nothing will start it again.
            let restarts =
                state.start_requested || self.shared.spec.restart == RestartPolicy::Always;
            if let (None, Some(status), false) = (&state.child, state.last_exit, restarts) {
                return Err(SupervisorError::Exited {
                    command: self.shared.spec.argv.join(" "),
                    status,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                let last = match (&state.last_error, state.last_exit) {
                    (Some(e), _) => format!(": {e}"),
                    (None, Some(status)) => {
                        format!(": it exited {} time(s), last with {status}", state.exits)
                    }
                    (None, None) => String::new(),
                };
                return Err(SupervisorError::NotReady {
                    command: self.shared.spec.argv.join(" "),
                    timeout,
                    last,
                });
            }
            // Said without the lock held: the caller may take its time.
            drop(state);
            waiting(now - began);
            // A change meanwhile is seen at the next check, at most 50 ms later.
            state = lock(&self.shared);
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            state = self
                .shared
                .changed
                .wait_timeout(state, wait)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits until the process `pid` has exited (the supervisor noticed and reaped it).
    pub fn wait_exited(&self, pid: u32, timeout: Duration) -> bool {
        proc::wait_until(timeout, || {
            lock(&self.shared).current.is_none_or(|(p, _)| p != pid)
        })
    }

    /// Stops the command (SIGTERM, then SIGKILL) and the supervisor.
    pub fn stop(&self) {
        lock(&self.shared).stopping = true;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}
