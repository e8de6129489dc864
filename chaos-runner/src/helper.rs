//! The helper processes the runner starts: `chaos-runner stress <command> ...` (CPU and
//! memory hogs, disk fillers, resume and network watchdogs, in-pod helpers). One typed
//! protocol: [`HelperCommand`] is both the hidden `stress` subcommand that parses a helper's
//! command line and what the faults turn into an argument vector
//! ([`HelperCommand::to_args`]), so the two sides cannot disagree on a flag.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

use crate::spec::params::pod_helper::CatchableSignal;

/// A helper process's command: `chaos-runner stress <command> --flag value ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum HelperCommand {
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
        signal: CatchableSignal,
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

fn signal_arg(text: &str) -> Result<CatchableSignal, BadArg> {
    CatchableSignal::parse(text).ok_or(BadArg("must be TERM, INT, QUIT or HUP"))
}

fn loss_arg(text: &str) -> Result<f64, BadArg> {
    text.parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && *l > 0.0 && *l <= 100.0)
        .ok_or(BadArg("must be a percentage above 0, at most 100"))
}

fn netns_arg(text: &str) -> Result<String, BadArg> {
    crate::spec::params::network::is_netns_name(text)
        .then(|| text.to_owned())
        .ok_or(BadArg("not a network namespace name"))
}

fn interface_arg(text: &str) -> Result<String, BadArg> {
    crate::spec::params::network::is_interface_name(text)
        .then(|| text.to_owned())
        .ok_or(BadArg("not an interface name"))
}

fn table_arg(text: &str) -> Result<String, BadArg> {
    (text.starts_with("chaos_")
        && text.len() <= 200
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| text.to_owned())
    .ok_or(BadArg("not a chaos-runner table name (chaos_...)"))
}

fn parse_duration(text: &str) -> Result<std::time::Duration, BadArg> {
    let d = humantime::parse_duration(text)
        .map_err(|_| BadArg("not a duration such as 30s or 1m 30s"))?;
    if d.is_zero() || d > std::time::Duration::from_secs(86_400) {
        return Err(BadArg("must be above zero and at most 24h"));
    }
    Ok(d)
}

/// A helper flag's value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadArg(&'static str);

/// The `stress` subcommand alone, to parse a helper's arguments without the rest of the
/// command line.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct HelperLine {
    #[command(subcommand)]
    top: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    Stress {
        #[command(subcommand)]
        command: HelperCommand,
    },
}

/// `stress stop --grace` when not given.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// A duration as a flag value, exact to the nanosecond, in the largest unit that holds it
/// whole (`90s`, `1500ms`, `2500us`, `1ns`), as the helpers have always been written.
fn duration_arg(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else if nanos % 1_000 == 0 {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

impl HelperCommand {
    /// The arguments after the program name: `stress`, the command, its flags.
    pub fn to_args(&self) -> Vec<String> {
        // The flags in the order the Kubernetes helpers have always been written with.
        let mut args: Vec<String> = vec!["stress".into()];
        let mut switches: Vec<&str> = Vec::new();
        macro_rules! flag {
            ($name:literal, $value:expr) => {{
                args.push(concat!("--", $name).to_owned());
                args.push($value);
            }};
        }
        let command = match self {
            HelperCommand::Cpu {
                workers,
                load,
                duration,
                run_id,
                fault,
                exit_on_term,
                not_after,
            } => {
                flag!("workers", workers.to_string());
                flag!("load", load.to_string());
                flag!("duration", duration_arg(*duration));
                if let Some(t) = not_after {
                    flag!("not-after", t.to_string());
                }
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                if *exit_on_term {
                    switches.push("--exit-on-term");
                }
                "cpu"
            }
            HelperCommand::Memory {
                bytes,
                touch,
                duration,
                run_id,
                fault,
                exit_on_term,
                not_after,
            } => {
                flag!("bytes", bytes.to_string());
                if *touch {
                    args.push("--touch".into());
                }
                flag!("duration", duration_arg(*duration));
                if let Some(t) = not_after {
                    flag!("not-after", t.to_string());
                }
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                if *exit_on_term {
                    switches.push("--exit-on-term");
                }
                "memory"
            }
            HelperCommand::Disk {
                path,
                bytes,
                keep_free,
                duration,
                run_id,
                fault,
            } => {
                flag!("path", path.to_string_lossy().into_owned());
                flag!("bytes", bytes.to_string());
                flag!("keep-free", keep_free.to_string());
                flag!("duration", duration_arg(*duration));
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                "disk"
            }
            HelperCommand::Resume {
                pid,
                start_ticks,
                after,
                run_id,
                fault,
            } => {
                flag!("pid", pid.to_string());
                flag!("start-ticks", start_ticks.to_string());
                flag!("after", duration_arg(*after));
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                "resume"
            }
            HelperCommand::Netem {
                interface,
                delay,
                jitter,
                loss,
                duration,
                not_after,
                run_id,
                fault,
            } => {
                flag!("interface", interface.clone());
                if let Some(d) = delay {
                    flag!("delay", duration_arg(*d));
                }
                if let Some(j) = jitter {
                    flag!("jitter", duration_arg(*j));
                }
                if let Some(l) = loss {
                    flag!("loss", l.to_string());
                }
                flag!("duration", duration_arg(*duration));
                if let Some(t) = not_after {
                    flag!("not-after", t.to_string());
                }
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                "netem"
            }
            HelperCommand::SignalInit {
                signal,
                not_after,
                run_id,
                fault,
            } => {
                flag!("signal", signal.name().to_owned());
                if let Some(t) = not_after {
                    flag!("not-after", t.to_string());
                }
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                "signal-init"
            }
            HelperCommand::Stop {
                run_id,
                fault,
                grace,
            } => {
                flag!("run-id", run_id.clone());
                flag!("fault", fault.clone());
                if *grace != DEFAULT_STOP_GRACE {
                    flag!("grace", duration_arg(*grace));
                }
                "stop"
            }
            HelperCommand::ExpireNet {
                after,
                netns,
                table,
                interface,
                handle,
            } => {
                flag!("after", duration_arg(*after));
                if let Some(n) = netns {
                    flag!("netns", n.clone());
                }
                if let Some(t) = table {
                    flag!("table", t.clone());
                }
                if let Some(i) = interface {
                    flag!("interface", i.clone());
                }
                if let Some(h) = handle {
                    flag!("handle", h.to_string());
                }
                "expire-net"
            }
        };
        args.insert(1, command.to_owned());
        args.extend(switches.into_iter().map(str::to_owned));
        args
    }

    /// Parses the arguments after the program name (`stress`, the command, its flags);
    /// `None` when they are not a helper's.
    pub fn parse(args: &[String]) -> Option<HelperCommand> {
        match HelperLine::try_parse_from(args).ok()?.top {
            Top::Stress { command } => Some(command),
        }
    }

    /// The helper a process's command line (`/proc/<pid>/cmdline`, program name first)
    /// runs, if it is one.
    pub fn from_cmdline(argv: &[String]) -> Option<HelperCommand> {
        Self::parse(argv.get(1..)?)
    }

    /// The run and fault the helper belongs to (`None` for the network watchdog, which is
    /// named by what it removes).
    pub fn owner(&self) -> Option<(&str, &str)> {
        match self {
            HelperCommand::Cpu { run_id, fault, .. }
            | HelperCommand::Memory { run_id, fault, .. }
            | HelperCommand::Disk { run_id, fault, .. }
            | HelperCommand::Resume { run_id, fault, .. }
            | HelperCommand::Netem { run_id, fault, .. }
            | HelperCommand::SignalInit { run_id, fault, .. }
            | HelperCommand::Stop { run_id, fault, .. } => Some((run_id, fault)),
            HelperCommand::ExpireNet { .. } => None,
        }
    }

    /// Whether this is a helper doing `run_id`'s fault `fault` (a stopper is not: it only
    /// ends the others).
    pub fn works_for(&self, run_id: &str, fault: &str) -> bool {
        !matches!(self, HelperCommand::Stop { .. }) && self.owner() == Some((run_id, fault))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// One or more commands of every kind, with optional flags both given and left out.
    fn samples() -> Vec<HelperCommand> {
        let ids = || ("run-1765000000000-ab12".to_owned(), "slow saves".to_owned());
        let (run_id, fault) = ids();
        vec![
            HelperCommand::Cpu {
                workers: 3,
                load: 75,
                duration: Duration::from_millis(19_999),
                run_id: run_id.clone(),
                fault: fault.clone(),
                exit_on_term: true,
                not_after: Some(1_765_000_100),
            },
            HelperCommand::Cpu {
                workers: 1,
                load: 100,
                duration: Duration::from_nanos(1_500_000_001),
                run_id: String::new(),
                fault: String::new(),
                exit_on_term: false,
                not_after: None,
            },
            HelperCommand::Memory {
                bytes: 512 << 20,
                touch: true,
                duration: Duration::from_secs(30),
                run_id: run_id.clone(),
                fault: fault.clone(),
                exit_on_term: false,
                not_after: Some(7),
            },
            HelperCommand::Memory {
                bytes: 1,
                touch: false,
                duration: Duration::from_secs(86_400),
                run_id: run_id.clone(),
                fault: fault.clone(),
                exit_on_term: true,
                not_after: None,
            },
            HelperCommand::Disk {
                path: PathBuf::from("/var/tmp/chaos fill/a.bin"),
                bytes: 1 << 30,
                keep_free: 4096,
                duration: Duration::from_secs(10),
                run_id: run_id.clone(),
                fault: fault.clone(),
            },
            HelperCommand::Resume {
                pid: 4242,
                start_ticks: 123_456_789,
                after: Duration::from_millis(1),
                run_id: run_id.clone(),
                fault: fault.clone(),
            },
            HelperCommand::Netem {
                interface: "eth0".into(),
                delay: Some(Duration::from_millis(100)),
                jitter: Some(Duration::from_micros(2500)),
                loss: Some(0.1),
                duration: Duration::from_secs(60),
                not_after: Some(99),
                run_id: run_id.clone(),
                fault: fault.clone(),
            },
            HelperCommand::Netem {
                interface: "veth-a1".into(),
                delay: None,
                jitter: None,
                loss: Some(100.0),
                duration: Duration::from_secs(1),
                not_after: None,
                run_id: run_id.clone(),
                fault: fault.clone(),
            },
            HelperCommand::SignalInit {
                signal: CatchableSignal::parse("HUP").expect("a signal"),
                not_after: Some(5),
                run_id: run_id.clone(),
                fault: fault.clone(),
            },
            HelperCommand::SignalInit {
                signal: CatchableSignal::default(),
                not_after: None,
                run_id: String::new(),
                fault: String::new(),
            },
            HelperCommand::Stop {
                run_id: run_id.clone(),
                fault: fault.clone(),
                grace: Duration::from_secs(10),
            },
            HelperCommand::ExpireNet {
                after: Duration::from_secs(45),
                netns: Some("chaos-ns".into()),
                table: Some("chaos_abc_1".into()),
                interface: None,
                handle: None,
            },
            HelperCommand::ExpireNet {
                after: Duration::from_secs(45),
                netns: None,
                table: None,
                interface: Some("lo".into()),
                handle: Some(0x2a),
            },
        ]
    }

    #[test]
    fn every_command_survives_the_round_trip_through_its_arguments() {
        for command in samples() {
            let args = command.to_args();
            assert_eq!(
                HelperCommand::parse(&args).as_ref(),
                Some(&command),
                "{args:?}"
            );
            let mut argv = vec!["/usr/local/bin/chaos-runner".to_owned()];
            argv.extend(args);
            assert_eq!(HelperCommand::from_cmdline(&argv), Some(command));
        }
    }

    #[test]
    fn the_samples_cover_every_command_the_parser_knows() {
        let line = HelperLine::command();
        let stress = line
            .get_subcommands()
            .find(|c| c.get_name() == "stress")
            .expect("the stress subcommand");
        let sampled: Vec<String> = samples().iter().map(|c| c.to_args()[1].clone()).collect();
        for command in stress.get_subcommands() {
            assert!(
                sampled.iter().any(|s| s == command.get_name()),
                "no sample of `stress {}`",
                command.get_name()
            );
        }
    }

    #[test]
    fn what_is_not_a_helper_is_not_taken_for_one() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            HelperCommand::from_cmdline(&argv(&["chaos-runner", "run", "x.yaml"])),
            None
        );
        assert_eq!(HelperCommand::from_cmdline(&argv(&["stress", "cpu"])), None);
        assert_eq!(HelperCommand::from_cmdline(&argv(&[])), None);
        // A value outside what the helper accepts is refused, not guessed.
        let bad = argv(&[
            "chaos-runner",
            "stress",
            "cpu",
            "--workers",
            "0",
            "--load",
            "5",
            "--duration",
            "1s",
        ]);
        assert_eq!(HelperCommand::from_cmdline(&bad), None);
    }

    #[test]
    fn owners_and_stoppers() {
        for command in samples() {
            let works = command
                .owner()
                .is_some_and(|(run, fault)| command.works_for(run, fault));
            let expected = !matches!(
                command,
                HelperCommand::Stop { .. } | HelperCommand::ExpireNet { .. }
            );
            assert_eq!(works, expected, "{command:?}");
        }
    }
}

/// The examples that were this module's documentation (tested here: the module is
/// internal to the crate).
#[cfg(test)]
mod examples {
    #[test]
    fn module_example_0() {
        use crate::helper::HelperCommand;
        use std::time::Duration;
        let hog = HelperCommand::Cpu {
            workers: 2,
            load: 50,
            duration: Duration::from_secs(30),
            run_id: "r1".into(),
            fault: "burn".into(),
            exit_on_term: false,
            not_after: None,
        };
        let args = hog.to_args();
        assert_eq!(args[..2], ["stress", "cpu"]);
        assert_eq!(HelperCommand::parse(&args), Some(hog));
    }

    #[test]
    fn from_cmdline_example_1() {
        use crate::helper::HelperCommand;
        let argv: Vec<String> = [
            "/usr/bin/chaos-runner",
            "stress",
            "stop",
            "--run-id",
            "r1",
            "--fault",
            "f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(matches!(
            HelperCommand::from_cmdline(&argv),
            Some(HelperCommand::Stop { .. })
        ));
        assert_eq!(HelperCommand::from_cmdline(&argv[..1]), None);
    }

    #[test]
    fn works_for_example_2() {
        use crate::helper::HelperCommand;
        let argv: Vec<String> = [
            "chaos-runner",
            "stress",
            "cpu",
            "--workers",
            "1",
            "--load",
            "5",
            "--duration",
            "1s",
            "--run-id",
            "r1",
            "--fault",
            "burn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let hog = HelperCommand::from_cmdline(&argv).unwrap();
        assert!(hog.works_for("r1", "burn"));
        assert!(!hog.works_for("r1", "other"));
    }
}
