//! The built-in PostgreSQL setup service: `initdb` in the service's temporary directory,
//! `postgres` on `127.0.0.1:<port>` under the supervisor, then `createdb`. As root, the
//! server programs run as the `postgres` user through `setpriv` (they refuse root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::interrupt::Interrupt;
use crate::spec::{PostgresSetup, RestartPolicy};
use crate::sys::supervisor::{Launch, SupervisedCommand};

/// Where the PostgreSQL packages put their programs.
const ROOT: &str = "/usr/lib/postgresql";

/// The one-line install hint for a machine without PostgreSQL.
pub const INSTALL_HINT: &str = "install it with `sudo apt-get install -y postgresql`";

/// PostgreSQL could not be found, prepared or started as a setup service.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// PostgreSQL (of the asked version) is not installed.
    #[error("{which} is not installed (no {ROOT}/*/bin/initdb); {INSTALL_HINT}")]
    NotInstalled {
        /// `PostgreSQL` or `PostgreSQL 16`.
        which: String,
    },
    /// `/etc/passwd` could not be read.
    #[error("/etc/passwd: {0}")]
    Passwd(#[source] std::io::Error),
    /// Running as root without a `postgres` user.
    #[error("running as root needs a `postgres` user to run the server; {INSTALL_HINT}")]
    NoPostgresUser,
    /// A directory could not be created.
    #[error("{}: {source}", .dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be given to the `postgres` user.
    #[error("chown {}: {source}", .dir.display())]
    Chown {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be run.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("`{program}` failed ({status}): {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The last lines of its stderr, joined with ` | `.
        stderr: String,
    },
    /// The server did not accept connections in time.
    #[error("PostgreSQL on port {port} did not accept connections within {}", humantime::format_duration(*.timeout))]
    NotAccepting {
        /// Its port.
        port: u16,
        /// The wait.
        timeout: Duration,
    },
    /// A stop signal ended the wait.
    #[error("{0}")]
    Interrupted(String),
}

/// The `bin` directory of PostgreSQL `version`, or of the newest installed.
///
/// ```
/// // Either found, or the error carries the install hint.
/// match chaos_runner::setup::postgres::bin_dir(None) {
///     Ok(dir) => assert!(dir.join("initdb").exists()),
///     Err(e) => assert!(e.to_string().contains("apt-get install")),
/// }
/// ```
pub fn bin_dir(version: Option<u32>) -> Result<PathBuf, PostgresError> {
    let root = Path::new(ROOT);
    let found = match version {
        Some(v) => Some(root.join(v.to_string()).join("bin")).filter(|b| b.join("initdb").exists()),
        None => std::fs::read_dir(root)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .max_by_key(|(v, _)| *v)
            .map(|(_, bin)| bin),
    };
    found.ok_or_else(|| PostgresError::NotInstalled {
        which: version.map_or("PostgreSQL".to_owned(), |v| format!("PostgreSQL {v}")),
    })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_ids() -> Result<(u32, u32), PostgresError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(PostgresError::Passwd)?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .ok_or(PostgresError::NoPostgresUser)
}

/// The argument vector running `program` as the `postgres` user when root.
fn as_postgres(program: &Path, args: &[String], pdeathsig: Option<&str>) -> Vec<String> {
    let mut argv = Vec::new();
    if is_root() {
        argv.extend(
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]
            .map(str::to_owned),
        );
        if let Some(sig) = pdeathsig {
            argv.push("--pdeathsig".to_owned());
            argv.push(sig.to_owned());
        }
        argv.push("--".to_owned());
    }
    argv.push(program.display().to_string());
    argv.extend(args.iter().cloned());
    argv
}

fn run(argv: &[String]) -> Result<(), PostgresError> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|source| PostgresError::Spawn {
            program: argv[0].clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(PostgresError::Failed {
            program: argv
                .iter()
                .skip_while(|a| *a != "--")
                .nth(1)
                .unwrap_or(&argv[0])
                .clone(),
            status: out.status,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        })
    }
}

/// Prepares `dir` (initdb) and returns the supervised server command.
pub fn prepare(
    name: &str,
    pg: &PostgresSetup,
    dir: &Path,
    ready_timeout: Duration,
) -> Result<(SupervisedCommand, Launch), PostgresError> {
    let bin = bin_dir(pg.version)?;
    let data = dir.join("data");
    let sockets = dir.join("sock");
    for d in [&data, &sockets] {
        std::fs::create_dir_all(d).map_err(|source| PostgresError::CreateDir {
            dir: d.clone(),
            source,
        })?;
    }
    if is_root() {
        let (uid, gid) = postgres_ids()?;
        for d in [dir, &data, &sockets] {
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).map_err(|source| {
                PostgresError::Chown {
                    dir: d.to_path_buf(),
                    source,
                }
            })?;
        }
    }
    run(&as_postgres(
        &bin.join("initdb"),
        &[
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "--no-sync".into(),
            "-E".into(),
            "UTF8".into(),
        ],
        None,
    ))?;
    let argv = as_postgres(
        &bin.join("postgres"),
        &[
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            pg.port.to_string(),
            "-k".into(),
            sockets.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "fsync=off".into(),
        ],
        // Fast shutdown if the runner dies (a smart one waits for every client).
        Some("INT"),
    );
    Ok((
        SupervisedCommand {
            name: name.to_owned(),
            argv,
            restart: RestartPolicy::Never,
            ready_port: Some(pg.port),
            ready_timeout,
        },
        Launch {
            log: Some(dir.join("output.log")),
            stop_signal: libc::SIGINT,
            ..Launch::default()
        },
    ))
}

/// How long a server whose port is open may take to finish starting up (recovery).
const ACCEPTING_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until the server accepts connections (`pg_isready`): its port opens before it
/// does, and a client connecting in between gets "the database system is starting up".
/// Ends early, with the signal's reason, when `interrupt` fires.
pub fn wait_accepting(
    pg: &PostgresSetup,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<(), PostgresError> {
    let bin = bin_dir(pg.version)?;
    let deadline = std::time::Instant::now() + timeout;
    let port = pg.port.to_string();
    loop {
        let status = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port, "-t", "1"])
            .status()
            .map_err(|source| PostgresError::Spawn {
                program: "pg_isready".to_owned(),
                source,
            })?;
        if status.success() {
            return Ok(());
        }
        if let Some(reason) = interrupt.reason() {
            return Err(PostgresError::Interrupted(reason));
        }
        if std::time::Instant::now() >= deadline {
            return Err(PostgresError::NotAccepting {
                port: pg.port,
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates the service's database once the server accepts connections (the wait ends
/// when `interrupt` fires).
pub fn create_database(pg: &PostgresSetup, interrupt: &Interrupt) -> Result<(), PostgresError> {
    wait_accepting(pg, ACCEPTING_TIMEOUT, interrupt)?;
    if pg.database == "postgres" {
        return Ok(());
    }
    let bin = bin_dir(pg.version)?;
    run(&[
        bin.join("createdb").display().to_string(),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        pg.port.to_string(),
        "-U".into(),
        "postgres".into(),
        pg.database.clone(),
    ])
}
