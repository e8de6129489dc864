//! Semantic checks of experiment and SLO files, collecting every problem with its place.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::calendar::{Alerting, Calendar, DayWindow, PeakWindow};
use super::model::*;
use super::params::{self, FaultParams, Problems};
use super::policy::EffectivePolicy;
use super::scenario::{self, LoadPlan, Scenario};
use super::slo::SloSet;
use super::yaml::Positions;
use super::{SpecError, SpecErrors};

/// An experiment that passed every check, with its SLO set and each fault in typed form.
#[derive(Debug, Clone)]
pub struct ValidatedExperiment {
    /// The experiment as written.
    pub experiment: Experiment,
    /// The SLO set it refers to, if any.
    pub slos: Option<SloSet>,
    /// The faults, in the file's order, each with its typed steps and resolved selector.
    pub faults: Vec<ValidatedFault>,
    /// The load generator's scenario and sessions, compiled.
    pub load: Option<LoadPlan>,
}

/// One fault that passed every check: as written, the typed parameters of each ramp step
/// (one step without a ramp), and its selector resolved to typed values. What the engine,
/// `plan`, `doctor` and the fault builders read.
#[derive(Debug, Clone)]
pub struct ValidatedFault {
    /// The fault as written (name, type, selector, duration).
    pub spec: FaultSpec,
    /// The parameters of each ramp step.
    pub steps: Vec<FaultParams>,
    /// The `network` selector parsed (addresses, ports, namespace); `None` when the
    /// selector has none.
    pub network: Option<params::network::NetMatch>,
}

impl ValidatedFault {
    /// The fault's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// How long each of `steps` ramp steps holds (to the millisecond).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(chaos_runner::spec::step_time(Duration::from_secs(2), 3), Duration::from_millis(666));
/// ```
pub fn step_time(duration: Duration, steps: usize) -> Duration {
    let each = duration / steps.max(1) as u32;
    Duration::from_millis(each.as_millis() as u64)
}

pub(super) struct Collector<'a> {
    pub(super) file: &'a str,
    pub(super) positions: Positions,
    pub(super) errors: Vec<SpecError>,
}

impl Collector<'_> {
    pub(super) fn check(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> bool {
        if !ok {
            let field = field.into();
            self.errors.push(SpecError {
                file: self.file.to_owned(),
                location: self.positions.find(&field),
                field,
                message: message.into(),
            });
        }
        ok
    }
}

pub(super) fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub(super) fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Local => "local",
        Backend::Kubernetes => "kubernetes",
    }
}

pub(crate) fn is_http_url(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) => matches!(u.scheme(), "http" | "https") && u.host().is_some(),
        Err(_) => false,
    }
}

fn merged(
    base: &BTreeMap<String, serde_json::Value>,
    over: &BTreeMap<String, serde_json::Value>,
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in base.iter().chain(over.iter()) {
        map.insert(k.clone(), v.clone());
    }
    serde_json::Value::Object(map)
}

/// Parses one step's parameters of `fault`, moving problems into the collector.
fn step_params(
    c: &mut Collector<'_>,
    fault: &FaultSpec,
    at: &str,
    value: serde_json::Value,
) -> Option<FaultParams> {
    let mut problems = Problems::default();
    let params = params::parse(fault.fault_type, at, value, &mut problems);
    if let Some(p) = &params {
        params::check_with_selector(p, &fault.selector, at, &mut problems);
    }
    for (field, message) in problems.into_found() {
        c.check(false, field, message);
    }
    params
}

fn check_checks(
    c: &mut Collector<'_>,
    at: &str,
    checks: &[Check],
    spec: &ExperimentSpec,
    slos: Option<&SloSet>,
    abort: bool,
) {
    let mut names = HashSet::new();
    for (i, check) in checks.iter().enumerate() {
        let here = format!("{at}[{i}]");
        c.check(
            !check.name.trim().is_empty(),
            format!("{here}.name"),
            "must not be empty",
        );
        c.check(
            names.insert(check.name.clone()),
            format!("{here}.name"),
            format!("duplicate name `{}`", check.name),
        );
        let kinds = usize::from(check.prometheus.is_some())
            + usize::from(check.slo_burn_rate.is_some())
            + usize::from(check.http.is_some())
            + usize::from(check.host.is_some())
            + usize::from(check.load.is_some());
        c.check(
            kinds == 1,
            here.clone(),
            "needs exactly one of `prometheus`, `sloBurnRate`, `http`, `host` or `load`",
        );
        if let Some(l) = &check.load {
            check_load_check(c, &format!("{here}.load"), l, spec);
        }
        if let Some(h) = &check.host {
            c.check(
                h.threshold.is_finite(),
                format!("{here}.host.threshold"),
                "must be a finite number",
            );
        }
        c.check(
            (1..=100).contains(&check.for_checks),
            format!("{here}.for"),
            "must be between 1 and 100",
        );
        if !abort {
            c.check(
                check.for_checks == 1,
                format!("{here}.for"),
                "only abort conditions take `for`",
            );
        }
        if let Some(p) = &check.prometheus {
            c.check(
                spec.prometheus.is_some(),
                format!("{here}.prometheus"),
                "needs `spec.prometheus` (the server to query)",
            );
            c.check(
                !p.query.trim().is_empty(),
                format!("{here}.prometheus.query"),
                "must not be empty",
            );
            c.check(
                p.threshold.is_finite(),
                format!("{here}.prometheus.threshold"),
                "must be a finite number",
            );
        }
        if let Some(b) = &check.slo_burn_rate {
            c.check(
                spec.prometheus.is_some(),
                format!("{here}.sloBurnRate"),
                "needs `spec.prometheus` (the server to query)",
            );
            match slos {
                None => {
                    c.check(
                        false,
                        format!("{here}.sloBurnRate.slo"),
                        "needs `spec.sloFile` to look the SLO up",
                    );
                }
                Some(set) => match set.spec.slos.iter().find(|s| s.name == b.slo) {
                    None => {
                        let known: Vec<&str> =
                            set.spec.slos.iter().map(|s| s.name.as_str()).collect();
                        c.check(
                            false,
                            format!("{here}.sloBurnRate.slo"),
                            format!("unknown SLO `{}` (known: {})", b.slo, known.join(", ")),
                        );
                    }
                    Some(slo) => {
                        c.check(
                            slo.sli.gauge.is_none(),
                            format!("{here}.sloBurnRate.slo"),
                            format!("SLO `{}` is a gauge SLO: it has no burn rate", b.slo),
                        );
                    }
                },
            }
            c.check(
                b.window >= Duration::from_secs(60) && b.window <= Duration::from_secs(30 * 86_400),
                format!("{here}.sloBurnRate.window"),
                "must be between 1m and 30d",
            );
            c.check(
                b.max_burn_rate.is_finite() && b.max_burn_rate > 0.0,
                format!("{here}.sloBurnRate.maxBurnRate"),
                "must be above 0",
            );
            if let Some(short) = b.short_window {
                c.check(
                    short >= Duration::from_secs(10) && short < b.window,
                    format!("{here}.sloBurnRate.shortWindow"),
                    "must be at least 10s and shorter than `window`",
                );
            }
        }
        if let Some(h) = &check.http {
            c.check(
                is_http_url(&h.url),
                format!("{here}.http.url"),
                "must be an http:// or https:// URL with a host",
            );
            c.check(
                (100..=599).contains(&h.expect_status),
                format!("{here}.http.expectStatus"),
                "must be an HTTP status (100 to 599)",
            );
            c.check(
                h.timeout >= Duration::from_millis(10) && h.timeout <= Duration::from_secs(60),
                format!("{here}.http.timeout"),
                "must be between 10ms and 60s",
            );
        }
    }
}

fn check_load_check(c: &mut Collector<'_>, at: &str, check: &LoadCheck, spec: &ExperimentSpec) {
    c.check(
        spec.load.is_some(),
        at.to_owned(),
        "needs `spec.load` (the built-in load generator)",
    );
    c.check(
        check.window >= Duration::from_secs(1)
            && check.window <= MAX_LOAD_WINDOW
            && check.window.subsec_nanos() == 0,
        format!("{at}.window"),
        "must be whole seconds between 1s and 5m",
    );
    c.check(
        check.threshold.is_finite(),
        format!("{at}.threshold"),
        "must be a finite number",
    );
    c.check(
        check.operation.is_none() || check.group.is_none(),
        format!("{at}.group"),
        "give either `operation` or `group`, not both",
    );
    c.check(
        !check.sli.is_session() || (check.operation.is_none() && check.group.is_none()),
        format!("{at}.sli"),
        format!(
            "`{}` counts WebSocket sessions, not calls: it takes no `operation` or `group`",
            check.sli.name()
        ),
    );
}

/// The operations and groups `load` checks name exist in the load plan, and a sessions
/// SLI has sessions to read.
fn check_load_names(c: &mut Collector<'_>, spec: &ExperimentSpec, plan: &LoadPlan) {
    let checks = spec
        .steady_state
        .iter()
        .enumerate()
        .map(|(i, ch)| (format!("spec.steadyState[{i}].load"), ch))
        .chain(
            spec.abort_when
                .iter()
                .enumerate()
                .map(|(i, ch)| (format!("spec.abortWhen[{i}].load"), ch)),
        );
    let ws = plan.websocket.as_deref();
    let ws_messages: Vec<&str> = ws
        .map(|w| w.messages.iter().map(|m| m.name.as_str()).collect())
        .unwrap_or_default();
    let operations: Vec<&str> = plan
        .scenario
        .iter()
        .flat_map(|s| s.operations.iter().map(|o| o.name.as_str()))
        .chain(ws_messages.iter().copied())
        .collect();
    let groups: Vec<&str> = plan
        .scenario
        .iter()
        .flat_map(|s| s.groups.iter().map(String::as_str))
        .chain(ws.map(|w| w.group.as_str()))
        .collect();
    for (at, check) in checks {
        let Some(l) = &check.load else { continue };
        if let Some(op) = &l.operation {
            c.check(
                operations.contains(&op.as_str()),
                format!("{at}.operation"),
                format!(
                    "no operation or WebSocket message `{op}` in the load (there are: {})",
                    operations.join(", ")
                ),
            );
        }
        if let Some(g) = &l.group {
            c.check(
                groups.contains(&g.as_str()),
                format!("{at}.group"),
                format!(
                    "no group `{g}` in the load (there are: {})",
                    groups.join(", ")
                ),
            );
        }
        c.check(
            !l.sli.is_session() || ws.is_some(),
            format!("{at}.sli"),
            format!("`{}` needs `spec.load.websocket`", l.sli.name()),
        );
    }
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Most indicators a run reads (each tick reads them all).
const MAX_INDICATORS: usize = 16;

fn check_indicators(c: &mut Collector<'_>, spec: &ExperimentSpec) {
    c.check(
        spec.indicators.len() <= MAX_INDICATORS,
        "spec.indicators",
        format!("at most {MAX_INDICATORS} indicators"),
    );
    let mut names = HashSet::new();
    for (i, ind) in spec.indicators.iter().enumerate() {
        let here = format!("spec.indicators[{i}]");
        c.check(
            !ind.name.trim().is_empty(),
            format!("{here}.name"),
            "must not be empty",
        );
        c.check(
            names.insert(ind.name.clone()),
            format!("{here}.name"),
            format!("duplicate indicator `{}`", ind.name),
        );
        match (&ind.metrics_url, &ind.query) {
            (Some(url), None) => {
                match reqwest::Url::parse(url) {
                    Ok(parsed) if is_http_url(url) => {
                        c.check(
                            ind.allow_remote || is_loopback_host(&parsed),
                            format!("{here}.metricsUrl"),
                            "is not a loopback address; set `allowRemote: true` to read it",
                        );
                    }
                    _ => {
                        c.check(
                            false,
                            format!("{here}.metricsUrl"),
                            "must be an http:// or https:// URL with a host",
                        );
                    }
                }
                let metric_ok = ind.metric.as_deref().is_some_and(|m| {
                    !m.is_empty()
                        && m.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
                });
                c.check(
                    metric_ok,
                    format!("{here}.metric"),
                    "needs a metric name (letters, digits, `_`, `:`) to read from metricsUrl",
                );
            }
            (None, Some(query)) => {
                c.check(
                    !query.trim().is_empty(),
                    format!("{here}.query"),
                    "must not be empty",
                );
                c.check(
                    spec.prometheus.is_some(),
                    format!("{here}.query"),
                    "needs `spec.prometheus` to run the query on",
                );
                c.check(
                    ind.metric.is_none() && ind.labels.is_empty() && ind.state_label.is_none(),
                    here.clone(),
                    "`metric`, `labels` and `stateLabel` go with `metricsUrl`, not `query`",
                );
            }
            _ => {
                c.check(
                    false,
                    here.clone(),
                    "needs exactly one of `metricsUrl` (with `metric`) or `query`",
                );
            }
        }
    }
}

fn check_load_spec(
    c: &mut Collector<'_>,
    load: &LoadSpec,
    scenario_from_file: Option<Scenario>,
) -> Option<LoadPlan> {
    match reqwest::Url::parse(&load.target) {
        Ok(url) if is_http_url(&load.target) => {
            c.check(
                load.allow_remote || is_loopback_host(&url),
                "spec.load.target",
                "must be on this machine (127.0.0.1, ::1 or localhost) unless `allowRemote: true`",
            );
            c.check(
                url.query().is_none() && url.fragment().is_none(),
                "spec.load.target",
                "must be a base URL without query or fragment",
            );
        }
        _ => {
            c.check(
                false,
                "spec.load.target",
                "must be an http:// or https:// URL with a host",
            );
        }
    }
    c.check(
        !(load.scenario.is_some() && load.scenario_file.is_some()),
        "spec.load.scenarioFile",
        "give either `scenario` or `scenarioFile`, not both",
    );
    c.check(
        load.websocket.is_none() || load.target.starts_with("http://"),
        "spec.load.websocket",
        "WebSocket sessions need an http:// target (opened as ws://); wss:// is not supported",
    );
    let calls = load.scenario.is_some() || load.scenario_file.is_some();
    c.check(
        calls || load.websocket.is_some(),
        "spec.load",
        "needs `scenario` or `scenarioFile` (HTTP calls), `websocket` (sessions), or both",
    );
    match load.rate {
        Some(rate) => {
            c.check(
                (1..=100_000).contains(&rate),
                "spec.load.rate",
                "must be between 1 and 100000 calls per second",
            );
            c.check(
                calls,
                "spec.load.rate",
                "sets the rate of a scenario's calls, but there is no `scenario` or `scenarioFile`",
            );
        }
        None => {
            c.check(
                !calls,
                "spec.load.rate",
                "is needed with a scenario: calls per second, all players together",
            );
        }
    }
    c.check(
        (1..=100_000).contains(&load.players),
        "spec.load.players",
        "must be between 1 and 100000",
    );
    c.check(
        load.timeout >= Duration::from_millis(10) && load.timeout <= Duration::from_secs(60),
        "spec.load.timeout",
        "must be between 10ms and 60s",
    );
    c.check(
        load.warmup <= Duration::from_secs(600),
        "spec.load.warmup",
        "must be at most 10m",
    );
    let mut problems = Problems::default();
    let inline = load
        .scenario
        .as_ref()
        .and_then(|s| scenario::compile(s, "spec.load.scenario", load.timeout, &mut problems));
    let websocket = load.websocket.as_ref().and_then(|w| {
        scenario::compile_websocket(w, "spec.load.websocket", load.timeout, &mut problems)
    });
    for (field, message) in problems.into_found() {
        c.check(false, field, message);
    }
    Some(LoadPlan {
        spec: load.clone(),
        scenario: inline.or(scenario_from_file).map(std::sync::Arc::new),
        websocket: websocket.map(std::sync::Arc::new),
    })
}

/// Checks a load scenario file and compiles its scenario.
pub(crate) fn check_scenario_file(
    file: &str,
    text: &str,
    doc: &ScenarioFile,
    default_timeout: Duration,
) -> Result<Scenario, SpecErrors> {
    let mut c = Collector {
        file,
        positions: Positions::of(text),
        errors: Vec::new(),
    };
    c.check(
        doc.api_version == API_VERSION,
        "apiVersion",
        format!("must be `{API_VERSION}`"),
    );
    c.check(doc.kind == "LoadScenario", "kind", "must be `LoadScenario`");
    let mut problems = Problems::default();
    let compiled = scenario::compile(&doc.spec, "spec", default_timeout, &mut problems);
    for (field, message) in problems.into_found() {
        c.check(false, field, message);
    }
    match compiled {
        Some(s) if c.errors.is_empty() => Ok(s),
        _ => Err(SpecErrors(c.errors)),
    }
}

fn check_setup(c: &mut Collector<'_>, services: &[SetupService]) {
    let mut names = HashSet::new();
    let mut ports: BTreeMap<u16, String> = BTreeMap::new();
    for (i, svc) in services.iter().enumerate() {
        let here = format!("spec.setup[{i}]");
        c.check(
            is_dns_label(&svc.name),
            format!("{here}.name"),
            "must be 1-63 lowercase letters, digits or dashes",
        );
        c.check(
            names.insert(svc.name.clone()),
            format!("{here}.name"),
            format!("duplicate service `{}`", svc.name),
        );
        c.check(
            svc.postgres.is_some() != svc.command.is_some(),
            here.clone(),
            "needs exactly one of `postgres` or `command`",
        );
        c.check(
            svc.ready_timeout >= Duration::from_secs(1)
                && svc.ready_timeout <= Duration::from_secs(1800),
            format!("{here}.readyTimeout"),
            "must be between 1s and 30m",
        );
        let mut declare = |c: &mut Collector<'_>, port: u16, field: String| {
            if c.check(
                port != 0,
                field.clone(),
                "must be a port between 1 and 65535",
            ) {
                if let Some(first) = ports.insert(port, field.clone()) {
                    c.check(
                        false,
                        field,
                        format!("port {port} is already declared by `{first}`"),
                    );
                }
            }
        };
        if let Some(pg) = &svc.postgres {
            declare(c, pg.port, format!("{here}.postgres.port"));
            let db = &pg.database;
            c.check(
                !db.is_empty()
                    && db.len() <= 63
                    && db.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_')
                    && db
                        .chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                format!("{here}.postgres.database"),
                "must be 1-63 lowercase letters, digits or underscores, not starting with a digit",
            );
            if let Some(v) = pg.version {
                c.check(
                    (9..=99).contains(&v),
                    format!("{here}.postgres.version"),
                    "must be a PostgreSQL major version (e.g. 15)",
                );
            }
            for (field, given) in [
                ("env", !svc.env.is_empty()),
                ("cwd", svc.cwd.is_some()),
                ("readyHttp", svc.ready_http.is_some()),
                ("readyPort", svc.ready_port.is_some()),
            ] {
                c.check(
                    !given,
                    format!("{here}.{field}"),
                    "only `command` services take it (postgres is ready when it accepts connections)",
                );
            }
        }
        if let Some(argv) = &svc.command {
            c.check(
                argv.first().is_some_and(|p| !p.trim().is_empty()),
                format!("{here}.command"),
                "must name a program (an argument vector, no shell)",
            );
            c.check(
                svc.ready_http.is_some() || svc.ready_port.is_some(),
                here.clone(),
                "a `command` needs `readyHttp` or `readyPort` (how the runner knows it is up)",
            );
            if let Some(url) = &svc.ready_http {
                c.check(
                    is_http_url(url),
                    format!("{here}.readyHttp"),
                    "must be an http:// or https:// URL with a host",
                );
            }
            if let Some(port) = svc.ready_port {
                declare(c, port, format!("{here}.readyPort"));
            }
            for key in svc.env.keys() {
                c.check(
                    !key.is_empty()
                        && !key.starts_with(|ch: char| ch.is_ascii_digit())
                        && key
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_'),
                    format!("{here}.env.{key}"),
                    "must be a variable name (letters, digits, underscores)",
                );
            }
            if let Some(cwd) = &svc.cwd {
                c.check(
                    !cwd.trim().is_empty(),
                    format!("{here}.cwd"),
                    "must not be empty",
                );
            }
        }
    }
}

/// Checks an SLO set.
pub(crate) fn check_slo_set(file: &str, text: &str, set: &SloSet) -> Result<(), SpecErrors> {
    let mut c = Collector {
        file,
        positions: Positions::of(text),
        errors: Vec::new(),
    };
    c.check(
        set.api_version == API_VERSION,
        "apiVersion",
        format!("must be `{API_VERSION}`"),
    );
    c.check(set.kind == "SLOSet", "kind", "must be `SLOSet`");
    c.check(
        is_dns_label(&set.metadata.name),
        "metadata.name",
        "must be 1-63 lowercase letters, digits or dashes",
    );
    c.check(
        !set.spec.slos.is_empty(),
        "spec.slos",
        "must list at least one SLO",
    );
    if let Some(calendar) = &set.spec.calendar {
        check_calendar(&mut c, calendar);
    }
    if let Some(alerting) = &set.spec.alerting {
        check_alerting(&mut c, alerting);
    }
    check_policies(&mut c, set);
    let mut names = HashSet::new();
    for (i, slo) in set.spec.slos.iter().enumerate() {
        let here = format!("spec.slos[{i}]");
        if let Some(a) = &slo.alerting {
            check_label_names(&mut c, &format!("{here}.alerting.labels"), a.labels.keys());
            check_label_names(
                &mut c,
                &format!("{here}.alerting.annotations"),
                a.annotations.keys(),
            );
        }
        c.check(
            is_dns_label(&slo.name),
            format!("{here}.name"),
            "must be 1-63 lowercase letters, digits or dashes",
        );
        c.check(
            names.insert(slo.name.clone()),
            format!("{here}.name"),
            format!("duplicate SLO `{}`", slo.name),
        );
        c.check(
            slo.objective > 0.0 && slo.objective < 100.0,
            format!("{here}.objective"),
            "must be a percentage above 0 and below 100",
        );
        c.check(
            slo.period >= Duration::from_secs(3600)
                && slo.period <= Duration::from_secs(366 * 86_400),
            format!("{here}.period"),
            "must be between 1h and 366d",
        );
        let sli = &slo.sli;
        let kinds = usize::from(sli.ratio.is_some())
            + usize::from(sli.latency.is_some())
            + usize::from(sli.gauge.is_some());
        c.check(
            kinds == 1,
            format!("{here}.sli"),
            "needs exactly one of `ratio`, `latency` or `gauge`",
        );
        if let Some(l) = &sli.latency {
            c.check(
                !l.threshold.is_zero(),
                format!("{here}.sli.latency.threshold"),
                "must be above zero",
            );
        }
        if let Some(r) = &sli.ratio {
            for (field, query) in [("good", &r.good), ("total", &r.total)] {
                c.check(
                    query.contains("$window"),
                    format!("{here}.sli.ratio.{field}"),
                    "must use `$window` as its range (e.g. `[$window]`)",
                );
            }
        }
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(c.errors))
    }
}

/// The deploy policies: thresholds in percent of the budget spent, pausing no later than
/// rolling back (after an SLO's fields are laid over the set's), a freeze only with peak
/// windows to freeze in.
fn check_policies(c: &mut Collector<'_>, set: &SloSet) {
    let set_policy = set.spec.policy.as_ref();
    let percent = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0 && v <= 100.0);
    let has_peak = set
        .spec
        .calendar
        .as_ref()
        .is_some_and(|cal| !cal.peak.is_empty());
    let written = set_policy
        .map(|p| ("spec.policy".to_owned(), p))
        .into_iter()
        .chain(set.spec.slos.iter().enumerate().filter_map(|(i, slo)| {
            slo.policy
                .as_ref()
                .map(|p| (format!("spec.slos[{i}].policy"), p))
        }));
    for (here, policy) in written {
        for (field, value) in [
            ("pauseAt", policy.pause_at),
            ("rollbackAt", policy.rollback_at),
        ] {
            c.check(
                percent(value),
                format!("{here}.{field}"),
                "must be a percentage of the error budget spent, above 0 and at most 100",
            );
        }
        c.check(
            policy.freeze != Some(true) || has_peak,
            format!("{here}.freeze"),
            "needs `spec.calendar.peak`: a freeze holds deploys in the calendar's peak windows",
        );
    }
    // Pausing must come no later than rolling back: checked where a policy is written (an
    // SLO without its own inherits the set's, checked once).
    let resolved = set_policy
        .map(|p| {
            (
                "spec.policy".to_owned(),
                "the set".to_owned(),
                p,
                EffectivePolicy::of(Some(p), None),
            )
        })
        .into_iter()
        .chain(set.spec.slos.iter().enumerate().filter_map(|(i, slo)| {
            slo.policy.as_ref().map(|p| {
                (
                    format!("spec.slos[{i}].policy"),
                    format!("SLO `{}`", slo.name),
                    p,
                    EffectivePolicy::of(set_policy, Some(p)),
                )
            })
        }));
    for (here, who, written, p) in resolved {
        if !percent(Some(p.pause_at)) || !percent(Some(p.rollback_at)) {
            continue;
        }
        let field = if written.pause_at.is_some() {
            "pauseAt"
        } else {
            "rollbackAt"
        };
        c.check(
            p.pause_at <= p.rollback_at,
            format!("{here}.{field}"),
            format!(
                "{who} would pause at {}% of the budget spent but roll back at {}%: pausing \
                 must come first (pauseAt at most rollbackAt)",
                p.pause_at, p.rollback_at
            ),
        );
    }
}

/// The calendar: a zone with one UTC offset all year, windows that say something.
/// The checks every daily window takes: it ends, it has days, no day twice.
pub(super) fn check_day_window(c: &mut Collector<'_>, here: &str, window: &DayWindow) {
    c.check(
        window.from != window.to,
        format!("{here}.to"),
        "must differ from `from` (a window that never ends is not a window)",
    );
    c.check(
        !window.days.is_empty(),
        format!("{here}.days"),
        "must name at least one day (leave it out for every day)",
    );
    let mut seen = HashSet::new();
    for (d, day) in window.days.iter().enumerate() {
        c.check(
            seen.insert(day.number()),
            format!("{here}.days[{d}]"),
            "is listed twice",
        );
    }
}

fn check_calendar(c: &mut Collector<'_>, calendar: &Calendar) {
    if let Err(e) = calendar.utc_offset() {
        c.check(false, "spec.calendar.timeZone", e);
    }
    let windows = calendar
        .peak
        .iter()
        .map(PeakWindow::window)
        .enumerate()
        .map(|(i, w)| (format!("spec.calendar.peak[{i}]"), w))
        .chain(
            calendar
                .maintenance
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("spec.calendar.maintenance[{i}]"), w.clone())),
        );
    for (here, window) in windows {
        check_day_window(c, &here, &window);
    }
    for (i, peak) in calendar.peak.iter().enumerate() {
        c.check(
            peak.factor.is_finite() && peak.factor > 1.0 && peak.factor <= 10.0,
            format!("spec.calendar.peak[{i}].factor"),
            "must be above 1 and at most 10 (1.2: the allowed error rate divided by 1.2)",
        );
    }
}

/// The burn-rate alerts: a factor, a long window and a shorter one, a severity label.
fn check_alerting(c: &mut Collector<'_>, alerting: &Alerting) {
    c.check(
        !alerting.alerts.is_empty(),
        "spec.alerting.alerts",
        "must list at least one alert (leave it out for the SRE workbook's four)",
    );
    let mut seen = HashSet::new();
    for (i, alert) in alerting.alerts.iter().enumerate() {
        let here = format!("spec.alerting.alerts[{i}]");
        c.check(
            alert.factor.is_finite() && alert.factor > 0.0 && alert.factor <= 1000.0,
            format!("{here}.factor"),
            "must be above 0 and at most 1000",
        );
        // The rules average 5-minute burn rates: a shorter window would still read 5
        // minutes, and say less than its name.
        c.check(
            alert.long > Duration::from_secs(300) && alert.long <= Duration::from_secs(30 * 86_400),
            format!("{here}.long"),
            "must be longer than 5m (the rules build every window from 5-minute burn rates) \
             and at most 30d",
        );
        c.check(
            alert.short >= Duration::from_secs(300) && alert.short < alert.long,
            format!("{here}.short"),
            "must be at least 5m (the rules build every window from 5-minute burn rates) and \
             shorter than `long`",
        );
        c.check(
            is_label_value_word(&alert.severity),
            format!("{here}.severity"),
            "must be 1-63 letters, digits, `_` or `-` (e.g. page, ticket)",
        );
        c.check(
            seen.insert(alert.alert_name()),
            format!("{here}.long"),
            "another alert has the same severity and long window (the alert name, e.g. \
             SLOBurnRatePage1h, would be the same)",
        );
    }
    check_label_names(c, "spec.alerting.labels", alerting.labels.keys());
}

fn is_label_value_word(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

/// Prometheus label (and annotation) names: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-reserved.
fn check_label_names<'a>(c: &mut Collector<'_>, at: &str, names: impl Iterator<Item = &'a String>) {
    for name in names {
        let valid = name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            && !name.starts_with("__");
        c.check(
            valid,
            format!("{at}.{name}"),
            "is not a Prometheus label name (letters, digits and `_`, not starting with a digit or `__`)",
        );
        c.check(
            !matches!(name.as_str(), "slo" | "slo_set" | "severity" | "alertname"),
            format!("{at}.{name}"),
            "is set by the generated rules themselves",
        );
    }
}

/// Checks an experiment against itself and its SLO set.
pub(crate) fn check_experiment(
    file: &str,
    text: &str,
    experiment: Experiment,
    slos: Option<SloSet>,
    scenario_from_file: Option<Scenario>,
) -> Result<ValidatedExperiment, SpecErrors> {
    let mut c = Collector {
        file,
        positions: Positions::of(text),
        errors: Vec::new(),
    };
    let spec = &experiment.spec;
    c.check(
        experiment.api_version == API_VERSION,
        "apiVersion",
        format!("must be `{API_VERSION}`"),
    );
    c.check(
        experiment.kind == "Experiment",
        "kind",
        "must be `Experiment`",
    );
    c.check(
        is_dns_label(&experiment.metadata.name),
        "metadata.name",
        "must be 1-63 lowercase letters, digits or dashes",
    );
    c.check(
        spec.check_interval >= Duration::from_millis(100)
            && spec.check_interval <= Duration::from_secs(60),
        "spec.checkInterval",
        "must be between 100ms and 1m",
    );
    if let Some(p) = &spec.prometheus {
        let placeholder = p
            .url
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
            .is_some_and(|var| {
                !var.is_empty()
                    && var
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            });
        c.check(
            placeholder || is_http_url(&p.url),
            "spec.prometheus.url",
            "must be an http:// or https:// URL with a host, or `${ENV_VAR}`",
        );
        c.check(
            p.timeout >= Duration::from_millis(50) && p.timeout <= Duration::from_secs(60),
            "spec.prometheus.timeout",
            "must be between 50ms and 60s",
        );
        c.check(
            (1..=100).contains(&p.fail_after),
            "spec.prometheus.failAfter",
            "must be between 1 and 100",
        );
        c.check(
            !(p.bearer_token_env.is_some() && p.bearer_token_file.is_some()),
            "spec.prometheus.bearerTokenFile",
            "give either bearerTokenEnv or bearerTokenFile, not both",
        );
    }
    let load = spec
        .load
        .as_ref()
        .and_then(|load| check_load_spec(&mut c, load, scenario_from_file));
    if let Some(plan) = &load {
        check_load_names(&mut c, spec, plan);
    }
    check_setup(&mut c, &spec.setup);
    check_indicators(&mut c, spec);
    c.check(
        !spec.faults.is_empty(),
        "spec.faults",
        "must list at least one fault",
    );
    let mut names = HashSet::new();
    let mut faults = Vec::new();
    for (i, fault) in spec.faults.iter().enumerate() {
        let here = format!("spec.faults[{i}]");
        c.check(
            is_dns_label(&fault.name),
            format!("{here}.name"),
            "must be 1-63 lowercase letters, digits or dashes",
        );
        c.check(
            names.insert(fault.name.clone()),
            format!("{here}.name"),
            format!("duplicate fault `{}`", fault.name),
        );
        c.check(
            fault.fault_type.runs_on(spec.target.backend),
            format!("{here}.type"),
            format!(
                "`{}` runs on the {} backend, but spec.target.backend is {}",
                fault.fault_type.name(),
                backend_name(fault.fault_type.backend()),
                backend_name(spec.target.backend)
            ),
        );
        let duration_ok = c.check(
            fault.duration >= Duration::from_secs(1)
                && fault.duration <= Duration::from_secs(86_400),
            format!("{here}.duration"),
            "must be between 1s and 24h",
        );
        let mut problems = Problems::default();
        params::check_selector(
            fault.fault_type,
            spec.target.backend,
            &fault.selector,
            &format!("{here}.selector"),
            &mut problems,
        );
        for (field, message) in problems.into_found() {
            c.check(false, field, message);
        }
        let empty = BTreeMap::new();
        let fault_steps: Vec<FaultParams> = match &fault.ramp {
            None => step_params(
                &mut c,
                fault,
                &format!("{here}.parameters"),
                merged(&fault.parameters, &empty),
            )
            .into_iter()
            .collect(),
            Some(ramp) => {
                c.check(
                    (1..=20).contains(&ramp.steps.len()),
                    format!("{here}.ramp.steps"),
                    "must have 1 to 20 steps",
                );
                let step_time = step_time(fault.duration, ramp.steps.len());
                if duration_ok {
                    c.check(
                        step_time >= spec.check_interval,
                        format!("{here}.ramp.steps"),
                        format!(
                            "each step lasts {step_time:?}, shorter than checkInterval {:?}",
                            spec.check_interval
                        ),
                    );
                }
                ramp.steps
                    .iter()
                    .enumerate()
                    .filter_map(|(s, over)| {
                        step_params(
                            &mut c,
                            fault,
                            &format!("{here}.ramp.steps[{s}]"),
                            merged(&fault.parameters, over),
                        )
                    })
                    .collect()
            }
        };
        if duration_ok {
            c.check(
                spec.check_interval <= fault.duration,
                "spec.checkInterval",
                format!("must not exceed the duration of fault `{}`", fault.name),
            );
        }
        faults.push(ValidatedFault {
            spec: fault.clone(),
            steps: fault_steps,
            // Checked with the selector above: a problem there is already reported.
            network: fault
                .selector
                .network
                .as_ref()
                .and_then(|sel| params::network::resolve(sel).ok()),
        });
    }
    check_checks(
        &mut c,
        "spec.steadyState",
        &spec.steady_state,
        spec,
        slos.as_ref(),
        false,
    );
    check_checks(
        &mut c,
        "spec.abortWhen",
        &spec.abort_when,
        spec,
        slos.as_ref(),
        true,
    );
    if let Some(gate) = &spec.error_budget_gate {
        c.check(
            spec.prometheus.is_some() && slos.is_some(),
            "spec.errorBudgetGate",
            "needs `spec.prometheus` and `spec.sloFile`",
        );
        c.check(
            (0.0..=100.0).contains(&gate.min_remaining_percent),
            "spec.errorBudgetGate.minRemainingPercent",
            "must be a percentage between 0 and 100",
        );
        if let Some(set) = &slos {
            for (i, name) in gate.slos.iter().enumerate() {
                c.check(
                    set.spec
                        .slos
                        .iter()
                        .any(|s| &s.name == name && s.sli.gauge.is_none()),
                    format!("spec.errorBudgetGate.slos[{i}]"),
                    format!("unknown or gauge SLO `{name}`"),
                );
            }
        }
    }
    c.check(
        !spec.report.dir.trim().is_empty(),
        "spec.report.dir",
        "must not be empty",
    );
    if c.errors.is_empty() {
        Ok(ValidatedExperiment {
            experiment,
            slos,
            faults,
            load,
        })
    } else {
        Err(SpecErrors(c.errors))
    }
}
