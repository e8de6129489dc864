//! GameDay files (`kind: GameDay`): a calendar of experiments in the studio's time zone,
//! with blackout windows (by default the SLO calendar's peak hours), its maintenance, the
//! windows runs may use, an error-budget requirement, and who is told. The model as written,
//! its checks (every problem with its field and line), and the checked form the `gameday`
//! commands read.
//!
//! ```yaml
//! apiVersion: chaos.game-resilience.dev/v1
//! kind: GameDay
//! metadata: { name: weekly }
//! spec:
//!   sloFile: ../slo/game-services.yaml     # time zone, peak hours, maintenance, budgets
//!   prometheus: { url: "http://127.0.0.1:9090" }
//!   budget: { minRemainingPercent: 50 }
//!   entries:
//!     - name: db-latency
//!       experiment: ../local/db-latency.yaml
//!       schedule: "0 14 * * mon-fri"          # local time
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::calendar::{DayWindow, TimeOfDay, Weekday};
use super::cron::Schedule;
use super::model::{Backend, Check, Metadata, PrometheusSource, API_VERSION};
use super::slo::SloSet;
use super::validate::{check_day_window, is_dns_label, is_http_url, Collector};
use super::yaml::Positions;
use super::{SpecError, SpecErrors, ValidatedExperiment};

/// A GameDay file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameDay {
    /// `chaos.game-resilience.dev/v1`.
    pub api_version: String,
    /// `GameDay`.
    pub kind: String,
    /// Its name (a DNS label: it names CronJobs and systemd units) and description.
    pub metadata: Metadata,
    /// The calendar.
    pub spec: GameDaySpec,
}

/// What runs when, and what stops it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameDaySpec {
    /// The IANA time zone the schedules and windows are read in (default: the SLO file's
    /// calendar zone; one of the two is needed, and they must agree).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The studio's SLO file, relative to this file: its calendar gives the default
    /// blackouts (peak hours) and the maintenance, its SLOs the budgets.
    #[serde(default)]
    pub slo_file: Option<String>,
    /// Where the SLIs are read for the budget requirement.
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
    /// The experiments and their schedules.
    pub entries: Vec<GameDayEntry>,
    /// Windows no run may start in or run into (default: the SLO calendar's peak windows).
    /// `[]` for none. The SLO calendar's maintenance is always a blackout too.
    #[serde(default)]
    pub blackouts: Option<Vec<NamedWindow>>,
    /// Windows runs must fit in, start to end (default: any time outside the blackouts).
    #[serde(default)]
    pub allowed: Vec<NamedWindow>,
    /// Start only when every SLO the experiment touches has this much budget left.
    #[serde(default)]
    pub budget: Option<BudgetRequirement>,
    /// How late after its slot a run may still start (a scheduler that was down); later
    /// ones are skipped. Also the CronJobs' `startingDeadlineSeconds`.
    #[serde(default = "default_starting_deadline", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub starting_deadline: Duration,
    /// Who is told of each run and skip.
    #[serde(default)]
    pub notify: Option<Notify>,
    /// The directory of the history (`<name>.jsonl`, append-only) and of `gameday report`'s
    /// pages, relative to the working directory like the experiments' report dirs.
    #[serde(default = "default_history")]
    pub history: String,
}

/// The longest a run or a starting deadline may be, in hours.
const MAX_HOURS: u64 = 24;

fn default_starting_deadline() -> Duration {
    Duration::from_secs(300)
}

fn default_history() -> String {
    "chaos-reports/gamedays".to_owned()
}

/// One experiment on the calendar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameDayEntry {
    /// Its name (a DNS label: `gameday run --entry`, unit and CronJob names).
    pub name: String,
    /// The experiment file, relative to this file.
    pub experiment: String,
    /// When, as a five-field cron schedule in the GameDay's time zone.
    pub schedule: String,
    /// The backend the experiment targets (checked against the experiment's
    /// `spec.target.backend`; default: the experiment's).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The SLOs it touches, whose budget is checked before it starts (default: the
    /// experiment's `errorBudgetGate.slos`, else the SLOs its burn-rate conditions name,
    /// else every SLO of the SLO file with a budget).
    #[serde(default)]
    pub slos: Option<Vec<String>>,
    /// How long a run takes, all phases included, to tell whether it would run into a
    /// blackout (default: its longest fault, plus the load's warm-up, plus one minute for
    /// preflight, checks and revert). At least its longest fault.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_duration: Option<Duration>,
}

/// A daily window of local time, named for the reasons it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedWindow {
    /// What it is (`peak hours`, `season launch`), said in plans and skips.
    #[serde(default)]
    pub name: Option<String>,
    /// The days it applies to (default: every day).
    #[serde(default = "every_day")]
    pub days: Vec<Weekday>,
    /// Start, local `HH:MM`.
    pub from: TimeOfDay,
    /// End, local `HH:MM` (`24:00` for midnight; before `from` when it passes midnight).
    pub to: TimeOfDay,
}

fn every_day() -> Vec<Weekday> {
    Weekday::ALL.to_vec()
}

impl NamedWindow {
    /// The window without its name.
    pub fn window(&self) -> DayWindow {
        DayWindow {
            days: self.days.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

/// The error-budget requirement, read as `chaos-runner gate` reads budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetRequirement {
    /// Start only if every SLO touched has more than this percent of its budget left.
    #[serde(default = "half")]
    pub min_remaining_percent: f64,
}

fn half() -> f64 {
    50.0
}

/// A webhook told of every run and skip (a JSON POST). Webhook URLs are secrets (they carry
/// their own token): give it by environment variable or file rather than in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notify {
    /// The URL itself.
    #[serde(default)]
    pub webhook: Option<String>,
    /// An environment variable holding it.
    #[serde(default)]
    pub webhook_env: Option<String>,
    /// A file holding it.
    #[serde(default)]
    pub webhook_file: Option<String>,
}

/// Why a window stops runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BlackoutKind {
    /// The SLO calendar's peak hours (the default blackouts).
    Peak,
    /// The SLO calendar's maintenance.
    Maintenance,
    /// A blackout the GameDay declares.
    Declared,
}

/// A window no run may start in or run into.
#[derive(Debug, Clone, PartialEq)]
pub struct Blackout {
    /// Where it comes from.
    pub kind: BlackoutKind,
    /// Its name, for people (`peak hours 18:00-22:00`).
    pub name: String,
    /// When.
    pub window: DayWindow,
}

/// A GameDay that passed every check.
#[derive(Debug, Clone)]
pub struct ValidatedGameDay {
    /// The file it was read from.
    pub path: PathBuf,
    /// As written.
    pub gameday: GameDay,
    /// Its time zone.
    pub zone: chrono_tz::Tz,
    /// The SLO file, when it names one.
    pub slos: Option<SloSet>,
    /// The SLO file's path.
    pub slo_path: Option<PathBuf>,
    /// The entries, in the file's order.
    pub entries: Vec<ValidatedEntry>,
    /// Blackouts and maintenance.
    pub blackouts: Vec<Blackout>,
    /// The allowed windows (empty: any time).
    pub allowed: Vec<(String, DayWindow)>,
}

/// One entry, checked: its experiment loaded, its schedule parsed.
#[derive(Debug, Clone)]
pub struct ValidatedEntry {
    /// Its name.
    pub name: String,
    /// The experiment file.
    pub experiment_path: PathBuf,
    /// The experiment, checked.
    pub experiment: ValidatedExperiment,
    /// When.
    pub schedule: Schedule,
    /// The backend.
    pub backend: Backend,
    /// The SLOs whose budget is checked (empty: no budget requirement applies).
    pub slos: Vec<String>,
    /// How long a run takes, at most.
    pub max_duration: Duration,
}

impl ValidatedGameDay {
    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&ValidatedEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The history file (`<history>/<name>.jsonl`).
    pub fn history_file(&self) -> PathBuf {
        Path::new(&self.gameday.spec.history).join(format!("{}.jsonl", self.gameday.metadata.name))
    }
}

/// Reads and checks a GameDay file, the experiments and the SLO file it names.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/gamedays/weekly.yaml");
/// let g = chaos_runner::spec::load_gameday(path.as_ref()).unwrap();
/// assert_eq!(g.zone.name(), "Asia/Seoul");
/// assert!(g.blackouts.iter().any(|b| b.name.starts_with("peak hours")));
/// ```
pub fn load_gameday(path: &Path) -> Result<ValidatedGameDay, SpecErrors> {
    let file = path.display().to_string();
    let text = super::read(path)?;
    let gameday: GameDay = super::parse(&file, &text)?;
    check(path, &file, &text, gameday)
}

fn check(
    path: &Path,
    file: &str,
    text: &str,
    gameday: GameDay,
) -> Result<ValidatedGameDay, SpecErrors> {
    let mut c = Collector {
        file,
        positions: Positions::of(text),
        errors: Vec::new(),
    };
    let mut foreign: Vec<SpecError> = Vec::new();
    c.check(
        gameday.api_version == API_VERSION,
        "apiVersion",
        format!("must be `{API_VERSION}`"),
    );
    c.check(gameday.kind == "GameDay", "kind", "must be `GameDay`");
    c.check(
        is_dns_label(&gameday.metadata.name) && gameday.metadata.name.len() <= 40,
        "metadata.name",
        "must be 1-40 lowercase letters, digits or dashes (it names CronJobs and units)",
    );
    let spec = &gameday.spec;

    // The SLO file: calendar and budgets.
    let mut slos = None;
    let mut slo_path = None;
    if let Some(name) = &spec.slo_file {
        match super::read_referenced(path, file, text, "spec.sloFile", name, "an SLO set") {
            Ok((slo_name, slo_text)) => match super::read_slo_set(&slo_name, &slo_text) {
                Ok(set) => {
                    slos = Some(set);
                    slo_path = Some(PathBuf::from(slo_name));
                }
                Err(e) => foreign.extend(e.0),
            },
            Err(e) => foreign.push(e),
        }
    }
    let calendar = slos
        .as_ref()
        .and_then(|s: &SloSet| s.spec.calendar.as_ref());

    // The zone.
    let zone_name = match (&spec.time_zone, calendar) {
        (Some(zone), Some(cal)) => {
            c.check(
                *zone == cal.time_zone,
                "spec.timeZone",
                format!(
                    "is `{zone}` but the SLO file's calendar is in `{}`: its peak hours and \
                     maintenance are read there; leave timeZone out or make them agree",
                    cal.time_zone
                ),
            );
            Some(zone.clone())
        }
        (Some(zone), None) => Some(zone.clone()),
        (None, Some(cal)) => Some(cal.time_zone.clone()),
        (None, None) => {
            c.check(
                spec.slo_file.is_some(),
                "spec.timeZone",
                "is needed: give a time zone (`Asia/Seoul`) or an SLO file with a calendar",
            );
            c.check(
                spec.slo_file.is_none() || !foreign.is_empty(),
                "spec.sloFile",
                "its SLO set has no calendar: give spec.timeZone",
            );
            None
        }
    };
    let zone: Option<chrono_tz::Tz> = zone_name.as_ref().and_then(|name| {
        let parsed = name.parse().ok();
        c.check(
            parsed.is_some(),
            "spec.timeZone",
            format!("`{name}` is not an IANA time zone name (e.g. Asia/Seoul, UTC)"),
        );
        parsed
    });

    // Windows.
    let mut blackouts = Vec::new();
    if let Some(cal) = calendar {
        for w in &cal.maintenance {
            blackouts.push(Blackout {
                kind: BlackoutKind::Maintenance,
                name: format!("maintenance {}", w.describe()),
                window: w.clone(),
            });
        }
    }
    match &spec.blackouts {
        None => {
            for p in calendar.map(|c| c.peak.as_slice()).unwrap_or_default() {
                let w = p.window();
                blackouts.push(Blackout {
                    kind: BlackoutKind::Peak,
                    name: format!("peak hours {}", w.describe()),
                    window: w,
                });
            }
        }
        Some(declared) => {
            for (i, w) in declared.iter().enumerate() {
                let window = w.window();
                check_day_window(&mut c, &format!("spec.blackouts[{i}]"), &window);
                blackouts.push(Blackout {
                    kind: BlackoutKind::Declared,
                    name: match &w.name {
                        Some(n) => format!("{n} {}", window.describe()),
                        None => format!("blackout {}", window.describe()),
                    },
                    window,
                });
            }
        }
    }
    let mut allowed = Vec::new();
    for (i, w) in spec.allowed.iter().enumerate() {
        let window = w.window();
        check_day_window(&mut c, &format!("spec.allowed[{i}]"), &window);
        let name = w.name.clone().unwrap_or_else(|| "allowed".into());
        allowed.push((format!("{name} {}", window.describe()), window));
    }

    // Budget and Prometheus.
    if let Some(budget) = &spec.budget {
        c.check(
            budget.min_remaining_percent.is_finite()
                && (0.0..100.0).contains(&budget.min_remaining_percent),
            "spec.budget.minRemainingPercent",
            "must be a percent from 0 to below 100",
        );
        c.check(
            spec.slo_file.is_some(),
            "spec.budget",
            "needs spec.sloFile (the SLOs whose budget is read)",
        );
        c.check(
            spec.prometheus.is_some(),
            "spec.budget",
            "needs spec.prometheus (where the budget is read)",
        );
    }
    if let Some(p) = &spec.prometheus {
        let url = p.url.trim();
        c.check(
            url.contains("${") || is_http_url(url),
            "spec.prometheus.url",
            format!("`{url}` is not an http(s) URL"),
        );
        c.check(
            !p.timeout.is_zero(),
            "spec.prometheus.timeout",
            "must be above zero",
        );
    }
    c.check(
        spec.starting_deadline >= Duration::from_secs(10)
            && spec.starting_deadline <= Duration::from_secs(MAX_HOURS * 3600),
        "spec.startingDeadline",
        format!("must be from 10s (CronJobs check it every 10 s) to {MAX_HOURS}h"),
    );
    c.check(
        !spec.history.trim().is_empty(),
        "spec.history",
        "must name a directory",
    );
    if let Some(n) = &spec.notify {
        let given = [
            n.webhook.is_some(),
            n.webhook_env.is_some(),
            n.webhook_file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        c.check(
            given == 1,
            "spec.notify",
            "give exactly one of webhook, webhookEnv, webhookFile",
        );
        if let Some(url) = &n.webhook {
            c.check(
                is_http_url(url),
                "spec.notify.webhook",
                "is not an http(s) URL",
            );
        }
    }

    // Entries.
    c.check(
        !spec.entries.is_empty(),
        "spec.entries",
        "must list at least one entry",
    );
    let mut names = HashSet::new();
    let mut entries = Vec::new();
    for (i, entry) in spec.entries.iter().enumerate() {
        let at = format!("spec.entries[{i}]");
        c.check(
            is_dns_label(&entry.name) && entry.name.len() + gameday.metadata.name.len() <= 42,
            format!("{at}.name"),
            "must be lowercase letters, digits or dashes, at most 42 characters with the \
             GameDay's name (CronJob names are at most 52)",
        );
        c.check(
            names.insert(entry.name.clone()),
            format!("{at}.name"),
            format!("`{}` is listed twice", entry.name),
        );
        let schedule = match Schedule::parse(&entry.schedule) {
            Ok(s) => Some(s),
            Err(e) => {
                c.check(false, format!("{at}.schedule"), e.to_string());
                None
            }
        };
        if let (Some(s), Some(tz)) = (&schedule, zone) {
            let now = chrono::Utc::now();
            c.check(
                s.next_after(now, tz).is_some(),
                format!("{at}.schedule"),
                "never comes (no such date)",
            );
        }
        let experiment = match super::read_referenced(
            path,
            file,
            text,
            &format!("{at}.experiment"),
            &entry.experiment,
            "an experiment",
        ) {
            Ok((exp_name, _)) => match super::load_experiment(Path::new(&exp_name)) {
                Ok(exp) => Some((PathBuf::from(exp_name), exp)),
                Err(e) => {
                    foreign.extend(e.0);
                    None
                }
            },
            Err(e) => {
                foreign.push(e);
                None
            }
        };
        let Some((experiment_path, experiment)) = experiment else {
            continue;
        };
        let exp_backend = experiment.experiment.spec.target.backend;
        if let Some(b) = entry.backend {
            c.check(
                b == exp_backend,
                format!("{at}.backend"),
                format!(
                    "the experiment targets the {} backend",
                    super::validate::backend_name(exp_backend)
                ),
            );
        }
        let longest = experiment
            .faults
            .iter()
            .map(|f| f.spec.duration)
            .max()
            .unwrap_or_default();
        let warmup = experiment
            .experiment
            .spec
            .load
            .as_ref()
            .map_or(Duration::ZERO, |l| l.warmup);
        let max_duration = match entry.max_duration {
            Some(d) => {
                c.check(
                    d <= Duration::from_secs(MAX_HOURS * 3600),
                    format!("{at}.maxDuration"),
                    format!("must be at most {MAX_HOURS}h (a GameDay run, not a season)"),
                );
                c.check(
                    d >= longest,
                    format!("{at}.maxDuration"),
                    format!(
                        "is shorter than the experiment's longest fault ({})",
                        humantime::format_duration(longest)
                    ),
                );
                d
            }
            None => longest
                .saturating_add(warmup)
                .saturating_add(Duration::from_secs(60)),
        };
        let slo_names = touched_slos(entry, &experiment, slos.as_ref());
        if let (Some(set), Some(named)) = (slos.as_ref(), &entry.slos) {
            for (j, name) in named.iter().enumerate() {
                let slo = set.spec.slos.iter().find(|s| &s.name == name);
                c.check(
                    slo.is_some(),
                    format!("{at}.slos[{j}]"),
                    format!("`{name}` is not an SLO of {}", set.metadata.name),
                );
                c.check(
                    slo.is_none_or(|s| s.sli.gauge.is_none()),
                    format!("{at}.slos[{j}]"),
                    format!("`{name}` is a gauge SLO: it has no error budget"),
                );
            }
        }
        if let Some(schedule) = schedule {
            entries.push(ValidatedEntry {
                name: entry.name.clone(),
                experiment_path,
                experiment,
                schedule,
                backend: entry.backend.unwrap_or(exp_backend),
                slos: if spec.budget.is_some() {
                    slo_names
                } else {
                    Vec::new()
                },
                max_duration,
            });
        }
    }
    let mut errors = c.errors;
    errors.extend(foreign);
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    let zone = zone.ok_or_else(|| {
        SpecErrors(vec![SpecError {
            file: file.to_owned(),
            field: "spec.timeZone".into(),
            location: None,
            message: "no time zone".into(),
        }])
    })?;
    Ok(ValidatedGameDay {
        path: path.to_owned(),
        gameday,
        zone,
        slos,
        slo_path,
        entries,
        blackouts,
        allowed,
    })
}

/// The SLOs an entry touches: its own list, else the experiment's budget gate, else the
/// SLOs its burn-rate conditions name, else every SLO with a budget.
fn touched_slos(
    entry: &GameDayEntry,
    experiment: &ValidatedExperiment,
    set: Option<&SloSet>,
) -> Vec<String> {
    if let Some(named) = &entry.slos {
        return named.clone();
    }
    let spec = &experiment.experiment.spec;
    if let Some(gate) = spec
        .error_budget_gate
        .as_ref()
        .filter(|g| !g.slos.is_empty())
    {
        return gate.slos.clone();
    }
    let mut named: Vec<String> = Vec::new();
    for check in spec.steady_state.iter().chain(&spec.abort_when) {
        if let Some(name) = burn_rate_slo(check) {
            if !named.contains(&name) {
                named.push(name);
            }
        }
    }
    if !named.is_empty() {
        return named;
    }
    set.map(|s| {
        s.spec
            .slos
            .iter()
            .filter(|slo| slo.sli.gauge.is_none())
            .map(|slo| slo.name.clone())
            .collect()
    })
    .unwrap_or_default()
}

fn burn_rate_slo(check: &Check) -> Option<String> {
    check.slo_burn_rate.as_ref().map(|b| b.slo.clone())
}
