//! Against a real cluster, only when `KUBECONFIG` is set (no API server can run on this
//! project's machines, so these never ran here). Creates a throw-away namespace with a
//! two-replica Deployment of `pause` pods, runs a pod kill (waiting for Ready
//! replacements) and a network partition through the engine, and, when
//! `CHAOS_RUNNER_IMAGE` names the runner's image pullable by the nodes, a `pod-cpu-hog`
//! (checking every helper is read back terminated) and a `container-kill` of `pause`; then
//! deletes the namespace. With the image, also a `redis-latency` through the proxy
//! Deployment in front of a Redis Service (the selector swap and its full revert).

use chaos_runner::engine::{self, RunOptions};
use chaos_runner::exit::Outcome;
use chaos_runner::faults::kube::{KubeConnector, KubeEnv};
use chaos_runner::output::Format;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cluster_env() -> Option<(tokio::runtime::Runtime, KubeEnv)> {
    std::env::var_os("KUBECONFIG")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(kube::Client::try_default())
        .expect("KUBECONFIG is set but no client");
    let env = KubeEnv::new(client, rt.handle().clone());
    Some((rt, env))
}

#[test]
fn pod_kill_and_partition_on_a_real_cluster() {
    let Some((rt, env)) = cluster_env() else {
        eprintln!("KUBECONFIG not set: real-cluster test not run");
        return;
    };
    let ns = format!("chaos-runner-test-{:04x}", rand::random::<u16>());
    let client = env.client();
    rt.block_on(async {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces.create(&PostParams::default(), &namespace).await.unwrap();
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pause", "namespace": ns},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "pause"}},
                "template": {
                    "metadata": {"labels": {"app": "pause"}},
                    "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.9"}]}
                }
            }
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let started = Instant::now();
        loop {
            let list = pods.list(&ListParams::default().labels("app=pause")).await.unwrap();
            let ready = list.items.iter().filter(|p| chaos_runner::faults::kube::target::is_ready(p)).count();
            if ready == 2 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "pause pods not Ready");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let dir = std::env::temp_dir().join(format!("{ns}-files"));
    std::fs::create_dir_all(&dir).unwrap();
    let connector = Arc::new(KubeConnector::with(env.clone()));
    let mut faults = vec![
        ("kill", format!("    - name: kill\n      type: pod-kill\n      selector:\n        pods:\n          namespace: {ns}\n          labelSelector: {{app: pause}}\n      parameters:\n        waitReady: true\n        readyTimeout: 3m\n      duration: 5s\n")),
        ("cut", format!("    - name: cut\n      type: network-partition\n      selector:\n        pods:\n          namespace: {ns}\n          labelSelector: {{app: pause}}\n          mode: all\n      duration: 5s\n")),
    ];
    // The in-pod helpers need the runner's image where the nodes can pull it.
    let image = std::env::var("CHAOS_RUNNER_IMAGE").ok();
    if let Some(image) = &image {
        faults.push(("hog", format!("    - name: hog\n      type: pod-cpu-hog\n      selector:\n        pods:\n          namespace: {ns}\n          labelSelector: {{app: pause}}\n          mode: all\n      parameters:\n        workers: 1\n        load: 20\n        image: {image}\n      duration: 10s\n")));
        // `pause` catches SIGTERM (and exits): the container restarts.
        faults.push(("restart", format!("    - name: restart\n      type: container-kill\n      selector:\n        pods:\n          namespace: {ns}\n          labelSelector: {{app: pause}}\n      parameters:\n        container: pause\n        image: {image}\n      duration: 5s\n")));
    } else {
        eprintln!("CHAOS_RUNNER_IMAGE not set: in-pod helper faults not run on the cluster");
    }
    for (name, fault) in faults {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: real-{name}\nspec:\n  target:\n    backend: kubernetes\n  faults:\n{fault}  report:\n    dir: {}/reports\n    formats: [json]\n",
                dir.display()
            ),
        )
        .unwrap();
        let outcome = engine::run(
            &path,
            RunOptions {
                state_dir: dir.join("state"),
                recover_first: false,
                kube: Some(connector.clone()),
                deadline: None,
            },
            chaos_runner::output::sink(Format::Json).as_mut(),
        );
        assert_eq!(outcome, Outcome::Passed, "{name}");
    }
    let left = rt.block_on(async {
        Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
    });
    let helpers_running = rt.block_on(async {
        Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .flat_map(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.ephemeral_container_statuses.clone())
                    .unwrap_or_default()
            })
            .filter(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_none()))
            .count()
    });
    rt.block_on(async {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(left, 0, "NetworkPolicies left in {ns}");
    assert_eq!(
        helpers_running, 0,
        "ephemeral helpers still running in {ns}"
    );
}

/// A `redis-latency` through the proxy Deployment on a real cluster, only with
/// `KUBECONFIG` and `CHAOS_RUNNER_IMAGE` (the proxy pod runs the runner's image): a
/// throw-away namespace with a Redis Deployment and its Service; while the fault holds,
/// the Service's selector names the proxy pods; afterwards it is the original again, no
/// annotation is left, and the proxy's Deployment, upstream Service and ConfigMap are
/// gone. Never run here (no cluster).
#[test]
fn db_proxy_swap_on_a_real_cluster() {
    use chaos_runner::faults::kube::db_proxy::{ORIGINAL_SELECTOR_ANNOTATION, PROXY_LABEL};
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    let Some((rt, env)) = cluster_env() else {
        eprintln!("KUBECONFIG not set: real-cluster test not run");
        return;
    };
    let Ok(image) = std::env::var("CHAOS_RUNNER_IMAGE") else {
        eprintln!("CHAOS_RUNNER_IMAGE not set: the DB proxy fault is not run on the cluster");
        return;
    };
    let ns = format!("chaos-runner-db-{:04x}", rand::random::<u16>());
    let client = env.client();
    rt.block_on(async {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "redis", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "redis"}},
                "template": {
                    "metadata": {"labels": {"app": "redis"}},
                    "spec": {"containers": [{"name": "redis", "image": "redis:7-alpine",
                        "ports": [{"containerPort": 6379}]}]}
                }
            }
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &deployment)
            .await
            .unwrap();
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "redis", "namespace": ns},
            "spec": {"selector": {"app": "redis"}, "ports": [{"port": 6379, "targetPort": 6379}]}
        }))
        .unwrap();
        Api::<Service>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    });
    let dir = std::env::temp_dir().join(format!("{ns}-files"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("slow-redis.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: real-db-proxy\nspec:\n  target:\n    backend: kubernetes\n  faults:\n    - name: slow-redis\n      type: redis-latency\n      selector:\n        service:\n          namespace: {ns}\n          name: redis\n          port: 6379\n          proxyImage: {image}\n          readyTimeout: 3m\n      parameters:\n        pattern: \"^GET \"\n        delay: 200ms\n      duration: 20s\n  report:\n    dir: {}/reports\n    formats: [json]\n",
            dir.display()
        ),
    )
    .unwrap();
    // Watch the Service's selector while the run holds the fault.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saw_proxy = {
        let (services, stop) = (services.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(svc) = services.get("redis").await {
                    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
                    if selector.contains_key(PROXY_LABEL) {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            false
        })
    };
    let outcome = engine::run(
        &path,
        RunOptions {
            state_dir: dir.join("state"),
            recover_first: false,
            kube: Some(Arc::new(KubeConnector::with(env.clone()))),
            deadline: None,
        },
        chaos_runner::output::sink(Format::Json).as_mut(),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let saw_proxy = rt.block_on(saw_proxy).unwrap();
    let (selector, annotated, deployments, services_left, maps) = rt.block_on(async {
        let svc = services.get("redis").await.unwrap();
        let annotated = svc
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(ORIGINAL_SELECTOR_ANNOTATION);
        let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
        let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>();
        let deployments = Api::<Deployment>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .unwrap();
        let services_left = services.list(&ListParams::default()).await.unwrap();
        let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(chaos_runner::faults::kube::target::FAULT_LABEL))
            .await
            .unwrap();
        (
            selector,
            annotated,
            names(
                deployments
                    .items
                    .into_iter()
                    .map(|d| d.metadata.name)
                    .collect(),
            ),
            names(
                services_left
                    .items
                    .into_iter()
                    .map(|s| s.metadata.name)
                    .collect(),
            ),
            maps.items.len(),
        )
    });
    rt.block_on(async {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(outcome, Outcome::Passed);
    assert!(
        saw_proxy,
        "the Service never pointed at the proxy during the run"
    );
    assert_eq!(
        selector,
        std::collections::BTreeMap::from([("app".to_owned(), "redis".to_owned())])
    );
    assert!(!annotated, "the original-selector annotation is left");
    assert_eq!(deployments, ["redis"], "proxy Deployment left");
    assert_eq!(services_left, ["redis"], "upstream Service left");
    assert_eq!(maps, 0, "proxy ConfigMap left");
}
