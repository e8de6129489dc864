//! How commands speak: text for people (a live status line on a terminal, one line per
//! phase and event in a log, colour unless `NO_COLOR`), or one stable JSON document on
//! stdout for machines. The run's events are rendered by the sinks here.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::events::{EventSink, RunEvent};
use crate::spec;

/// Output formats.
///
/// ```
/// use chaos_runner::output::Format;
/// assert_ne!(Format::Text, Format::Json);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// A stable JSON document on stdout.
    Json,
}

/// The sink that renders a run's events in `format` on this process's stdout and stderr.
///
/// ```
/// use chaos_runner::events::{EventSink, Level, RunEvent};
/// let mut sink = chaos_runner::output::sink(chaos_runner::output::Format::Json);
/// sink.emit(RunEvent::Message { level: Level::Note, text: "to stderr".into() });
/// ```
pub fn sink(format: Format) -> Box<dyn EventSink> {
    match format {
        Format::Text => Box::new(TextSink::for_stderr()),
        Format::Json => Box::new(JsonSink),
    }
}

/// Loads and checks an experiment, printing every problem to stderr; `None` means invalid
/// input.
///
/// ```
/// assert!(chaos_runner::output::load_or_report(std::path::Path::new("/nonexistent.yaml")).is_none());
/// ```
pub fn load_or_report(file: &Path) -> Option<spec::ValidatedExperiment> {
    reported(spec::load_experiment(file))
}

/// Loads and checks an SLO file, printing every problem to stderr; `None` means invalid
/// input.
///
/// ```
/// assert!(chaos_runner::output::load_slo_or_report(std::path::Path::new("/nonexistent.yaml")).is_none());
/// ```
pub fn load_slo_or_report(file: &Path) -> Option<spec::SloSet> {
    reported(spec::load_slo_set(file))
}

fn reported<T>(loaded: Result<T, spec::SpecErrors>) -> Option<T> {
    loaded
        .map_err(|errors| {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
        })
        .ok()
}

/// Text for people on stderr, the outcome on stdout.
#[derive(Debug)]
pub struct TextSink {
    /// Stderr is a terminal: phases and the hold's state rewrite one status line.
    terminal: bool,
    /// Colour events and the outcome (a terminal, and `NO_COLOR` unset).
    color: bool,
    /// A status line is on screen (to clear before a line of its own).
    status_shown: bool,
}

impl TextSink {
    /// A sink for this process's stderr: a live status line when it is a terminal, one line
    /// per phase and event otherwise.
    ///
    /// ```
    /// let _ = chaos_runner::output::TextSink::for_stderr();
    /// ```
    pub fn for_stderr() -> Self {
        let terminal = std::io::stderr().is_terminal();
        TextSink {
            terminal,
            color: terminal && std::env::var_os("NO_COLOR").is_none(),
            status_shown: false,
        }
    }

    fn status(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
        self.status_shown = true;
    }

    /// A line that stays: clears the status line first when there is one.
    fn line(&mut self, text: &str, highlight: bool) {
        let clear = if self.status_shown { "\r\x1b[2K" } else { "" };
        self.status_shown = false;
        if highlight && self.color {
            eprintln!("{clear}\x1b[33m{text}\x1b[0m");
        } else {
            eprintln!("{clear}{text}");
        }
    }
}

impl EventSink for TextSink {
    fn emit(&mut self, event: RunEvent) {
        match event {
            RunEvent::Phase { phase, doing } => {
                let text = format!("[{phase}] {doing}");
                if self.terminal {
                    self.status(&text);
                } else {
                    self.line(&text, false);
                }
            }
            RunEvent::Status { phase, text } => {
                if self.terminal {
                    self.status(&format!("[{phase}] {text}"));
                }
            }
            RunEvent::Notice { phase, text } => self.line(&format!("[{phase}] {text}"), true),
            RunEvent::Message { level, text } => self.line(&format!("{level}: {text}"), false),
            RunEvent::Finished { report, written } => {
                if self.status_shown {
                    eprintln!();
                    self.status_shown = false;
                }
                let color =
                    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
                let (on, off) = match (color, report.exit_code) {
                    (false, _) => ("", ""),
                    (true, 0) => ("\x1b[32m", "\x1b[0m"),
                    (true, _) => ("\x1b[31m", "\x1b[0m"),
                };
                println!(
                    "{on}{}{off}: {} (exit {})",
                    report.outcome, report.reason, report.exit_code
                );
                for path in &written {
                    println!("report: {}", path.display());
                }
            }
        }
    }
}

/// One JSON document on stdout when the run ends; problems on stderr; no progress.
#[derive(Debug, Default)]
pub struct JsonSink;

impl EventSink for JsonSink {
    fn emit(&mut self, event: RunEvent) {
        match event {
            RunEvent::Phase { .. } | RunEvent::Status { .. } | RunEvent::Notice { .. } => {}
            RunEvent::Message { level, text } => eprintln!("{level}: {text}"),
            RunEvent::Finished { report, written } => println!(
                "{}",
                serde_json::json!({
                    "command": "run",
                    "run_id": report.run_id,
                    "experiment": report.experiment,
                    "outcome": report.outcome,
                    "exit_code": report.exit_code,
                    "reason": report.reason,
                    "reports": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                })
            ),
        }
    }
}

/// A single-threaded tokio runtime for a long-running command (`proxy`, `exporter`), or
/// `None` after saying on stderr why it could not start (the command then exits 2).
pub(crate) fn runtime_or_report() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}
