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

/// A Prometheus server.
#[derive(Clone)]
pub struct Prometheus {
    url: String,
    query: BoxCloneSyncService<String, Sample, ResilienceError<QueryError>>,
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
        let call = tower::service_fn(move |query: String| {
            let mut request = client.get(&endpoint).query(&[("query", query.as_str())]);
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
        self.query
            .clone()
            .oneshot(query.to_owned())
            .await
            .map_err(|e| match e {
                ResilienceError::Inner(inner) => inner,
                other => QueryError(other.to_string()),
            })
    }
}

async fn fetch(request: reqwest::RequestBuilder) -> Result<Sample, QueryError> {
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
    parse_result(&body["data"])
}

/// Errors without the request URL (it holds the query, which is fine, but keep messages
/// short and never echo credentials).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<prometheus>");
    }
    text
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
    match text {
        "NaN" => Ok(None),
        "+Inf" => Ok(Some(f64::INFINITY)),
        "-Inf" => Ok(Some(f64::NEG_INFINITY)),
        _ => text
            .parse()
            .map(Some)
            .map_err(|_| QueryError(format!("sample {text:?} is not a number"))),
    }
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
}
