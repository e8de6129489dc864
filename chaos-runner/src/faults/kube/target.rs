//! Which pods a Kubernetes fault hits: list the namespace's pods by label and field
//! selector, drop protected, terminating and not-running ones, pick by mode with a seed,
//! and refuse picks above the blast-radius cap. Also the labels and names every object
//! the runner creates carries.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

use crate::spec::params::kube::PROTECTED_NAMESPACES;
use crate::spec::{PodMode, PodSelector};

/// Label naming the run on every object the runner creates.
pub const RUN_LABEL: &str = "chaos.game-resilience.dev/run-id";
/// Label naming the experiment on every object the runner creates.
pub const EXPERIMENT_LABEL: &str = "chaos.game-resilience.dev/experiment";
/// Label naming the fault on every object the runner creates.
pub const FAULT_LABEL: &str = "chaos.game-resilience.dev/fault";
/// Annotation that keeps a pod out of every pick.
pub const PROTECTED_ANNOTATION: &str = "chaos.game-resilience.dev/protected";

/// FNV-1a, for short stable names derived from run ids.
fn fnv(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `text` as a label value: unchanged when it is one, else its first characters (kept to
/// `[a-z0-9-]`) and a hash, 63 characters at most.
///
/// ```
/// use chaos_runner::faults::kube::target::label_value;
/// assert_eq!(label_value("run-1"), "run-1");
/// let long = "x".repeat(80);
/// assert_eq!(label_value(&long).len(), 63);
/// assert_eq!(label_value(&long), label_value(&long));
/// ```
pub fn label_value(text: &str) -> String {
    let valid = text.len() <= 63
        && text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && text
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        return text.to_owned();
    }
    let head: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(54)
        .collect();
    let head = head.trim_matches('-');
    format!("{head}-{:08x}", fnv(text))
        .trim_start_matches('-')
        .to_owned()
}

/// The name of an object fault `fault` of run `run_id` creates (a DNS label, stable for
/// the pair, so `recover` finds it from the journal).
///
/// ```
/// let n = chaos_runner::faults::kube::target::object_name("r-1", "cut");
/// assert!(n.starts_with("chaos-cut-"));
/// assert!(n.len() <= 63);
/// ```
pub fn object_name(run_id: &str, fault: &str) -> String {
    let fault: String = fault.chars().take(44).collect();
    format!("chaos-{fault}-{:08x}", fnv(run_id))
}

/// The labels of every object the runner creates for `fault` of `run_id`.
pub fn object_labels(run_id: &str, experiment: &str, fault: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (RUN_LABEL.to_owned(), label_value(run_id)),
        (EXPERIMENT_LABEL.to_owned(), label_value(experiment)),
        (FAULT_LABEL.to_owned(), label_value(fault)),
    ])
}

/// The label selector (`k=v,...`) finding the objects of `fault` of `run_id`.
pub fn run_selector(run_id: &str, fault: &str) -> String {
    format!(
        "{RUN_LABEL}={},{FAULT_LABEL}={}",
        label_value(run_id),
        label_value(fault)
    )
}

/// A label selector string from equality labels (validated at load time).
pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A pod a fault hits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PickedPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (a replacement has another).
    pub uid: String,
    /// Its controller (`ReplicaSet/game-7c9`), if any.
    pub owner: Option<String>,
}

/// The outcome of a pick.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    /// Pods the selectors matched.
    pub matching: usize,
    /// Matching pods left out because they are annotated protected.
    pub protected: Vec<String>,
    /// Matching pods that could be picked (running, not terminating, not protected).
    pub eligible: usize,
    /// The pods picked.
    pub picked: Vec<PickedPod>,
}

/// Why no pick could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The namespace is protected and not listed.
    #[error("namespace `{0}` is protected; list it in `allowProtectedNamespaces`")]
    ProtectedNamespace(String),
    /// The selector is empty and not allowed to be.
    #[error("the selector is empty (every pod of the namespace); set `allowEmptySelector: true`")]
    EmptySelector,
    /// Nothing to pick from.
    #[error("no running, unprotected pod matches ({matching} matched, {protected} protected)")]
    NoPods {
        /// Pods matched.
        matching: usize,
        /// Of which protected.
        protected: usize,
    },
    /// The mode asks for no pod.
    #[error("mode picks no pod out of {eligible}")]
    PicksNothing {
        /// Pods that could be picked.
        eligible: usize,
    },
    /// The pick is above the cap.
    #[error("would hit {count} of {matching} matching pods, above maxPercent {max_percent}% ({allowed} pods)")]
    AboveCap {
        /// Pods the mode asks for.
        count: usize,
        /// Pods matched.
        matching: usize,
        /// The cap in percent.
        max_percent: u8,
        /// The cap in pods.
        allowed: usize,
    },
    /// The API server refused the listing.
    #[error("cannot list pods in `{namespace}`: {reason}")]
    Api {
        /// The namespace.
        namespace: String,
        /// The API error.
        reason: String,
    },
}

/// Refuses protected namespaces (unless listed) and empty selectors (unless allowed);
/// validation checks the same, this is the last line before the API.
pub fn check_scope(sel: &PodSelector) -> Result<(), PickError> {
    if PROTECTED_NAMESPACES.contains(&sel.namespace.as_str())
        && !sel.allow_protected_namespaces.contains(&sel.namespace)
    {
        return Err(PickError::ProtectedNamespace(sel.namespace.clone()));
    }
    if sel.label_selector.is_empty() && sel.field_selector.is_none() && !sel.allow_empty_selector {
        return Err(PickError::EmptySelector);
    }
    Ok(())
}

/// How many of `eligible` pods `mode` picks (`draw` gives a random number in a range, for
/// `random-max-percent`).
fn count_for(
    mode: PodMode,
    value: Option<u32>,
    eligible: usize,
    draw: &mut dyn FnMut(usize) -> usize,
) -> usize {
    let percent_of = |p: u32| eligible * p.min(100) as usize / 100;
    match mode {
        PodMode::One => eligible.min(1),
        PodMode::All => eligible,
        PodMode::Fixed => (value.unwrap_or(1) as usize).min(eligible),
        PodMode::FixedPercent => percent_of(value.unwrap_or(0)),
        PodMode::RandomMaxPercent => {
            let most = percent_of(value.unwrap_or(0));
            if most == 0 {
                0
            } else {
                1 + draw(most)
            }
        }
    }
}

/// Picks among `candidates` (already filtered) as `sel` says, reproducibly for a seed;
/// `matching` is the number of pods the selectors matched (the cap's base).
///
/// ```
/// use chaos_runner::faults::kube::target::pick;
/// use chaos_runner::spec::{PodMode, PodSelector};
/// let sel = PodSelector { namespace: "g".into(), mode: PodMode::Fixed, value: Some(2), max_percent: 100, ..Default::default() };
/// let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
/// let first = pick(&sel, names.clone(), 3, 7).unwrap();
/// assert_eq!(first.len(), 2);
/// assert_eq!(first, pick(&sel, names, 3, 7).unwrap());
/// ```
pub fn pick(
    sel: &PodSelector,
    mut candidates: Vec<String>,
    matching: usize,
    seed: u64,
) -> Result<Vec<String>, PickError> {
    candidates.sort();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let eligible = candidates.len();
    let count = count_for(sel.mode, sel.value, eligible, &mut |n| {
        rng.random_range(0..n)
    });
    if count == 0 {
        return Err(PickError::PicksNothing { eligible });
    }
    let allowed = matching * usize::from(sel.max_percent.min(100)) / 100;
    if count > allowed {
        return Err(PickError::AboveCap {
            count,
            matching,
            max_percent: sel.max_percent,
            allowed,
        });
    }
    candidates.shuffle(&mut rng);
    candidates.truncate(count);
    candidates.sort();
    Ok(candidates)
}

/// Whether the pod is annotated protected.
pub fn is_protected(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROTECTED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether the pod's Ready condition is true.
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Running")
}

/// The list parameters of `sel`.
pub fn list_params(sel: &PodSelector) -> ListParams {
    let mut lp = ListParams::default();
    if !sel.label_selector.is_empty() {
        lp = lp.labels(&label_selector(&sel.label_selector));
    }
    if let Some(f) = &sel.field_selector {
        lp = lp.fields(f);
    }
    lp
}

/// Lists the pods `sel` matches.
pub async fn list(client: kube::Client, sel: &PodSelector) -> Result<Vec<Pod>, PickError> {
    let api: Api<Pod> = Api::namespaced(client, &sel.namespace);
    api.list(&list_params(sel))
        .await
        .map(|l| l.items)
        .map_err(|e| PickError::Api {
            namespace: sel.namespace.clone(),
            reason: e.to_string(),
        })
}

/// Lists, filters and picks the pods `sel` designates.
pub async fn select(
    client: kube::Client,
    sel: &PodSelector,
    seed: u64,
) -> Result<Selection, PickError> {
    check_scope(sel)?;
    let pods = list(client, sel).await?;
    let matching = pods.len();
    let protected: Vec<String> = pods
        .iter()
        .filter(|p| is_protected(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let eligible: Vec<&Pod> = pods
        .iter()
        .filter(|p| !is_protected(p) && is_running(p))
        .collect();
    if eligible.is_empty() {
        return Err(PickError::NoPods {
            matching,
            protected: protected.len(),
        });
    }
    let names = eligible
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    let chosen = pick(sel, names, matching, seed)?;
    let picked = chosen
        .iter()
        .filter_map(|name| {
            let pod = eligible
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))?;
            Some(PickedPod {
                namespace: sel.namespace.clone(),
                name: name.clone(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                owner: pod.metadata.owner_references.as_ref().and_then(|o| {
                    o.iter()
                        .find(|r| r.controller == Some(true))
                        .map(|r| format!("{}/{}", r.kind, r.name))
                }),
            })
        })
        .collect();
    Ok(Selection {
        matching,
        protected,
        eligible: eligible.len(),
        picked,
    })
}

/// The seed of a pick: the selector's own, else one derived from the run id (so a run
/// repeats its own pick across ramp steps, and a plan with a seed shows the exact pods).
pub fn seed_for(sel: &PodSelector, run_id: &str, fault: &str) -> u64 {
    sel.seed
        .unwrap_or_else(|| (u64::from(fnv(run_id)) << 32) | u64::from(fnv(fault)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(mode: PodMode, value: Option<u32>, max: u8) -> PodSelector {
        PodSelector {
            namespace: "games".into(),
            mode,
            value,
            max_percent: max,
            ..Default::default()
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("pod-{i:02}")).collect()
    }

    #[test]
    fn modes_pick_the_right_counts() {
        assert_eq!(
            pick(&sel(PodMode::One, None, 100), names(5), 5, 1)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            pick(&sel(PodMode::All, None, 100), names(5), 5, 1)
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            pick(&sel(PodMode::Fixed, Some(3), 100), names(5), 5, 1)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            pick(&sel(PodMode::Fixed, Some(9), 100), names(5), 5, 1)
                .unwrap()
                .len(),
            5
        );
        assert_eq!(
            pick(&sel(PodMode::FixedPercent, Some(40), 100), names(10), 10, 1)
                .unwrap()
                .len(),
            4
        );
        for seed in 0..50 {
            let n = pick(
                &sel(PodMode::RandomMaxPercent, Some(50), 100),
                names(10),
                10,
                seed,
            )
            .unwrap()
            .len();
            assert!((1..=5).contains(&n), "{n}");
        }
    }

    #[test]
    fn same_seed_same_pick_other_seed_may_differ() {
        let s = sel(PodMode::Fixed, Some(2), 100);
        let a = pick(&s, names(20), 20, 42).unwrap();
        assert_eq!(a, pick(&s, names(20), 20, 42).unwrap());
        let differs = (0..20).any(|seed| pick(&s, names(20), 20, seed).unwrap() != a);
        assert!(differs);
    }

    #[test]
    fn cap_refuses_big_picks() {
        let err = pick(&sel(PodMode::All, None, 50), names(4), 4, 1).unwrap_err();
        assert_eq!(
            err,
            PickError::AboveCap {
                count: 4,
                matching: 4,
                max_percent: 50,
                allowed: 2
            }
        );
        assert!(pick(&sel(PodMode::Fixed, Some(2), 50), names(4), 4, 1).is_ok());
        assert_eq!(
            pick(&sel(PodMode::FixedPercent, Some(10), 100), names(5), 5, 1).unwrap_err(),
            PickError::PicksNothing { eligible: 5 }
        );
    }

    #[test]
    fn scope_refuses_protected_namespaces_and_empty_selectors() {
        let mut s = sel(PodMode::One, None, 100);
        assert_eq!(check_scope(&s), Err(PickError::EmptySelector));
        s.allow_empty_selector = true;
        assert_eq!(check_scope(&s), Ok(()));
        s.namespace = "kube-system".into();
        assert!(matches!(
            check_scope(&s),
            Err(PickError::ProtectedNamespace(_))
        ));
        s.allow_protected_namespaces = vec!["kube-system".into()];
        assert_eq!(check_scope(&s), Ok(()));
    }
}
