//! What starting a service tells its caller as it goes (a typed [`SetupProgress`], which
//! the engine turns into run lines), and when a long wait deserves a word
//! ([`WaitSchedule`]: first after 10 s, then every 30 s). Nothing here prints.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys::supervisor::{Launch, SupervisedCommand, Supervisor, SupervisorError};

/// What a service (a setup service or a fault's supervised command) waits for before it
/// counts as ready.
///
/// ```
/// use chaos_runner::setup::progress::Readiness;
/// let r = Readiness { port: Some(8080), http: Some("http://127.0.0.1:8080/".into()) };
/// assert_eq!(r.to_string(), "port 8080 and a 2xx from http://127.0.0.1:8080/");
/// assert_eq!(Readiness::default().to_string(), "the process to start");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A local TCP port accepting connections.
    pub port: Option<u16>,
    /// A URL answering a GET with 2xx.
    pub http: Option<String>,
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, &self.http) {
            (Some(port), Some(url)) => write!(f, "port {port} and a 2xx from {url}"),
            (Some(port), None) => write!(f, "port {port}"),
            (None, Some(url)) => write!(f, "a 2xx from {url}"),
            (None, None) => f.write_str("the process to start"),
        }
    }
}

/// One step of starting a service, as it happens.
///
/// ```
/// use std::time::Duration;
/// use chaos_runner::setup::progress::SetupProgress;
/// let ready = SetupProgress::Ready { name: "web".into(), after: Duration::from_millis(2_340) };
/// assert_eq!(ready.to_string(), "`web` ready after 2.3s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupProgress {
    /// The service is being started.
    Starting {
        /// The service.
        name: String,
        /// Its command line, words joined by spaces.
        command: String,
        /// What it must do to count as ready.
        ready_when: Readiness,
        /// The file its stdout and stderr go to (discarded when `None`).
        output: Option<PathBuf>,
    },
    /// It is still not ready.
    Waiting {
        /// The service.
        name: String,
        /// How long it has been waited for (a mark of the [`WaitSchedule`]).
        waited: Duration,
        /// The last non-empty line of its output, if any.
        last_line: Option<String>,
    },
    /// It is ready.
    Ready {
        /// The service.
        name: String,
        /// How long it took.
        after: Duration,
    },
}

impl fmt::Display for SetupProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shown in CI logs: no password or token from a URL, the command or the output.
        let mut text = String::new();
        self.write_to(&mut text)?;
        f.write_str(&crate::redact::credentials(&text))
    }
}

/// The longest piece of a service's output quoted in a line.
const QUOTED: usize = 200;

impl SetupProgress {
    /// The line before its credentials are taken out.
    fn write_to(&self, f: &mut String) -> fmt::Result {
        use std::fmt::Write as _;
        match self {
            SetupProgress::Starting {
                name,
                command,
                ready_when,
                output,
            } => {
                write!(f, "starting `{name}`: {command}; waiting for {ready_when}")?;
                match output {
                    Some(path) => write!(f, "; its output goes to {}", path.display()),
                    None => f.write_str("; its output is discarded"),
                }
            }
            SetupProgress::Waiting {
                name,
                waited,
                last_line,
            } => {
                write!(f, "`{name}` still starting after {}s", waited.as_secs())?;
                match last_line {
                    Some(line) if line.chars().count() > QUOTED => {
                        let cut: String = line.chars().take(QUOTED).collect();
                        write!(f, "; its output ends: {cut}...")
                    }
                    Some(line) => write!(f, "; its output ends: {line}"),
                    None => f.write_str("; no output yet"),
                }
            }
            SetupProgress::Ready { name, after } => {
                write!(f, "`{name}` ready after {:.1}s", after.as_secs_f64())
            }
        }
    }
}

/// When a wait deserves a word: first after 10 s, then every 30 s.
///
/// ```
/// use std::time::Duration;
/// use chaos_runner::setup::progress::WaitSchedule;
/// let mut schedule = WaitSchedule::default();
/// assert_eq!(schedule.due(Duration::from_secs(9)), None);
/// assert_eq!(schedule.due(Duration::from_secs(11)), Some(Duration::from_secs(10)));
/// assert_eq!(schedule.due(Duration::from_secs(12)), None);
/// assert_eq!(schedule.due(Duration::from_secs(41)), Some(Duration::from_secs(40)));
/// ```
#[derive(Debug, Clone)]
pub struct WaitSchedule {
    next: Duration,
}

impl WaitSchedule {
    /// The first word.
    pub const FIRST: Duration = Duration::from_secs(10);
    /// The words after it.
    pub const EVERY: Duration = Duration::from_secs(30);

    /// Whether a word is due after waiting `waited`: the mark it is due for (10 s, 40 s,
    /// 70 s...), once per mark.
    pub fn due(&mut self, waited: Duration) -> Option<Duration> {
        if waited < self.next {
            return None;
        }
        let mark = self.next;
        while self.next <= waited {
            self.next += Self::EVERY;
        }
        Some(mark)
    }
}

impl Default for WaitSchedule {
    fn default() -> Self {
        WaitSchedule { next: Self::FIRST }
    }
}

/// The last non-empty line of the file at `path` (its last 8 KiB read), trimmed; `None`
/// when it is missing or blank.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("last-line-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let log = dir.join("output.log");
/// std::fs::write(&log, "   Compiling tokio v1.0.0\n\n").unwrap();
/// let last = chaos_runner::setup::progress::last_line(&log);
/// assert_eq!(last.as_deref(), Some("Compiling tokio v1.0.0"));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 8 * 1024;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Starts `command` under a supervisor launched as `launch` says and waits until it is
/// ready, telling `progress` it starts, that it is still waiting (on the
/// [`WaitSchedule`], with the last line of its output file) and when it is ready.
///
/// ```
/// use std::time::Duration;
/// use chaos_runner::setup::progress::{start_supervised, SetupProgress};
/// use chaos_runner::sys::supervisor::{Launch, SupervisedCommand};
/// let command = SupervisedCommand {
///     name: "sleeper".into(),
///     argv: vec!["sleep".into(), "5".into()],
///     restart: chaos_runner::spec::RestartPolicy::Never,
///     ready_port: None,
///     ready_timeout: Duration::from_secs(5),
/// };
/// let mut said = Vec::new();
/// let supervisor = start_supervised(command, Launch::default(), &mut |p| said.push(p)).unwrap();
/// supervisor.stop();
/// assert!(matches!(said[0], SetupProgress::Starting { .. }));
/// assert!(matches!(said.last(), Some(SetupProgress::Ready { .. })));
/// ```
pub fn start_supervised(
    command: SupervisedCommand,
    launch: Launch,
    progress: &mut dyn FnMut(SetupProgress),
) -> Result<Supervisor, SupervisorError> {
    let name = command.name.clone();
    let output = launch.log.clone();
    progress(SetupProgress::Starting {
        name: name.clone(),
        command: command.argv.join(" "),
        ready_when: Readiness {
            port: command.ready_port,
            http: launch.ready_http.clone(),
        },
        output: output.clone(),
    });
    let began = Instant::now();
    let mut schedule = WaitSchedule::default();
    let supervisor = Supervisor::start_watching(command, launch, &mut |waited| {
        if let Some(mark) = schedule.due(waited) {
            progress(SetupProgress::Waiting {
                name: name.clone(),
                waited: mark,
                last_line: output.as_deref().and_then(last_line),
            });
        }
    })?;
    progress(SetupProgress::Ready {
        name,
        after: began.elapsed(),
    });
    Ok(supervisor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_no_password_or_token_and_quote_little_of_the_output() {
        let starting = SetupProgress::Starting {
            name: "game".into(),
            command: "game --db postgres://app:s3cret@127.0.0.1/game".into(),
            ready_when: Readiness {
                port: None,
                http: Some("http://127.0.0.1:8080/ready?token=abc".into()),
            },
            output: None,
        };
        let line = starting.to_string();
        assert!(!line.contains("s3cret") && !line.contains("abc"), "{line}");
        assert!(line.contains("postgres://***@127.0.0.1/game") && line.contains("token=***"));
        let waiting = SetupProgress::Waiting {
            name: "game".into(),
            waited: Duration::from_secs(40),
            last_line: Some(format!(
                "connecting to redis://:pw@r:6379 {}",
                "x".repeat(500)
            )),
        };
        let line = waiting.to_string();
        assert!(!line.contains(":pw@") && line.ends_with("..."), "{line}");
        assert!(line.len() < 300, "{line}");
    }

    #[test]
    fn a_late_check_gets_one_word_for_the_marks_it_missed() {
        let mut schedule = WaitSchedule::default();
        assert_eq!(
            schedule.due(Duration::from_secs(75)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(schedule.due(Duration::from_secs(76)), None);
        assert_eq!(
            schedule.due(Duration::from_secs(100)),
            Some(Duration::from_secs(100))
        );
    }

    #[test]
    fn starting_names_the_command_what_it_waits_for_and_its_output() {
        let starting = SetupProgress::Starting {
            name: "web".into(),
            command: "python3 -m http.server 8000".into(),
            ready_when: Readiness {
                port: Some(8000),
                http: None,
            },
            output: Some(PathBuf::from("/tmp/web/output.log")),
        };
        assert_eq!(
            starting.to_string(),
            "starting `web`: python3 -m http.server 8000; waiting for port 8000; \
             its output goes to /tmp/web/output.log"
        );
    }

    #[test]
    fn waiting_says_the_last_output_line_or_that_there_is_none() {
        let waiting = |last_line: Option<&str>| SetupProgress::Waiting {
            name: "game".into(),
            waited: Duration::from_secs(40),
            last_line: last_line.map(str::to_owned),
        };
        assert_eq!(
            waiting(Some("Compiling tokio v1")).to_string(),
            "`game` still starting after 40s; its output ends: Compiling tokio v1"
        );
        assert_eq!(
            waiting(None).to_string(),
            "`game` still starting after 40s; no output yet"
        );
    }

    #[test]
    fn last_line_of_a_missing_or_blank_file_is_none() {
        let dir = std::env::temp_dir().join(format!("last-line-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let blank = dir.join("blank.log");
        std::fs::write(&blank, "\n  \n").unwrap();
        assert_eq!(last_line(&blank), None);
        assert_eq!(last_line(&dir.join("missing.log")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
