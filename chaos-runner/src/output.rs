//! How commands speak: text for people (a live status line on a terminal, one line per
//! phase and event in a log, colour unless `NO_COLOR`), or one stable JSON document on
//! stdout for machines. The run's events are rendered by the sinks here.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::events::{EventSink, Phase, RunEvent};
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
    sink_with(format, false)
}

/// [`sink`], where text in a log also keeps each status line when `verbose` (`run -v`).
///
/// ```
/// let _ = chaos_runner::output::sink_with(chaos_runner::output::Format::Text, true);
/// ```
pub fn sink_with(format: Format, verbose: bool) -> Box<dyn EventSink> {
    match format {
        Format::Text => Box::new(TextSink::for_stderr().verbose(verbose)),
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

/// The clock of a [`TextSink`]: the time since the run started.
type Clock = Box<dyn Fn() -> Duration>;

/// Text for people on stderr, the outcome on stdout.
///
/// Every line it writes about the run starts with the seconds since the run started,
/// right-aligned with one decimal (`  12.3s [hold] ...`). On a terminal, phases and the
/// hold's state rewrite one status line; in a log (stderr not a terminal), each phase and
/// [`RunEvent::Step`] is a line of its own and the hold's state is not kept unless
/// `verbose`.
///
/// ```
/// use chaos_runner::events::{EventSink, Phase, RunEvent};
/// use chaos_runner::output::TextSink;
/// let mut sink = TextSink::new(Box::new(std::io::sink()), false, false).verbose(true);
/// sink.emit(RunEvent::Step { phase: Phase::Setup, text: "`web` ready after 1.0s".into() });
/// ```
pub struct TextSink {
    /// Where the run's lines go (stderr).
    out: Box<dyn Write>,
    /// Stderr is a terminal: phases and the hold's state rewrite one status line.
    terminal: bool,
    /// Colour events and the outcome (a terminal, and `NO_COLOR` unset).
    color: bool,
    /// In a log, each status too becomes a line.
    verbose: bool,
    /// The time since the run started.
    clock: Clock,
    /// A status line is on screen (to clear before a line of its own).
    status_shown: bool,
}

impl std::fmt::Debug for TextSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextSink")
            .field("terminal", &self.terminal)
            .field("color", &self.color)
            .field("verbose", &self.verbose)
            .finish_non_exhaustive()
    }
}

/// The elapsed-time prefix of a line: seconds, right-aligned, one decimal.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(chaos_runner::output::elapsed_prefix(Duration::from_millis(12_340)), "  12.3s");
/// assert_eq!(chaos_runner::output::elapsed_prefix(Duration::from_secs(1234)), "1234.0s");
/// ```
pub fn elapsed_prefix(elapsed: Duration) -> String {
    format!("{:>6.1}s", elapsed.as_secs_f64())
}

impl TextSink {
    /// A sink for this process's stderr: a live status line when it is a terminal, one line
    /// per phase and event otherwise; its clock starts now.
    ///
    /// ```
    /// let _ = chaos_runner::output::TextSink::for_stderr();
    /// ```
    pub fn for_stderr() -> Self {
        let terminal = std::io::stderr().is_terminal();
        TextSink::new(
            Box::new(std::io::stderr()),
            terminal,
            terminal && std::env::var_os("NO_COLOR").is_none(),
        )
    }

    /// A sink writing the run's lines to `out` (the outcome still goes to stdout), as on a
    /// terminal or not, in colour or not; its clock starts now.
    ///
    /// ```
    /// let _ = chaos_runner::output::TextSink::new(Box::new(std::io::sink()), false, false);
    /// ```
    pub fn new(out: Box<dyn Write>, terminal: bool, color: bool) -> Self {
        let started = Instant::now();
        TextSink {
            out,
            terminal,
            color,
            verbose: false,
            clock: Box::new(move || started.elapsed()),
            status_shown: false,
        }
    }

    /// In a log, also writes each status (one per check while the faults hold) as a line.
    ///
    /// ```
    /// let _ = chaos_runner::output::TextSink::for_stderr().verbose(true);
    /// ```
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Takes the time since the run started from `clock` instead of the wall clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _ = chaos_runner::output::TextSink::for_stderr().with_clock(|| Duration::ZERO);
    /// ```
    pub fn with_clock(mut self, clock: impl Fn() -> Duration + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// `[phase] text` after the elapsed time.
    fn timed(&self, phase: Phase, text: &str) -> String {
        format!("{} [{phase}] {text}", elapsed_prefix((self.clock)()))
    }

    fn status(&mut self, text: &str) {
        let _ = write!(self.out, "\r\x1b[2K{text}");
        let _ = self.out.flush();
        self.status_shown = true;
    }

    /// A line that stays: clears the status line first when there is one.
    fn line(&mut self, text: &str, highlight: bool) {
        let clear = if self.status_shown { "\r\x1b[2K" } else { "" };
        self.status_shown = false;
        let _ = if highlight && self.color {
            writeln!(self.out, "{clear}\x1b[33m{text}\x1b[0m")
        } else {
            writeln!(self.out, "{clear}{text}")
        };
        let _ = self.out.flush();
    }
}

impl EventSink for TextSink {
    fn emit(&mut self, event: RunEvent) {
        match event {
            RunEvent::Phase { phase, doing } => {
                let text = self.timed(phase, &doing);
                if self.terminal {
                    self.status(&text);
                } else {
                    self.line(&text, false);
                }
            }
            RunEvent::Step { phase, text } => {
                let text = self.timed(phase, &text);
                self.line(&text, false);
            }
            RunEvent::Status { phase, text } => {
                let text = self.timed(phase, &text);
                if self.terminal {
                    self.status(&text);
                } else if self.verbose {
                    self.line(&text, false);
                }
            }
            RunEvent::Notice { phase, text } => {
                let text = self.timed(phase, &text);
                self.line(&text, true);
            }
            RunEvent::Message { level, text } => self.line(&format!("{level}: {text}"), false),
            RunEvent::Finished { report, written } => {
                if self.status_shown {
                    let _ = writeln!(self.out);
                    let _ = self.out.flush();
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
            RunEvent::Phase { .. }
            | RunEvent::Step { .. }
            | RunEvent::Status { .. }
            | RunEvent::Notice { .. } => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Level;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
    }

    /// A sink on `terminal` or not, its clock at `now` (milliseconds) as the test sets it.
    fn sink(terminal: bool, color: bool, verbose: bool) -> (TextSink, Shared, Rc<Cell<u64>>) {
        let out = Shared::default();
        let now = Rc::new(Cell::new(0));
        let clock = now.clone();
        let sink = TextSink::new(Box::new(out.clone()), terminal, color)
            .verbose(verbose)
            .with_clock(move || Duration::from_millis(clock.get()));
        (sink, out, now)
    }

    fn phase(text: &str) -> RunEvent {
        RunEvent::Phase {
            phase: Phase::Hold,
            doing: text.into(),
        }
    }

    fn step(text: &str) -> RunEvent {
        RunEvent::Step {
            phase: Phase::Revert,
            text: text.into(),
        }
    }

    fn status(text: &str) -> RunEvent {
        RunEvent::Status {
            phase: Phase::Hold,
            text: text.into(),
        }
    }

    #[test]
    fn a_log_has_one_timed_line_per_phase_and_step_and_no_status() {
        let (mut sink, out, now) = sink(false, false, false);
        now.set(1_200);
        sink.emit(phase("`hog` step 1/2: cpu-hog"));
        now.set(2_340);
        sink.emit(status("hog step 1/2 | 3s left"));
        now.set(12_345);
        sink.emit(step("`hog` reverted, revert verified"));
        now.set(123_456);
        sink.emit(RunEvent::Notice {
            phase: Phase::After,
            text: "indicator changed".into(),
        });
        sink.emit(RunEvent::Message {
            level: Level::Warning,
            text: "careful".into(),
        });
        assert_eq!(
            out.text(),
            "   1.2s [hold] `hog` step 1/2: cpu-hog\n\
             \x20 12.3s [revert] `hog` reverted, revert verified\n\
             \x20123.5s [after] indicator changed\n\
             warning: careful\n"
        );
    }

    #[test]
    fn a_verbose_log_keeps_each_status_as_a_line() {
        let (mut sink, out, now) = sink(false, true, true);
        now.set(2_000);
        sink.emit(status("hog step 1/2 | 3s left"));
        sink.emit(status("hog step 1/2 | 2s left"));
        assert_eq!(
            out.text(),
            "   2.0s [hold] hog step 1/2 | 3s left\n   2.0s [hold] hog step 1/2 | 2s left\n"
        );
    }

    #[test]
    fn a_terminal_rewrites_the_status_line_and_clears_it_before_a_step() {
        let (mut sink, out, now) = sink(true, false, false);
        now.set(500);
        sink.emit(status("3s left"));
        sink.emit(status("2s left"));
        sink.emit(step("`hog` reverted"));
        assert_eq!(
            out.text(),
            "\r\x1b[2K   0.5s [hold] 3s left\r\x1b[2K   0.5s [hold] 2s left\
             \r\x1b[2K   0.5s [revert] `hog` reverted\n"
        );
    }

    #[test]
    fn notices_are_coloured_only_with_colour() {
        let notice = || RunEvent::Notice {
            phase: Phase::Hold,
            text: "changed".into(),
        };
        let (mut plain, plain_out, _) = sink(true, false, false);
        plain.emit(notice());
        assert!(!plain_out.text().contains('\x1b'));
        let (mut coloured, coloured_out, _) = sink(true, true, false);
        coloured.emit(notice());
        assert_eq!(
            coloured_out.text(),
            "\x1b[33m   0.0s [hold] changed\x1b[0m\n"
        );
    }
}
