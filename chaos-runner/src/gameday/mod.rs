//! GameDays: a calendar of experiments run by an existing scheduler (Kubernetes CronJobs,
//! systemd timers), in the studio's time zone, never in a blackout (peak hours by default)
//! or the maintenance, never when the error budget is low, never two at once, with a history
//! people read.
//!
//! - [`windows`]: whether an entry may run at an instant by the calendar, and when a run
//!   must end;
//! - [`plan`]: `gameday plan`, the next slots and whether each would run;
//! - [`run`]: `gameday run`, what the scheduler calls at a slot;
//! - [`install`]: `gameday install`, CronJobs or systemd units;
//! - [`history`] and [`report`]: the append-only history and its pages;
//! - [`lock`] and [`notify`]: one run at a time, and the webhook.

pub mod budget;
pub mod history;
pub mod install;
pub mod lock;
pub mod notify;
pub mod plan;
pub mod report;
pub mod run;
pub mod windows;
