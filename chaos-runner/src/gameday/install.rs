//! `chaos-runner gameday install FILE --kubernetes | --systemd --dir DIR`: hands the
//! calendar to an existing scheduler instead of a daemon of ours.
//!
//! - Kubernetes: one CronJob per entry (`timeZone`, `concurrencyPolicy: Forbid`,
//!   `startingDeadlineSeconds`), a ConfigMap holding the GameDay, its experiments and SLO
//!   files at their relative paths, a volume claim for journals and history, and the RBAC
//!   (the ClusterRole of `deploy/rbac.yaml`, bound in every namespace the experiments
//!   touch). Built as the Kubernetes API types, so they parse as them.
//! - systemd: a timer (`OnCalendar=` in the zone) and a oneshot service per entry, the
//!   service calling `chaos-runner gameday run FILE --entry NAME`; `--apply` copies them
//!   to `/etc/systemd/system` and enables the timers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EnvFromSource, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, SecretEnvSource, SecurityContext, ServiceAccount,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::exit::Outcome;
use crate::output::Format;
use crate::spec::gameday::ValidatedGameDay;
use crate::spec::Backend;

/// The ClusterRole every Kubernetes fault needs, as shipped.
const RBAC: &str = include_str!("../../deploy/rbac.yaml");

/// Where the files go in the pod.
const FILES_MOUNT: &str = "/gameday";
/// Journals, history and reports in the pod.
const STATE_MOUNT: &str = "/state";

/// Which scheduler.
#[derive(Debug, Clone)]
pub enum Target {
    /// Kubernetes CronJobs.
    Kubernetes {
        /// The namespace the runner's objects live in.
        namespace: String,
        /// The runner's image.
        image: String,
    },
    /// systemd timers.
    Systemd {
        /// The runner binary the services call (default: this one).
        runner: PathBuf,
        /// The services' working directory (history, reports, journals).
        workdir: PathBuf,
        /// Copy to `/etc/systemd/system` and enable the timers.
        apply: bool,
    },
}

/// Why nothing could be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// An entry that cannot run under this scheduler.
    #[error("{0}")]
    Unsuitable(String),
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The shipped RBAC could not be read (a build defect).
    #[error("the shipped RBAC: {0}")]
    Rbac(String),
    /// A manifest that does not serialize.
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// `systemctl` failed.
    #[error("{0}")]
    Apply(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `gameday install`: writes the files into `dir` and lists them.
pub fn run(file: &Path, target: &Target, dir: &Path, format: Format) -> Outcome {
    let gameday = match crate::spec::load_gameday(file) {
        Ok(g) => g,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return Outcome::InvalidInput;
        }
    };
    let files = match target {
        Target::Kubernetes { namespace, image } => kubernetes(&gameday, namespace, image),
        Target::Systemd {
            runner, workdir, ..
        } => systemd(&gameday, runner, workdir),
    };
    let written = files.and_then(|files| write_all(dir, &files));
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                InstallError::Unsuitable(_) => Outcome::InvalidInput,
                _ => Outcome::Aborted,
            };
        }
    };
    let applied = match target {
        Target::Systemd { apply: true, .. } => apply(&gameday, &written),
        _ => Ok(()),
    };
    match format {
        Format::Text => {
            for path in &written {
                println!("wrote {}", path.display());
            }
        }
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "command": "gameday install",
                "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "applied": matches!(target, Target::Systemd { apply: true, .. }) && applied.is_ok(),
            })
        ),
    }
    match applied {
        Ok(()) => Outcome::Passed,
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Aborted
        }
    }
}

fn write_all(dir: &Path, files: &[(String, String)]) -> Result<Vec<PathBuf>, InstallError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The name of an entry's CronJob or unit (`gameday-weekly-db-latency`).
pub fn unit_name(gameday: &ValidatedGameDay, entry: &str) -> String {
    format!("gameday-{}-{entry}", gameday.gameday.metadata.name)
}

/// Every file the GameDay needs at run time: itself, the experiments, the SLO files and
/// load scenarios they name.
fn needed_files(gameday: &ValidatedGameDay) -> Result<BTreeSet<PathBuf>, InstallError> {
    let mut files = BTreeSet::new();
    let mut add = |path: &Path| -> Result<(), InstallError> {
        files.insert(std::fs::canonicalize(path).map_err(io(path))?);
        Ok(())
    };
    add(&gameday.path)?;
    if let Some(slo) = &gameday.slo_path {
        add(slo)?;
    }
    for entry in &gameday.entries {
        add(&entry.experiment_path)?;
        let base = entry.experiment_path.parent().unwrap_or(Path::new("."));
        let spec = &entry.experiment.experiment.spec;
        if let Some(slo) = &spec.slo_file {
            add(&base.join(slo))?;
        }
        if let Some(scenario) = spec.load.as_ref().and_then(|l| l.scenario_file.as_ref()) {
            add(&base.join(scenario))?;
        }
    }
    Ok(files)
}

/// The deepest directory holding every path.
fn common_root(paths: &BTreeSet<PathBuf>) -> PathBuf {
    let mut root: Option<PathBuf> = None;
    for p in paths {
        let dir = p.parent().unwrap_or(Path::new("/")).to_owned();
        root = Some(match root {
            None => dir,
            Some(r) => r
                .components()
                .zip(dir.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    root.unwrap_or_else(|| PathBuf::from("/"))
}

/// A ConfigMap key for a relative path (`local/db.yaml` becomes `local__db.yaml`).
fn key_of(relative: &Path) -> String {
    relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("__")
}

/// The CronJobs, ConfigMap, claim and RBAC of a GameDay, as YAML files.
pub fn kubernetes(
    gameday: &ValidatedGameDay,
    namespace: &str,
    image: &str,
) -> Result<Vec<(String, String)>, InstallError> {
    for entry in &gameday.entries {
        if entry.backend != Backend::Kubernetes {
            return Err(InstallError::Unsuitable(format!(
                "entry `{}` targets the local backend: a CronJob runs it in a pod, where \
                 local faults hit the pod itself; install it with --systemd on the machine \
                 it targets",
                entry.name
            )));
        }
    }
    let name = &gameday.gameday.metadata.name;
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "chaos-runner".to_owned(),
        ),
        ("chaos.game-resilience.dev/gameday".to_owned(), name.clone()),
    ]);
    let meta = |object: &str| ObjectMeta {
        name: Some(object.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        ..Default::default()
    };

    // The files, at their paths relative to the deepest common directory.
    let files = needed_files(gameday)?;
    let root = common_root(&files);
    let mut data = BTreeMap::new();
    let mut items = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&root).unwrap_or(path);
        let key = key_of(relative);
        data.insert(
            key.clone(),
            std::fs::read_to_string(path).map_err(io(path))?,
        );
        items.push(KeyToPath {
            key,
            path: relative.display().to_string(),
            mode: None,
        });
    }
    let files_name = format!("gameday-{name}-files");
    let config_map = ConfigMap {
        metadata: meta(&files_name),
        data: Some(data),
        ..Default::default()
    };
    let gameday_in_pod = Path::new(FILES_MOUNT).join(
        std::fs::canonicalize(&gameday.path)
            .map_err(io(&gameday.path))?
            .strip_prefix(&root)
            .unwrap_or(Path::new("gameday.yaml")),
    );

    let state_name = format!("gameday-{name}-state");
    let claim = PersistentVolumeClaim {
        metadata: meta(&state_name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity("256Mi".into()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut out = Vec::new();
    let mut cronjobs = String::new();
    for entry in &gameday.entries {
        let job = cron_job(CronJobParts {
            gameday,
            entry_name: &entry.name,
            schedule: entry.schedule.as_str(),
            max_duration: entry.max_duration,
            metadata: meta(&unit_name(gameday, &entry.name)),
            image,
            gameday_in_pod: &gameday_in_pod,
            files_name: &files_name,
            items: items.clone(),
            state_name: &state_name,
        });
        cronjobs.push_str("---\n");
        cronjobs.push_str(&crate::spec::to_yaml(&job)?);
    }
    out.push((
        "configmap.yaml".to_owned(),
        header(gameday, "The GameDay's files at their relative paths")
            + &crate::spec::to_yaml(&config_map)?,
    ));
    out.push((
        "state.yaml".to_owned(),
        header(gameday, "Journals, history and reports, kept between runs")
            + &crate::spec::to_yaml(&claim)?,
    ));
    out.push((
        "cronjobs.yaml".to_owned(),
        header(gameday, "One CronJob per entry") + &cronjobs,
    ));
    out.push((
        "rbac.yaml".to_owned(),
        header(
            gameday,
            "What the runner may do, bound where the experiments act",
        ) + &rbac(gameday, namespace, &labels)?,
    ));
    Ok(out)
}

fn header(gameday: &ValidatedGameDay, what: &str) -> String {
    format!(
        "# {what}: GameDay `{}`, generated by `chaos-runner gameday install --kubernetes` from \
         {}. Regenerate rather than edit.\n",
        gameday.gameday.metadata.name,
        gameday.path.display()
    )
}

struct CronJobParts<'a> {
    gameday: &'a ValidatedGameDay,
    entry_name: &'a str,
    schedule: &'a str,
    max_duration: std::time::Duration,
    metadata: ObjectMeta,
    image: &'a str,
    gameday_in_pod: &'a Path,
    files_name: &'a str,
    items: Vec<KeyToPath>,
    state_name: &'a str,
}

fn cron_job(p: CronJobParts<'_>) -> CronJob {
    let spec = &p.gameday.gameday.spec;
    let secret = format!("gameday-{}-env", p.gameday.gameday.metadata.name);
    // The run, its revert on SIGTERM, and the budget reads before and after.
    let active_deadline = p.max_duration.as_secs() + 600;
    let container = Container {
        name: "chaos-runner".into(),
        image: Some(p.image.to_owned()),
        args: Some(vec![
            "--output=json".into(),
            "gameday".into(),
            "run".into(),
            p.gameday_in_pod.display().to_string(),
            format!("--entry={}", p.entry_name),
            format!("--state-dir={STATE_MOUNT}/journals"),
            "--recover".into(),
        ]),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret,
                optional: Some(true),
            }),
            ..Default::default()
        }]),
        working_dir: Some(STATE_MOUNT.into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "files".into(),
                mount_path: FILES_MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "state".into(),
                mount_path: STATE_MOUNT.into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    CronJob {
        metadata: p.metadata,
        spec: Some(CronJobSpec {
            schedule: p.schedule.to_owned(),
            time_zone: Some(p.gameday.zone.name().to_owned()),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(spec.starting_deadline.as_secs() as i64),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(5),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(0),
                    active_deadline_seconds: Some(active_deadline as i64),
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            service_account_name: Some("chaos-runner".into()),
                            restart_policy: Some("Never".into()),
                            // Time to revert on SIGTERM (the runner reverts on every exit
                            // path).
                            termination_grace_period_seconds: Some(120),
                            security_context: Some(PodSecurityContext {
                                run_as_non_root: Some(true),
                                run_as_user: Some(10001),
                                fs_group: Some(10001),
                                ..Default::default()
                            }),
                            containers: vec![container],
                            volumes: Some(vec![
                                Volume {
                                    name: "files".into(),
                                    config_map: Some(ConfigMapVolumeSource {
                                        name: p.files_name.to_owned(),
                                        items: Some(p.items),
                                        ..Default::default()
                                    }),
                                    ..Default::default()
                                },
                                Volume {
                                    name: "state".into(),
                                    persistent_volume_claim: Some(
                                        PersistentVolumeClaimVolumeSource {
                                            claim_name: p.state_name.to_owned(),
                                            read_only: None,
                                        },
                                    ),
                                    ..Default::default()
                                },
                            ]),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The service account, the shipped ClusterRole and a RoleBinding in each namespace the
/// experiments' faults act in.
fn rbac(
    gameday: &ValidatedGameDay,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String, InstallError> {
    let rules = shipped_rules()?;
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("chaos-runner".into()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some("chaos-runner".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        rules: Some(rules),
        ..Default::default()
    };
    let mut text = String::from("---\n") + &crate::spec::to_yaml(&account)?;
    text += "---\n";
    text += &crate::spec::to_yaml(&role)?;
    for target in target_namespaces(gameday) {
        let binding = RoleBinding {
            metadata: ObjectMeta {
                name: Some(format!("chaos-runner-{}", gameday.gameday.metadata.name)),
                namespace: Some(target),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "chaos-runner".into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: "chaos-runner".into(),
                namespace: Some(namespace.to_owned()),
                api_group: None,
            }]),
        };
        text += "---\n";
        text += &crate::spec::to_yaml(&binding)?;
    }
    Ok(text)
}

/// The namespaces the entries' faults select pods or Services in.
fn target_namespaces(gameday: &ValidatedGameDay) -> BTreeSet<String> {
    gameday
        .entries
        .iter()
        .flat_map(|e| &e.experiment.experiment.spec.faults)
        .flat_map(|f| {
            let s = &f.selector;
            s.pods
                .as_ref()
                .map(|p| p.namespace.clone())
                .into_iter()
                .chain(s.service.as_ref().map(|svc| svc.namespace.clone()))
        })
        .collect()
}

/// The rules of the ClusterRole in `deploy/rbac.yaml`.
fn shipped_rules() -> Result<Vec<PolicyRule>, InstallError> {
    let documents =
        crate::spec::yaml_documents::<serde_json::Value>(RBAC).map_err(InstallError::Rbac)?;
    for doc in documents {
        if doc.get("kind").and_then(|k| k.as_str()) == Some("ClusterRole") {
            let role: ClusterRole =
                serde_json::from_value(doc).map_err(|e| InstallError::Rbac(e.to_string()))?;
            return role
                .rules
                .ok_or_else(|| InstallError::Rbac("the ClusterRole has no rules".into()));
        }
    }
    Err(InstallError::Rbac("no ClusterRole".into()))
}

/// A timer and a service per entry.
pub fn systemd(
    gameday: &ValidatedGameDay,
    runner: &Path,
    workdir: &Path,
) -> Result<Vec<(String, String)>, InstallError> {
    let file = std::fs::canonicalize(&gameday.path).map_err(io(&gameday.path))?;
    let name = &gameday.gameday.metadata.name;
    let zone = gameday.zone.name();
    let mut out = Vec::new();
    for entry in &gameday.entries {
        let unit = format!("chaos-{}", unit_name(gameday, &entry.name));
        let exec = [
            runner.display().to_string(),
            "gameday".into(),
            "run".into(),
            file.display().to_string(),
            "--entry".into(),
            entry.name.clone(),
            "--state-dir".into(),
            workdir.join("journals").display().to_string(),
            "--recover".into(),
        ]
        .iter()
        .map(|a| unit_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
        // Time for the run, its revert, and the budget reads.
        let timeout = entry.max_duration.as_secs() + 600;
        let service = format!(
            "# GameDay `{name}`, entry `{entry}`: generated by `chaos-runner gameday install \
             --systemd`.\n\
             [Unit]\n\
             Description=GameDay {name}: {entry} (chaos-runner)\n\
             Documentation=https://example.invalid/game-resilience/docs/gamedays.md\n\
             After=network-online.target\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart={exec}\n\
             WorkingDirectory={workdir}\n\
             {state_directory}\
             # PROMETHEUS_URL, tokens, the webhook: kept out of the unit.\n\
             EnvironmentFile=-/etc/chaos-runner/{name}.env\n\
             TimeoutStartSec={timeout}\n\
             # The runner reverts its faults on SIGTERM before it exits.\n\
             KillSignal=SIGTERM\n\
             TimeoutStopSec=120\n",
            entry = entry.name,
            // A path, not a command line: no quotes, only `%` escaped.
            workdir = workdir.display().to_string().replace('%', "%%"),
            // systemd creates (and owns) its default state directory.
            state_directory = if workdir == Path::new("/var/lib/chaos-runner") {
                "StateDirectory=chaos-runner\n"
            } else {
                ""
            },
        );
        let calendars: String = entry
            .schedule
            .on_calendar()
            .iter()
            .map(|c| format!("OnCalendar={c} {zone}\n"))
            .collect();
        let timer = format!(
            "# GameDay `{name}`, entry `{entry}` (cron `{cron}` in {zone}): generated by \
             `chaos-runner gameday install --systemd`.\n\
             [Unit]\n\
             Description=GameDay {name}: {entry} on its calendar\n\
             \n\
             [Timer]\n\
             {calendars}\
             AccuracySec=1s\n\
             # A slot missed while the machine was down is not made up later.\n\
             Persistent=false\n\
             Unit={unit}.service\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            entry = entry.name,
            cron = entry.schedule,
        );
        out.push((format!("{unit}.service"), service));
        out.push((format!("{unit}.timer"), timer));
    }
    Ok(out)
}

/// One argument of a unit's command line: quoted, with `\`, `"`, `%` and `$` escaped as
/// systemd reads them.
fn unit_quote(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Copies the units to `/etc/systemd/system`, reloads systemd and enables the timers.
fn apply(gameday: &ValidatedGameDay, written: &[PathBuf]) -> Result<(), InstallError> {
    let target = Path::new("/etc/systemd/system");
    for path in written {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = target.join(name);
        std::fs::copy(path, &to).map_err(io(&to))?;
    }
    systemctl(&["daemon-reload"])?;
    for entry in &gameday.entries {
        let timer = format!("chaos-{}.timer", unit_name(gameday, &entry.name));
        systemctl(&["enable", "--now", &timer])?;
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result<(), InstallError> {
    let out = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| InstallError::Apply(format!("cannot run systemctl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InstallError::Apply(format!(
            "systemctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_arguments_are_quoted_for_systemd() {
        assert_eq!(unit_quote("/a b/c"), "\"/a b/c\"");
        assert_eq!(unit_quote("50%$HOME\"\\"), "\"50%%$$HOME\\\"\\\\\"");
    }

    #[test]
    fn relative_paths_become_configmap_keys() {
        assert_eq!(key_of(Path::new("local/db.yaml")), "local__db.yaml");
        let paths: BTreeSet<PathBuf> = [
            "/x/e/gamedays/w.yaml",
            "/x/e/local/a.yaml",
            "/x/e/slo/s.yaml",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(common_root(&paths), PathBuf::from("/x/e"));
    }

    #[test]
    fn the_shipped_cluster_role_is_read() {
        let rules = shipped_rules().unwrap();
        assert!(rules.iter().any(|r| r
            .resources
            .as_ref()
            .is_some_and(|r| r.contains(&"pods/eviction".to_owned()))));
    }
}
