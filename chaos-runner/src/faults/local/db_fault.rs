//! The `postgres-*` and `redis-*` faults: a rule on a protocol-aware proxy.
//!
//! Two forms, by selector (as for the `proxy-*` faults):
//! - `proxy: {listen, upstream, protocol: postgres|redis}`: the run's own proxy (see
//!   [`super::proxy_fault::ProxyPool`]), so neither it nor the rule can outlive a runner
//!   that dies. The journal keeps a [`FaultRecord::ProxyToxic`] with no API (the rule's
//!   name as the toxic), which `recover` knows needs nothing more.
//! - `proxy: {name, api}`: a `protocol: postgres|redis` proxy of a running
//!   `chaos-runner proxy`, driven over its admin API (`/proxies/{name}/dbfaults`). The
//!   journal keeps a [`FaultRecord::ProxyDbFault`] from the intent on, so `recover`
//!   deletes the rule after a crash; preflight checks the proxy exists and speaks the
//!   fault's protocol before anything is touched.
//!
//! Either way the rule carries the fault's expiry: once its time is up it never fires
//! again, whether or not anything removes it.

use std::sync::Arc;
use std::time::Duration;

use fault_proxy::db_rules::DbFaultInput;
use fault_proxy::dbproto::{DbFaults, Protocol, RuleSetting};

use super::proxy_fault::{http, ProxyPool, ProxyTarget};
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{DbParams, ProxySelector};

/// A protocol-aware database fault.
#[derive(Debug)]
pub struct DbFault {
    name: String,
    type_name: &'static str,
    rule: String,
    params: DbParams,
    target: ProxyTarget,
    expiry: Duration,
    /// In-run: the proxy's name and the rule setting's id, once injected.
    injected: Option<(String, u64)>,
    /// API form: the rule was (possibly) set.
    sent: bool,
    /// How many times the rule fired, read just before it was removed.
    hits: Option<u64>,
}

impl DbFault {
    /// A fault of `params` on the proxy that `selector` names, for at most `expiry`.
    ///
    /// ```
    /// use chaos_runner::faults::{local::{db_fault::DbFault, proxy_fault::ProxyPool}, Fault};
    /// use chaos_runner::spec::{DbParams, PostgresResetParams, ProxySelector};
    /// let sel = ProxySelector { listen: Some("127.0.0.1:15432".into()), upstream: Some("127.0.0.1:5432".into()), ..Default::default() };
    /// let p = DbParams::PostgresReset(PostgresResetParams { pattern: "^UPDATE".into(), rate: 1.0 });
    /// let f = DbFault::new("cut", "postgres-reset", "r1", p.clone(), &sel, &ProxyPool::default(), std::time::Duration::from_secs(5));
    /// assert!(f.describe().contains("rule chaos-r1-cut"));
    /// let remote = ProxySelector { name: Some("saves-db".into()), api: Some("http://127.0.0.1:8474".into()), ..Default::default() };
    /// let f = DbFault::new("cut", "postgres-reset", "r1", p, &remote, &ProxyPool::default(), std::time::Duration::from_secs(5));
    /// assert!(f.describe().contains("proxy `saves-db` at http://127.0.0.1:8474"));
    /// ```
    pub fn new(
        name: &str,
        type_name: &'static str,
        run_id: &str,
        params: DbParams,
        selector: &ProxySelector,
        pool: &ProxyPool,
        expiry: Duration,
    ) -> DbFault {
        let target = ProxyTarget::from_selector(selector, pool);
        DbFault {
            name: name.to_owned(),
            type_name,
            rule: super::proxy_fault::toxic_name(run_id, name),
            params,
            target,
            expiry,
            injected: None,
            sent: false,
            hits: None,
        }
    }

    fn protocol(&self) -> Protocol {
        self.params.protocol()
    }

    fn inject_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::inject(&self.name, reason)
    }

    fn revert_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::revert(&self.name, reason)
    }

    /// The record of the API form.
    fn api_record(api: &str, proxy: &str, rule: &str) -> FaultRecord {
        FaultRecord::ProxyDbFault {
            api: api.to_owned(),
            proxy: proxy.to_owned(),
            rule: rule.to_owned(),
        }
    }

    /// The rule as the admin API takes it: the fault's type, its parameters as
    /// attributes, and its expiry.
    fn api_input(&self) -> Result<DbFaultInput, FaultError> {
        let attributes = serde_json::to_value(&self.params)
            .map_err(|e| self.inject_error(format!("cannot encode the parameters: {e}")))?;
        Ok(DbFaultInput {
            name: self.rule.clone(),
            fault_type: self.type_name.to_owned(),
            attributes,
            expires_in: Some(self.expiry.max(Duration::from_millis(1))),
        })
    }

    fn inject_in_run(
        &mut self,
        pool: &ProxyPool,
        listen: &str,
        upstream: &str,
    ) -> Result<FaultRecord, FaultError> {
        let rule = self
            .params
            .rule(&self.rule)
            .map_err(|e| self.inject_error(e.to_string()))?;
        let proxy = pool
            .ensure(listen, upstream, self.params.protocol().into())
            .map_err(|e| self.inject_error(e.to_string()))?;
        let faults = pool.db_faults(self.protocol(), &proxy);
        let id = faults
            .set_rule_with(rule, RuleSetting::expiring_in(self.expiry))
            .map_err(|e| self.inject_error(e.to_string()))?;
        tracing::info!(fault = %self.name, rule = %self.rule, proxy = %proxy, "db fault rule set");
        let record = FaultRecord::ProxyToxic {
            api: None,
            proxy: proxy.clone(),
            toxic: self.rule.clone(),
        };
        self.injected = Some((proxy, id));
        Ok(record)
    }

    fn inject_api(&mut self, api: &str, proxy: &str) -> Result<FaultRecord, FaultError> {
        let body = serde_json::to_string(&self.api_input()?)
            .map_err(|e| self.inject_error(e.to_string()))?;
        let url = format!("{api}/proxies/{proxy}/dbfaults");
        self.sent = true;
        let (code, text) =
            http("POST", &url, Some(&body)).map_err(|e| self.inject_error(e.to_string()))?;
        if code != 200 && code != 201 {
            return Err(self.inject_error(format!("POST {url} answered {code}: {text}")));
        }
        tracing::info!(fault = %self.name, rule = %self.rule, %proxy, %api, "db fault rule set over the admin API");
        Ok(Self::api_record(api, proxy, &self.rule))
    }

    /// How many times the rule fired, as the server's admin API shows it (`None` when it
    /// cannot be read: the figure is then left out of the report, never guessed).
    fn api_hits(api: &str, proxy: &str, rule: &str) -> Option<u64> {
        let (code, text) = http(
            "GET",
            &format!("{api}/proxies/{proxy}/dbfaults/{rule}"),
            None,
        )
        .ok()?;
        if code != 200 {
            return None;
        }
        serde_json::from_str::<serde_json::Value>(&text).ok()?["hits"].as_u64()
    }

    /// The in-run rule set a fault injected into.
    fn in_run_faults(&self, proxy: &str) -> Option<Arc<DbFaults>> {
        match &self.target {
            ProxyTarget::InRun { pool, .. } => Some(pool.db_faults(self.protocol(), proxy)),
            ProxyTarget::Api { .. } => None,
        }
    }
}

impl Fault for DbFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let place = self.target.place();
        format!(
            "{} `{}`: {} on {place} (rule {}) for at most {}",
            self.type_name,
            self.name,
            self.params.summary(),
            self.rule,
            humantime::format_duration(Duration::from_millis(self.expiry.as_millis() as u64))
        )
    }

    fn planned_record(&self) -> Option<FaultRecord> {
        match &self.target {
            ProxyTarget::Api { api, proxy } => Some(Self::api_record(api, proxy, &self.rule)),
            ProxyTarget::InRun { .. } => None,
        }
    }

    /// The API form checks that the proxy exists on the server and speaks the fault's
    /// protocol, so a wrong name or protocol fails before anything is injected.
    fn preflight(&self) -> Result<(), FaultError> {
        let ProxyTarget::Api { api, proxy } = &self.target else {
            return Ok(());
        };
        let url = format!("{api}/proxies/{proxy}");
        let (code, text) = http("GET", &url, None).map_err(|e| self.inject_error(e.to_string()))?;
        if code != 200 {
            return Err(self.inject_error(format!("GET {url} answered {code}: {text}")));
        }
        let protocol = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["protocol"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "tcp".to_owned());
        if protocol != self.protocol().name() {
            return Err(self.inject_error(format!(
                "proxy `{proxy}` at {api} relays {protocol}, but {} needs a `protocol: {}` proxy",
                self.type_name,
                self.protocol().name()
            )));
        }
        Ok(())
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        match self.target.clone() {
            ProxyTarget::InRun {
                pool,
                listen,
                upstream,
                ..
            } => self.inject_in_run(&pool, &listen, &upstream),
            ProxyTarget::Api { api, proxy } => self.inject_api(&api, &proxy),
        }
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        match &self.target {
            ProxyTarget::InRun { .. } => {
                if let Some((proxy, id)) = &self.injected {
                    if let Some(faults) = self.in_run_faults(proxy) {
                        // Only while the setting is ours (a ramp's next step replaces it).
                        if faults.rule_id(&self.rule) == Some(*id) {
                            self.hits = faults.hits(&self.rule).or(self.hits);
                        }
                        faults.remove_rule_id(&self.rule, *id);
                    }
                }
                Ok(())
            }
            ProxyTarget::Api { api, proxy } if self.sent => {
                if let Some(hits) = Self::api_hits(api, proxy, &self.rule) {
                    self.hits = Some(hits);
                }
                super::proxy_fault::revert_record(
                    &self.name,
                    &Self::api_record(api, proxy, &self.rule),
                )
            }
            ProxyTarget::Api { .. } => Ok(()),
        }
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        match &self.target {
            ProxyTarget::InRun { .. } => {
                let Some((proxy, id)) = &self.injected else {
                    return Ok(());
                };
                let Some(faults) = self.in_run_faults(proxy) else {
                    return Ok(());
                };
                // A later setting of the same name (a ramp's next step) is not ours.
                if faults.rule_id(&self.rule) == Some(*id) {
                    return Err(
                        self.revert_error(format!("rule {} is still set on the relay", self.rule))
                    );
                }
                Ok(())
            }
            ProxyTarget::Api { api, proxy } if self.sent => super::proxy_fault::verify_record(
                &self.name,
                &Self::api_record(api, proxy, &self.rule),
            ),
            ProxyTarget::Api { .. } => Ok(()),
        }
    }

    /// `rule_hits`: how many statements or commands the rule answered with its fault
    /// (read when it was removed), so a passing run shows the fault really fired.
    fn measurements(&self) -> Vec<(String, String)> {
        self.hits
            .map(|hits| vec![("rule_hits".to_owned(), hits.to_string())])
            .unwrap_or_default()
    }
}
