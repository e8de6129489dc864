//! The command line: `validate`, `schema`, `plan`, `run`, `gate`, `gameday`, `recover`, `doctor`, `proxy` and the
//! helper `stress` commands. It parses, builds options and calls into the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::exit::Outcome;
use crate::journal::state_dir;
use crate::output::{load_or_report, Format};
use crate::spec;

/// Runs YAML chaos experiments against game services and always puts the system back.
#[derive(Debug, Parser)]
#[command(name = "chaos-runner", version, about)]
pub struct Cli {
    /// Output for machines (`json`) or people (`text`, the default).
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub output: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate from an SLO file what alerting needs: `slo rules`, their tests (`slo test`)
    /// and a Grafana dashboard (`slo dashboard`).
    Slo {
        /// What to generate.
        #[command(subcommand)]
        command: SloCommand,
    },
    /// Decide from an SLO file and Prometheus whether a deploy may go on: proceed, pause,
    /// roll back, or unknown (fails closed), by each SLO's error budget and policy.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = GATE_EXIT_CODES
    )]
    Gate(Box<GateArgs>),
    /// GameDays: a calendar of experiments run by an existing scheduler, in the studio's
    /// time zone, never in blackouts or maintenance nor on a low error budget.
    Gameday {
        /// What to do.
        #[command(subcommand)]
        command: GamedayCommand,
    },
    /// Check experiment, SLO, load scenario and GameDay files; every problem is reported
    /// with file, field and line.
    Validate {
        /// Files to check (told apart by `kind`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Hold a share of a run's WebSocket sessions for the runner that started it (its
    /// order on stdin, batches on stdout; ends when stdin closes).
    #[command(hide = true)]
    LoadWorker,
    /// Print the JSON Schema of experiment files (or SLO files with `--slo`, GameDay files
    /// with `--gameday`).
    Schema {
        /// The SLO file schema instead.
        #[arg(long, conflicts_with = "gameday")]
        slo: bool,
        /// The GameDay file schema instead.
        #[arg(long)]
        gameday: bool,
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
        /// In a log (stderr not a terminal), also write the hold's status at every check
        /// as a line of its own.
        #[arg(short, long)]
        verbose: bool,
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
    /// Serve the runs' live faults as Prometheus metrics (`chaos_runner_faults_live`,
    /// `chaos_runner_faults_orphaned`), read from the run journals at every scrape, until
    /// SIGINT/SIGTERM: dashboards mark chaos runs with them.
    Exporter {
        /// Address to serve `/metrics` on.
        #[arg(long, default_value = "127.0.0.1:9465")]
        listen: std::net::SocketAddr,
        /// Where run journals live (as for `run` and `recover`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
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
        kind: crate::helper::HelperCommand,
    },
}

/// `chaos-runner gameday ...`.
#[derive(Debug, Subcommand)]
pub enum GamedayCommand {
    /// The calendar of the next slots, each with whether it would run or be skipped and
    /// why (blackout, maintenance, overrun into one, outside the allowed windows, budget
    /// as read at --from). Changes nothing.
    Plan {
        /// The GameDay file (`kind: GameDay`).
        file: PathBuf,
        /// Start of the period: RFC 3339 or Unix seconds (default: now).
        #[arg(long, value_parser = parse_instant)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// End of the period (default: 14 days after --from).
        #[arg(long, value_parser = parse_instant)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// What the scheduler calls at a slot: checks the windows and the budget now, then
    /// runs the experiment (stopped at the next blackout) or records a skip with its
    /// reason; appends the outcome to the history. A skip exits 0; a run exits with the
    /// run's code (2 when stopped by a blackout).
    Run {
        /// The GameDay file.
        file: PathBuf,
        /// The entry (needed when the GameDay has several).
        #[arg(long)]
        entry: Option<String>,
        /// Judge the windows and the budget as if it were this instant (rehearsals,
        /// tests); the experiment runs now and its deadline keeps the same distance.
        #[arg(long, value_parser = parse_instant)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        /// Run even when called off the entry's schedule (windows and budget still apply).
        #[arg(long)]
        unscheduled: bool,
        /// Where run journals live (see `recover`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Revert an earlier run's live faults first instead of refusing to start.
        #[arg(long)]
        recover: bool,
        /// Keep each status line of the run in a log.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Hand the calendar to a scheduler: Kubernetes CronJobs (with RBAC, a ConfigMap of the
    /// files and a volume claim) or systemd timer and service units, written to --dir.
    #[command(group(clap::ArgGroup::new("scheduler").required(true).args(["kubernetes", "systemd"])))]
    Install {
        /// The GameDay file.
        file: PathBuf,
        /// CronJobs.
        #[arg(long)]
        kubernetes: bool,
        /// systemd timers and services.
        #[arg(long)]
        systemd: bool,
        /// The directory the files are written to.
        #[arg(long)]
        dir: PathBuf,
        /// Kubernetes: the namespace of the runner's objects.
        #[arg(long, default_value = "chaos", requires = "kubernetes")]
        namespace: String,
        /// Kubernetes: the runner's image.
        #[arg(long, default_value = "chaos-runner:dev", requires = "kubernetes")]
        image: String,
        /// systemd: the runner binary the services call (default: this one).
        #[arg(long, requires = "systemd")]
        runner: Option<PathBuf>,
        /// systemd: the services' working directory (history, reports, journals).
        #[arg(long, default_value = "/var/lib/chaos-runner", requires = "systemd")]
        workdir: PathBuf,
        /// systemd: copy the units to /etc/systemd/system and enable the timers.
        #[arg(long, requires = "systemd")]
        apply: bool,
    },
    /// Write the history as an HTML page and Markdown: a calendar of the period with each
    /// run's verdict and each skip's reason, budgets before and after, links to reports.
    Report {
        /// The GameDay file.
        file: PathBuf,
        /// Where to write the pages (default: the history's directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Only records from this instant.
        #[arg(long, value_parser = parse_instant)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Only records before this instant.
        #[arg(long, value_parser = parse_instant)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// The `gate` exit codes, in its `--help`.
const GATE_EXIT_CODES: &str = "Exit codes (a stable contract):
  0  proceed   every SLO judged has budget left under its pauseAt, no page alert burning
  1  pause     hold new deploys: pauseAt spent, a page alert burning, or a peak-hour freeze
  2  rollback  the running change must go back: rollbackAt spent (or a page alert burning
               under onPageAlert: rollback)
  3  invalid input (the SLO file, a flag)
  4  unknown   Prometheus unreachable, a query failed or no data: deploys hold (fail closed)";

/// `chaos-runner gate`.
#[derive(Debug, clap::Args)]
pub struct GateArgs {
    /// Serve the decision over HTTP instead (Argo Rollouts, Flagger).
    #[command(subcommand)]
    pub command: Option<GateCommand>,
    /// The SLO file (`kind: SLOSet`, or Sloth / OpenSLO).
    #[arg(required = true)]
    pub file: Option<PathBuf>,
    /// Prometheus to read the SLIs from.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Judge only these SLOs (repeat, or separate with commas; default: every SLO with an
    /// error budget).
    #[arg(long = "slo", value_delimiter = ',')]
    pub slos: Vec<String>,
    /// Judge at this instant instead of now: RFC 3339 (`2026-12-01T09:30:00Z`) or Unix
    /// seconds.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Deploy through a peak-hour freeze (the budget still decides).
    #[arg(long)]
    pub force: bool,
}

/// Where Prometheus is.
#[derive(Debug, clap::Args)]
pub struct PrometheusArgs {
    /// Prometheus base URL.
    #[arg(long = "prometheus", required = true)]
    pub url: Option<String>,
    /// Environment variable holding a bearer token for Prometheus.
    #[arg(long, conflicts_with = "prometheus_token_file")]
    pub prometheus_token_env: Option<String>,
    /// File holding a bearer token for Prometheus.
    #[arg(long)]
    pub prometheus_token_file: Option<String>,
    /// Timeout of one query (each reads the SLO's whole period); a query is tried twice.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub query_timeout: std::time::Duration,
}

impl PrometheusArgs {
    fn flags(&self) -> crate::gate::check::PrometheusFlags {
        crate::gate::check::PrometheusFlags {
            url: self.url.clone().unwrap_or_default(),
            token_env: self.prometheus_token_env.clone(),
            token_file: self.prometheus_token_file.clone(),
            timeout: self.query_timeout,
        }
    }
}

/// `chaos-runner gate serve`.
#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Answer over HTTP: `GET /v1/decision` (JSON for an Argo Rollouts Web metric),
    /// `POST /v1/flagger/{confirm-rollout,confirm-promotion,rollback}` (Flagger webhooks:
    /// 200 to go on), `/metrics`, `/healthz`; until SIGINT/SIGTERM.
    Serve {
        /// The SLO file.
        file: PathBuf,
        /// Prometheus to read the SLIs from.
        #[command(flatten)]
        prometheus: PrometheusArgs,
        /// Address to listen on (loopback by default; in a pod, `0.0.0.0:9466`).
        #[arg(long, default_value = "127.0.0.1:9466")]
        listen: std::net::SocketAddr,
        /// Environment variable holding the bearer token callers must send.
        #[arg(long, conflicts_with = "token_file")]
        token_env: Option<String>,
        /// File holding the bearer token callers must send.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// How long an answer is reused for the same SLOs.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        cache: std::time::Duration,
    },
}

/// A duration above zero (`--query-timeout`).
fn positive_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be above zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// `--at`: RFC 3339 or Unix seconds.
fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let at = match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(at.to_utc()),
        Err(_) => text
            .parse::<i64>()
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
    }
    .ok_or_else(|| {
        format!("`{text}` is not an RFC 3339 time (2026-12-01T09:30:00Z) or Unix seconds")
    })?;
    // Calendar arithmetic (a zone's offset) must not overflow: years 1970 to 9999.
    let (first, last) = (0, 253_402_300_799);
    if !(first..=last).contains(&at.timestamp()) {
        return Err(format!("`{text}` is outside 1970-01-01 to 9999-12-31"));
    }
    Ok(at)
}

/// A `--busy-poll` value clap refuses.
#[derive(Debug, thiserror::Error)]
enum BusyPollError {
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] humantime::DurationError),
    /// Longer than 10ms.
    #[error("must be at most 10ms (0 turns busy polling off)")]
    TooLong,
}

/// `--busy-poll`: a duration from 0 to 10ms (longer would burn a core on every idle
/// gap of a chatty connection).
fn busy_poll_window(text: &str) -> Result<std::time::Duration, BusyPollError> {
    let d = humantime::parse_duration(text)?;
    if d > std::time::Duration::from_millis(10) {
        return Err(BusyPollError::TooLong);
    }
    Ok(d)
}

/// What `slo` generates.
#[derive(Debug, Subcommand)]
pub enum SloCommand {
    /// A Prometheus rule file: error-ratio recording rules for every window, the budget
    /// left, and multi-window burn-rate alerts, with peak hours and maintenance in the
    /// PromQL (`promtool check rules` accepts it).
    Rules {
        /// The SLO file (`kind: SLOSet`).
        file: PathBuf,
        /// Write the rules to this file instead of stdout.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// `promtool test rules` unit tests of those rules: each alert fires at its burn rate and
    /// not below, pages in peak hours at a burn that off-peak does not, and maintenance
    /// spends no budget. Writes `slo-tests.yaml` and the rules it tests to `--dir`; run
    /// `promtool test rules DIR/slo-tests.yaml`.
    Test {
        /// The SLO file (`kind: SLOSet`).
        file: PathBuf,
        /// Where to write the tests and the rules under test (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// A Grafana dashboard (JSON, Grafana 10+) reading those rules' series: per SLO the SLI
    /// against its objective, the budget left, burn rates against each alert's factor, and
    /// the last 24 hours; peak hours, maintenance and chaos runs shaded on the time axis.
    Dashboard {
        /// The SLO file (`kind: SLOSet`).
        file: PathBuf,
        /// Write the dashboard to this file instead of stdout.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
}

/// Runs the command line and returns its outcome.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Slo {
            command: SloCommand::Rules { file, out },
        } => crate::slo::write::rules(&file, out.as_deref(), cli.output),
        Command::Slo {
            command: SloCommand::Test { file, dir },
        } => crate::slo::write::tests(&file, &dir, cli.output),
        Command::Slo {
            command: SloCommand::Dashboard { file, out },
        } => crate::slo::write::dashboard(&file, out.as_deref(), cli.output),
        Command::Gate(args) => gate(*args, cli.output),
        Command::Validate { files } => validate(&files, cli.output),
        Command::LoadWorker => {
            match crate::load::worker::serve(std::io::stdin(), std::io::stdout()) {
                Ok(()) => Outcome::Passed,
                Err(e) => {
                    eprintln!("load-worker: {e}");
                    Outcome::InvalidInput
                }
            }
        }
        Command::Schema { slo, gameday } => {
            println!(
                "{}",
                if slo {
                    spec::slo_schema()
                } else if gameday {
                    spec::gameday_schema()
                } else {
                    spec::experiment_schema()
                }
            );
            Outcome::Passed
        }
        Command::Gameday { command } => gameday(command, cli.output),
        Command::Plan { file } => match load_or_report(&file) {
            Some(exp) => crate::plan::print(&exp, &file, cli.output),
            None => Outcome::InvalidInput,
        },
        Command::Doctor { file } => match load_or_report(&file) {
            Some(exp) => crate::doctor::run(&exp, &file, cli.output),
            None => Outcome::InvalidInput,
        },
        Command::Run {
            file,
            state_dir: dir,
            recover,
            verbose,
        } => crate::engine::run(
            &file,
            crate::engine::RunOptions {
                state_dir: state_dir(dir),
                recover_first: recover,
                kube: None,
                deadline: None,
            },
            crate::output::sink_with(cli.output, verbose).as_mut(),
        ),
        Command::Exporter {
            listen,
            state_dir: dir,
        } => crate::exporter::serve(listen, state_dir(dir), cli.output),
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
        Command::Stress { kind } => crate::stress::run(kind),
    }
}

fn gate(args: GateArgs, output: Format) -> Outcome {
    match args.command {
        Some(GateCommand::Serve {
            file,
            prometheus,
            listen,
            token_env,
            token_file,
            cache,
        }) => crate::gate::check::serve(
            &file,
            &prometheus.flags(),
            listen,
            &crate::gate::check::TokenSource {
                env: token_env,
                file: token_file,
            },
            cache,
        ),
        None => crate::gate::check::run(
            &args.file.unwrap_or_default(),
            &args.prometheus.flags(),
            &crate::gate::GateOptions {
                slos: args.slos,
                at: args.at,
                force: args.force,
            },
            output,
        ),
    }
}

fn gameday(command: GamedayCommand, output: Format) -> Outcome {
    use crate::gameday;
    match command {
        GamedayCommand::Plan { file, from, to } => gameday::plan::run(&file, from, to, output),
        GamedayCommand::Run {
            file,
            entry,
            now,
            unscheduled,
            state_dir: dir,
            recover,
            verbose,
        } => gameday::run::run(
            &file,
            &gameday::run::RunRequest {
                entry,
                now,
                unscheduled,
                state_dir: state_dir(dir),
                recover,
                verbose,
            },
            output,
        ),
        GamedayCommand::Install {
            file,
            kubernetes,
            dir,
            namespace,
            image,
            runner,
            workdir,
            apply,
            ..
        } => {
            let target = if kubernetes {
                gameday::install::Target::Kubernetes { namespace, image }
            } else {
                let runner = match runner.map_or_else(std::env::current_exe, Ok) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: cannot find the runner's own binary: {e}");
                        return Outcome::Aborted;
                    }
                };
                gameday::install::Target::Systemd {
                    runner,
                    workdir,
                    apply,
                }
            };
            gameday::install::run(&file, &target, &dir, output)
        }
        GamedayCommand::Report {
            file,
            dir,
            from,
            to,
        } => gameday::report::run(&file, dir.as_deref(), from, to, output),
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
    let Some(runtime) = crate::output::runtime_or_report() else {
        return Outcome::Aborted;
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
            return Outcome::Aborted;
        }
    };
    let server = match ProxyServer::start_with(ServerOptions {
        api: Some(addr),
        workers: relay.workers.map_or_else(default_workers, usize::from),
    }) {
        Ok(s) => s,
        // The address cannot be bound (taken, not on this machine): the flag is wrong.
        Err(e @ fault_proxy::server::ServerError::Bind { .. }) => {
            eprintln!("error: --listen: {e}");
            return Outcome::InvalidInput;
        }
        // No runtime or thread: the machine failed, not the input.
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Aborted;
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

fn validate(files: &[PathBuf], output: Format) -> Outcome {
    let mut results = Vec::new();
    for file in files {
        let errors: Vec<spec::SpecError> = match spec::document_kind(file) {
            Err(e) => vec![e],
            Ok(kind) if kind == "SLOSet" => match spec::load_slo_set(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
            Ok(kind) if kind == "LoadScenario" => match spec::load_scenario(file) {
                Ok(_) => Vec::new(),
                Err(e) => e.0,
            },
            Ok(kind) if kind == "GameDay" => match spec::load_gameday(file) {
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
        Format::Text => {
            for (file, errors) in &results {
                if errors.is_empty() {
                    println!("ok: {file}");
                }
                for e in errors {
                    eprintln!("error: {e}");
                }
            }
        }
        Format::Json => {
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
