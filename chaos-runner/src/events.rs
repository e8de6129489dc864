//! What a run tells the people and programs watching it: the engine emits [`RunEvent`]s to
//! an [`EventSink`], and the sink decides how they look (a live status line on a terminal,
//! one line per phase and event in a log, one JSON document for machines: the sinks of
//! the `output` module). The engine never prints.

use std::fmt;
use std::path::PathBuf;

use crate::report::RunReport;

/// The phases of a run, in order.
///
/// ```
/// assert_eq!(chaos_runner::events::Phase::Preflight.to_string(), "preflight");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting or stopping the experiment's own services (`spec.setup`).
    Setup,
    /// Everything before a fault goes in: commands, proxies, load, signals, steady state.
    Preflight,
    /// The faults are live and the abort conditions are watched.
    Hold,
    /// Removing the faults and checking they are gone.
    Revert,
    /// The steady state after the faults.
    After,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Setup => "setup",
            Phase::Preflight => "preflight",
            Phase::Hold => "hold",
            Phase::Revert => "revert",
            Phase::After => "after",
        })
    }
}

/// How serious a message is.
///
/// ```
/// assert_eq!(chaos_runner::events::Level::Warning.to_string(), "warning");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something the reader should know (a dead run's fault closed in its journal).
    Note,
    /// Something went wrong that the run survives.
    Warning,
    /// Something that stops the run or the command.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// One thing that happened during a run.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A phase began a step: `[preflight] checking signals and steady state`.
    Phase {
        /// The phase.
        phase: Phase,
        /// What it is doing.
        doing: String,
    },
    /// A line that stays, in a log and on a terminal: something the run did or found
    /// (a service ready, a check's result, a fault reverted), e.g.
    /// `[preflight] steady state `host-ok`: 12.5 (breach when > 90): ok`.
    ///
    /// ```
    /// use chaos_runner::events::{Phase, RunEvent};
    /// let event = RunEvent::Step { phase: Phase::Setup, text: "`web` ready after 1.2s".into() };
    /// assert!(matches!(event, RunEvent::Step { phase: Phase::Setup, .. }));
    /// ```
    Step {
        /// The phase.
        phase: Phase,
        /// What happened, in one line.
        text: String,
    },
    /// The live state while the faults hold: steps, time left, latest values. Changes every
    /// check; a terminal shows the latest, a log does not keep them.
    Status {
        /// The phase.
        phase: Phase,
        /// The state in one line.
        text: String,
    },
    /// Something that happened and deserves a line of its own (an indicator changed).
    Notice {
        /// The phase it happened in.
        phase: Phase,
        /// What happened.
        text: String,
    },
    /// A problem or a note outside the run's own story (a file error, a warning).
    Message {
        /// How serious.
        level: Level,
        /// The message.
        text: String,
    },
    /// The run ended: its report, and the files it was written to.
    Finished {
        /// The report.
        report: Box<RunReport>,
        /// The report files written.
        written: Vec<PathBuf>,
    },
}

/// Where a run's events go.
///
/// ```
/// use chaos_runner::events::{EventSink, Level, RunEvent};
/// #[derive(Default)]
/// struct Collect(Vec<String>);
/// impl EventSink for Collect {
///     fn emit(&mut self, event: RunEvent) {
///         if let RunEvent::Message { level, text } = event {
///             self.0.push(format!("{level}: {text}"));
///         }
///     }
/// }
/// let mut sink = Collect::default();
/// sink.emit(RunEvent::Message { level: Level::Error, text: "no such file".into() });
/// assert_eq!(sink.0, ["error: no such file"]);
/// ```
pub trait EventSink {
    /// Takes one event.
    fn emit(&mut self, event: RunEvent);
}

/// Emits helpers, so the engine says what happened in one line.
pub(crate) trait EmitExt: EventSink {
    fn phase(&mut self, phase: Phase, doing: impl Into<String>) {
        self.emit(RunEvent::Phase {
            phase,
            doing: doing.into(),
        });
    }
    fn step(&mut self, phase: Phase, text: impl Into<String>) {
        self.emit(RunEvent::Step {
            phase,
            text: text.into(),
        });
    }
    fn message(&mut self, level: Level, text: impl Into<String>) {
        self.emit(RunEvent::Message {
            level,
            text: text.into(),
        });
    }
    fn error(&mut self, text: impl Into<String>) {
        self.message(Level::Error, text);
    }
}

impl<T: EventSink + ?Sized> EmitExt for T {}
