//! The `proxy-*` faults: a toxic (or `down`) on a TCP fault proxy.
//!
//! Two forms, by selector:
//! - `proxy: {listen, upstream}`: the run starts its own proxy on `listen` (one per address,
//!   shared by every fault and ramp step of the run, see [`ProxyPool`]) and adds the toxic
//!   there. The proxy lives in the runner, so it cannot outlive it; the toxic also removes
//!   itself when the fault's time is up.
//! - `proxy: {api, name}`: the toxic goes to a running `chaos-runner proxy` or toxiproxy over
//!   its HTTP API, named `chaos-<run id>-<fault>`; the journal keeps the API, proxy and toxic
//!   (from the intent on), so `recover` deletes it after a crash.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fault_proxy::api::ToxicJson;
use fault_proxy::dbproto::{DbFaults, DbRelays};
use fault_proxy::server::ProxyServer;
use fault_proxy::toxics::{Stream, Toxic, ToxicKind};
use fault_proxy::{Protocol, ProxyInput, ProxyRegistry};

use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{ProxyAction, ProxyParams, ProxyProtocol, ProxySelector, ProxyStream};

/// The default admin API of a running proxy server.
pub const DEFAULT_API: &str = "http://127.0.0.1:8474";

/// A proxy of the run could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum ProxyFaultError {
    /// The in-process proxy server could not start.
    #[error(transparent)]
    Start(#[from] fault_proxy::server::ServerError),
    /// The in-process proxy server is not there after starting it.
    #[error("proxy server did not start")]
    NotStarted,
    /// The listen address already proxies another upstream in this run.
    #[error("the run's proxy on {listen} already forwards to {upstream} ({protocol}); one listen address, one upstream")]
    OtherUpstream {
        /// The listen address.
        listen: String,
        /// The upstream it already forwards to.
        upstream: String,
        /// Its protocol.
        protocol: String,
    },
    /// The registry refused the proxy.
    #[error(transparent)]
    Refused(#[from] fault_proxy::ApiError),
    /// The admin API could not be reached (transport failure).
    #[error("{method} {url}: {source}")]
    Http {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<ureq::Error>,
    },
}

/// The run's in-process proxies: one proxy server started when the first fault needs it,
/// with one proxy per listen address, kept for the whole run and stopped when the last
/// handle goes (after the engine's reverts).
#[derive(Clone, Default)]
pub struct ProxyPool {
    server: Arc<Mutex<Option<ProxyServer>>>,
    /// The rule sets of the pool's `postgres` and `redis` proxies (`postgres-*`,
    /// `redis-*` faults).
    db: DbRelays,
}

impl std::fmt::Debug for ProxyPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyPool").finish_non_exhaustive()
    }
}

impl ProxyPool {
    /// The pool's registry, starting the proxy thread on first use.
    pub fn registry(&self) -> Result<Arc<ProxyRegistry>, ProxyFaultError> {
        let mut server = self.server.lock().unwrap_or_else(|p| p.into_inner());
        if server.is_none() {
            let started = ProxyServer::start(None)?;
            self.db.register(started.registry());
            *server = Some(started);
        }
        server
            .as_ref()
            .map(|s| s.registry().clone())
            .ok_or(ProxyFaultError::NotStarted)
    }

    /// The name of the in-run proxy on `listen` to `upstream`, creating it if needed.
    /// Fails when `listen` already proxies another upstream in this run.
    ///
    /// ```
    /// let pool = chaos_runner::faults::local::proxy_fault::ProxyPool::default();
    /// let name = pool.ensure("127.0.0.1:0", "127.0.0.1:9", Default::default()).unwrap();
    /// assert_eq!(name, "run-127.0.0.1:0");
    /// ```
    pub fn ensure(
        &self,
        listen: &str,
        upstream: &str,
        protocol: ProxyProtocol,
    ) -> Result<String, ProxyFaultError> {
        let registry = self.registry()?;
        let name = format!("run-{listen}");
        let protocol = Protocol::from(protocol);
        if let Ok(existing) = registry.get(&name) {
            if existing.upstream != upstream || existing.protocol != protocol {
                return Err(ProxyFaultError::OtherUpstream {
                    listen: listen.to_owned(),
                    upstream: existing.upstream,
                    protocol: existing.protocol.as_str().to_owned(),
                });
            }
            return Ok(name);
        }
        registry.create(ProxyInput {
            name: Some(name.clone()),
            listen: Some(listen.to_owned()),
            upstream: Some(upstream.to_owned()),
            protocol: Some(protocol),
            ..Default::default()
        })?;
        Ok(name)
    }

    /// The rule set of the pool's `protocol` proxy named `proxy`.
    pub fn db_faults(
        &self,
        protocol: fault_proxy::dbproto::Protocol,
        proxy: &str,
    ) -> Arc<DbFaults> {
        self.db.get(protocol, proxy)
    }

    /// Stops the pool's proxies now (they also stop when the last handle is dropped).
    pub fn shutdown(&self) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(server);
    }
}

/// Where a proxy or database fault acts, as its `proxy:` selector says.
#[derive(Debug, Clone)]
pub(crate) enum ProxyTarget {
    /// The run's own proxy on `listen` (started on first use, see [`ProxyPool`]).
    InRun {
        pool: ProxyPool,
        listen: String,
        upstream: String,
        protocol: ProxyProtocol,
    },
    /// Proxy `proxy` of a running proxy server whose admin API is `api`.
    Api { api: String, proxy: String },
}

impl ProxyTarget {
    /// `{listen, upstream[, protocol]}`: the run's own proxy; otherwise `{name[, api]}` of
    /// a running server (the API defaults to [`DEFAULT_API`]).
    pub(crate) fn from_selector(selector: &ProxySelector, pool: &ProxyPool) -> ProxyTarget {
        match (&selector.listen, &selector.upstream) {
            (Some(listen), Some(upstream)) => ProxyTarget::InRun {
                pool: pool.clone(),
                listen: listen.clone(),
                upstream: upstream.clone(),
                protocol: selector.protocol.unwrap_or_default(),
            },
            _ => ProxyTarget::Api {
                api: selector
                    .api
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API.to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                proxy: selector.name.clone().unwrap_or_default(),
            },
        }
    }

    /// Where, in words: `the run's postgres proxy 127.0.0.1:15433 -> 127.0.0.1:15432` or
    /// ``proxy `saves-db` at http://127.0.0.1:8474``.
    pub(crate) fn place(&self) -> String {
        match self {
            ProxyTarget::InRun {
                listen,
                upstream,
                protocol,
                ..
            } => format!(
                "the run's {} proxy {listen} -> {upstream}",
                Protocol::from(*protocol).as_str()
            ),
            ProxyTarget::Api { api, proxy } => format!("proxy `{proxy}` at {api}"),
        }
    }
}

/// A `proxy-*` fault.
#[derive(Debug)]
pub struct ProxyFault {
    name: String,
    type_name: &'static str,
    toxic: String,
    params: ProxyParams,
    target: ProxyTarget,
    expiry: Duration,
    /// The in-run proxy's name once injected.
    proxy: Option<String>,
}

impl ProxyFault {
    /// A fault of `params` on the proxy `selector` names, for at most `expiry`.
    pub fn new(
        name: &str,
        type_name: &'static str,
        run_id: &str,
        params: ProxyParams,
        selector: &ProxySelector,
        pool: &ProxyPool,
        expiry: Duration,
    ) -> ProxyFault {
        let target = ProxyTarget::from_selector(selector, pool);
        ProxyFault {
            name: name.to_owned(),
            type_name,
            toxic: toxic_name(run_id, name),
            params,
            target,
            expiry,
            proxy: None,
        }
    }

    /// The toxic this fault adds (`chaos-<run id>-<fault>`).
    pub fn toxic_name(&self) -> &str {
        &self.toxic
    }

    /// The toxic this fault adds (`None` for `down`, which adds none).
    fn toxic(&self) -> Option<Toxic> {
        let kind = match &self.params.action {
            ProxyAction::Latency { latency, jitter } => ToxicKind::Latency {
                latency: *latency,
                jitter: *jitter,
            },
            ProxyAction::Bandwidth { rate } => ToxicKind::Bandwidth { rate: *rate },
            ProxyAction::SlowClose { delay } => ToxicKind::SlowClose { delay: *delay },
            ProxyAction::Timeout { timeout } => ToxicKind::Timeout { timeout: *timeout },
            ProxyAction::ResetPeer { timeout } => ToxicKind::ResetPeer { timeout: *timeout },
            ProxyAction::Slicer {
                average_size,
                size_variation,
                delay,
            } => ToxicKind::Slicer {
                average_size: *average_size,
                size_variation: *size_variation,
                delay: *delay,
            },
            ProxyAction::LimitData { bytes } => ToxicKind::LimitData { bytes: *bytes },
            ProxyAction::Loss { probability, delay } => ToxicKind::Loss {
                probability: *probability,
                delay: delay.unwrap_or_default(),
            },
            ProxyAction::Down => return None,
        };
        let stream = match self.params.stream {
            ProxyStream::Upstream => Stream::Upstream,
            ProxyStream::Downstream => Stream::Downstream,
        };
        Some(
            Toxic::new(self.toxic.clone(), kind)
                .with_stream(stream)
                .with_toxicity(self.params.toxicity),
        )
    }

    fn record(&self) -> FaultRecord {
        let (api, proxy) = match &self.target {
            ProxyTarget::InRun { listen, .. } => (
                None,
                self.proxy
                    .clone()
                    .unwrap_or_else(|| format!("run-{listen}")),
            ),
            ProxyTarget::Api { api, proxy } => (Some(api.clone()), proxy.clone()),
        };
        if self.params.action == ProxyAction::Down {
            FaultRecord::ProxyDown { api, proxy }
        } else {
            FaultRecord::ProxyToxic {
                api,
                proxy,
                toxic: self.toxic.clone(),
            }
        }
    }

    fn inject_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::inject(&self.name, reason)
    }

    fn revert_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::revert(&self.name, reason)
    }
}

/// The toxic name of `run_id`'s fault `fault`.
pub fn toxic_name(run_id: &str, fault: &str) -> String {
    format!("chaos-{run_id}-{fault}")
}

impl Fault for ProxyFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let place = self.target.place();
        format!(
            "{} `{}`: {} on {place} (toxic {}) for at most {}",
            self.type_name,
            self.name,
            self.params.summary(),
            self.toxic,
            humantime::format_duration(Duration::from_millis(self.expiry.as_millis() as u64))
        )
    }

    fn planned_record(&self) -> Option<FaultRecord> {
        matches!(self.target, ProxyTarget::Api { .. }).then(|| self.record())
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let toxic = self.toxic();
        match self.target.clone() {
            ProxyTarget::InRun {
                pool,
                listen,
                upstream,
                protocol,
            } => {
                let proxy = pool
                    .ensure(&listen, &upstream, protocol)
                    .map_err(|e| self.inject_error(e.to_string()))?;
                let registry = pool
                    .registry()
                    .map_err(|e| self.inject_error(e.to_string()))?;
                match toxic {
                    Some(toxic) => {
                        registry
                            .add_toxic(&proxy, toxic)
                            .map_err(|e| self.inject_error(e.message))?;
                        registry.expire_toxic(&proxy, &self.toxic, self.expiry);
                    }
                    None => {
                        registry
                            .update(
                                &proxy,
                                ProxyInput {
                                    enabled: Some(false),
                                    ..Default::default()
                                },
                            )
                            .map_err(|e| self.inject_error(e.message))?;
                        registry.expire_down(&proxy, self.expiry);
                    }
                }
                self.proxy = Some(proxy);
            }
            ProxyTarget::Api { api, proxy } => {
                let base = format!("{api}/proxies/{proxy}");
                match &toxic {
                    Some(toxic) => {
                        // The API edge: the toxic in toxiproxy's JSON.
                        let body = serde_json::to_string(&ToxicJson::from_toxic(toxic))
                            .map_err(|e| self.inject_error(e.to_string()))?;
                        let (code, text) = http("POST", &format!("{base}/toxics"), Some(&body))
                            .map_err(|e| self.inject_error(e.to_string()))?;
                        if code != 200 && code != 201 {
                            return Err(self.inject_error(format!(
                                "POST {base}/toxics answered {code}: {text}"
                            )));
                        }
                    }
                    None => {
                        let (code, text) = http("GET", &base, None)
                            .map_err(|e| self.inject_error(e.to_string()))?;
                        if code != 200 {
                            return Err(
                                self.inject_error(format!("GET {base} answered {code}: {text}"))
                            );
                        }
                        let enabled = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v["enabled"].as_bool());
                        if enabled != Some(true) {
                            return Err(self.inject_error(format!(
                                "proxy `{proxy}` is not enabled now; refusing to take it down \
                                 (revert would enable it)"
                            )));
                        }
                        let (code, text) = http("POST", &base, Some(r#"{"enabled":false}"#))
                            .map_err(|e| self.inject_error(e.to_string()))?;
                        if code != 200 {
                            return Err(
                                self.inject_error(format!("POST {base} answered {code}: {text}"))
                            );
                        }
                    }
                }
                self.proxy = Some(proxy);
            }
        }
        Ok(self.record())
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if self.proxy.is_none() {
            return Ok(());
        }
        match &self.target {
            ProxyTarget::InRun { pool, .. } => {
                let registry = pool
                    .registry()
                    .map_err(|e| self.revert_error(e.to_string()))?;
                let proxy = self.proxy.clone().unwrap_or_default();
                let result = if self.params.action == ProxyAction::Down {
                    registry
                        .update(
                            &proxy,
                            ProxyInput {
                                enabled: Some(true),
                                ..Default::default()
                            },
                        )
                        .map(|_| ())
                } else {
                    registry.remove_toxic(&proxy, &self.toxic)
                };
                match result {
                    Ok(()) => Ok(()),
                    Err(e) if e.status == 404 => Ok(()),
                    Err(e) => Err(self.revert_error(e.message)),
                }
            }
            ProxyTarget::Api { .. } => revert_record(&self.name, &self.record()),
        }
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let Some(proxy) = &self.proxy else {
            return Ok(());
        };
        match &self.target {
            ProxyTarget::InRun { pool, .. } => {
                let registry = pool
                    .registry()
                    .map_err(|e| self.revert_error(e.to_string()))?;
                let view = registry
                    .get(proxy)
                    .map_err(|e| self.revert_error(e.message))?;
                if self.params.action == ProxyAction::Down {
                    if !view.enabled {
                        return Err(self.revert_error(format!("proxy `{proxy}` is still down")));
                    }
                } else if view.toxics.iter().any(|t| t.name == self.toxic) {
                    return Err(self.revert_error(format!("toxic {} is still on", self.toxic)));
                }
                Ok(())
            }
            ProxyTarget::Api { .. } => verify_record(&self.name, &self.record()),
        }
    }
}

/// One call to a proxy server's admin API: its status and body (a transport failure is
/// an error naming the method and URL).
pub(crate) fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
) -> Result<(u16, String), ProxyFaultError> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let request = agent
        .request(method, url)
        .set("Content-Type", "application/json");
    let result = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    match result {
        Ok(r) => {
            let code = r.status();
            Ok((code, r.into_string().unwrap_or_default()))
        }
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(ProxyFaultError::Http {
            method: method.to_owned(),
            url: url.to_owned(),
            source: Box::new(e),
        }),
    }
}

/// What a record of a fault on a running proxy server names.
struct Remote<'a> {
    api: &'a str,
    proxy: &'a str,
    /// The toxic or database rule, with the collection it sits in (`toxics`,
    /// `dbfaults`); `None` for a proxy taken down.
    item: Option<(&'static str, &'a str)>,
}

/// The remote part of `record`; `None` for a record of the run's own proxy (it lived in
/// the runner's process and went with it) or of anything else.
fn remote(record: &FaultRecord) -> Option<Remote<'_>> {
    match record {
        FaultRecord::ProxyToxic {
            api: Some(api),
            proxy,
            toxic,
        } => Some(Remote {
            api,
            proxy,
            item: Some(("toxics", toxic)),
        }),
        FaultRecord::ProxyDown {
            api: Some(api),
            proxy,
        } => Some(Remote {
            api,
            proxy,
            item: None,
        }),
        FaultRecord::ProxyDbFault { api, proxy, rule } => Some(Remote {
            api,
            proxy,
            item: Some(("dbfaults", rule)),
        }),
        _ => None,
    }
}

/// Reverts a fault on a proxy from its journal record (used by `recover` and by the API
/// forms' own revert): deletes the toxic or database rule, or re-enables the proxy, over
/// the admin API. A record of the run's own proxy needs nothing: it went with the runner.
pub fn revert_record(fault: &str, record: &FaultRecord) -> Result<(), FaultError> {
    let error = |reason: String| FaultError::Revert {
        fault: fault.to_owned(),
        reason,
    };
    let Some(Remote { api, proxy, item }) = remote(record) else {
        return Ok(());
    };
    let base = format!("{api}/proxies/{proxy}");
    let (method, url, body) = match item {
        Some((collection, name)) => ("DELETE", format!("{base}/{collection}/{name}"), None),
        None => ("POST", base.clone(), Some(r#"{"enabled":true}"#)),
    };
    let (code, text) = http(method, &url, body).map_err(|e| error(e.to_string()))?;
    match code {
        200 | 204 => Ok(()),
        // The toxic or rule (or the whole proxy) is already gone.
        404 if item.is_some() => Ok(()),
        _ => Err(error(format!("{method} {url} answered {code}: {text}"))),
    }
}

/// Checks over the admin API that a proxy fault's record is reverted: its toxic or rule
/// is not listed (or the proxy is gone), or the proxy is enabled.
pub fn verify_record(fault: &str, record: &FaultRecord) -> Result<(), FaultError> {
    let error = |reason: String| FaultError::Revert {
        fault: fault.to_owned(),
        reason,
    };
    let Some(Remote { api, proxy, item }) = remote(record) else {
        return Ok(());
    };
    let base = format!("{api}/proxies/{proxy}");
    match item {
        Some((collection, name)) => {
            let url = format!("{base}/{collection}");
            let (code, text) = http("GET", &url, None).map_err(|e| error(e.to_string()))?;
            if code == 404 {
                return Ok(());
            }
            if code != 200 {
                return Err(error(format!("GET {url} answered {code}: {text}")));
            }
            let list: Vec<serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| error(format!("GET {url}: not a list: {e}")))?;
            if list.iter().any(|x| x["name"] == name) {
                return Err(error(format!(
                    "{name} is still on proxy `{proxy}` at {api}"
                )));
            }
            Ok(())
        }
        None => {
            let (code, text) = http("GET", &base, None).map_err(|e| error(e.to_string()))?;
            let enabled = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["enabled"].as_bool());
            if code == 200 && enabled == Some(true) {
                Ok(())
            } else {
                Err(error(format!(
                    "proxy `{proxy}` at {api} is not enabled ({code})"
                )))
            }
        }
    }
}
