//! `pod-kill`: deletes the picked pods (with a grace period) or evicts them through the
//! Eviction subresource, which respects PodDisruptionBudgets. With `waitReady`, a watch
//! measures how long the owners take to bring Ready replacements back.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::KubeConnector;
use super::target::{self, PickedPod};
use super::KubeError;
use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::{PodKillParams, PodSelector};

/// What the readiness watch found: how long replacements took, or why it gave up.
type ReadyOutcome = Arc<Mutex<Option<Result<Duration, Arc<KubeError>>>>>;

/// A `pod-kill` fault.
pub struct PodKill {
    name: String,
    run_id: String,
    selector: PodSelector,
    params: PodKillParams,
    kube: Arc<KubeConnector>,
    killed: Vec<PickedPod>,
    ready: Option<ReadyOutcome>,
    measurements: Vec<(String, String)>,
}

impl PodKill {
    /// The fault `name` of run `run_id`, killing the pods `selector` picks.
    pub fn new(
        name: &str,
        run_id: &str,
        selector: PodSelector,
        params: PodKillParams,
        kube: Arc<KubeConnector>,
    ) -> PodKill {
        PodKill {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            selector,
            params,
            kube,
            killed: Vec::new(),
            ready: None,
            measurements: Vec::new(),
        }
    }

    fn inject_error(&self, reason: impl Into<String>) -> FaultError {
        FaultError::inject(&self.name, reason)
    }

    /// The pods killed so far.
    pub fn killed(&self) -> &[PickedPod] {
        &self.killed
    }
}

/// The delete options of a kill.
fn delete_params(params: &PodKillParams) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: params.grace_period.map(|g| g.as_secs() as u32),
        ..DeleteParams::default()
    }
}

/// The body of an eviction (`policy/v1` Eviction). Built here rather than with kube's
/// `Api::evict`, whose body (kube 2.0) spells the field `delete_options`: the API server
/// ignores that, and with it the grace period.
///
/// ```
/// let b = chaos_runner::faults::kube::pod_kill::eviction_body("games", "gs-1", Some(5));
/// assert_eq!(b["deleteOptions"]["gracePeriodSeconds"], 5);
/// ```
pub fn eviction_body(namespace: &str, pod: &str, grace_seconds: Option<u32>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": namespace },
    });
    if let Some(g) = grace_seconds {
        body["deleteOptions"] = serde_json::json!({ "gracePeriodSeconds": g });
    }
    body
}

/// Evicts one pod through the Eviction subresource (the API server refuses with 429 when
/// a PodDisruptionBudget would be violated).
async fn evict(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
    params: &PodKillParams,
) -> Result<(), kube::Error> {
    let body = eviction_body(
        namespace,
        pod,
        params.grace_period.map(|g| g.as_secs() as u32),
    );
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}/eviction"
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?)
    .map_err(kube::Error::HttpError)?;
    client
        .request::<serde_json::Value>(request)
        .await
        .map(|_| ())
}

/// Deletes or evicts one pod.
async fn kill_one(
    client: &kube::Client,
    api: &Api<Pod>,
    namespace: &str,
    pod: &str,
    params: &PodKillParams,
) -> Result<(), KubeError> {
    if params.evict {
        evict(client, namespace, pod, params)
            .await
            .map_err(KubeError::api(format!("eviction of `{pod}` refused")))
    } else {
        api.delete(pod, &delete_params(params))
            .await
            .map(|_| ())
            .map_err(KubeError::api(format!("cannot delete `{pod}`")))
    }
}

/// Counts Ready pods of `selector` that are not among `gone` (uids).
async fn ready_count(
    client: kube::Client,
    selector: &PodSelector,
    gone: &[String],
) -> Result<usize, KubeError> {
    let pods = target::list(client, selector).await?;
    Ok(pods
        .iter()
        .filter(|p| target::is_ready(p))
        .filter(|p| {
            p.metadata
                .uid
                .as_ref()
                .is_none_or(|uid| !gone.contains(uid))
        })
        .count())
}

impl Fault for PodKill {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "pod-kill {} on {}",
            crate::spec::FaultParams::PodKill(self.params).summary(),
            self.selector.summary()
        );
        if !self.killed.is_empty() {
            let names: Vec<&str> = self.killed.iter().map(|p| p.name.as_str()).collect();
            text.push_str(&format!(": {}", names.join(", ")));
        }
        text
    }

    fn targets(&self) -> Option<Result<Vec<String>, KubeError>> {
        Some(super::resolve_targets(
            &self.kube,
            &self.selector,
            &self.run_id,
            &self.name,
        ))
    }

    fn planned_record(&self) -> Option<FaultRecord> {
        Some(FaultRecord::KubePodsKilled {
            namespace: self.selector.namespace.clone(),
            pods: Vec::new(),
        })
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let env = self
            .kube
            .get()
            .map_err(|e| self.inject_error(e.to_string()))?
            .clone();
        let seed = target::seed_for(&self.selector, &self.run_id, &self.name);
        let selector = self.selector.clone();
        let params = self.params;
        let client = env.client();
        let outcome = env
            .block_on(async move {
                let selection = target::select(client.clone(), &selector, seed)
                    .await
                    .map_err(|e| (KubeError::from(e), Vec::new()))?;
                if params.wait_ready {
                    if let Some(orphan) = selection.picked.iter().find(|p| p.owner.is_none()) {
                        return Err((
                            KubeError::Refused(format!(
                                "pod `{}` has no controller to replace it; `waitReady` would never end",
                                orphan.name
                            )),
                            Vec::new(),
                        ));
                    }
                }
                let before = ready_count(client.clone(), &selector, &[])
                    .await
                    .map_err(|e| (e, Vec::new()))?;
                let api: Api<Pod> = Api::namespaced(client.clone(), &selector.namespace);
                let mut killed = Vec::new();
                for pod in &selection.picked {
                    if let Err(e) =
                        kill_one(&client, &api, &selector.namespace, &pod.name, &params).await
                    {
                        return Err((e, killed));
                    }
                    tracing::info!(pod = %pod.name, namespace = %pod.namespace, evict = params.evict, "killed pod");
                    killed.push(pod.clone());
                }
                Ok((killed, before))
            })
            .map_err(|e| self.inject_error(e.to_string()))?;
        let (killed, before) = match outcome {
            Ok(done) => done,
            Err((reason, killed)) => {
                let names: Vec<&str> = killed.iter().map(|p| p.name.as_str()).collect();
                let already = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (already killed: {})", names.join(", "))
                };
                self.killed = killed;
                return Err(self.inject_error(format!("{reason}{already}")));
            }
        };
        self.killed = killed;
        if self.params.wait_ready {
            let outcome: ReadyOutcome = Arc::new(Mutex::new(None));
            let slot = outcome.clone();
            let gone: Vec<String> = self.killed.iter().map(|p| p.uid.clone()).collect();
            let selector = self.selector.clone();
            let timeout = self.params.ready_timeout;
            let client = env.client();
            let started = Instant::now();
            env.spawn(async move {
                let result = loop {
                    match ready_count(client.clone(), &selector, &gone).await {
                        Ok(n) if n >= before => break Ok(started.elapsed()),
                        Ok(n) if started.elapsed() >= timeout => {
                            break Err(Arc::new(KubeError::Timeout(format!(
                                "{n} of {before} pods Ready after {}",
                                humantime::format_duration(timeout)
                            ))))
                        }
                        Err(e) if started.elapsed() >= timeout => break Err(Arc::new(e)),
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                };
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(result);
                }
            });
            self.ready = Some(outcome);
        }
        Ok(FaultRecord::KubePodsKilled {
            namespace: self.selector.namespace.clone(),
            pods: self.killed.iter().map(|p| p.name.clone()).collect(),
        })
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        // Killed pods come back through their owners; with `waitReady`, wait for them.
        let Some(outcome) = &self.ready else {
            return Ok(());
        };
        let deadline = Instant::now() + self.params.ready_timeout + Duration::from_secs(5);
        let result = loop {
            let found = outcome.lock().ok().and_then(|slot| slot.clone());
            if let Some(found) = found {
                break found;
            }
            if Instant::now() >= deadline {
                break Err(Arc::new(KubeError::Timeout(
                    "the readiness watch did not answer".to_owned(),
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.measurements
            .retain(|(n, _)| n != "replacements_ready_ms");
        match result {
            Ok(took) => {
                self.measurements
                    .push(("replacements_ready_ms".into(), took.as_millis().to_string()));
                Ok(())
            }
            Err(e) => Err(FaultError::Revert {
                fault: self.name.clone(),
                reason: format!("replacements not Ready: {e}"),
            }),
        }
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        Ok(())
    }

    fn revertible(&self) -> bool {
        self.killed.iter().all(|p| p.owner.is_some())
    }

    fn measurements(&self) -> Vec<(String, String)> {
        let mut m = self.measurements.clone();
        m.push(("pods_killed".into(), self.killed.len().to_string()));
        m
    }
}
