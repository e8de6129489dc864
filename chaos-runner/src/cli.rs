//! The command line: `validate`, `schema`, `plan`, `run`, `recover`, `doctor`, `proxy` and the
//! helper `stress` commands. It parses, builds options and calls into the library.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use crate::exit::Outcome;
use crate::spec;

/// Runs YAML chaos experiments against game services and always puts the system back.
#[derive(Debug, Parser)]
#[command(name = "chaos-runner", version, about)]
pub struct Cli {
    /// Output for machines (`json`) or people (`text`, the default).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// A stable JSON document on stdout.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check experiment and SLO files; every problem is reported with file, field and line.
    Validate {
        /// Files to check (experiments or SLO sets, told apart by `kind`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of experiment files (or SLO files with `--slo`).
    Schema {
        /// The SLO file schema instead.
        #[arg(long)]
        slo: bool,
    },
    /// Run an experiment: preflight, inject, watch, revert, verify, report.
    Run {
        /// The experiment.
        file: PathBuf,
        /// Where run journals live (see `recover`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Revert an earlier run's live faults first instead of refusing to start.
        #[arg(long)]
        recover: bool,
    },
    /// Dry run: print exactly what would be injected and checked; injects nothing.
    Plan {
        /// The experiment.
        file: PathBuf,
    },
    /// Check, with SelfSubjectAccessReviews, that the current Kubernetes identity may do
    /// what each fault of an experiment needs. Changes nothing.
    Doctor {
        /// The experiment.
        file: PathBuf,
    },
    /// Revert every fault a crashed or killed run left live, as recorded in the journals.
    Recover {
        /// Where run journals live (default: $CHAOS_RUNNER_STATE_DIR, else
        /// $XDG_STATE_HOME/chaos-runner, else ~/.local/state/chaos-runner).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Run the TCP fault proxy with its toxiproxy-v2-compatible admin API until
    /// SIGINT/SIGTERM (toxiproxy's Python, Node, Go and Chaos Toolkit clients drive it).
    Proxy {
        /// Admin API address. Anything but loopback needs --allow-remote-admin.
        #[arg(long, default_value = "127.0.0.1:8474")]
        listen: String,
        /// Allow the admin API on a non-loopback address (anyone who reaches it can
        /// break or redirect every proxied connection).
        #[arg(long)]
        allow_remote_admin: bool,
        /// Proxies to create at start: a JSON list like toxiproxy's `POST /populate`
        /// (`[{"name", "listen", "upstream", "enabled", "protocol", "toxics"}]`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long a connection's pass-through keeps polling for the next bytes after
        /// each exchange instead of sleeping (no wake-up per hop; costs CPU while traffic
        /// flows). 0 turns it off; at most 10ms.
        #[arg(long, default_value = "200us", value_parser = busy_poll_window)]
        busy_poll: std::time::Duration,
        /// Threads relaying connections, 1 to 256 (default: one per core). Fewer leave
        /// cores to the client and the service behind the proxy.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        workers: Option<u16>,
        /// Whether a relay thread yields its core after each chunk of a bulk transfer, so
        /// the sender and the receiver run before it takes the next (bigger) chunk:
        /// `true` or `false`.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        bulk_yield: bool,
    },
    /// Stress workers run by faults (internal; started by the runner itself).
    #[command(hide = true)]
    Stress {
        /// What to stress.
        #[command(subcommand)]
        kind: StressKind,
    },
}

/// Stress workers.
#[derive(Debug, Subcommand)]
pub enum StressKind {
    /// Keep CPUs busy.
    Cpu {
        /// Busy threads (1 to 256).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
        workers: u32,
        /// Busy share of each thread in percent (1 to 100).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
        load: u8,
        /// Stop after this long (e.g. `30s`); at most 24h.
        #[arg(long, value_parser = parse_duration)]
        duration: std::time::Duration,
        /// The run this worker belongs to (lets `recover` find it).
        #[arg(long, default_value = "")]
        run_id: String,
        /// The fault this worker belongs to.
        #[arg(long, default_value = "")]
        fault: String,
        /// End at once, exit status 0, on SIGTERM/SIGINT/SIGHUP (in-pod helpers, which
        /// may be the init of their PID namespace).
        #[arg(long)]
        exit_on_term: bool,
        /// Never run past this time (seconds since the Unix epoch): the fault's end.
        #[arg(long)]
        not_after: Option<u64>,
    },
    /// Hold memory.
    Memory {
        /// Bytes to map.
        #[arg(long)]
        bytes: u64,
        /// Write every page so it is resident.
        #[arg(long)]
        touch: bool,
        /// Stop after this long; at most 24h.
        #[arg(long, value_parser = parse_duration)]
        duration: std::time::Duration,
        /// The run this worker belongs to.
        #[arg(long, default_value = "")]
        run_id: String,
        /// The fault this worker belongs to.
        #[arg(long, default_value = "")]
        fault: String,
        /// End at once, exit status 0, on SIGTERM/SIGINT/SIGHUP (in-pod helpers, which
        /// may be the init of their PID namespace).
        #[arg(long)]
        exit_on_term: bool,
        /// Never run past this time (seconds since the Unix epoch): the fault's end.
        #[arg(long)]
        not_after: Option<u64>,
    },
    /// Fill a filesystem with one file, deleted at the end.
    Disk {
        /// The file to create (must not exist).
        #[arg(long)]
        path: PathBuf,
        /// Bytes to allocate.
        #[arg(long)]
        bytes: u64,
        /// Refuse to leave less free than this.
        #[arg(long, default_value_t = 0)]
        keep_free: u64,
        /// Delete the file after this long; at most 24h.
        #[arg(long, value_parser = parse_duration)]
        duration: std::time::Duration,
        /// The run this worker belongs to.
        #[arg(long, default_value = "")]
        run_id: String,
        /// The fault this worker belongs to.
        #[arg(long, default_value = "")]
        fault: String,
    },
    /// Resume a paused process after a while, or when the runner dies.
    Resume {
        /// The paused process.
        #[arg(long)]
        pid: u32,
        /// Its start ticks (so a reused pid is left alone).
        #[arg(long)]
        start_ticks: u64,
        /// Resume after this long; at most 24h.
        #[arg(long, value_parser = parse_duration)]
        after: std::time::Duration,
        /// The run this worker belongs to.
        #[arg(long, default_value = "")]
        run_id: String,
        /// The fault this worker belongs to.
        #[arg(long, default_value = "")]
        fault: String,
    },
    /// In-pod network helper: adds a netem root qdisc to an interface of its network
    /// namespace, holds it for `--duration` (or until SIGTERM), then removes it.
    Netem {
        /// The interface (e.g. `eth0`).
        #[arg(long, value_parser = interface_arg)]
        interface: String,
        /// Added delay (e.g. `100ms`).
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<std::time::Duration>,
        /// Random variation around the delay.
        #[arg(long, value_parser = humantime::parse_duration)]
        jitter: Option<std::time::Duration>,
        /// Share of packets dropped, in percent.
        #[arg(long, value_parser = loss_arg)]
        loss: Option<f64>,
        /// Remove the qdisc after this long; at most 24h.
        #[arg(long, value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Never hold it past this time (seconds since the Unix epoch).
        #[arg(long)]
        not_after: Option<u64>,
        /// The run this helper belongs to (names the qdisc's handle).
        #[arg(long)]
        run_id: String,
        /// The fault this helper belongs to.
        #[arg(long)]
        fault: String,
    },
    /// In-pod helper of `container-kill`: sends a signal to PID 1 of its PID namespace
    /// (the target container's main process), if PID 1 would take it.
    SignalInit {
        /// `TERM`, `INT`, `QUIT` or `HUP`.
        #[arg(long, value_parser = signal_arg)]
        signal: crate::spec::params::pod_helper::CatchableSignal,
        /// Do nothing after this time (seconds since the Unix epoch): the fault is over.
        #[arg(long)]
        not_after: Option<u64>,
        /// The run this helper belongs to.
        #[arg(long, default_value = "")]
        run_id: String,
        /// The fault this helper belongs to.
        #[arg(long, default_value = "")]
        fault: String,
    },
    /// Stops the in-pod helpers of a run's fault visible in this PID namespace (SIGTERM),
    /// waiting until they are gone.
    Stop {
        /// The run.
        #[arg(long)]
        run_id: String,
        /// The fault.
        #[arg(long)]
        fault: String,
        /// How long the helpers may take to end.
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        grace: std::time::Duration,
    },
    /// Watchdog of a kernel network fault: removes an nftables table or a root qdisc after
    /// `--after`, on SIGTERM, or when the runner dies.
    ExpireNet {
        /// Remove after this long (e.g. `30s`); at most 24h.
        #[arg(long, value_parser = parse_duration)]
        after: std::time::Duration,
        /// The named network namespace (the host's when absent).
        #[arg(long, value_parser = netns_arg)]
        netns: Option<String>,
        /// The nftables `inet` table to delete.
        #[arg(long, conflicts_with = "interface", required_unless_present = "interface", value_parser = table_arg)]
        table: Option<String>,
        /// The interface whose root qdisc to delete (with `--handle`).
        #[arg(long, requires = "handle", value_parser = interface_arg)]
        interface: Option<String>,
        /// The root qdisc's handle major number (only that qdisc is deleted).
        #[arg(long)]
        handle: Option<u16>,
    },
}

fn signal_arg(text: &str) -> Result<crate::spec::params::pod_helper::CatchableSignal, String> {
    crate::spec::params::pod_helper::CatchableSignal::parse(text)
        .ok_or_else(|| "must be TERM, INT, QUIT or HUP".to_owned())
}

fn loss_arg(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && *l > 0.0 && *l <= 100.0)
        .ok_or_else(|| "must be a percentage above 0, at most 100".to_owned())
}

fn netns_arg(text: &str) -> Result<String, String> {
    crate::spec::params::network::is_netns_name(text)
        .then(|| text.to_owned())
        .ok_or_else(|| "not a network namespace name".to_owned())
}

fn interface_arg(text: &str) -> Result<String, String> {
    crate::spec::params::network::is_interface_name(text)
        .then(|| text.to_owned())
        .ok_or_else(|| "not an interface name".to_owned())
}

fn table_arg(text: &str) -> Result<String, String> {
    (text.starts_with("chaos_")
        && text.len() <= 200
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| text.to_owned())
    .ok_or_else(|| "not a chaos-runner table name (chaos_...)".to_owned())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() || d > std::time::Duration::from_secs(86_400) {
        return Err("must be above zero and at most 24h".to_owned());
    }
    Ok(d)
}

/// `--busy-poll`: a duration from 0 to 10ms (longer would burn a core on every idle
/// gap of a chatty connection).
fn busy_poll_window(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d > std::time::Duration::from_millis(10) {
        return Err("must be at most 10ms (0 turns busy polling off)".to_owned());
    }
    Ok(d)
}

/// The state directory: the flag, else `$CHAOS_RUNNER_STATE_DIR`, else
/// `$XDG_STATE_HOME/chaos-runner`, else `~/.local/state/chaos-runner`.
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    if let Some(dir) = std::env::var_os("CHAOS_RUNNER_STATE_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("chaos-runner");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/state/chaos-runner")
}

/// Loads and checks an experiment, printing every problem; `None` means invalid input.
pub(crate) fn load_or_report(file: &std::path::Path) -> Option<spec::ValidatedExperiment> {
    match spec::load_experiment(file) {
        Ok(exp) => Some(exp),
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            None
        }
    }
}

/// Runs the command line and returns its outcome.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Validate { files } => validate(&files, cli.output),
        Command::Schema { slo } => {
            println!(
                "{}",
                if slo {
                    spec::slo_schema()
                } else {
                    spec::experiment_schema()
                }
            );
            Outcome::Passed
        }
        Command::Plan { file } => crate::plan::print(&file, cli.output),
        Command::Doctor { file } => crate::doctor::run(&file, cli.output),
        Command::Run {
            file,
            state_dir: dir,
            recover,
        } => crate::engine::run(
            &file,
            crate::engine::RunOptions {
                state_dir: state_dir(dir),
                recover_first: recover,
                output: cli.output,
                kube: None,
            },
        ),
        Command::Recover { state_dir: dir } => crate::recover::run(&state_dir(dir), cli.output),
        Command::Proxy {
            listen,
            allow_remote_admin,
            config,
            busy_poll,
            workers,
            bulk_yield,
        } => proxy(
            &listen,
            allow_remote_admin,
            config.as_deref(),
            Relay {
                busy_poll,
                workers,
                bulk_yield,
            },
        ),
        Command::Stress {
            kind:
                StressKind::Cpu {
                    workers,
                    load,
                    duration,
                    exit_on_term,
                    not_after,
                    ..
                },
        } => {
            let deadline = crate::stress::helper_deadline(duration, not_after);
            crate::stress::cpu_until(workers, load, deadline, exit_on_term);
            Outcome::Passed
        }
        Command::Stress {
            kind:
                StressKind::Netem {
                    interface,
                    delay,
                    jitter,
                    loss,
                    duration,
                    not_after,
                    run_id,
                    fault,
                },
        } => {
            let (delay, jitter) = (delay.unwrap_or_default(), jitter.unwrap_or_default());
            if delay.is_zero() && loss.is_none() {
                eprintln!("error: give --delay, --loss or both");
                return Outcome::InvalidInput;
            }
            let args = crate::faults::local::tc::netem_args(delay, jitter, loss.unwrap_or(0.0));
            let handle = crate::faults::local::tc::handle_for(&run_id, &fault);
            let deadline = crate::stress::helper_deadline(duration, not_after);
            match crate::stress::netem(&interface, handle, &args, deadline) {
                Ok(()) => Outcome::Passed,
                Err(e) => {
                    eprintln!("error: {e}");
                    Outcome::NotReverted
                }
            }
        }
        Command::Stress {
            kind: StressKind::SignalInit {
                signal, not_after, ..
            },
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if not_after.is_some_and(|t| now > t) {
                eprintln!("chaos-runner: the fault is over; not signalling");
                return Outcome::Passed;
            }
            match crate::stress::signal_init(signal.number(), signal.name()) {
                Ok(comm) => {
                    eprintln!("chaos-runner: sent SIG{} to PID 1 ({comm})", signal.name());
                    Outcome::Passed
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Outcome::InvalidInput
                }
            }
        }
        Command::Stress {
            kind:
                StressKind::Stop {
                    run_id,
                    fault,
                    grace,
                },
        } => match crate::stress::stop_helpers(&run_id, &fault, grace) {
            Ok(n) => {
                eprintln!("chaos-runner: stopped {n} helper(s) of {fault}");
                Outcome::Passed
            }
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::NotReverted
            }
        },
        Command::Stress {
            kind:
                StressKind::ExpireNet {
                    after,
                    netns,
                    table,
                    interface,
                    handle,
                },
        } => {
            use crate::faults::local::netcmd::WatchTarget;
            let target = match (table, interface, handle) {
                (Some(t), _, _) => WatchTarget::Table(t),
                (None, Some(interface), Some(handle)) => WatchTarget::Qdisc { interface, handle },
                _ => return Outcome::InvalidInput,
            };
            if crate::stress::expire_net(netns.as_deref(), &target, after) {
                Outcome::Passed
            } else {
                Outcome::NotReverted
            }
        }
        Command::Stress {
            kind:
                StressKind::Memory {
                    bytes,
                    touch,
                    duration,
                    exit_on_term,
                    not_after,
                    ..
                },
        } => stress_outcome(crate::stress::memory_until(
            bytes,
            touch,
            crate::stress::helper_deadline(duration, not_after),
            exit_on_term,
        )),
        Command::Stress {
            kind:
                StressKind::Disk {
                    path,
                    bytes,
                    keep_free,
                    duration,
                    ..
                },
        } => stress_outcome(crate::stress::disk(&path, bytes, keep_free, duration)),
        Command::Stress {
            kind:
                StressKind::Resume {
                    pid,
                    start_ticks,
                    after,
                    ..
                },
        } => {
            crate::stress::resume(pid, start_ticks, after);
            Outcome::Passed
        }
    }
}

fn stress_outcome(result: Result<(), String>) -> Outcome {
    match result {
        Ok(()) => Outcome::Passed,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::InvalidInput
        }
    }
}

/// How `chaos-runner proxy` relays: its `--busy-poll`, `--workers` and `--bulk-yield`.
struct Relay {
    busy_poll: std::time::Duration,
    workers: Option<u16>,
    bulk_yield: bool,
}

/// `chaos-runner proxy`: checks the flags and the config (exit 3 naming the field),
/// serves until SIGINT/SIGTERM, then closes every proxy.
fn proxy(
    listen: &str,
    allow_remote_admin: bool,
    config: Option<&std::path::Path>,
    relay: Relay,
) -> Outcome {
    use fault_proxy::server::{default_workers, ProxyServer, ServerOptions};
    use fault_proxy::ProxyInput;
    use std::io::Write;

    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("error: --listen: `{listen}` is not an IP address and port: {e}");
            return Outcome::InvalidInput;
        }
    };
    if !addr.ip().is_loopback() && !allow_remote_admin {
        eprintln!(
            "error: --listen: {addr} is not a loopback address; the admin API can break or \
             redirect every proxied connection, so pass --allow-remote-admin to expose it"
        );
        return Outcome::InvalidInput;
    }
    let mut lines = Vec::new();
    let proxies: Vec<ProxyInput> = match config {
        None => Vec::new(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: --config: cannot read {}: {e}", path.display());
                    return Outcome::InvalidInput;
                }
            };
            lines = element_lines(&text);
            let mut de = serde_json::Deserializer::from_str(&text);
            match serde_path_to_error::deserialize(&mut de) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!(
                        "error: {}: field `{}`: {}",
                        path.display(),
                        e.path(),
                        e.inner()
                    );
                    return Outcome::InvalidInput;
                }
            }
        }
    };
    // SIGINT/SIGTERM are taken from before the first socket opens: one that comes while
    // the proxies start still stops them cleanly (tokio keeps it until it is awaited).
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
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    });
    let (mut int, mut term) = match signals {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return Outcome::InvalidInput;
        }
    };
    let server = match ProxyServer::start_with(ServerOptions {
        api: Some(addr),
        workers: relay.workers.map_or_else(default_workers, usize::from),
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --listen: {e}");
            return Outcome::InvalidInput;
        }
    };
    // `protocol: postgres|redis` proxies relay through the protocol-aware relays (no
    // rules set: they pass everything until a run's faults add some).
    fault_proxy::dbproto::DbRelays::default().register(server.registry());
    server.registry().set_busy_poll(relay.busy_poll);
    server.registry().set_bulk_yield(relay.bulk_yield);
    if let Err(e) = server.registry().populate(proxies) {
        let file = config.map(|p| p.display().to_string()).unwrap_or_default();
        // `proxies[i].<field>: ...`: point at the line where that proxy's entry starts.
        let line = e
            .message
            .strip_prefix("proxies[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| lines.get(i))
            .map(|line| format!(":{line}"))
            .unwrap_or_default();
        eprintln!("error: {file}{line}: {}", e.message);
        return Outcome::InvalidInput;
    }
    let api = server.api_addr().unwrap_or(addr);
    // Whoever reads stdout may be gone (a closed pipe must not stop the server).
    let mut out = std::io::stdout();
    let _ = writeln!(out, "proxy admin API listening on http://{api}");
    for (name, p) in server.registry().list() {
        let _ = writeln!(out, "proxy {name}: {} -> {}", p.listen, p.upstream);
    }
    let _ = out.flush();
    let signal = runtime.block_on(async {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    });
    server.shutdown();
    let _ = writeln!(out, "proxy stopped ({signal})");
    Outcome::Passed
}

/// The line (1-based) on which each element of the JSON list `text` starts; empty when
/// `text` is not a JSON list.
fn element_lines(text: &str) -> Vec<usize> {
    let Ok(items) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) else {
        return Vec::new();
    };
    let base = text.as_ptr() as usize;
    items
        .iter()
        .map(|raw| {
            let offset = (raw.get().as_ptr() as usize).saturating_sub(base);
            text.get(..offset)
                .map_or(0, |before| before.matches('\n').count())
                + 1
        })
        .collect()
}

fn validate(files: &[PathBuf], output: Output) -> Outcome {
    let mut results = Vec::new();
    for file in files {
        let errors: Vec<spec::SpecError> = match spec::document_kind(file) {
            Err(e) => vec![e],
            Ok(kind) if kind == "SLOSet" => match spec::load_slo_set(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
            Ok(_) => match spec::load_experiment(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
        };
        results.push((file.display().to_string(), errors));
    }
    let ok = results.iter().all(|(_, e)| e.is_empty());
    match output {
        Output::Text => {
            for (file, errors) in &results {
                if errors.is_empty() {
                    println!("ok: {file}");
                }
                for e in errors {
                    eprintln!("error: {e}");
                }
            }
        }
        Output::Json => {
            let files: Vec<serde_json::Value> = results
                .iter()
                .map(|(file, errors)| {
                    serde_json::json!({
                        "file": file,
                        "valid": errors.is_empty(),
                        "errors": errors.iter().map(|e| serde_json::json!({
                            "field": e.field,
                            "line": e.location.map(|l| l.0),
                            "column": e.location.map(|l| l.1),
                            "message": e.message,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "command": "validate", "valid": ok, "files": files })
            );
        }
    }
    if ok {
        Outcome::Passed
    } else {
        Outcome::InvalidInput
    }
}
