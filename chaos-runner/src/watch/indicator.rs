//! Live indicators: values read from the target on every check tick (a circuit breaker's
//! state, a queue's depth), shown on the terminal and recorded in the report each time they
//! change. They are for people watching a run; they never fail or abort it.
//!
//! An indicator reads either a metrics endpoint directly (the service's own `/metrics`, in
//! the Prometheus text or OpenMetrics format, so no Prometheus is needed) or an instant
//! PromQL query. Endpoints shared by several indicators are read once per tick.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::prometheus::Prometheus;
use crate::spec::Indicator;

/// How long one read of a metrics endpoint may take: a tick must not stall on it.
const READ_TIMEOUT: Duration = Duration::from_millis(400);

/// The value shown while an endpoint or query cannot be read.
pub const UNREADABLE: &str = "unreadable";

/// One change of an indicator's value, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndicatorChange {
    /// Indicator name.
    pub indicator: String,
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The value before (`None` for the first reading).
    pub from: Option<String>,
    /// The value from now on.
    pub to: String,
    /// Worth a line of its own on the terminal: the first reading, a state change, or the
    /// source becoming (un)readable. Other numeric changes only update the status line.
    #[serde(skip)]
    pub announce: bool,
}

impl std::fmt::Display for IndicatorChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.at_ms as f64 / 1000.0;
        match &self.from {
            Some(from) => write!(f, "{}: {from} -> {} at {secs:.1}s", self.indicator, self.to),
            None => write!(f, "{}: {} at {secs:.1}s", self.indicator, self.to),
        }
    }
}

/// The run's indicators with their last values and every change seen.
#[derive(Debug)]
pub struct Indicators {
    items: Vec<(Indicator, Option<String>)>,
    http: reqwest::Client,
}

impl Indicators {
    /// Indicators for `specs` (none read yet).
    pub fn new(specs: &[Indicator]) -> Indicators {
        Indicators {
            items: specs.iter().map(|s| (s.clone(), None)).collect(),
            http: reqwest::Client::builder()
                .timeout(READ_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Reads every indicator once and returns the changes since the last reading.
    pub async fn sample(
        &mut self,
        prometheus: Option<&Prometheus>,
        started: Instant,
    ) -> Vec<IndicatorChange> {
        if self.items.is_empty() {
            return Vec::new();
        }
        let urls: BTreeSet<String> = self
            .items
            .iter()
            .filter_map(|(s, _)| s.metrics_url.clone())
            .collect();
        let mut pages: BTreeMap<String, Option<String>> = BTreeMap::new();
        for url in urls {
            let page = self.read_page(&url).await;
            pages.insert(url, page);
        }
        let at_ms = started.elapsed().as_millis() as u64;
        let mut fresh = Vec::new();
        for (spec, last) in &mut self.items {
            let value = match (&spec.metrics_url, &spec.query, prometheus) {
                (Some(url), _, _) => pages
                    .get(url)
                    .and_then(Option::as_deref)
                    .and_then(|page| read_metric(page, spec)),
                (None, Some(query), Some(p)) => {
                    p.instant(query).await.ok().flatten().map(format_number)
                }
                _ => None,
            }
            .unwrap_or_else(|| UNREADABLE.to_owned());
            if last.as_deref() != Some(value.as_str()) {
                let announce = last.is_none()
                    || spec.state_label.is_some()
                    || value == UNREADABLE
                    || last.as_deref() == Some(UNREADABLE);
                let change = IndicatorChange {
                    indicator: spec.name.clone(),
                    at_ms,
                    from: last.clone(),
                    to: value.clone(),
                    announce,
                };
                tracing::info!(%change, "indicator changed");
                fresh.push(change);
                *last = Some(value);
            }
        }
        fresh
    }

    /// `name=value` for every indicator read so far, for a progress line.
    pub fn summary(&self) -> String {
        self.items
            .iter()
            .filter_map(|(s, v)| v.as_ref().map(|v| format!("{}={v}", s.name)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    async fn read_page(&self, url: &str) -> Option<String> {
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }
}

/// The indicator's value in a metrics page: the `stateLabel` of the matching sample whose
/// value is 1, or the sum of the matching samples; `None` when nothing matches.
pub fn read_metric(page: &str, spec: &Indicator) -> Option<String> {
    let metric = spec.metric.as_deref()?;
    let scrape = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_owned()))).ok()?;
    let matching = scrape.samples.iter().filter(|s| {
        s.metric == metric
            && spec
                .labels
                .iter()
                .all(|(k, v)| s.labels.get(k) == Some(v.as_str()))
    });
    let number = |value: &prometheus_parse::Value| match value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => Some(*v),
        _ => None,
    };
    match &spec.state_label {
        Some(label) => matching
            .filter(|s| number(&s.value) == Some(1.0))
            .find_map(|s| s.labels.get(label).map(str::to_owned)),
        None => {
            let values: Vec<f64> = matching.filter_map(|s| number(&s.value)).collect();
            (!values.is_empty()).then(|| format_number(values.iter().sum()))
        }
    }
}

/// Whole numbers without decimals, others with up to three.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// What the reading task has published: the status-line summary, the changes not yet
/// shown, and every change so far.
#[derive(Debug, Default)]
struct Board {
    summary: String,
    fresh: Vec<IndicatorChange>,
    all: Vec<IndicatorChange>,
}

/// Reads the indicators on a task of their own, every check interval, so a slow or
/// black-holed metrics endpoint never holds up the run's abort checks.
#[derive(Debug)]
pub struct IndicatorWatcher {
    board: std::sync::Arc<std::sync::Mutex<Board>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IndicatorWatcher {
    /// Starts reading `specs` now and then every `every` (no task when there are none).
    pub fn start(
        specs: &[Indicator],
        prometheus: Option<Prometheus>,
        started: Instant,
        every: Duration,
    ) -> IndicatorWatcher {
        let board = std::sync::Arc::new(std::sync::Mutex::new(Board::default()));
        let task = (!specs.is_empty()).then(|| {
            let mut indicators = Indicators::new(specs);
            let board = board.clone();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let changes = indicators.sample(prometheus.as_ref(), started).await;
                    let mut b = board.lock().unwrap_or_else(|e| e.into_inner());
                    b.summary = indicators.summary();
                    b.all.extend(changes.iter().cloned());
                    b.fresh.extend(changes);
                }
            })
        });
        IndicatorWatcher { board, task }
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The changes published since the last call.
    pub fn take_fresh(&self) -> Vec<IndicatorChange> {
        std::mem::take(&mut self.board().fresh)
    }

    /// `name=value` for every indicator read so far (empty with no indicators).
    pub fn summary(&self) -> String {
        self.board().summary.clone()
    }

    /// Stops the task and returns every change seen, in order.
    pub async fn stop(mut self) -> Vec<IndicatorChange> {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        std::mem::take(&mut self.board().all)
    }
}

impl Drop for IndicatorWatcher {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: &str, labels: &[(&str, &str)], state: Option<&str>) -> Indicator {
        Indicator {
            name: "x".into(),
            metrics_url: Some("http://127.0.0.1:9/metrics".into()),
            metric: Some(metric.into()),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            state_label: state.map(str::to_owned),
            query: None,
            allow_remote: false,
        }
    }

    const PAGE: &str = "# HELP game_save_queue_depth Saves waiting.\n\
        # TYPE game_save_queue_depth gauge\n\
        game_save_queue_depth 17\n\
        # TYPE resilience_circuit_state gauge\n\
        resilience_circuit_state{policy=\"save_writes\",state=\"closed\"} 1\n\
        resilience_circuit_state{policy=\"save_writes\",state=\"open\"} 0\n\
        resilience_circuit_state{policy=\"reads\",state=\"closed\"} 0\n\
        resilience_circuit_state{policy=\"reads\",state=\"half_open\"} 1\n\
        # TYPE game_saves counter\n\
        game_saves_total{result=\"stored\"} 3\n\
        game_saves_total{result=\"queued\"} 2.5\n\
        # EOF\n";

    #[test]
    fn a_state_set_shows_the_label_of_the_sample_at_one() {
        let breaker = spec(
            "resilience_circuit_state",
            &[("policy", "save_writes")],
            Some("state"),
        );
        assert_eq!(read_metric(PAGE, &breaker).as_deref(), Some("closed"));
        let reads = spec(
            "resilience_circuit_state",
            &[("policy", "reads")],
            Some("state"),
        );
        assert_eq!(read_metric(PAGE, &reads).as_deref(), Some("half_open"));
    }

    #[test]
    fn plain_metrics_sum_their_matching_samples() {
        let depth = spec("game_save_queue_depth", &[], None);
        assert_eq!(read_metric(PAGE, &depth).as_deref(), Some("17"));
        let saves = spec("game_saves_total", &[], None);
        assert_eq!(read_metric(PAGE, &saves).as_deref(), Some("5.5"));
        let stored = spec("game_saves_total", &[("result", "stored")], None);
        assert_eq!(read_metric(PAGE, &stored).as_deref(), Some("3"));
    }

    #[test]
    fn nothing_matching_reads_as_none() {
        assert_eq!(read_metric(PAGE, &spec("missing", &[], None)), None);
        let wrong = spec(
            "resilience_circuit_state",
            &[("policy", "nope")],
            Some("state"),
        );
        assert_eq!(read_metric(PAGE, &wrong), None);
        assert_eq!(
            read_metric("not a metrics page {", &spec("x", &[], None)),
            None
        );
    }

    #[tokio::test]
    async fn changes_are_recorded_once_and_an_unreachable_endpoint_reads_as_unreadable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener); // nothing listens there now
        let mut s = spec("game_save_queue_depth", &[], None);
        s.metrics_url = Some(format!("http://127.0.0.1:{port}/metrics"));
        let mut indicators = Indicators::new(std::slice::from_ref(&s));
        let started = Instant::now();
        let first = indicators.sample(None, started).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].to, UNREADABLE);
        assert_eq!(first[0].from, None);
        assert!(first[0].announce, "the first reading is announced");
        assert!(indicators.sample(None, started).await.is_empty());
        assert_eq!(indicators.summary(), format!("x={UNREADABLE}"));
        // The watcher reads it many times and records the one change once.
        let watcher = IndicatorWatcher::start(&[s], None, started, Duration::from_millis(20));
        // Until it has read a few times (a busy machine may take a while to get there).
        let deadline = Instant::now() + Duration::from_secs(10);
        while watcher.summary().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(watcher.summary(), format!("x={UNREADABLE}"));
        assert_eq!(watcher.stop().await.len(), 1);
    }

    #[test]
    fn numbers_are_shown_short() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(1.0 / 3.0), "0.333");
    }
}

/// The examples that were this module's documentation (tested here: the module is
/// internal to the crate).
#[cfg(test)]
mod examples {
    #[test]
    fn indicators_example_0() {
        use crate::watch::indicator::Indicators;
        let indicators = Indicators::new(&[]);
        assert_eq!(indicators.summary(), "");
    }

    #[test]
    fn read_metric_example_1() {
        use crate::spec::Indicator;
        use crate::watch::indicator::read_metric;
        let page = "# TYPE resilience_circuit_state gauge\n\
            resilience_circuit_state{policy=\"saves\",state=\"closed\"} 0\n\
            resilience_circuit_state{policy=\"saves\",state=\"open\"} 1\n# EOF\n";
        let spec = Indicator {
            name: "breaker".into(),
            metrics_url: Some("http://127.0.0.1:1/metrics".into()),
            metric: Some("resilience_circuit_state".into()),
            labels: [("policy".to_owned(), "saves".to_owned())].into(),
            state_label: Some("state".into()),
            query: None,
            allow_remote: false,
        };
        assert_eq!(read_metric(page, &spec).as_deref(), Some("open"));
    }

    #[test]
    fn indicatorwatcher_example_2() {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            use crate::watch::indicator::IndicatorWatcher;
            let watcher = IndicatorWatcher::start(
                &[],
                None,
                std::time::Instant::now(),
                std::time::Duration::from_millis(500),
            );
            assert!(watcher.take_fresh().is_empty());
            assert!(watcher.stop().await.is_empty());
        });
    }
}
