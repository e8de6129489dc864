//! Real database servers for tests, each in its own temp dir on a free port: PostgreSQL
//! (started with the runner's own `setup::postgres` code, as `spec.setup` starts it).
//! Under `CI=true` a missing server binary fails the test. (redis-server is started by
//! fault-proxy's tests, which are the ones that need it.)

use std::net::SocketAddr;
use std::time::Duration;

use chaos_runner::spec::PostgresSetup;
use chaos_runner::sys::supervisor::Supervisor;

use super::ports::free_port;
use super::TempDir;

/// `false` (skip) when a server is missing outside CI; a failure under `CI=true`.
pub fn require(found: Result<(), String>) -> bool {
    match found {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{why} (scripts/test installs it)"
            );
            eprintln!("\n\n*** SKIPPING: {why}. Run scripts/test to install it. ***\n\n");
            false
        }
    }
}

/// A PostgreSQL server (the installed version, 15 on Debian 12) accepting connections as
/// `postgres` with trust authentication on 127.0.0.1; stopped on drop.
pub struct Postgres {
    pub port: u16,
    supervisor: Supervisor,
    _dir: TempDir,
}

impl Postgres {
    /// Starts it and waits until it accepts connections; `None` (skip) when PostgreSQL is
    /// not installed outside CI.
    ///
    /// The port is free when chosen, but initdb runs before the server binds it, and
    /// something else may take it meanwhile: a start that loses its port ("Address
    /// already in use") is tried again on another one, up to three times.
    pub fn start() -> Option<Postgres> {
        use chaos_runner::setup::postgres;
        use chaos_runner::sys::supervisor::SupervisorError;
        if !require(
            postgres::bin_dir(None)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ) {
            return None;
        }
        for attempt in 1.. {
            let setup = PostgresSetup {
                port: free_port(),
                database: "postgres".into(),
                version: None,
            };
            let dir = TempDir::new("test-pg");
            let (command, launch) =
                postgres::prepare("test-postgres", &setup, dir.path(), Duration::from_secs(60))
                    .expect("initdb");
            let supervisor = match Supervisor::start_with(command, launch) {
                Ok(supervisor) => supervisor,
                Err(e) => {
                    let log = dir.path().join("output.log");
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    let lost_port = matches!(e, SupervisorError::Exited { .. })
                        && output.contains("Address already in use");
                    if lost_port && attempt < 3 {
                        eprintln!("postgres lost its port {}, trying another", setup.port);
                        continue;
                    }
                    panic!("postgres starts: {e}; its output:\n{output}");
                }
            };
            postgres::wait_accepting(&setup, Duration::from_secs(60), &Default::default())
                .expect("postgres accepts");
            return Some(Postgres {
                port: setup.port,
                supervisor,
                _dir: dir,
            });
        }
        unreachable!("the loop returns or panics by its third attempt")
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.supervisor.stop();
    }
}
