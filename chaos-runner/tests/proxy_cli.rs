//! `chaos-runner proxy` as a real process (flags, config, signals, the real toxiproxy
//! Python client), and `proxy-*` faults run by the runner binary: in-run proxy, the `api`
//! form against a proxy server, and `recover` deleting the toxic after a SIGKILL.

use crate::support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::proxy_process::ProxyProcess;
use support::{wait_for, TempDir};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"))
}

fn echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A free loopback address for a proxy that binds it later (see [`support::free_port`]).
fn free_addr() -> String {
    format!("127.0.0.1:{}", support::free_port())
}

fn rtt(addr: &str) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_nodelay(true).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let start = Instant::now();
    s.write_all(b"ping").ok()?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).ok()?;
    (&buf == b"ping").then(|| start.elapsed())
}

/// The fastest of three round trips through `addr` (each must be answered).
fn fastest_rtt(addr: &str) -> Duration {
    (0..3)
        .map(|_| rtt(addr).expect("a round trip"))
        .min()
        .expect("three round trips")
}

#[test]
fn proxy_command_refuses_bad_flags_and_config_with_exit_3() {
    let dir = TempDir::new("proxy-flags");
    let run = |args: &[&str]| {
        let out = Command::new(exe()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["proxy", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--allow-remote-admin"), "{err}");
    let (code, err) = run(&["proxy", "--listen", "nonsense"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("--listen"), "{err}");
    for window in ["1s", "soon", "11ms"] {
        let (code, err) = run(&["proxy", "--listen", "127.0.0.1:0", "--busy-poll", window]);
        assert_eq!(code, Some(3), "--busy-poll {window}: {err}");
        assert!(err.contains("--busy-poll"), "{err}");
    }
    for workers in ["0", "257", "two"] {
        let (code, err) = run(&["proxy", "--listen", "127.0.0.1:0", "--workers", workers]);
        assert_eq!(code, Some(3), "--workers {workers}: {err}");
        assert!(err.contains("--workers"), "{err}");
    }
    for value in ["maybe", "1", ""] {
        let (code, err) = run(&["proxy", "--listen", "127.0.0.1:0", "--bulk-yield", value]);
        assert_eq!(code, Some(3), "--bulk-yield {value:?}: {err}");
        assert!(err.contains("--bulk-yield"), "{err}");
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"name": "a", "upstream": "127.0.0.1:1", "lisen": "x"}]"#,
    )
    .unwrap();
    let (code, err) = run(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(3));
    assert!(err.contains("[0].lisen") || err.contains("lisen"), "{err}");
    let missing = dir.path().join("missing.json");
    std::fs::write(&missing, r#"[{"name": "a", "listen": "127.0.0.1:0"}]"#).unwrap();
    let (code, err) = run(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--config",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(3));
    assert!(err.contains("proxies[0].upstream"), "{err}");
    // A database fault rule in the config is checked like one sent to the API.
    for (text, want) in [
        (
            r#"[
  {"name": "plain", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
  {"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "protocol": "postgres",
   "dbfaults": [{"name": "e", "type": "postgres-error", "attributes": {"pattern": ".", "sqlstate": "oops"}}]}]"#,
            "dbfaults.json:3: proxies[1].dbfaults[0].attributes.sqlstate",
        ),
        (
            r#"[{"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
                "dbfaults": [{"name": "e", "type": "postgres-reset", "attributes": {"pattern": "."}}]}]"#,
            "proxies[0].dbfaults: database fault rules need `protocol: postgres`",
        ),
        (
            r#"[{"name": "db", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "protocol": "redis",
                "dbfaults": [{"name": "e", "type": "redis-latency", "attributes": {"pattern": "."}, "expiresIn": "soon"}]}]"#,
            "[0].dbfaults[0].expiresIn",
        ),
    ] {
        let file = dir.path().join("dbfaults.json");
        std::fs::write(&file, text).unwrap();
        let (code, err) = run(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--config",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(3), "{text}: {err}");
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn proxy_command_loads_its_config_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("proxy-config");
    let upstream = echo();
    let listen = free_addr();
    let config = dir.path().join("proxies.json");
    std::fs::write(
        &config,
        format!(r#"[{{"name": "echo", "listen": "{listen}", "upstream": "{upstream}"}}]"#),
    )
    .unwrap();
    let mut p =
        ProxyProcess::start_with(Some(&config), &["--workers", "3", "--bulk-yield", "false"]);
    assert!(rtt(&listen).is_some(), "configured proxy passes traffic");
    // `--workers 3`: three relay threads, `chaos-proxy-relay-N` (a thread's name in /proc
    // is cut at 15 bytes), beside the thread that accepts and serves the API.
    let relay_threads = std::fs::read_dir(format!("/proc/{}/task", p.child.id()))
        .unwrap()
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|c| c.trim() == "chaos-proxy-rel")
        })
        .count();
    assert_eq!(relay_threads, 3);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(TcpStream::connect(&listen).is_err(), "listener closed");
}

#[test]
fn real_toxiproxy_python_client_drives_the_proxy() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/toxiproxy_client.py");
    let importable = Command::new("python3")
        .args(["-c", "import toxiproxy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        assert!(
            std::env::var_os("CI").is_none(),
            "the toxiproxy Python client is not installed (scripts/test installs it)"
        );
        eprintln!("skipping: pip install toxiproxy-python (scripts/test does)");
        return;
    }
    let p = ProxyProcess::start(None);
    let addr = p.api.strip_prefix("http://").unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .args([host, port, &echo()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("toxiproxy client session ok"));
}

fn experiment(
    dir: &Path,
    fault_type: &str,
    selector: &str,
    params: &str,
    duration: &str,
) -> PathBuf {
    let path = dir.join("experiment.yaml");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: chaos.game-resilience.dev/v1
kind: Experiment
metadata:
  name: proxy-test
  description: test
spec:
  target: {{ backend: local }}
  faults:
    - name: net
      type: {fault_type}
      selector:
        proxy: {selector}
      parameters: {params}
      duration: {duration}
  abortWhen:
    - name: memory
      host: {{ metric: memoryUsedPercent, breachWhen: ">", threshold: 99.9 }}
  checkInterval: 200ms
  report:
    dir: {}
"#,
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn runner_injects_latency_through_its_own_proxy_and_tears_it_down() {
    let dir = TempDir::new("proxy-inrun");
    let upstream = echo();
    let listen = free_addr();
    let file = experiment(
        dir.path(),
        "proxy-latency",
        &format!("{{ listen: \"{listen}\", upstream: \"{upstream}\" }}"),
        "{ latency: 200ms }",
        "3s",
    );
    let child = support::start_run(&file, &dir.path().join("state"));
    // The run opens its proxy in preflight, as a clean pass-through, and adds the toxic
    // only when the fault starts (after the steady-state checks): until then a round trip
    // is fast. Every round trip must relay unchanged, and the latency show within the run.
    wait_for(Duration::from_secs(10), "the run's proxy", || {
        TcpStream::connect(&listen).is_ok()
    });
    wait_for(Duration::from_secs(10), "the 200ms latency", || {
        rtt(&listen).expect("the proxy relays while the run holds it") >= Duration::from_millis(200)
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["outcome"], "passed");
    assert!(
        TcpStream::connect(&listen).is_err(),
        "the run's proxy ends with the run"
    );
}

#[test]
fn runner_adds_and_removes_a_toxic_over_the_api_and_recover_cleans_after_sigkill() {
    let dir = TempDir::new("proxy-api");
    let upstream = echo();
    let listen = free_addr();
    let config = dir.path().join("proxies.json");
    std::fs::write(
        &config,
        format!(r#"[{{"name": "echo", "listen": "{listen}", "upstream": "{upstream}"}}]"#),
    )
    .unwrap();
    let server = ProxyProcess::start(Some(&config));
    let selector = format!("{{ api: \"{}\", name: echo }}", server.api);

    // A run to completion: the toxic is there while it holds, gone after, traffic clean.
    let file = experiment(
        dir.path(),
        "proxy-latency",
        &selector,
        "{ latency: 150ms }",
        "2s",
    );
    let state = dir.path().join("state");
    let child = support::start_run(&file, &state);
    wait_for(Duration::from_secs(10), "the toxic", || {
        !server.toxic_names("echo").is_empty()
    });
    let names = server.toxic_names("echo");
    assert!(names[0].starts_with("chaos-proxy-test-") && names[0].ends_with("-net"));
    assert!(rtt(&listen).unwrap() >= Duration::from_millis(150));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.toxic_names("echo").is_empty());
    // A latency toxic left in place would add its 150 ms to every round trip, the fastest
    // of three too.
    assert!(fastest_rtt(&listen) < Duration::from_millis(150));

    // SIGKILL mid-fault: the toxic stays; `recover` deletes it from the journal.
    let file = experiment(
        dir.path(),
        "proxy-timeout",
        &selector,
        "{ timeout: 0s }",
        "60s",
    );
    let mut child = support::start_run(&file, &state);
    wait_for(Duration::from_secs(10), "the toxic", || {
        !server.toxic_names("echo").is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        server.toxic_names("echo").len(),
        1,
        "left behind by the dead runner"
    );
    let out = Command::new(exe())
        .args(["--output", "json", "recover", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["reverted_all"], true);
    assert_eq!(doc["faults"][0]["fault"], "net");
    assert!(server.toxic_names("echo").is_empty());
    // The black hole is gone: a round trip is answered at all.
    assert!(
        rtt(&listen).is_some(),
        "the connection is still black-holed"
    );
}

#[test]
fn recover_uses_the_intent_record_when_the_runner_died_before_injecting() {
    use chaos_runner::faults::FaultRecord;
    use chaos_runner::journal::{Event, Journal};
    let dir = TempDir::new("proxy-intent");
    let upstream = echo();
    let server = ProxyProcess::start(None);
    ureq::post(&format!("{}/proxies", server.api))
        .send_string(&format!(
            r#"{{"name":"echo","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#
        ))
        .unwrap();
    // The toxic went in, but the runner died before journaling the injection.
    ureq::post(&format!("{}/proxies/echo/toxics", server.api))
        .send_string(r#"{"name":"chaos-run-x-net","type":"timeout","attributes":{"timeout":0}}"#)
        .unwrap();
    let state = dir.path().join("state");
    let mut journal = Journal::create(&state, "run-x").unwrap();
    journal
        .append(Event::Intent {
            fault: "net".into(),
            description: "proxy-timeout".into(),
            record: Some(FaultRecord::ProxyToxic {
                api: Some(server.api.clone()),
                proxy: "echo".into(),
                toxic: "chaos-run-x-net".into(),
            }),
        })
        .unwrap();
    let status = Command::new(exe())
        .args(["recover", "--state-dir"])
        .arg(&state)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(server.toxic_names("echo").is_empty());
}
