//! What every fault of one run shares, and how a supervised command is launched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{kube, local};
use crate::sys::supervisor::{self, Supervisor};

/// What every fault of one run shares: the run id (which names everything a fault
/// creates, so `recover` can find it), the runner's own binary (which runs the
/// stress children) and the run's in-process TCP fault proxies.
#[derive(Debug, Clone)]
pub struct FaultContext {
    /// The run id.
    pub run_id: String,
    /// This runner's executable.
    pub exe: PathBuf,
    /// The supervised commands of the run, by fault name (`process: { command: ... }`).
    pub supervisors: Arc<BTreeMap<String, Arc<Supervisor>>>,
    /// The run's own proxies (started on first use, stopped when the run ends).
    pub proxies: local::proxy_fault::ProxyPool,
    /// The experiment's name (a label on every Kubernetes object the run creates).
    pub experiment: String,
    /// The Kubernetes client, connected on first use.
    pub kube: Arc<kube::KubeConnector>,
}

impl FaultContext {
    /// The context of run `run_id` whose runner binary is `exe`.
    pub fn new(run_id: impl Into<String>, exe: impl Into<PathBuf>) -> FaultContext {
        FaultContext {
            run_id: run_id.into(),
            exe: exe.into(),
            proxies: Default::default(),
            supervisors: Default::default(),
            experiment: String::new(),
            kube: Arc::new(kube::KubeConnector::lazy()),
        }
    }
}

/// The supervised command a fault's selector asks for, if any.
///
/// ```
/// let s = chaos_runner::spec::Selector::default();
/// assert!(chaos_runner::faults::supervised_command("f", &s).is_none());
/// ```
pub fn supervised_command(
    name: &str,
    selector: &crate::spec::Selector,
) -> Option<supervisor::SupervisedCommand> {
    let p = selector.process.as_ref()?;
    Some(supervisor::SupervisedCommand {
        name: name.to_owned(),
        argv: p.command.clone()?,
        restart: p.restart.unwrap_or_default(),
        ready_port: p.ready_port,
        ready_timeout: p.ready_timeout.unwrap_or(Duration::from_secs(10)),
    })
}

/// How the supervised command of `selector` is launched: its `env`, its `cwd` and a
/// relative program path (one with a `/`) both taken relative to `here` (the runner's
/// working directory), and its `readyHttp`; its output is discarded. The defaults when
/// the selector names no command.
///
/// ```
/// use chaos_runner::spec::{ProcessSelector, Selector};
/// let s = Selector {
///     process: Some(ProcessSelector {
///         command: Some(vec!["bin/game".into()]),
///         cwd: Some("srv".into()),
///         env: [("GAME_LISTEN".to_owned(), "127.0.0.1:18080".to_owned())].into(),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// let (argv0, launch) = chaos_runner::faults::supervised_launch(&s, std::path::Path::new("/repo"));
/// assert_eq!(argv0.as_deref(), Some("/repo/bin/game"));
/// assert_eq!(launch.cwd, Some(std::path::PathBuf::from("/repo/srv")));
/// assert_eq!(launch.env, vec![("GAME_LISTEN".to_owned(), "127.0.0.1:18080".to_owned())]);
/// ```
pub fn supervised_launch(
    selector: &crate::spec::Selector,
    here: &std::path::Path,
) -> (Option<String>, supervisor::Launch) {
    let mut launch = supervisor::Launch::default();
    let Some(p) = selector.process.as_ref().filter(|p| p.command.is_some()) else {
        return (None, launch);
    };
    launch.env = p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    launch.cwd = p.cwd.as_ref().map(|c| here.join(c));
    launch.ready_http = p.ready_http.clone();
    let program = p
        .command
        .as_ref()
        .and_then(|argv| argv.first())
        .filter(|a| a.contains('/') && std::path::Path::new(a).is_relative())
        .map(|a| here.join(a).display().to_string());
    (program, launch)
}
