//! The hold: each fault is injected (its intent journaled first) and moved along its ramp,
//! while the abort conditions are checked every `check_interval`; ends when every fault
//! has run its course, an abort condition is breached, a source is down, or a signal comes.

use std::time::Duration;

use crate::events::{EmitExt, EventSink, Phase, RunEvent};
use crate::faults;
use crate::journal::Event;
use crate::report::FaultWindow;
use crate::watch::indicator::IndicatorWatcher;
use crate::watch::{Observation, Verdict};

use super::live::LiveSet;
use super::ramp::{schedule, Ramp};
use super::{PhaseResult, Run, Stop};

/// Holds the faults until their time is over or the run stops.
pub(super) async fn hold(
    run: &mut Run<'_>,
    live: &mut LiveSet,
    indicators: &IndicatorWatcher,
    sink: &mut dyn EventSink,
) -> PhaseResult {
    let hold_start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(run.spec().check_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ramps: Vec<Ramp> = live.faults.iter().map(|f| f.ramp()).collect();
    loop {
        let elapsed = hold_start.elapsed();
        let due = schedule(&ramps, elapsed);
        for (i, wanted) in due.steps.iter().enumerate() {
            if *wanted != live.faults[i].current {
                move_to_step(run, live, i, *wanted, elapsed, sink)?;
            }
        }
        let Some(next_change) = due.next_change else {
            return Ok(()); // every fault has run its course
        };
        for change in indicators.take_fresh().iter().filter(|c| c.announce) {
            sink.emit(RunEvent::Notice {
                phase: Phase::Hold,
                text: change.to_string(),
            });
        }
        sink.emit(RunEvent::Status {
            phase: Phase::Hold,
            text: status_line(run, live, indicators, next_change.saturating_sub(elapsed)),
        });
        tokio::select! {
            stop = run.signals.stopped() => return Err(stop),
            _ = tokio::time::sleep_until(hold_start + next_change) => {}
            _ = ticker.tick() => check_abort_conditions(run, sink).await?,
        }
    }
}

/// Reverts fault `i`'s current step and injects step `wanted` (none: its time is over),
/// journaling the intent before and the result after.
fn move_to_step(
    run: &Run<'_>,
    live: &mut LiveSet,
    i: usize,
    wanted: Option<usize>,
    elapsed: Duration,
    sink: &mut dyn EventSink,
) -> PhaseResult {
    live.revert_one(i);
    live.faults[i].current = wanted;
    let Some(step) = wanted else {
        return Ok(());
    };
    let f = &live.faults[i];
    let remaining = f.fault.spec.duration.saturating_sub(elapsed);
    let mut fault = faults::build(&run.context, &f.fault, &f.fault.steps[step], remaining);
    let description = fault.describe();
    let intent = Event::Intent {
        fault: f.name().to_owned(),
        description: description.clone(),
        record: fault.planned_record(),
    };
    live.journal
        .append(intent)
        .map_err(|e| Stop::aborted(format!("journal: {e}")))?;
    sink.phase(
        Phase::Hold,
        format!(
            "`{}` step {}/{}: {description}",
            f.name(),
            step + 1,
            f.fault.steps.len()
        ),
    );
    let record = match fault.inject() {
        Ok(record) => record,
        Err(e) => {
            // Nothing went in: close the intent so no later run sees it as live.
            let _ = live.journal.append(Event::Reverted {
                fault: live.faults[i].name().to_owned(),
            });
            return Err(Stop::aborted(e.to_string()));
        }
    };
    let description = fault.describe();
    let f = &mut live.faults[i];
    f.report.revertible &= fault.revertible();
    f.report
        .steps
        .push(format!("{description} (from {} ms)", elapsed.as_millis()));
    f.live = Some(fault);
    f.report.windows.push(FaultWindow {
        start_ms: run.started.elapsed().as_millis() as u64,
        end_ms: None,
    });
    let injected = Event::Injected {
        fault: f.name().to_owned(),
        record,
    };
    live.journal
        .append(injected)
        .map_err(|e| Stop::aborted(format!("journal: {e}")))
}

/// One evaluation of the abort conditions, each breach (or source failure) a line of its
/// own; a signal cuts it short.
async fn check_abort_conditions(run: &mut Run<'_>, sink: &mut dyn EventSink) -> PhaseResult {
    let verdict = tokio::select! {
        bad = super::evaluate_all(
            &mut run.abort,
            run.prometheus.as_ref(),
            &run.http,
            "hold",
            run.started,
            &mut run.timeline,
        ) => bad,
        stop = run.signals.stopped() => return Err(stop),
    };
    // Every condition was evaluated, in order: the last observations are theirs.
    let evaluated = run.timeline.len().saturating_sub(run.abort.len());
    for (watch, obs) in run.abort.iter().zip(&run.timeline[evaluated..]) {
        if let Some(line) = super::lines::abort_breach(watch, obs) {
            sink.step(Phase::Hold, line);
        }
    }
    match verdict {
        Some(Verdict::Breach(why)) => {
            Err(Stop::aborted(format!("abort condition breached: {why}")))
        }
        Some(Verdict::SourceDown(why)) => Err(Stop::aborted(why)),
        _ => Ok(()),
    }
}

/// The hold's state in one line: each fault's step, the time to the next change, the
/// latest value of each abort condition, the load and the indicators.
fn status_line(
    run: &Run<'_>,
    live: &LiveSet,
    indicators: &IndicatorWatcher,
    left: Duration,
) -> String {
    let steps = live
        .faults
        .iter()
        .filter_map(|f| {
            f.current
                .map(|s| format!("{} step {}/{}", f.name(), s + 1, f.fault.steps.len()))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let latest: Vec<String> = run
        .abort
        .iter()
        .map(|w| {
            let last = run
                .timeline
                .iter()
                .rev()
                .find(|o: &&Observation| o.check == w.name);
            format!(
                "{}={}",
                w.name,
                last.and_then(|o| o.value)
                    .map_or("-".into(), |v| format!("{v:.3}"))
            )
        })
        .collect();
    let load_line = run
        .load
        .as_ref()
        .map(|l| format!(" | {}", l.stats().progress()))
        .unwrap_or_default();
    let indicator_line = match indicators.summary() {
        summary if summary.is_empty() => String::new(),
        summary => format!(" | {summary}"),
    };
    format!(
        "{steps} | {:.0}s left | {}{load_line}{indicator_line}",
        left.as_secs_f64().max(0.0),
        latest.join(" "),
    )
}
