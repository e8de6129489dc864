//! `chaos-runner validate` and `schema` as a user runs them: every invalid fixture is refused
//! with exit 3 naming the file, the field and the line; shipped experiments pass; no input
//! makes the parser panic.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_invalid_fixture_is_refused_with_file_field_and_line() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // Read as bytes: some fixtures are deliberately not UTF-8 or start with a BOM.
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let expect = text
            .trim_start_matches('\u{feff}')
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{} lacks its `# expect:` line", path.display()));
        let out = runner().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{}: {stderr}", path.display());
        let file = path.display().to_string();
        assert!(stderr.contains(&file), "{file}: {stderr}");
        if !expect.is_empty() {
            let located = format!("{file}:");
            assert!(
                stderr.contains(&format!(": {expect}: ")),
                "{file}: expected field `{expect}` in: {stderr}"
            );
            let after = &stderr[stderr.find(&located).unwrap() + located.len()..];
            let line: String = after.chars().take_while(char::is_ascii_digit).collect();
            assert!(!line.is_empty(), "{file}: no line number in: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} fixtures");
}

#[test]
fn shipped_experiments_and_slo_files_are_valid() {
    let mut files = Vec::new();
    for dir in [
        "experiments/local",
        "experiments/kubernetes",
        "experiments/load",
        "experiments/slo",
        "experiments/slo/imported",
    ] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 2);
    let out = runner().arg("validate").args(&files).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every fault type of the local backend (issue 4), read from the experiment schema so a
/// new fault type cannot be added without a shipped experiment.
fn local_fault_types() -> Vec<&'static str> {
    let schema = serde_json::to_value(schemars::schema_for!(chaos_runner::spec::FaultType))
        .expect("the fault type schema is JSON");
    // schemars lists the variants as `oneOf` consts (one per documented variant).
    let names = schema["oneOf"]
        .as_array()
        .expect("the fault type schema lists its variants");
    let types: Vec<&'static str> = names
        .iter()
        .map(|variant| {
            let name = &variant["const"];
            serde_json::from_value::<chaos_runner::spec::FaultType>(name.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .filter(|t| t.backend() == chaos_runner::spec::Backend::Local)
        .map(|t| t.name())
        .collect();
    assert!(
        types.len() >= 25,
        "only {} local fault types: {types:?}",
        types.len()
    );
    types
}

#[test]
fn every_local_fault_type_has_a_shipped_experiment() {
    let mut used = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("experiments/local")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let exp = chaos_runner::spec::load_experiment(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .experiment;
        for fault in &exp.spec.faults {
            used.insert(fault.fault_type.name());
        }
    }
    let local = local_fault_types();
    let missing: Vec<_> = local.iter().filter(|t| !used.contains(*t)).collect();
    assert!(missing.is_empty(), "no local experiment uses {missing:?}");
    let unknown: Vec<_> = used.iter().filter(|t| !local.contains(t)).collect();
    assert!(unknown.is_empty(), "not a local fault type: {unknown:?}");
}

/// Issue 5's seed scenarios, each a self-contained experiment against the example game
/// server.
const SEED_SCENARIOS: [&str; 10] = [
    "game-server-kill.yaml",
    "matchmaking-cpu-hog.yaml",
    "game-server-memory-hog.yaml",
    "game-server-disk-fill.yaml",
    "matchmaking-latency.yaml",
    "matchmaking-packet-loss.yaml",
    "game-server-db-partition.yaml",
    "db-connection-failure.yaml",
    "db-latency.yaml",
    "db-error.yaml",
];

#[test]
fn every_seed_scenario_is_a_valid_self_contained_game_server_experiment() {
    let files: Vec<PathBuf> = SEED_SCENARIOS
        .iter()
        .map(|f| repo().join("experiments/local").join(f))
        .collect();
    let out = runner().arg("validate").args(&files).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for path in &files {
        let exp = chaos_runner::spec::load_experiment(path)
            .unwrap()
            .experiment;
        let spec = &exp.spec;
        let file = path.display();
        assert!(
            !exp.metadata.description.trim().is_empty(),
            "{file}: no hypothesis"
        );
        // Its own PostgreSQL, and the game server from `setup` or a supervised command.
        assert!(
            spec.setup.iter().any(|s| s.postgres.is_some()),
            "{file}: no PostgreSQL in setup"
        );
        let runs_game_server = |argv: &Option<Vec<String>>| {
            argv.as_ref()
                .is_some_and(|a| a.iter().any(|x| x == "game-server"))
        };
        assert!(
            spec.setup.iter().any(|s| runs_game_server(&s.command))
                || spec.faults.iter().any(|f| f
                    .selector
                    .process
                    .as_ref()
                    .is_some_and(|p| runs_game_server(&p.command))),
            "{file}: does not start the game server"
        );
        assert!(spec.load.is_some(), "{file}: no load");
        // The SLO abort conditions on the load's SLIs, at the SLOs' thresholds.
        let slo = |sli: &str, threshold: f64| {
            spec.abort_when.iter().any(|c| {
                c.load.as_ref().is_some_and(|l| {
                    serde_json::to_value(l.sli).unwrap() == sli && l.threshold == threshold
                })
            })
        };
        assert!(
            slo("availability", 0.999),
            "{file}: no availability SLO abort"
        );
        assert!(slo("latencyP95", 500.0), "{file}: no p95 latency SLO abort");
    }
}

#[test]
fn json_output_is_stable_and_lists_every_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let out = runner()
        .args(["--output", "json", "validate"])
        .arg(dir.join("load-over-100.yaml"))
        .arg(repo().join("experiments/slo/game-services.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["command"], "validate");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["files"][0]["valid"], false);
    assert_eq!(
        doc["files"][0]["errors"][0]["field"],
        "spec.faults[0].parameters.load"
    );
    assert!(doc["files"][0]["errors"][0]["line"].is_u64());
    assert_eq!(doc["files"][1]["valid"], true);
}

#[test]
fn bad_flags_and_missing_files_exit_3() {
    let out = runner().args(["validate", "--nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let out = runner()
        .args(["validate", "/no/such/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.yaml"));
}

#[test]
fn schema_is_json_schema_for_the_experiment() {
    let out = runner().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["$schema"]
        .as_str()
        .unwrap()
        .contains("json-schema.org"));
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "apiVersion",
        "abortWhen",
        "checkInterval",
        "breachWhen",
        "sloBurnRate",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}

fn load(text: &str) {
    let dir = std::env::temp_dir().join(format!("chaos-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("doc-{:x}.yaml", rand_suffix(text)));
    std::fs::write(&path, text).unwrap();
    let _ = chaos_runner::spec::load_experiment(&path);
    let _ = chaos_runner::spec::load_slo_set(&path);
    let _ = std::fs::remove_file(&path);
}

fn rand_suffix(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    std::thread::current().id().hash(&mut h);
    h.finish()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_documents_never_panic(text in "\\PC{0,400}") {
        load(&text);
    }

    #[test]
    fn mutated_experiments_never_panic(
        cut in 0usize..1500,
        insert in prop_oneof![
            Just(": ".to_owned()), Just("\n  - ".to_owned()), Just("{".to_owned()), Just("]".to_owned()),
            Just("-1".to_owned()), Just("1e309".to_owned()), Just("0s".to_owned()), Just("\t".to_owned()),
            Just("&a *a".to_owned()), Just("!!binary x".to_owned()), "\\PC{0,12}",
        ],
    ) {
        let base = std::fs::read_to_string(repo().join("experiments/local/cpu-hog.yaml")).unwrap();
        let mut at = cut.min(base.len());
        while !base.is_char_boundary(at) { at -= 1; }
        load(&format!("{}{}{}", &base[..at], insert, &base[at..]));
    }
}

/// The same database fault types run locally (`proxy`) and on Kubernetes (`service`);
/// each backend refuses the other's selector, naming the field and its line.
#[test]
fn db_faults_take_a_proxy_locally_and_a_service_on_kubernetes() {
    let dir = std::env::temp_dir().join(format!("chaos-db-backends-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = |backend: &str, selector: &str| {
        format!(
            "apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: db-backends
spec:
  target:
    backend: {backend}
  faults:
    - name: slow
      type: redis-latency
      selector:
{selector}      parameters: {{ pattern: \"^GET \", delay: 100ms }}
      duration: 10s
"
        )
    };
    let service = "        service: { namespace: games, name: redis }\n";
    let protected = "        service: { namespace: kube-system, name: redis, allowProtectedNamespaces: [kube-system] }\n";
    let proxy =
        "        proxy: { listen: 127.0.0.1:16379, upstream: 127.0.0.1:6379, protocol: redis }\n";
    for (i, (backend, selector, refused)) in [
        ("kubernetes", service, None),
        ("kubernetes", protected, None),
        ("local", proxy, None),
        ("kubernetes", proxy, Some("spec.faults[0].selector.proxy")),
        ("local", service, Some("spec.faults[0].selector.service")),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("case-{i}.yaml"));
        std::fs::write(&path, doc(backend, selector)).unwrap();
        let out = runner().arg("validate").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match refused {
            None => assert_eq!(out.status.code(), Some(0), "{backend}: {stderr}"),
            Some(field) => {
                assert_eq!(out.status.code(), Some(3), "{backend}: {stderr}");
                let located = format!("{}:12:", path.display());
                assert!(
                    stderr.contains(&located) && stderr.contains(&format!(": {field}: ")),
                    "{backend}: expected {located} {field} in: {stderr}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `validate` on `bytes` written to a temp file; returns (exit code, stderr, time).
fn validate_bytes(tag: &str, bytes: &[u8]) -> (Option<i32>, String, std::time::Duration) {
    let dir = std::env::temp_dir().join(format!("chaos-validate-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.yaml"));
    std::fs::write(&path, bytes).unwrap();
    let started = std::time::Instant::now();
    let out = runner().arg("validate").arg(&path).output().unwrap();
    let took = started.elapsed();
    std::fs::remove_dir_all(&dir).ok();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/invalid")
            .join(name),
    )
    .unwrap()
}

/// The exact place of errors that used to lose it: a duplicate key at the duplicate, an
/// error after a `key:<TAB>value` line, an error in a file that starts with a byte-order
/// mark, and a bad `sloFile` at the experiment's own field and line.
#[test]
fn errors_point_at_the_exact_line() {
    for (fixture, place) in [
        ("duplicate-key.yaml", ":18:7: spec.faults[0].duration: "),
        (
            "tab-after-colon-before-an-error.yaml",
            ":17:7: spec.faults[0].duration: ",
        ),
        ("slo-file-missing.yaml", ":7:3: spec.sloFile: "),
        ("slo-file-not-a-path.yaml", ":7:3: spec.sloFile: "),
    ] {
        let (code, stderr, _) = validate_bytes("exact", &fixture_bytes(fixture));
        assert_eq!(code, Some(3), "{fixture}: {stderr}");
        assert!(
            stderr.contains(place),
            "{fixture}: expected `{place}` in: {stderr}"
        );
    }
    // A shipped file with a byte-order mark and a wrong type in its parameters.
    let shipped = std::fs::read_to_string(repo().join("experiments/local/net-delay.yaml")).unwrap();
    let at = shipped
        .find("lossPercent: ")
        .expect("net-delay.yaml sets lossPercent");
    let end = at + shipped[at..].find('\n').unwrap();
    let line = shipped[..at].matches('\n').count() + 1;
    let column = at - shipped[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    let broken = format!(
        "\u{feff}{}lossPercent: \"abc\"{}",
        &shipped[..at],
        &shipped[end..]
    );
    let (code, stderr, _) = validate_bytes("bom", broken.as_bytes());
    assert_eq!(code, Some(3), "{stderr}");
    let place = format!(":{line}:{column}: spec.faults[0].parameters.lossPercent: ");
    assert!(stderr.contains(&place), "expected `{place}` in: {stderr}");

    let (_, stderr, _) = validate_bytes("slo", &fixture_bytes("slo-file-missing.yaml"));
    assert!(
        stderr.contains("missing.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

/// A file that is not UTF-8 is refused with the line, column and byte offset of the first
/// bad byte.
#[test]
fn invalid_utf8_names_where_it_is() {
    let mut bytes =
        b"apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: caf"
            .to_vec();
    bytes.extend_from_slice(&[0xe9, b'\n']);
    let (code, stderr, _) = validate_bytes("utf8", &bytes);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains(".yaml:4:12: "), "{stderr}");
    assert!(
        stderr.contains("UTF-8") && stderr.contains("byte 79"),
        "{stderr}"
    );
}

/// Nesting has a limit, named in the error, and a deeply nested file is refused at once
/// (50,000 levels took 27 s to validate, and the error repeated `[0]` once per level).
#[test]
fn deep_nesting_is_refused_with_its_limit_and_line() {
    let depth = 50_000;
    let mut text = String::from("apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: deep\nspec:\n  signal: ");
    text.push_str(&"[".repeat(depth));
    text.push_str(&"]".repeat(depth));
    text.push('\n');
    let (code, stderr, took) = validate_bytes("deep", text.as_bytes());
    eprintln!("{depth} levels refused in {took:?}");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("nested deeper than"), "{stderr}");
    assert!(stderr.contains(".yaml:6:"), "{stderr}");
    assert!(
        stderr.len() < 1_000,
        "the error is {} bytes long",
        stderr.len()
    );
    // A hang guard, not a figure: the old code took 27 s here.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// Writes `text` to a temp file (the shipped SLO set named by its absolute path) and loads
/// it as what `validate` takes it for (an SLO set or an experiment); returns every error.
fn load_beside_shipped(text: &str) -> Vec<chaos_runner::spec::SpecError> {
    let dir = std::env::temp_dir().join(format!("chaos-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("mutant-{:x}.yaml", rand_suffix(text)));
    let slo = repo().join("experiments/slo/game-services.yaml");
    let text = text.replace("../slo/game-services.yaml", &slo.display().to_string());
    std::fs::write(&path, text).unwrap();
    let errors = match chaos_runner::spec::document_kind(&path) {
        Err(e) => vec![e],
        Ok(kind) if kind == "SLOSet" => chaos_runner::spec::load_slo_set(&path)
            .err()
            .map(|e| e.0)
            .unwrap_or_default(),
        Ok(_) => chaos_runner::spec::load_experiment(&path)
            .err()
            .map(|e| e.0)
            .unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&path);
    errors
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    /// Random edits of shipped experiments (local and Kubernetes) and of the SLO sets (the
    /// Sloth and OpenSLO files too) are accepted or refused, never hang, and every refusal
    /// says where: a line (or, for bytes that are not text, an offset).
    #[test]
    fn every_refusal_of_a_mutated_shipped_file_has_a_position(
        file in prop_oneof![
            Just("local/cpu-hog.yaml"), Just("local/net-delay.yaml"), Just("local/db-latency.yaml"),
            Just("local/proxy-latency.yaml"), Just("local/memory-hog-cgroup.yaml"),
            Just("kubernetes/game-server-pod-kill.yaml"), Just("kubernetes/db-query-latency.yaml"),
            Just("slo/game-services.yaml"), Just("slo/imported/sloth-game-api.yaml"),
            Just("slo/imported/openslo-saves.yaml"),
        ],
        cut in 0usize..4000,
        delete in 0usize..40,
        insert in prop_oneof![
            Just(": ".to_owned()), Just("\n  - ".to_owned()), Just("{".to_owned()), Just("]".to_owned()),
            Just("-1".to_owned()), Just("1e309".to_owned()), Just("0s".to_owned()), Just("\t".to_owned()),
            Just("\n".to_owned()), Just("  ".to_owned()), Just("\"".to_owned()), Just("#".to_owned()),
            Just("&a *a".to_owned()), Just("!!binary x".to_owned()), "\\PC{0,12}",
        ],
    ) {
        let base = std::fs::read_to_string(repo().join("experiments").join(file)).unwrap();
        let mut at = cut.min(base.len());
        while !base.is_char_boundary(at) { at -= 1; }
        let mut end = (at + delete).min(base.len());
        while !base.is_char_boundary(end) { end += 1; }
        let text = format!("{}{}{}", &base[..at], insert, &base[end..]);
        let started = std::time::Instant::now();
        let errors = load_beside_shipped(&text);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        for e in &errors {
            prop_assert!(e.location.is_some(), "no position: {e}\n--- file ---\n{text}");
        }
    }
}

/// `doctor` without a cluster to ask: a failure of the machine's connection, not of the
/// file (exit 2, not 3), named on stderr.
#[test]
fn doctor_without_a_reachable_cluster_exits_2_not_3() {
    let home = std::env::temp_dir().join(format!("doctor-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let out = runner()
        .arg("doctor")
        .arg(repo().join("experiments/kubernetes/db-query-latency.yaml"))
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    std::fs::remove_dir_all(&home).unwrap();
}
