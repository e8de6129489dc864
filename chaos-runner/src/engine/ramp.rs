//! The ramp schedule: which step each fault is on at a moment of the hold, and when the next
//! change is due. A pure function of the faults' shapes and the time elapsed.

use std::time::Duration;

/// A fault's ramp: it holds `duration` in `steps` equal steps (1 for no ramp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ramp {
    /// How long the fault holds, all steps together.
    pub duration: Duration,
    /// Its number of steps, at least 1.
    pub steps: usize,
}

impl Ramp {
    /// How long one step holds: the duration shared out, in whole milliseconds (as `plan`
    /// prints it).
    fn step_time(self) -> Duration {
        crate::spec::step_time(self.duration, self.steps)
    }

    /// The step (0-based) due at `elapsed`, with the moment it ends; `None` once the fault's
    /// time is over. The last step ends with the fault, whatever the rounding of the steps.
    fn at(self, elapsed: Duration) -> Option<(usize, Duration)> {
        if elapsed >= self.duration {
            return None;
        }
        let last = self.steps.max(1) - 1;
        let step_time = self.step_time();
        let step = ((elapsed.as_nanos() / step_time.as_nanos().max(1)) as usize).min(last);
        let ends = if step == last {
            self.duration
        } else {
            step_time * (step as u32 + 1)
        };
        Some((step, ends))
    }
}

/// Where every fault stands at one moment of the hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// The step each fault should be on (`None`: its time is over), in the faults' order.
    pub steps: Vec<Option<usize>>,
    /// When the next step ends, measured from the start of the hold; `None` when every
    /// fault has run its course (the hold is over).
    pub next_change: Option<Duration>,
}

/// The schedule of `ramps` at `elapsed` into the hold.
pub(crate) fn schedule(ramps: &[Ramp], elapsed: Duration) -> Schedule {
    let mut next_change: Option<Duration> = None;
    let steps = ramps
        .iter()
        .map(|ramp| {
            let (step, ends) = ramp.at(elapsed)?;
            next_change = Some(next_change.map_or(ends, |n| n.min(ends)));
            Some(step)
        })
        .collect();
    Schedule { steps, next_change }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_fault_without_ramp_holds_one_step_for_its_duration() {
        let ramps = [Ramp {
            duration: ms(1000),
            steps: 1,
        }];
        assert_eq!(
            schedule(&ramps, ms(0)),
            Schedule {
                steps: vec![Some(0)],
                next_change: Some(ms(1000))
            }
        );
        assert_eq!(schedule(&ramps, ms(999)).steps, vec![Some(0)]);
        assert_eq!(
            schedule(&ramps, ms(1000)),
            Schedule {
                steps: vec![None],
                next_change: None
            }
        );
    }

    #[test]
    fn ramp_steps_change_at_their_boundaries() {
        let ramps = [Ramp {
            duration: ms(900),
            steps: 3,
        }];
        assert_eq!(schedule(&ramps, ms(0)).steps, vec![Some(0)]);
        assert_eq!(schedule(&ramps, ms(0)).next_change, Some(ms(300)));
        assert_eq!(schedule(&ramps, ms(299)).steps, vec![Some(0)]);
        assert_eq!(schedule(&ramps, ms(300)).steps, vec![Some(1)]);
        assert_eq!(schedule(&ramps, ms(300)).next_change, Some(ms(600)));
        assert_eq!(schedule(&ramps, ms(600)).steps, vec![Some(2)]);
        assert_eq!(schedule(&ramps, ms(600)).next_change, Some(ms(900)));
        assert_eq!(schedule(&ramps, ms(900)).steps, vec![None]);
    }

    #[test]
    fn the_last_step_ends_with_the_fault_whatever_the_rounding() {
        // 1000 ms in 3 steps: 333 ms each, and the last one holds to 1000 ms, so the hold
        // never wakes for a boundary already past.
        let ramps = [Ramp {
            duration: ms(1000),
            steps: 3,
        }];
        let at = schedule(&ramps, ms(999));
        assert_eq!(at.steps, vec![Some(2)]);
        assert_eq!(at.next_change, Some(ms(1000)));
        for elapsed in (0..1000).step_by(7) {
            let at = schedule(&ramps, ms(elapsed));
            assert!(
                at.next_change.unwrap() > ms(elapsed),
                "at {elapsed} ms: {at:?}"
            );
        }
    }

    #[test]
    fn the_next_change_is_the_nearest_of_every_fault() {
        let ramps = [
            Ramp {
                duration: ms(1000),
                steps: 2,
            },
            Ramp {
                duration: ms(300),
                steps: 1,
            },
            Ramp {
                duration: ms(2000),
                steps: 4,
            },
        ];
        let at = schedule(&ramps, ms(100));
        assert_eq!(at.steps, vec![Some(0), Some(0), Some(0)]);
        assert_eq!(at.next_change, Some(ms(300)));
        let at = schedule(&ramps, ms(400));
        assert_eq!(at.steps, vec![Some(0), None, Some(0)]);
        assert_eq!(at.next_change, Some(ms(500)));
        let at = schedule(&ramps, ms(1500));
        assert_eq!(at.steps, vec![None, None, Some(3)]);
        assert_eq!(at.next_change, Some(ms(2000)));
        assert_eq!(schedule(&ramps, ms(2000)).next_change, None);
    }

    #[test]
    fn no_faults_means_no_hold() {
        assert_eq!(
            schedule(&[], ms(0)),
            Schedule {
                steps: vec![],
                next_change: None
            }
        );
    }
}
