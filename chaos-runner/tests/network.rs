//! Kernel network faults against real traffic: every test builds its own pair of network
//! namespaces joined by a veth pair (removed on drop, even when the test fails), runs a
//! real server in one and a client in the other (threads that `setns` into them), and
//! never touches the host's own nftables tables or qdiscs.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); under CI=true a missing one fails.

use crate::support;

use chaos_runner::faults::local::netcmd;
use chaos_runner::faults::local::nftables::{self, Action, NetFilter};
use chaos_runner::faults::local::tc::{self, Qdisc, Shape};
use chaos_runner::faults::{revert_from_journal, Fault, FaultRecord};
use chaos_runner::spec::params::network::NetMatch;
use chaos_runner::spec::{NetBandwidthParams, NetDelayParams, NetDirection, NetProtocol};
use chaos_runner::sys::proc;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{wait_for, TempDir};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos-runner"))
}

/// Whether the test can run: root, `ip` and `nft`. Under CI=true anything missing fails.
fn ready() -> bool {
    // SAFETY: geteuid takes no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let has = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let (ip, nft) = (has("ip"), has("nft"));
    if root && ip && nft {
        return true;
    }
    let why = format!("needs root ({root}), ip ({ip}) and nft ({nft}); scripts/test installs them");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `a` (client, 10.77.0.1 on `veth_a`) and `b` (server, 10.77.0.2),
/// joined by a veth pair; both deleted on drop.
struct NsPair {
    a: String,
    b: String,
    veth_a: String,
}

const ADDR_A: &str = "10.77.0.1";
const ADDR_B: &str = "10.77.0.2";

impl NsPair {
    fn new() -> NsPair {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let pair = NsPair {
            a: format!("crt-{tag}-a"),
            b: format!("crt-{tag}-b"),
            veth_a: format!("cv{tag}a"),
        };
        let veth_b = format!("cv{tag}b");
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link",
            "add",
            &pair.veth_a,
            "netns",
            &pair.a,
            "type",
            "veth",
            "peer",
            "name",
            &veth_b,
            "netns",
            &pair.b,
        ]);
        for (ns, dev, addr) in [(&pair.a, &pair.veth_a, ADDR_A), (&pair.b, &veth_b, ADDR_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    fn matching(&self, ports: &[u16], protocol: NetProtocol) -> NetMatch {
        NetMatch {
            netns: Some(self.a.clone()),
            v4: vec![ipnet::Ipv4Net::from(
                ADDR_B.parse::<std::net::Ipv4Addr>().unwrap(),
            )],
            ports: ports.iter().map(|p| (*p, *p)).collect(),
            protocol,
            direction: NetDirection::Both,
            ..NetMatch::default()
        }
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has joined network namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = Path::new(netcmd::NETNS_DIR).join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace fd; it changes only this thread's namespace.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A TCP server in `ns` on ADDR_B that accepts and answers `ok` to every connection.
fn tcp_server(ns: &str) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    in_ns(ns, move || {
        let listener = TcpListener::bind((ADDR_B, 0)).unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"ok");
        }
    });
    rx.recv().unwrap()
}

/// Connects from `ns` to ADDR_B:port within `limit`; Ok(answer) or the error kind.
fn connect(ns: &str, port: u16, limit: Duration) -> Result<String, ErrorKind> {
    in_ns(ns, move || {
        let addr: SocketAddr = format!("{ADDR_B}:{port}").parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&addr, limit).map_err(|e| e.kind())?;
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).map_err(|e| e.kind())?;
        Ok(text)
    })
    .join()
    .unwrap()
}

fn net_filter(pair: &NsPair, name: &str, m: NetMatch, action: Action) -> NetFilter {
    NetFilter::new(
        name,
        &format!("test-{}", pair.a),
        Ok(m),
        action,
        Duration::from_secs(60),
        exe(),
    )
}

#[test]
fn partition_drop_times_out_and_revert_restores() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let port = tcp_server(&pair.b);
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Ok("ok".into())
    );

    let mut fault = net_filter(
        &pair,
        "cut",
        pair.matching(&[port], NetProtocol::Tcp),
        Action::Drop,
    );
    let record = fault.inject().unwrap();
    assert_eq!(
        record,
        FaultRecord::NetTable {
            netns: Some(pair.a.clone()),
            table: fault.table().to_owned()
        }
    );
    assert!(nftables::tables(Some(&pair.a))
        .unwrap()
        .contains(&fault.table().to_owned()));
    assert!(
        fault.verify_reverted().is_err(),
        "a live table must fail verification"
    );
    assert_eq!(
        connect(&pair.a, port, Duration::from_millis(800)),
        Err(ErrorKind::TimedOut),
        "dropped SYNs must time out"
    );

    fault.revert().unwrap();
    fault.verify_reverted().unwrap();
    assert!(!nftables::tables(Some(&pair.a))
        .unwrap()
        .contains(&fault.table().to_owned()));
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Ok("ok".into())
    );
    fault.revert().unwrap(); // idempotent
}

#[test]
fn partition_reject_refuses_at_once() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let port = tcp_server(&pair.b);
    let mut fault = net_filter(
        &pair,
        "refuse",
        pair.matching(&[port], NetProtocol::All),
        Action::Reject,
    );
    fault.inject().unwrap();
    // Refused, not timed out: a reject answers at once (a drop would end in TimedOut
    // after the connect timeout), whatever the machine's load.
    let start = Instant::now();
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Err(ErrorKind::ConnectionRefused)
    );
    eprintln!("reject answered in {:?}", start.elapsed());
    // A port outside the match is untouched.
    let other = tcp_server(&pair.b);
    assert_eq!(
        connect(&pair.a, other, Duration::from_secs(10)),
        Ok("ok".into())
    );
    fault.revert().unwrap();
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Ok("ok".into())
    );
}

/// The datagram that ends a count (never a sequence number: counts are far smaller).
const END_MARKER: u32 = u32::MAX;

/// Sends `count` UDP datagrams from `a` to a fresh counting server in `b`; returns how many
/// arrived (the server stops at the sender's end markers).
fn udp_delivered(pair: &NsPair, count: u32) -> u32 {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(&pair.b, move || {
        let socket = UdpSocket::bind((ADDR_B, 0)).unwrap();
        // A roomy receive buffer, so a busy machine does not lose datagrams of its own.
        let size: libc::c_int = 4 << 20;
        // SAFETY: setsockopt on our socket with a pointer to a live c_int of the given size.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        tx.send(socket.local_addr().unwrap().port()).unwrap();
        // The sender ends with a burst of end markers; the timeout only ends a count whose
        // markers were all lost, so a stalled sender is not mistaken for lost datagrams.
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = 0;
        let mut buf = [0u8; 64];
        loop {
            match socket.recv(&mut buf) {
                Ok(4) if buf[..4] == END_MARKER.to_be_bytes() => return got,
                Ok(_) => got += 1,
                Err(_) if got > 0 => return got,
                Err(_) => {}
            }
        }
    });
    let port = rx.recv().unwrap();
    in_ns(&pair.a, move || {
        let socket = UdpSocket::bind((ADDR_A, 0)).unwrap();
        for i in 0..count {
            // A datagram dropped on the way out fails the send with EPERM: it counts as sent.
            let _ = socket.send_to(&i.to_be_bytes(), (ADDR_B, port));
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(1)); // stay under the socket buffers
            }
        }
        // Twenty end markers: under 30% loss, all twenty are lost once in 10^10 runs.
        for _ in 0..20 {
            let _ = socket.send_to(&END_MARKER.to_be_bytes(), (ADDR_B, port));
        }
    })
    .join()
    .unwrap();
    server.join().unwrap()
}

#[test]
fn loss_drops_about_the_rate() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let sent = 4000;
    let baseline = udp_delivered(&pair, sent);
    assert!(
        baseline >= sent * 99 / 100,
        "baseline lost packets: {baseline}/{sent}"
    );

    // Every UDP datagram to the peer, whatever the (fresh) server port.
    let mut m = pair.matching(&[], NetProtocol::Udp);
    m.direction = NetDirection::Egress;
    let mut fault = net_filter(&pair, "lossy", m, Action::Loss(30));
    fault.inject().unwrap();
    let delivered = udp_delivered(&pair, sent);
    fault.revert().unwrap();
    let share = f64::from(delivered) / f64::from(sent);
    eprintln!(
        "30% loss: {delivered}/{sent} delivered ({:.1}%)",
        share * 100.0
    );
    assert!(
        (0.64..=0.76).contains(&share),
        "expected about 70% delivered, got {:.1}%",
        share * 100.0
    );
    let after = udp_delivered(&pair, sent);
    assert!(
        after >= sent * 99 / 100,
        "loss outlived revert: {after}/{sent}"
    );
}

/// Bytes per second a TCP stream from `a` to `b` reaches, measured at the server over 2 s.
fn tcp_throughput(pair: &NsPair) -> f64 {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = in_ns(&pair.b, move || {
        let listener = TcpListener::bind((ADDR_B, 0)).unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // Skip the first 300 ms (bucket burst, slow start), then count for 2 s.
        let start = Instant::now();
        let mut counted = 0usize;
        let mut window_start = None;
        while start.elapsed() < Duration::from_millis(2300) {
            let n = stream.read(&mut buf).unwrap();
            if start.elapsed() >= Duration::from_millis(300) {
                window_start.get_or_insert_with(Instant::now);
                counted += n;
            }
        }
        counted as f64 / window_start.unwrap().elapsed().as_secs_f64()
    });
    let port = rx.recv().unwrap();
    in_ns(&pair.a, move || {
        let mut stream = TcpStream::connect((ADDR_B, port)).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while stream.write_all(&chunk).is_ok() {}
    });
    server.join().unwrap()
}

#[test]
fn bandwidth_caps_throughput_and_revert_restores_the_default_qdisc() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let rate_kbit = 4000; // 500 kB/s
    let cap = f64::from(rate_kbit) * 1000.0 / 8.0;
    let before = tcp_throughput(&pair);
    let mut fault = Qdisc::new(
        "slow-link",
        &format!("test-{}", pair.a),
        Some(pair.a.clone()),
        Ok(pair.veth_a.clone()),
        Shape::Bandwidth(NetBandwidthParams {
            rate_kbit,
            burst_bytes: None,
            latency: Duration::from_millis(50),
            replace_existing_qdisc: false,
        }),
        Duration::from_secs(60),
        exe(),
    );
    let record = fault.inject().unwrap();
    assert!(matches!(record, FaultRecord::NetQdisc { handle, .. } if handle == fault.handle()));
    let (kind, handle) = tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap();
    assert_eq!((kind.as_str(), handle), ("tbf", fault.handle()));
    let shaped = tcp_throughput(&pair);
    fault.revert().unwrap();
    fault.verify_reverted().unwrap();
    assert_eq!(tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().1, 0);
    let after = tcp_throughput(&pair);
    eprintln!(
        "tbf {rate_kbit} kbit/s: {:.0} kB/s shaped, {:.0} kB/s before, {:.0} kB/s after",
        shaped / 1e3,
        before / 1e3,
        after / 1e3
    );
    assert!(
        shaped > cap * 0.6 && shaped < cap * 1.15,
        "shaped throughput {shaped:.0} B/s not near {cap:.0} B/s"
    );
    assert!(
        before > cap * 5.0 && after > cap * 5.0,
        "unshaped link too slow to tell"
    );
}

#[test]
fn bandwidth_refuses_a_foreign_root_qdisc_unless_opted_in() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let foreign = Command::new("tc")
        .args([
            "-n",
            &pair.a,
            "qdisc",
            "add",
            "dev",
            &pair.veth_a,
            "root",
            "handle",
            "1:",
        ])
        .args([
            "tbf", "rate", "100mbit", "burst", "100000", "latency", "50ms",
        ])
        .output()
        .unwrap();
    assert!(
        foreign.status.success(),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    let params = |replace| {
        Shape::Bandwidth(NetBandwidthParams {
            rate_kbit: 1000,
            burst_bytes: None,
            latency: Duration::from_millis(50),
            replace_existing_qdisc: replace,
        })
    };
    let new = |shape| {
        Qdisc::new(
            "bw",
            &format!("test-{}", pair.a),
            Some(pair.a.clone()),
            Ok(pair.veth_a.clone()),
            shape,
            Duration::from_secs(60),
            exe(),
        )
    };
    let err = new(params(false)).inject().unwrap_err().to_string();
    assert!(err.contains("replaceExistingQdisc"), "{err}");
    assert_eq!(
        tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().1,
        1,
        "untouched"
    );
    let mut fault = new(params(true));
    fault.inject().unwrap();
    fault.revert().unwrap();
    assert_eq!(tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().1, 0);
}

#[test]
fn netem_detection_matches_the_kernel_and_names_the_missing_qdisc() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    // An independent attempt on the test's own interface.
    let direct = Command::new("tc")
        .args([
            "-n",
            &pair.a,
            "qdisc",
            "add",
            "dev",
            &pair.veth_a,
            "root",
            "netem",
            "delay",
            "1ms",
        ])
        .output()
        .unwrap();
    let kernel_has_netem = direct.status.success();
    if kernel_has_netem {
        ip(&["-n", &pair.a, "link", "set", &pair.veth_a, "down"]);
        let _ = Command::new("tc")
            .args(["-n", &pair.a, "qdisc", "del", "dev", &pair.veth_a, "root"])
            .status();
        ip(&["-n", &pair.a, "link", "set", &pair.veth_a, "up"]);
    } else {
        assert!(
            String::from_utf8_lossy(&direct.stderr).contains("qdisc kind is unknown"),
            "{}",
            String::from_utf8_lossy(&direct.stderr)
        );
    }
    assert_eq!(
        tc::netem_available().map_err(|e| e.to_string()),
        Ok(kernel_has_netem)
    );
    eprintln!("this kernel has netem: {kernel_has_netem}");

    let mut fault = Qdisc::new(
        "slow",
        &format!("test-{}", pair.a),
        Some(pair.a.clone()),
        Ok(pair.veth_a.clone()),
        Shape::Delay(NetDelayParams {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
            loss_percent: 1.0,
            replace_existing_qdisc: false,
        }),
        Duration::from_secs(60),
        exe(),
    );
    if kernel_has_netem {
        fault.preflight().unwrap();
        fault.inject().unwrap();
        assert_eq!(
            tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().0,
            "netem"
        );
        fault.revert().unwrap();
        fault.verify_reverted().unwrap();
    } else {
        let expected = "the kernel has no `netem` qdisc (sch_netem)";
        let pre = fault.preflight().unwrap_err().to_string();
        assert!(pre.contains(expected), "{pre}");
        let err = fault.inject().unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert_eq!(tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().1, 0);
        fault.verify_reverted().unwrap();

        // The shipped experiment stops in preflight, before anything is injected.
        let dir = TempDir::new("netem");
        let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/local/net-delay.yaml");
        let out = Command::new(exe())
            .arg("run")
            .arg(&exp)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(expected), "{text}");
        // `plan` says so too, and still injects nothing.
        let plan = Command::new(exe())
            .args(["--output", "json", "plan"])
            .arg(&exp)
            .output()
            .unwrap();
        assert_eq!(plan.status.code(), Some(0));
        let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        assert!(
            doc["warnings"][0].as_str().unwrap().contains(expected),
            "{doc}"
        );
    }
}

/// An experiment partitioning `pair.a` from ADDR_B:port for 60 s.
fn partition_experiment(dir: &Path, pair: &NsPair, port: u16) -> PathBuf {
    let path = dir.join("partition.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata: {{ name: crash-partition }}\nspec:\n  target: {{ backend: local }}\n  faults:\n    - name: cut\n      type: net-partition\n      selector:\n        network: {{ netns: {}, addresses: [\"{ADDR_B}\"], ports: [{port}], protocol: tcp }}\n      duration: 60s\n  abortWhen:\n    - name: never\n      host: {{ metric: load1, breachWhen: \">\", threshold: 100000 }}\n  report: {{ dir: {} }}\n",
            pair.a,
            dir.join("reports").display()
        ),
    )
    .unwrap();
    path
}

fn our_table(pair: &NsPair) -> Option<String> {
    nftables::tables(Some(&pair.a))
        .unwrap()
        .into_iter()
        .find(|t| t.starts_with("chaos_crash_partition_"))
}

#[test]
fn sigkilled_runner_leaves_no_partition_behind() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let port = tcp_server(&pair.b);
    let dir = TempDir::new("net-crash");
    let exp = partition_experiment(dir.path(), &pair, port);
    let mut runner = Command::new(exe())
        .arg("run")
        .arg(&exp)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(15), "the partition table", || {
        our_table(&pair).is_some()
    });
    let table = our_table(&pair).unwrap();
    assert_eq!(
        connect(&pair.a, port, Duration::from_millis(500)),
        Err(ErrorKind::TimedOut)
    );
    runner.kill().unwrap(); // SIGKILL: no revert runs in the runner
    runner.wait().unwrap();
    let killed = Instant::now();
    wait_for(
        Duration::from_secs(5),
        "the watchdog to delete the table",
        || our_table(&pair).is_none(),
    );
    eprintln!(
        "watchdog removed {table} {:?} after the runner died",
        killed.elapsed()
    );
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Ok("ok".into())
    );
    wait_for(Duration::from_secs(5), "the watchdog to exit", || {
        netcmd::watchdogs_with("--table", &table).is_empty()
    });
}

#[test]
fn recover_deletes_the_table_when_the_watchdog_died_too() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let port = tcp_server(&pair.b);
    let dir = TempDir::new("net-recover");
    let exp = partition_experiment(dir.path(), &pair, port);
    let state = dir.path().join("state");
    let mut runner = Command::new(exe())
        .arg("run")
        .arg(&exp)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watchdog = None;
    wait_for(
        Duration::from_secs(15),
        "the table and its watchdog",
        || {
            watchdog = our_table(&pair).and_then(|t| {
                netcmd::watchdogs_with("--table", &t)
                    .first()
                    .map(|pid| (*pid, t))
            });
            watchdog.is_some()
        },
    );
    let (pid, table) = watchdog.unwrap();
    let ticks = proc::stat(pid).unwrap().1;
    // SAFETY: kill(2) on the watchdog pid found just above.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    wait_for(Duration::from_secs(5), "the watchdog to die", || {
        !proc::is_running(pid, ticks)
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert_eq!(
        our_table(&pair),
        Some(table.clone()),
        "nothing else removed it"
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
    assert_eq!(doc["faults"][0]["fault"], "cut");
    assert_eq!(our_table(&pair), None);
    assert_eq!(
        connect(&pair.a, port, Duration::from_secs(10)),
        Ok("ok".into())
    );
}

#[test]
fn journal_without_a_record_is_swept_by_table_name_and_qdisc_handle() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let run_id = format!("torn-{}", pair.a);
    let mut filter = NetFilter::new(
        "cut",
        &run_id,
        Ok(pair.matching(&[9], NetProtocol::Tcp)),
        Action::Drop,
        Duration::from_secs(60),
        exe(),
    );
    filter.inject().unwrap();
    let mut shaper = Qdisc::new(
        "cut",
        &run_id,
        Some(pair.a.clone()),
        Ok(pair.veth_a.clone()),
        Shape::Bandwidth(NetBandwidthParams {
            rate_kbit: 1000,
            burst_bytes: None,
            latency: Duration::from_millis(50),
            replace_existing_qdisc: false,
        }),
        Duration::from_secs(60),
        exe(),
    );
    shaper.inject().unwrap();
    // The runner died between the intent and the record: only the run id and name are known.
    revert_from_journal(&run_id, "cut", None).unwrap();
    assert!(!nftables::tables(Some(&pair.a))
        .unwrap()
        .contains(&filter.table().to_owned()));
    assert_eq!(tc::root_qdisc(Some(&pair.a), &pair.veth_a).unwrap().1, 0);
    filter.verify_reverted().unwrap();
    shaper.verify_reverted().unwrap();
    // Reap the watchdogs.
    filter.revert().unwrap();
    shaper.revert().unwrap();
}

#[test]
fn watchdog_removes_the_table_when_its_time_is_up() {
    if !ready() {
        return;
    }
    let pair = NsPair::new();
    let mut fault = NetFilter::new(
        "brief",
        &format!("test-{}", pair.a),
        Ok(pair.matching(&[9], NetProtocol::Tcp)),
        Action::Drop,
        Duration::from_secs(1),
        exe(),
    );
    // Timed from before the inject: the watchdog's second starts inside it.
    let start = Instant::now();
    fault.inject().unwrap();
    let table = fault.table().to_owned();
    wait_for(Duration::from_secs(5), "the table to expire", || {
        !nftables::tables(Some(&pair.a)).unwrap().contains(&table)
    });
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "expired early"
    );
    fault.revert().unwrap();
    fault.verify_reverted().unwrap();
}
