//! `chaos-runner gameday plan FILE [--from] [--to]`: the calendar of the next slots, each
//! with whether it would run or be skipped and why (blackout, maintenance, overrun into a
//! blackout given its duration, outside the allowed windows, budget). The budget is read
//! once, at `--from` (now by default), and applied to every slot: the plan says what would
//! happen if it stayed as it is. Nothing is run, locked or recorded.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::Path;

use super::budget::BudgetNow;
use super::run::local_text;
use super::windows::{Clock, Skip};
use crate::exit::Outcome;
use crate::output::Format;
use crate::spec::gameday::ValidatedGameDay;

/// At most this many slots of each entry are listed.
pub const MAX_SLOTS: usize = 1000;

/// The plan: stable JSON (`--output json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `gameday plan`.
    pub command: &'static str,
    /// The GameDay.
    pub gameday: String,
    /// Its zone.
    pub time_zone: String,
    /// The period (RFC 3339, UTC).
    pub from: String,
    /// End of the period (excluded).
    pub to: String,
    /// The budgets as read at `from`.
    pub budget: Vec<BudgetNow>,
    /// Every slot of the period, in time order.
    pub slots: Vec<Slot>,
    /// An entry has more slots than [`MAX_SLOTS`] in the period: its list stops there.
    pub truncated: bool,
}

/// One slot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// The entry.
    pub entry: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// When, local.
    pub local: String,
    /// `run` or `skip`.
    pub action: &'static str,
    /// Why it would be skipped.
    pub skip: Option<Skip>,
    /// The reason, for people.
    pub reason: String,
}

/// Builds the plan of `gameday` over `[from, to)` with the budgets read.
pub fn plan(
    gameday: &ValidatedGameDay,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    budget: &[BudgetNow],
) -> Plan {
    let clock = Clock::of(gameday);
    let mut slots = Vec::new();
    let mut truncated = false;
    for entry in &gameday.entries {
        let mut times = entry.schedule.slots(from, to, gameday.zone, MAX_SLOTS + 1);
        truncated |= times.len() > MAX_SLOTS;
        times.truncate(MAX_SLOTS);
        for at in times {
            let skip = clock
                .check(entry, at)
                .err()
                .or_else(|| super::budget::skip(gameday, &entry.slos, budget));
            slots.push(Slot {
                entry: entry.name.clone(),
                at: at.to_rfc3339(),
                local: local_text(gameday, at),
                action: if skip.is_some() { "skip" } else { "run" },
                reason: skip.as_ref().map(ToString::to_string).unwrap_or_default(),
                skip,
            });
        }
    }
    slots.sort_by(|a, b| a.at.cmp(&b.at).then(a.entry.cmp(&b.entry)));
    Plan {
        command: "gameday plan",
        gameday: gameday.gameday.metadata.name.clone(),
        time_zone: gameday.zone.name().to_owned(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        budget: budget.to_vec(),
        slots,
        truncated,
    }
}

/// `gameday plan`: loads, reads the budgets, prints.
pub fn run(
    file: &Path,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    format: Format,
) -> Outcome {
    let gameday = match crate::spec::load_gameday(file) {
        Ok(g) => g,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return Outcome::InvalidInput;
        }
    };
    let start = from.unwrap_or_else(Utc::now);
    let end = to.unwrap_or(start + chrono::Duration::days(14));
    if end <= start {
        eprintln!("error: --to must come after --from");
        return Outcome::InvalidInput;
    }
    if end - start > chrono::Duration::days(366) {
        eprintln!("error: --from to --to spans more than a year; plan a shorter period");
        return Outcome::InvalidInput;
    }
    let mut names: Vec<String> = gameday
        .entries
        .iter()
        .flat_map(|e| e.slos.clone())
        .collect();
    names.sort();
    names.dedup();
    let budget = super::budget::read(&gameday, &names, from);
    let plan = plan(&gameday, start, end, &budget);
    match format {
        Format::Json => match serde_json::to_string_pretty(&plan) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot write JSON: {e}"),
        },
        Format::Text => {
            let colour = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
            print!("{}", render_text(&gameday, &plan, colour));
        }
    }
    Outcome::Passed
}

/// The plan as a table for people.
pub fn render_text(gameday: &ValidatedGameDay, plan: &Plan, colour: bool) -> String {
    use std::fmt::Write as _;
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let at = |rfc: &str| {
        DateTime::parse_from_rfc3339(rfc)
            .map(|t| local_text(gameday, t.to_utc()))
            .unwrap_or_else(|_| rfc.to_owned())
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "GameDay {} ({}), {} to {}",
        plan.gameday,
        plan.time_zone,
        at(&plan.from),
        at(&plan.to)
    );
    if let Some(required) = &gameday.gameday.spec.budget {
        let figures: Vec<String> = plan
            .budget
            .iter()
            .map(|b| match (b.left_percent, &b.error) {
                (Some(left), _) => format!("{} {left:.1}% left", b.slo),
                (None, Some(_)) => format!("{} unknown", b.slo),
                (None, None) => format!("{} unknown (no events)", b.slo),
            })
            .collect();
        let mut errors: Vec<&String> = plan
            .budget
            .iter()
            .filter_map(|b| b.error.as_ref())
            .collect();
        errors.dedup();
        let _ = writeln!(
            out,
            "budget at the start: {} (more than {}% required)",
            if figures.is_empty() {
                "nothing to read".to_owned()
            } else {
                figures.join(", ")
            },
            required.min_remaining_percent
        );
        for e in errors {
            let _ = writeln!(out, "  cannot read the budget: {e}");
        }
    }
    if plan.slots.is_empty() {
        let _ = writeln!(out, "no slot in this period");
        return out;
    }
    let width = plan
        .slots
        .iter()
        .map(|s| s.entry.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<25} {:<width$} {:<5} WHY",
        "WHEN", "ENTRY", "WOULD"
    );
    for slot in &plan.slots {
        let would = if slot.action == "run" {
            paint("32", "run  ")
        } else {
            paint("33", "skip ")
        };
        let why = match &slot.skip {
            // The reason is said once, above.
            Some(skip @ Skip::BudgetUnknown { .. }) => {
                format!("{}: the budget cannot be read (above)", skip.kind())
            }
            Some(skip) => format!("{}: {}", skip.kind(), slot.reason),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<25} {:<width$} {would} {why}",
            slot.local, slot.entry
        );
    }
    if plan.truncated {
        let _ = writeln!(
            out,
            "  ... (more than {MAX_SLOTS} slots: plan a shorter period)"
        );
    }
    let runs = plan.slots.iter().filter(|s| s.action == "run").count();
    let _ = writeln!(out, "\n{runs} of {} slots would run", plan.slots.len());
    out
}
