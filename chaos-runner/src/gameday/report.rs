//! `chaos-runner gameday report FILE`: the history as pages people read, a static HTML
//! page and Markdown. A calendar of the period (a row per week, Monday first, in the
//! GameDay's zone) with each run's verdict and each skipped slot's reason at a glance, and
//! the slots that left no record at all (a scheduler that did not call), then every record:
//! verdict or skip reason, abort reason, budget before and after, links to the run's
//! reports.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::history::{self, Action, Record};
use crate::exit::Outcome;
use crate::output::Format;
use crate::spec::gameday::ValidatedGameDay;

/// `gameday report`: reads the history, writes `<name>.html` and `<name>.md` into `dir`
/// (default: the history's directory).
pub fn run(
    file: &Path,
    dir: Option<&Path>,
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
    let history_file = gameday.history_file();
    let (records, notes) = match history::read(&history_file) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Aborted;
        }
    };
    for note in &notes {
        eprintln!("warning: {note}");
    }
    let mut records: Vec<Record> = records
        .into_iter()
        .filter(|r| {
            let at = instant(&r.at);
            from.is_none_or(|f| at.is_some_and(|a| a >= f))
                && to.is_none_or(|t| at.is_some_and(|a| a < t))
        })
        .collect();
    // In time order (a rehearsal with `--now` appends out of order).
    records.sort_by_key(|r| instant(&r.at));
    let start = from.or_else(|| records.first().and_then(|r| instant(&r.at)));
    let end = to.unwrap_or_else(Utc::now).min(Utc::now());
    let missed = match start {
        Some(start) if start < end => missed_slots(&gameday, &records, start, end),
        _ => Vec::new(),
    };
    let out_dir = dir
        .map(Path::to_owned)
        .unwrap_or_else(|| history_file.parent().unwrap_or(Path::new(".")).to_owned());
    let name = &gameday.gameday.metadata.name;
    let html_path = out_dir.join(format!("{name}.html"));
    let md_path = out_dir.join(format!("{name}.md"));
    let written = std::fs::create_dir_all(&out_dir)
        .and_then(|()| std::fs::write(&html_path, html(&gameday, &records, &missed, &out_dir)))
        .and_then(|()| std::fs::write(&md_path, markdown(&gameday, &records, &missed, &out_dir)));
    if let Err(e) = written {
        eprintln!(
            "error: cannot write the report in {}: {e}",
            out_dir.display()
        );
        return Outcome::Aborted;
    }
    match format {
        Format::Text => {
            println!(
                "{} ({}, {}) from {}; {} with no record",
                count(records.len(), "record"),
                count(
                    records.iter().filter(|r| r.action == Action::Run).count(),
                    "run"
                ),
                count(
                    records.iter().filter(|r| r.action == Action::Skip).count(),
                    "skip"
                ),
                history_file.display(),
                count(missed.len(), "slot")
            );
            println!("report: {}", html_path.display());
            println!("report: {}", md_path.display());
        }
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "command": "gameday report",
                "history": history_file.display().to_string(),
                "records": records.len(),
                "missedSlots": missed.iter().map(|m| serde_json::json!({
                    "entry": m.entry, "slot": m.slot.to_rfc3339(),
                })).collect::<Vec<_>>(),
                "reports": [html_path.display().to_string(), md_path.display().to_string()],
            })
        ),
    }
    Outcome::Passed
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// A slot the schedule had that left no record: nothing called `gameday run` for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// The entry.
    pub entry: String,
    /// The slot.
    pub slot: DateTime<Utc>,
}

/// At most this many slots of an entry are checked for records.
const MAX_CHECKED_SLOTS: usize = 20_000;

/// The slots of `[start, end)` that no record covers: a record of the entry made within the
/// starting deadline after the slot (runs and skips alike).
pub fn missed_slots(
    gameday: &ValidatedGameDay,
    records: &[Record],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<Missed> {
    let deadline = super::windows::chrono_duration(gameday.gameday.spec.starting_deadline);
    let mut missed = Vec::new();
    for entry in &gameday.entries {
        let times: Vec<DateTime<Utc>> = records
            .iter()
            .filter(|r| r.entry == entry.name)
            .filter_map(|r| instant(&r.at))
            .collect();
        for slot in entry
            .schedule
            .slots(start, end, gameday.zone, MAX_CHECKED_SLOTS)
            // A slot whose deadline has not passed may still be called.
            .into_iter()
            .filter(|slot| *slot + deadline <= end)
        {
            if !times.iter().any(|t| *t >= slot && *t <= slot + deadline) {
                missed.push(Missed {
                    entry: entry.name.clone(),
                    slot,
                });
            }
        }
    }
    missed.sort_by_key(|m| m.slot);
    missed
}

fn instant(rfc: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(rfc).ok().map(|t| t.to_utc())
}

/// A record's local date and time of day (`14:00`) in the GameDay's zone.
fn local_of(gameday: &ValidatedGameDay, r: &Record) -> Option<(NaiveDate, String)> {
    let at = instant(&r.at)?.with_timezone(&gameday.zone);
    Some((at.date_naive(), at.format("%H:%M").to_string()))
}

/// What a record shows: `passed`, `failed`, `aborted`, `not reverted`, or the skip kind.
fn label(r: &Record) -> String {
    match r.action {
        Action::Run => r
            .verdict
            .clone()
            .unwrap_or_else(|| "unknown".into())
            .replace('_', " "),
        Action::Skip => format!("skipped: {}", r.skip.as_deref().unwrap_or("?")),
    }
}

/// What a record's chip in the calendar says: the verdict, or `skip: <kind>`.
fn chip_label(r: &Record) -> String {
    match r.action {
        Action::Run => label(r),
        Action::Skip => format!("skip: {}", r.skip.as_deref().unwrap_or("?")),
    }
}

/// The CSS class of a record's chip.
fn class(r: &Record) -> &'static str {
    match (r.action, r.verdict.as_deref()) {
        (Action::Skip, _) => "skip",
        (Action::Run, Some("passed")) => "passed",
        (Action::Run, Some("failed")) => "failed",
        (Action::Run, Some("aborted")) => "aborted",
        _ => "broken",
    }
}

/// A link from the page in `page_dir` to a file named as the runner wrote it (relative to
/// the same working directory, or absolute).
fn link(page_dir: &Path, target: &str) -> String {
    let target = Path::new(target);
    if target.is_absolute() || page_dir.is_absolute() {
        return format!("file://{}", target.display());
    }
    let ups = page_dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut rel = PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    rel.push(target);
    rel.display().to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn budget_text(map: &BTreeMap<String, Option<f64>>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(slo, left)| match left {
            Some(l) => format!("{slo} {l:.1}%"),
            None => format!("{slo} ?"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 4px} .sub{color:#57606a;margin:0 0 16px}
.totals span{display:inline-block;margin:0 12px 12px 0;padding:4px 10px;border-radius:12px;font-weight:600}
table.cal{border-collapse:collapse;width:100%;table-layout:fixed;margin-bottom:24px}
table.cal th{font-size:12px;color:#57606a;padding:4px;text-align:left}
table.cal td{border:1px solid #d0d7de;vertical-align:top;height:64px;padding:4px}
td .day{font-size:11px;color:#57606a} td.out{background:#f6f8fa}
.chip{display:block;font-size:11px;border-radius:4px;padding:2px 4px;margin-top:2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.passed{background:#dafbe1;color:#116329} .failed{background:#ffebe9;color:#a40e26}
.aborted{background:#fff1e5;color:#953800} .broken{background:#a40e26;color:#fff}
.skip{background:#eaeef2;color:#57606a}
.missed{background:#fff;color:#953800;border:1px dashed #bc4c00}
table.log{border-collapse:collapse;width:100%;font-size:13px}
table.log th,table.log td{border-bottom:1px solid #d0d7de;padding:6px;text-align:left;vertical-align:top}
.legend span{margin-right:10px}
";

/// The HTML page: totals, the calendar, every record.
pub fn html(
    gameday: &ValidatedGameDay,
    records: &[Record],
    missed: &[Missed],
    page_dir: &Path,
) -> String {
    let name = escape(&gameday.gameday.metadata.name);
    let zone = gameday.zone.name();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>GameDay {name}</title><style>{STYLE}</style></head><body>\
         <h1>GameDay {name}</h1><p class=\"sub\">{} &middot; times in {zone} &middot; {} \
         records</p>",
        escape(&gameday.gameday.metadata.description),
        records.len()
    );
    // Totals.
    let mut totals: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    for r in records {
        totals.entry(label(r)).or_insert((0, class(r))).0 += 1;
    }
    out.push_str("<div class=\"totals\">");
    for (what, (n, class)) in &totals {
        let _ = write!(out, "<span class=\"{class}\">{n} {}</span>", escape(what));
    }
    if !missed.is_empty() {
        let _ = write!(
            out,
            "<span class=\"missed\">{} with no record</span>",
            count(missed.len(), "slot")
        );
    }
    out.push_str("</div>");

    // The calendar: whole weeks from the first record's to the last's.
    let dated: Vec<(NaiveDate, String, &Record)> = records
        .iter()
        .filter_map(|r| local_of(gameday, r).map(|(d, t)| (d, t, r)))
        .collect();
    let missed_days = missed
        .iter()
        .map(|m| m.slot.with_timezone(&gameday.zone).date_naive());
    let days = || dated.iter().map(|d| d.0).chain(missed_days.clone());
    if let (Some(first), Some(last)) = (days().min(), days().max()) {
        let monday = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
        out.push_str("<table class=\"cal\"><tr>");
        for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
            let _ = write!(out, "<th>{day}</th>");
        }
        out.push_str("</tr>");
        let mut week = monday;
        // At most two years of weeks.
        let mut weeks = 0;
        while week <= last && weeks < 106 {
            out.push_str("<tr>");
            for offset in 0..7 {
                let day = week + Duration::days(offset);
                let inside = day >= first && day <= last;
                let _ = write!(
                    out,
                    "<td{}><div class=\"day\">{}</div>",
                    if inside { "" } else { " class=\"out\"" },
                    day.format("%b %-d")
                );
                for (_, time, r) in dated.iter().filter(|d| d.0 == day) {
                    let _ = write!(
                        out,
                        "<span class=\"chip {}\" title=\"{}\">{time} {} &middot; {}</span>",
                        class(r),
                        escape(&r.reason),
                        escape(&r.entry),
                        escape(&chip_label(r))
                    );
                }
                // Slots nobody called, one chip per entry and day.
                let mut by_entry: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for m in missed {
                    let local = m.slot.with_timezone(&gameday.zone);
                    if local.date_naive() == day {
                        by_entry
                            .entry(m.entry.as_str())
                            .or_default()
                            .push(local.format("%H:%M").to_string());
                    }
                }
                for (entry, times) in by_entry {
                    let text = if times.len() == 1 {
                        format!("{} {} &middot; no record", times[0], escape(entry))
                    } else {
                        format!(
                            "{} &middot; {} slots, no record",
                            escape(entry),
                            times.len()
                        )
                    };
                    let _ = write!(
                        out,
                        "<span class=\"chip missed\" title=\"no run and no skip recorded: did \
                         the scheduler call? {}\">{text}</span>",
                        escape(&times.join(", "))
                    );
                }
                out.push_str("</td>");
            }
            out.push_str("</tr>");
            week += Duration::days(7);
            weeks += 1;
        }
        out.push_str("</table>");
    } else {
        out.push_str("<p>No run and no skip recorded yet.</p>");
    }

    // Every record, newest first.
    out.push_str(
        "<table class=\"log\"><tr><th>When</th><th>Entry</th><th>Outcome</th><th>Why</th>\
         <th>Budget before</th><th>Budget after</th><th>Reports</th></tr>",
    );
    for r in records.iter().rev() {
        let reports = r
            .reports
            .iter()
            .map(|p| {
                let file = Path::new(p)
                    .file_name()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "report".into());
                format!(
                    "<a href=\"{}\">{}</a>",
                    escape(&link(page_dir, p)),
                    escape(&file)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><span class=\"chip {}\">{}</span></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.local),
            escape(&r.entry),
            class(r),
            escape(&label(r)),
            escape(&r.reason),
            escape(&budget_text(&r.budget_before)),
            escape(&budget_text(&r.budget_after)),
            if reports.is_empty() {
                "-".into()
            } else {
                reports
            }
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

/// The Markdown page: totals, the slots with no record, and every record.
pub fn markdown(
    gameday: &ValidatedGameDay,
    records: &[Record],
    missed: &[Missed],
    page_dir: &Path,
) -> String {
    let mut out = format!(
        "# GameDay {}\n\nTimes in {}. {}: {}, {}; {} with no record.\n\n",
        gameday.gameday.metadata.name,
        gameday.zone.name(),
        count(records.len(), "record"),
        count(
            records.iter().filter(|r| r.action == Action::Run).count(),
            "run"
        ),
        count(
            records.iter().filter(|r| r.action == Action::Skip).count(),
            "skip"
        ),
        count(missed.len(), "slot"),
    );
    if !missed.is_empty() {
        out.push_str("Slots with no record (did the scheduler call?):\n\n");
        for m in missed.iter().take(50) {
            let _ = writeln!(
                out,
                "- {} {}",
                m.slot
                    .with_timezone(&gameday.zone)
                    .format("%Y-%m-%d %H:%M %Z"),
                m.entry
            );
        }
        if missed.len() > 50 {
            let _ = writeln!(out, "- ... and {} more", missed.len() - 50);
        }
        out.push('\n');
    }
    out.push_str("| When | Entry | Outcome | Why | Budget before | Budget after | Reports |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
    for r in records.iter().rev() {
        let reports = r
            .reports
            .iter()
            .map(|p| {
                format!(
                    "[{}]({})",
                    Path::new(p)
                        .file_name()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    link(page_dir, p)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.local),
            cell(&r.entry),
            cell(&label(r)),
            cell(&r.reason),
            cell(&budget_text(&r.budget_before)),
            cell(&budget_text(&r.budget_after)),
            if reports.is_empty() {
                "-".into()
            } else {
                reports
            }
        );
    }
    out
}
