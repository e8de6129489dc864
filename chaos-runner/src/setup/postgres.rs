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

/// The `bin` directory of PostgreSQL `version`, or of the newest installed.
///
/// ```
/// // Either found, or the error carries the install hint.
/// match chaos_runner::setup::postgres::bin_dir(None) {
///     Ok(dir) => assert!(dir.join("initdb").exists()),
///     Err(e) => assert!(e.contains("apt-get install")),
/// }
/// ```
pub fn bin_dir(version: Option<u32>) -> Result<PathBuf, String> {
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
    found.ok_or_else(|| {
        let which = version.map_or("PostgreSQL".to_owned(), |v| format!("PostgreSQL {v}"));
        format!("{which} is not installed (no {ROOT}/*/bin/initdb); {INSTALL_HINT}")
    })
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres"))
                .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
        .ok_or_else(|| {
            format!("running as root needs a `postgres` user to run the server; {INSTALL_HINT}")
        })
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

fn run(argv: &[String]) -> Result<(), String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "`{}` failed ({}): {}",
            argv.iter()
                .skip_while(|a| *a != "--")
                .nth(1)
                .unwrap_or(&argv[0]),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Prepares `dir` (initdb) and returns the supervised server command.
pub fn prepare(
    name: &str,
    pg: &PostgresSetup,
    dir: &Path,
    ready_timeout: Duration,
) -> Result<(SupervisedCommand, Launch), String> {
    let bin = bin_dir(pg.version)?;
    let data = dir.join("data");
    let sockets = dir.join("sock");
    for d in [&data, &sockets] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    if is_root() {
        let (uid, gid) = postgres_ids()?;
        for d in [dir, &data, &sockets] {
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", d.display()))?;
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
) -> Result<(), String> {
    let bin = bin_dir(pg.version)?;
    let deadline = std::time::Instant::now() + timeout;
    let port = pg.port.to_string();
    loop {
        let status = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port, "-t", "1"])
            .status()
            .map_err(|e| format!("cannot run pg_isready: {e}"))?;
        if status.success() {
            return Ok(());
        }
        if let Some(reason) = interrupt.reason() {
            return Err(reason);
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "PostgreSQL on port {port} did not accept connections within {}",
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates the service's database once the server accepts connections (the wait ends
/// when `interrupt` fires).
pub fn create_database(pg: &PostgresSetup, interrupt: &Interrupt) -> Result<(), String> {
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
