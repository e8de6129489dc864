//! The faults a run holds: each fault's current step and report, and the revert that puts
//! every one back (retried, then verified, and journaled) on every exit path.

use std::time::{Duration, Instant};

use crate::faults::Fault;
use crate::journal::{Event, Journal};
use crate::report::{FaultReport, Measurement};
use crate::spec::ValidatedFault;

use super::ramp::Ramp;

/// A fault of the experiment while the run holds it.
pub(super) struct Active {
    pub fault: ValidatedFault,
    /// The step in effect (`None`: not injected, or its time is over).
    pub current: Option<usize>,
    pub live: Option<Box<dyn Fault>>,
    pub report: FaultReport,
}

impl Active {
    pub fn new(fault: &ValidatedFault) -> Active {
        let spec = &fault.spec;
        Active {
            fault: fault.clone(),
            current: None,
            live: None,
            report: FaultReport::new(&spec.name),
        }
    }

    /// The fault's name.
    pub fn name(&self) -> &str {
        &self.fault.spec.name
    }

    pub fn ramp(&self) -> Ramp {
        Ramp {
            duration: self.fault.spec.duration,
            steps: self.fault.steps.len(),
        }
    }
}

/// The faults live right now, with the journal; reverts everything it still holds when
/// dropped, so even a panic puts the system back.
pub(super) struct LiveSet {
    pub faults: Vec<Active>,
    pub journal: Journal,
    pub started: Instant,
}

impl LiveSet {
    /// Reverts one fault's current step, retrying, then verifies; journals the result.
    pub fn revert_one(&mut self, index: usize) {
        let fault = &mut self.faults[index];
        let Some(mut live_fault) = fault.live.take() else {
            return;
        };
        let mut last_error = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            match live_fault
                .revert()
                .and_then(|()| live_fault.verify_reverted())
            {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if let Some(w) = fault.report.windows.last_mut() {
            w.end_ms
                .get_or_insert(self.started.elapsed().as_millis() as u64);
        }
        fault.report.measurements.extend(
            live_fault
                .measurements()
                .into_iter()
                .map(|(name, value)| Measurement { name, value }),
        );
        let event = match &last_error {
            None => Event::Reverted {
                fault: fault.name().to_owned(),
            },
            Some(error) => {
                fault.report.reverted = false;
                fault.report.errors.push(error.clone());
                Event::RevertFailed {
                    fault: fault.name().to_owned(),
                    error: error.clone(),
                }
            }
        };
        if let Err(e) = self.journal.append(event) {
            fault.report.errors.push(e.to_string());
        }
    }

    /// Reverts every fault still live.
    pub fn revert_all(&mut self) {
        for i in 0..self.faults.len() {
            self.revert_one(i);
        }
    }

    /// Whether a fault could not be reverted.
    pub fn any_not_reverted(&self) -> bool {
        self.faults.iter().any(|f| !f.report.reverted)
    }
}

impl Drop for LiveSet {
    fn drop(&mut self) {
        self.revert_all();
    }
}
