//! A Prometheus HTTP API client for instant queries, behind a `resilience` policy
//! (per-attempt timeout, overall deadline, retry with budget). The bearer token comes from
//! an environment variable or a file and is never logged or reported.

use resilience::retry::{BudgetConfig, RetryConfig};
use resilience::timeout::TimeoutConfig;
use resilience::{ResilienceError, ResiliencePolicy};
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use crate::spec::PrometheusSource;

/// A query failed: the server could not be reached, answered with an error, or answered
/// something that is not a number.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// The `prometheus` settings cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    /// A `${VAR}` names an unset variable.
    #[error("environment variable {var} is not set")]
    EnvVar {
        /// The variable.
        var: String,
        /// Why.
        #[source]
        source: std::env::VarError,
    },
    /// The bearer token variable is not set.
    #[error("bearer token variable {var} is not set")]
    TokenVar {
        /// The variable.
        var: String,
        /// Why.
        #[source]
        source: std::env::VarError,
    },
    /// The bearer token file cannot be read.
    #[error("cannot read bearer token file {file}: {source}")]
    TokenFile {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The URL does not parse.
    #[error("prometheus url {url:?}: {source}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL is not http or https.
    #[error("prometheus url {0:?}: must be http or https")]
    Scheme(String),
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(#[source] reqwest::Error),
    /// The resilience policy could not be built.
    #[error("{0}")]
    Policy(#[source] resilience::ConfigError),
}

/// The value of an instant query: `None` when the result is empty.
pub type Sample = Option<f64>;

/// One series of a vector result: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its value (`NaN` and infinities as Prometheus wrote them).
    pub value: f64,
}

/// An instant query: the PromQL and, if not now, the instant (Unix seconds).
#[derive(Debug, Clone)]
struct Query {
    promql: String,
    at: Option<f64>,
}

impl resilience::CarriesDeadline for Query {}

/// A Prometheus server.
#[derive(Clone)]
pub struct Prometheus {
    url: String,
    query: BoxCloneSyncService<Query, serde_json::Value, ResilienceError<QueryError>>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .finish()
    }
}

/// Expands a whole-string `${VAR}` from the environment.
pub fn expand_env(value: &str) -> Result<String, PrometheusError> {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(var) => std::env::var(var).map_err(|source| PrometheusError::EnvVar {
            var: var.to_owned(),
            source,
        }),
        None => Ok(value.to_owned()),
    }
}

fn bearer_token(source: &PrometheusSource) -> Result<Option<String>, PrometheusError> {
    if let Some(var) = &source.bearer_token_env {
        return std::env::var(var)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| PrometheusError::TokenVar {
                var: var.clone(),
                source: e,
            });
    }
    if let Some(file) = &source.bearer_token_file {
        return std::fs::read_to_string(file)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| PrometheusError::TokenFile {
                file: file.clone(),
                source: e,
            });
    }
    Ok(None)
}

impl Prometheus {
    /// A client for `source` (URL expanded from the environment, token read once).
    pub fn new(source: &PrometheusSource) -> Result<Prometheus, PrometheusError> {
        let url = expand_env(&source.url)?;
        let parsed = match reqwest::Url::parse(&url) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Err(PrometheusError::Url {
                    url,
                    source: Box::new(e),
                })
            }
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PrometheusError::Scheme(url));
        }
        let token = bearer_token(source)?;
        let client = reqwest::Client::builder()
            .timeout(source.timeout)
            .build()
            .map_err(PrometheusError::Client)?;
        let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
        let call = tower::service_fn(move |query: Query| {
            // A form body, not the URL: the gate's queries run to kilobytes.
            let mut form = vec![("query", query.promql)];
            if let Some(at) = query.at {
                form.push(("time", format!("{at:.3}")));
            }
            let mut request = client.post(&endpoint).form(&form);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            async move { fetch(request).await }
        });
        let policy = ResiliencePolicy::builder("prometheus")
            .timeout(TimeoutConfig {
                per_attempt: Some(source.timeout),
                overall: Some(source.timeout * 2),
            })
            .retry(RetryConfig {
                max_attempts: 2,
                base_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                budget: Some(BudgetConfig {
                    ratio: 0.2,
                    min_per_second: 2,
                    window: Duration::from_secs(10),
                }),
            })
            .build()
            .map_err(PrometheusError::Policy)?;
        Ok(Prometheus {
            url,
            query: BoxCloneSyncService::new(policy.layer(call)),
        })
    }

    /// Runs an instant query and returns its first sample.
    pub async fn instant(&self, query: &str) -> Result<Sample, QueryError> {
        parse_result(&self.data(query, None).await?)
    }

    /// Runs an instant query at `at` (Unix seconds; now if `None`) and returns every
    /// series of its vector result.
    pub async fn vector(&self, query: &str, at: Option<f64>) -> Result<Vec<Series>, QueryError> {
        parse_vector(&self.data(query, at).await?)
    }

    async fn data(&self, promql: &str, at: Option<f64>) -> Result<serde_json::Value, QueryError> {
        self.query
            .clone()
            .oneshot(Query {
                promql: promql.to_owned(),
                at,
            })
            .await
            .map_err(|e| match e {
                ResilienceError::Inner(inner) => inner,
                other => QueryError(other.to_string()),
            })
    }
}

async fn fetch(request: reqwest::RequestBuilder) -> Result<serde_json::Value, QueryError> {
    let response = request
        .send()
        .await
        .map_err(|e| QueryError(format!("prometheus unreachable: {}", without_url(&e))))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| {
        QueryError(format!(
            "prometheus answered {status} with a body that is not JSON: {}",
            without_url(&e)
        ))
    })?;
    if body["status"] != "success" {
        return Err(QueryError(format!(
            "prometheus error ({status}): {}",
            body["error"].as_str().unwrap_or("unknown")
        )));
    }
    Ok(body["data"].clone())
}

/// Errors without the request URL (it holds the query, which is fine, but keep messages
/// short and never echo credentials).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    // What went wrong underneath (`Connection refused`), which reqwest's own message omits.
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<prometheus>");
    }
    text
}

/// Every series of a vector result (see the tests below for an example).
pub fn parse_vector(data: &serde_json::Value) -> Result<Vec<Series>, QueryError> {
    if data["resultType"].as_str() != Some("vector") {
        return Err(QueryError(format!(
            "query returned {}; a vector was expected",
            data["resultType"].as_str().unwrap_or("no resultType")
        )));
    }
    let list = data["result"]
        .as_array()
        .ok_or_else(|| QueryError("malformed vector result".into()))?;
    list.iter()
        .map(|item| {
            let labels = item["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let text = item["value"][1]
                .as_str()
                .ok_or_else(|| QueryError("sample value is not a string".into()))?;
            Ok(Series {
                labels,
                value: parse_number(text)?,
            })
        })
        .collect()
}

fn parse_number(text: &str) -> Result<f64, QueryError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| QueryError(format!("sample {text:?} is not a number"))),
    }
}

/// The first sample of a query's `data`: vector, scalar or empty.
pub fn parse_result(data: &serde_json::Value) -> Result<Sample, QueryError> {
    let value = match data["resultType"].as_str() {
        Some("vector") => match data["result"].as_array() {
            Some(list) if list.is_empty() => return Ok(None),
            Some(list) => &list[0]["value"][1],
            None => return Err(QueryError("malformed vector result".into())),
        },
        Some("scalar") => &data["result"][1],
        Some(other) => {
            return Err(QueryError(format!(
                "query returned a {other}; it must return one number (a vector or scalar)"
            )))
        }
        None => return Err(QueryError("result without resultType".into())),
    };
    let text = value
        .as_str()
        .ok_or_else(|| QueryError("sample value is not a string".into()))?;
    parse_number(text).map(|v| (!v.is_nan()).then_some(v))
}

/// The examples of this module's documentation, tested here (the module is internal).
#[cfg(test)]
mod examples {
    #[test]
    fn expand_env_example_0() {
        use crate::watch::prometheus::expand_env;
        assert_eq!(expand_env("http://prom:9090").unwrap(), "http://prom:9090");
        assert!(expand_env("${SURELY_NOT_SET_X9}").is_err());
    }

    #[test]
    fn parse_vector_reads_every_series_with_its_labels() {
        use crate::watch::prometheus::parse_vector;
        let data = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"figure": "spent"}, "value": [1, "0.42"]},
            {"metric": {"figure": "burn_1h"}, "value": [1, "NaN"]}]});
        let series = parse_vector(&data).unwrap();
        assert_eq!(
            (series[0].labels["figure"].as_str(), series[0].value),
            ("spent", 0.42)
        );
        assert!(series[1].value.is_nan());
        let scalar = serde_json::json!({"resultType": "scalar", "result": [1, "1"]});
        assert!(parse_vector(&scalar).is_err());
    }
}
