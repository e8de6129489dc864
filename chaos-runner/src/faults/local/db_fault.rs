//! The `postgres-*` and `redis-*` faults: a rule on the protocol relay of the run's own
//! proxy (`proxy: {listen, upstream, protocol: postgres|redis}`).
//!
//! The proxy lives in the runner (see [`super::proxy_fault::ProxyPool`]), so neither it
//! nor the rule can outlive a runner that dies; the rule also removes itself when the
//! fault's time is up. The journal keeps a [`FaultRecord::ProxyToxic`] with no API (the
//! rule's name as the toxic), which `recover` knows needs nothing more.

use std::sync::Arc;
use std::time::Duration;

use super::dbproto::{DbFaults, Protocol};
use super::proxy_fault::ProxyPool;
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{DbParams, ProxyProtocol, ProxySelector};

/// A protocol-aware database fault.
#[derive(Debug)]
pub struct DbFault {
    name: String,
    type_name: &'static str,
    rule: String,
    params: DbParams,
    pool: ProxyPool,
    listen: String,
    upstream: String,
    expiry: Duration,
    /// The proxy's name and the rule setting's id, once injected.
    injected: Option<(String, u64)>,
}

impl DbFault {
    /// A fault of `params` on the run's proxy that `selector` names, for at most `expiry`.
    ///
    /// ```
    /// use chaos_runner::faults::{local::{db_fault::DbFault, proxy_fault::ProxyPool}, Fault};
    /// use chaos_runner::spec::{DbParams, PostgresResetParams, ProxySelector};
    /// let sel = ProxySelector { listen: Some("127.0.0.1:15432".into()), upstream: Some("127.0.0.1:5432".into()), ..Default::default() };
    /// let p = DbParams::PostgresReset(PostgresResetParams { pattern: "^UPDATE".into(), rate: 1.0 });
    /// let f = DbFault::new("cut", "postgres-reset", "r1", p, &sel, &ProxyPool::default(), std::time::Duration::from_secs(5));
    /// assert!(f.describe().contains("rule chaos-r1-cut"));
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
        DbFault {
            name: name.to_owned(),
            type_name,
            rule: super::proxy_fault::toxic_name(run_id, name),
            params,
            pool: pool.clone(),
            listen: selector.listen.clone().unwrap_or_default(),
            upstream: selector.upstream.clone().unwrap_or_default(),
            expiry,
            injected: None,
        }
    }

    fn protocol(&self) -> Protocol {
        match self.params.protocol() {
            ProxyProtocol::Redis => Protocol::Redis,
            _ => Protocol::Postgres,
        }
    }

    /// The rule set of the run's proxy named `proxy`.
    fn faults(&self, proxy: &str) -> Arc<DbFaults> {
        self.pool.db_faults(self.protocol(), proxy)
    }

    fn record(&self, proxy: &str) -> FaultRecord {
        FaultRecord::ProxyToxic {
            api: None,
            proxy: proxy.to_owned(),
            toxic: self.rule.clone(),
        }
    }
}

impl Fault for DbFault {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!(
            "{} `{}`: {} on the run's {} proxy {} -> {} (rule {}) for at most {}",
            self.type_name,
            self.name,
            self.params.summary(),
            self.protocol().name(),
            self.listen,
            self.upstream,
            self.rule,
            humantime::format_duration(Duration::from_millis(self.expiry.as_millis() as u64))
        )
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let error = |reason: String| FaultError::Inject {
            fault: self.name.clone(),
            reason,
        };
        let rule = self
            .params
            .rule(&self.rule)
            .map_err(|e| error(e.to_string()))?;
        let proxy = self
            .pool
            .ensure(&self.listen, &self.upstream, self.params.protocol())
            .map_err(error)?;
        let faults = self.faults(&proxy);
        let id = faults.set_rule(rule).map_err(|e| error(e.to_string()))?;
        let (rule_name, expiry) = (self.rule.clone(), self.expiry);
        let spawned = std::thread::Builder::new()
            .name("chaos-db-expiry".into())
            .spawn(move || {
                std::thread::sleep(expiry);
                if faults.remove_rule_id(&rule_name, id) {
                    tracing::warn!(rule = %rule_name, "db fault expired; rule removed");
                }
            });
        if let Err(e) = spawned {
            self.faults(&proxy).remove_rule_id(&self.rule, id);
            return Err(error(format!("cannot arm the fault's expiry: {e}")));
        }
        tracing::info!(fault = %self.name, rule = %self.rule, proxy = %proxy, "db fault rule set");
        let record = self.record(&proxy);
        self.injected = Some((proxy, id));
        Ok(record)
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some((proxy, id)) = &self.injected {
            self.faults(proxy).remove_rule_id(&self.rule, *id);
        }
        Ok(())
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        let Some((proxy, id)) = &self.injected else {
            return Ok(());
        };
        let faults = self.faults(proxy);
        let still = faults.rules().iter().any(|r| r.name() == self.rule)
            && faults.hits(&self.rule).is_some();
        // A later setting of the same name (a ramp's next step) is not ours to check.
        let ours = still && faults.rule_id(&self.rule) == Some(*id);
        if ours {
            return Err(FaultError::Revert {
                fault: self.name.clone(),
                reason: format!("rule {} is still set on the relay", self.rule),
            });
        }
        Ok(())
    }
}
