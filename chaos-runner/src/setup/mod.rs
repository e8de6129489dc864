//! `spec.setup`: services the runner starts before a run and stops after it. Each runs
//! under the supervisor in its own temporary directory; each is journaled (intent with
//! its directory, then its pid and start ticks) so `recover` stops what a dead run left.
//! Teardown (reverse order) runs on every exit path: [`SetupSet`] tears down on drop.

pub mod postgres;
pub mod progress;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults::FaultRecord;
use crate::interrupt::Interrupt;
use crate::journal::{Event, Journal, JournalError};
use crate::spec::{RestartPolicy, SetupService};
use crate::sys::child::ChildError;
use crate::sys::supervisor::{Launch, SupervisedCommand, Supervisor, SupervisorError};
use progress::SetupProgress;

/// A setup service could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A declared port is taken: the runner refuses to start.
    #[error("{field}: port {port} is already in use on this machine; stop what listens there or pick another port")]
    PortInUse {
        /// The field declaring it (`spec.setup[0].readyPort`).
        field: String,
        /// The port.
        port: u16,
    },
    /// PostgreSQL is missing.
    #[error("{field}: {source}")]
    Missing {
        /// The field (`spec.setup[0].postgres`).
        field: String,
        /// What is missing and how to install it.
        #[source]
        source: postgres::PostgresError,
    },
    /// The service did not start or become ready.
    #[error("setup service `{name}`: {source}{log}")]
    Start {
        /// The service.
        name: String,
        /// Why.
        #[source]
        source: ServiceError,
        /// The end of its output (`; its output ends: ...`), or empty.
        log: String,
    },
    /// A stop signal came before the service started.
    #[error("setup service `{name}`: not started: {reason}")]
    NotStarted {
        /// The service.
        name: String,
        /// `interrupted (SIGINT)` or `terminated (SIGTERM)`.
        reason: String,
    },
    /// The run's journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Why one setup service did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Its old directory could not be removed.
    #[error(transparent)]
    RemoveDir(#[from] ChildError),
    /// Its directory could not be created.
    #[error("{}: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PostgreSQL could not be prepared or its database created.
    #[error(transparent)]
    Postgres(#[from] postgres::PostgresError),
    /// The supervised command did not start or become ready.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// The service has no command.
    #[error("no command")]
    NoCommand,
    /// The runner's working directory could not be read.
    #[error("current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl SetupError {
    /// Whether the run was refused before anything started (invalid input, exit 3).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SetupError::PortInUse { .. } | SetupError::Missing { .. }
        )
    }
}

/// The journal name of setup service `name`.
///
/// ```
/// assert_eq!(chaos_runner::setup::journal_name("db"), "setup/db");
/// ```
pub fn journal_name(name: &str) -> String {
    format!("setup/{name}")
}

/// Whether something listens on (or holds) `127.0.0.1:port`.
///
/// ```
/// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// assert!(chaos_runner::setup::port_in_use(l.local_addr().unwrap().port()));
/// ```
pub fn port_in_use(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpListener::bind(addr).is_err()
        || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Checks, before anything starts, that the `readyPort` of every fault's supervised
/// `command` is free: a port already taken would pass for the command being ready.
pub fn preflight_supervised(faults: &[crate::spec::FaultSpec]) -> Result<(), SetupError> {
    for (i, f) in faults.iter().enumerate() {
        let port = f
            .selector
            .process
            .as_ref()
            .filter(|p| p.command.is_some())
            .and_then(|p| p.ready_port);
        if let Some(port) = port.filter(|p| port_in_use(*p)) {
            return Err(SetupError::PortInUse {
                field: format!("spec.faults[{i}].selector.process.readyPort"),
                port,
            });
        }
    }
    Ok(())
}

/// Checks, before anything starts, that every declared port is free and that PostgreSQL
/// is installed when a service needs it.
pub fn preflight(services: &[SetupService]) -> Result<(), SetupError> {
    for (i, svc) in services.iter().enumerate() {
        let here = format!("spec.setup[{i}]");
        let declared = [
            svc.postgres
                .as_ref()
                .map(|p| (p.port, format!("{here}.postgres.port"))),
            svc.ready_port.map(|p| (p, format!("{here}.readyPort"))),
        ];
        for (port, field) in declared.into_iter().flatten() {
            if port_in_use(port) {
                return Err(SetupError::PortInUse { field, port });
            }
        }
        if let Some(pg) = &svc.postgres {
            postgres::bin_dir(pg.version).map_err(|source| SetupError::Missing {
                field: format!("{here}.postgres"),
                source,
            })?;
        }
    }
    Ok(())
}

struct Running {
    name: String,
    supervisor: Supervisor,
    dir: PathBuf,
}

/// The run's setup services; stops them (reverse order), removes their directories and
/// journals it, when dropped or [`SetupSet::teardown`] is called.
pub struct SetupSet {
    running: Vec<Running>,
    journal: Option<Journal>,
}

impl std::fmt::Debug for SetupSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupSet")
            .field(
                "services",
                &self.running.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn remove_dir(dir: &Path) -> Result<(), ChildError> {
    crate::sys::child::remove_dir_if_any(dir)
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("output.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            "; its output ends: {}",
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    }
}

impl SetupSet {
    /// An empty set journaling to `journal` (a handle on the run's journal file).
    fn new(journal: Option<Journal>) -> SetupSet {
        SetupSet {
            running: Vec::new(),
            journal,
        }
    }

    fn append(&mut self, event: Event) -> Result<(), JournalError> {
        match &mut self.journal {
            Some(j) => j.append(event),
            None => Ok(()),
        }
    }

    /// Starts `services` in order, each ready before the next; on a failure stops the
    /// ones already started. `journal` is the run's journal file. A stop signal seen by
    /// `interrupt` ends the waits at once (an error naming the signal). `progress` hears
    /// each service starting, still waiting and ready.
    pub fn start(
        services: &[SetupService],
        run_id: &str,
        journal: Option<&Path>,
        interrupt: &Interrupt,
        progress: &mut dyn FnMut(SetupProgress),
    ) -> Result<SetupSet, SetupError> {
        let journal = journal.map(Journal::open).transpose()?;
        let mut set = SetupSet::new(journal);
        for svc in services {
            if let Some(reason) = interrupt.reason() {
                return Err(SetupError::NotStarted {
                    name: svc.name.clone(),
                    reason,
                });
            }
            set.start_one(svc, run_id, interrupt, progress)?;
        }
        Ok(set)
    }

    fn start_one(
        &mut self,
        svc: &SetupService,
        run_id: &str,
        interrupt: &Interrupt,
        progress: &mut dyn FnMut(SetupProgress),
    ) -> Result<(), SetupError> {
        let fail = |source: ServiceError, log: String| SetupError::Start {
            name: svc.name.clone(),
            source,
            log,
        };
        let dir = std::env::temp_dir().join(format!("chaos-setup-{run_id}-{}", svc.name));
        let journal_name = journal_name(&svc.name);
        self.append(Event::Intent {
            fault: journal_name.clone(),
            description: format!("setup service `{}` in {}", svc.name, dir.display()),
            record: Some(FaultRecord::SetupService {
                pid: None,
                start_ticks: 0,
                dir: dir.clone(),
            }),
        })
        .map_err(|e| fail(e.into(), String::new()))?;
        let started = self.launch(svc, &dir, interrupt, progress);
        let supervisor = match started {
            Ok(s) => s,
            Err(source) => {
                let tail = log_tail(&dir);
                let _ = remove_dir(&dir);
                let _ = self.append(Event::Reverted {
                    fault: journal_name,
                });
                return Err(fail(source, tail));
            }
        };
        let (pid, start_ticks) = supervisor.current().unwrap_or((0, 0));
        tracing::info!(service = %svc.name, pid, dir = %dir.display(), "setup service ready");
        self.running.push(Running {
            name: svc.name.clone(),
            supervisor,
            dir: dir.clone(),
        });
        self.append(Event::Injected {
            fault: journal_name,
            record: FaultRecord::SetupService {
                pid: Some(pid),
                start_ticks,
                dir,
            },
        })
        .map_err(|e| fail(e.into(), String::new()))
    }

    /// Starts one service and waits until it is ready (and, for PostgreSQL, has its
    /// database).
    fn launch(
        &self,
        svc: &SetupService,
        dir: &Path,
        interrupt: &Interrupt,
        progress: &mut dyn FnMut(SetupProgress),
    ) -> Result<Supervisor, ServiceError> {
        remove_dir(dir)?;
        std::fs::create_dir_all(dir).map_err(|source| ServiceError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        if let Some(pg) = &svc.postgres {
            let (command, mut launch) = postgres::prepare(&svc.name, pg, dir, svc.ready_timeout)?;
            launch.interrupt = interrupt.clone();
            let supervisor = progress::start_supervised(command, launch, progress)?;
            postgres::create_database(pg, interrupt)?;
            return Ok(supervisor);
        }
        let mut argv = svc.command.clone().unwrap_or_default();
        if argv.is_empty() {
            return Err(ServiceError::NoCommand);
        }
        // Relative paths (a program with a `/`, the cwd) are relative to the runner's
        // working directory, not to the service's.
        let here = std::env::current_dir().map_err(ServiceError::CurrentDir)?;
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = here.join(&argv[0]).display().to_string();
        }
        let mut env: Vec<(String, String)> = svc
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.push(("CHAOS_SETUP_DIR".into(), dir.display().to_string()));
        let command = SupervisedCommand {
            name: svc.name.clone(),
            argv,
            restart: RestartPolicy::Never,
            ready_port: svc.ready_port,
            ready_timeout: svc.ready_timeout,
        };
        let launch = Launch {
            env,
            cwd: Some(
                svc.cwd
                    .as_ref()
                    .map_or_else(|| dir.to_owned(), |c| here.join(c)),
            ),
            log: Some(dir.join("output.log")),
            ready_http: svc.ready_http.clone(),
            stop_signal: libc::SIGTERM,
            interrupt: interrupt.clone(),
        };
        Ok(progress::start_supervised(command, launch, progress)?)
    }

    /// Names of the running services, in start order.
    pub fn names(&self) -> Vec<String> {
        self.running.iter().map(|r| r.name.clone()).collect()
    }

    /// Stops every service (reverse order), removes its directory and journals it;
    /// returns the problems, if any.
    pub fn teardown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Some(r) = self.running.pop() {
            r.supervisor.stop();
            let event = match remove_dir(&r.dir) {
                Ok(()) => Event::Reverted {
                    fault: journal_name(&r.name),
                },
                Err(error) => {
                    problems.push(format!("setup service `{}`: {error}", r.name));
                    Event::RevertFailed {
                        fault: journal_name(&r.name),
                        error: error.to_string(),
                    }
                }
            };
            if let Err(e) = self.append(event) {
                problems.push(e.to_string());
            }
            tracing::info!(service = %r.name, "setup service stopped");
        }
        problems
    }
}

impl Drop for SetupSet {
    fn drop(&mut self) {
        self.teardown();
    }
}
