//! The TCP fault proxy with no toxics (at its defaults, with busy polling off, and with
//! one relay thread instead of one per core), each a process of its own (this binary run
//! again as `proxy-server`, serving what `chaos-runner proxy` serves: the admin API and
//! the proxies of a populate file, with the same relay flags), side by side in one run with a direct
//! loopback connection, with `fault-cli` 1.2.1 (a Rust TCP fault proxy) and with the least
//! a user-space relay can do (blocking read/write, one thread per direction, no toxics, no
//! API: the floor any proxy in a process pays): round-trip latency p50/p99 of small
//! messages and bulk throughput of one connection and of four at once, reported as ratios.
//! Then the accuracy of a 100 ms latency toxic (p99 must be 100 ms +/- 2 ms). Another path
//! forwards inside the kernel (an eBPF sockmap redirect, see [`kernel_relay`]): the
//! ceiling of a proxy that never wakes up, so the 0.8x-of-direct target can be judged
//! against what is possible here. It needs root; without it its row is marked missing,
//! and a bulk transfer that stalls through it (60 s without progress) drops its row.
//!
//! Run: `cargo bench -p fault-proxy --bench proxy`. `fault` is looked up in `PATH`,
//! `FAULT_CLI`, or `/work/tools/bin/fault` (install it with
//! `cargo install fault-cli --version 1.2.1`); without it its rows are marked missing,
//! and under `CI=true` the bench fails instead. Targets are measured in interleaved
//! rounds so a busy moment of the machine hits every target alike; each figure is the
//! median over rounds. For the paths that are processes of their own (our proxy and
//! fault-cli) the CPU time the process used per round trip and per MiB of bulk is measured
//! too, so what busy polling costs is shown beside what it buys; and for every path the
//! cores kept busy during the bulk transfer (sender, sink, relay), which says whether a
//! path was held back by the machine's two cores. A JSON summary goes to
//! `target/proxy-bench.json`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

#[path = "proxy/kernel_relay.rs"]
mod kernel_relay;

/// Size of one round-trip message.
const MESSAGE: usize = 64;

/// Connections of the parallel bulk transfer (a proxy's relay threads matter there).
const PARALLEL: usize = 4;

/// How much to measure: the full run under `cargo bench`, a quick pass that only proves
/// the paths work under `cargo test --all-targets` (which runs this binary without
/// `--bench`).
#[derive(Clone, Copy)]
struct Scale {
    /// Round trips per latency sample.
    round_trips: usize,
    /// Bytes sent per throughput sample.
    bulk_bytes: u64,
    /// Interleaved rounds over every target.
    rounds: usize,
    /// Round trips through the 100 ms latency toxic.
    toxic_round_trips: usize,
}

const FULL: Scale = Scale {
    round_trips: 5_000,
    bulk_bytes: 2048 * 1024 * 1024,
    rounds: 5,
    toxic_round_trips: 200,
};

const SMOKE: Scale = Scale {
    round_trips: 100,
    bulk_bytes: 8 * 1024 * 1024,
    rounds: 1,
    toxic_round_trips: 5,
};

/// Kills the child when dropped, so no proxy outlives the bench.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One way to reach the echo and sink servers.
struct Target {
    name: &'static str,
    echo: SocketAddr,
    sink: SocketAddr,
    processes: Vec<ChildGuard>,
}

impl Target {
    /// CPU time the target's own process has used so far (none for the in-bench paths).
    fn cpu(&self) -> Option<Duration> {
        self.processes.first().map(|p| process_cpu(p.0.id()))
    }
}

/// CPU time used by every thread of process `pid` (`/proc/<pid>/task/*/schedstat`, in
/// nanoseconds, so a busy-polling proxy's spin is counted to the nanosecond).
fn process_cpu(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the proxy's threads");
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// CPU time this process has used, its finished threads included (`getrusage`: a sink
/// thread is gone by the time its transfer is measured).
fn own_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given and keeps no pointer to it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Per-target medians.
#[derive(Default, Clone, Copy)]
struct Figures {
    /// Proxy process CPU time per round trip (none for the in-bench paths).
    cpu_us_per_rt: Option<f64>,
    p50_us: f64,
    p99_us: f64,
    mib_per_s: f64,
    /// MiB/s of [`PARALLEL`] connections moving the same total at once.
    parallel_mib_per_s: f64,
    /// Proxy process CPU time per MiB of the bulk transfer (none for the in-bench paths).
    cpu_ms_per_mib: Option<f64>,
    /// Cores kept busy during the bulk transfer: the bench's sender and sink (and an
    /// in-bench relay's threads) plus the proxy process, over the transfer's time. Two
    /// is all this machine has.
    cores: f64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A thread-per-connection echo server.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut reader = stream.try_clone().expect("clone echo stream");
                let mut writer = stream;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if writer.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads an 8-byte length, then that many bytes, then answers the count it read, so the
/// sender knows every byte arrived. (A length rather than the sender's half-close: the
/// kernel relay forwards no FIN.)
fn sink_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let addr = listener.local_addr().expect("sink addr");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut length = [0u8; 8];
                if stream.read_exact(&mut length).is_err() {
                    return;
                }
                let expected = u64::from_le_bytes(length);
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                while total < expected {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = stream.write_all(&total.to_le_bytes());
            });
        }
    });
    addr
}

fn wait_listening(addr: SocketAddr) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after 20 s");
}

/// Round-trip times of `count` messages of `MESSAGE` bytes over one connection.
fn round_trips(addr: SocketAddr, count: usize) -> Histogram<u64> {
    let mut stream = TcpStream::connect(addr).expect("connect for round trips");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let message = [7u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("hdr");
    for i in 0..count + count / 10 {
        let start = Instant::now();
        stream.write_all(&message).expect("send message");
        stream.read_exact(&mut answer).expect("read echo");
        if i >= count / 10 {
            // The first tenth warms up the path and is not recorded.
            histogram
                .record(start.elapsed().as_nanos().max(1) as u64)
                .expect("record");
        }
    }
    histogram
}

/// Bytes per write of a bulk transfer.
const BULK_WRITE: usize = 256 * 1024;

/// What a bulk transfer of `bytes` sends: whole writes of [`BULK_WRITE`].
fn bulk_size(bytes: u64) -> u64 {
    bytes.div_ceil(BULK_WRITE as u64) * BULK_WRITE as u64
}

/// MiB/s of `bytes` (rounded up by [`bulk_size`]) pushed through one connection to the sink; an error when the path
/// stalls (a write or the sink's answer takes over 60 s) or fails.
fn bulk(addr: SocketAddr, bytes: u64) -> Result<f64, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    for timeout in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
        timeout(&stream, Some(Duration::from_secs(60))).map_err(|e| format!("timeout: {e}"))?;
    }
    let chunk = vec![0xA5u8; BULK_WRITE];
    let bytes = bulk_size(bytes);
    let start = Instant::now();
    let stalled =
        |what: &str, e: std::io::Error| format!("{what} after {:?}: {e}", start.elapsed());
    stream
        .write_all(&bytes.to_le_bytes())
        .map_err(|e| stalled("bulk length", e))?;
    let mut sent = 0u64;
    while sent < bytes {
        stream
            .write_all(&chunk)
            .map_err(|e| stalled("bulk write", e))?;
        sent += chunk.len() as u64;
    }
    let mut total = [0u8; 8];
    stream
        .read_exact(&mut total)
        .map_err(|e| stalled("sink total", e))?;
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(
        u64::from_le_bytes(total),
        sent,
        "bytes lost in the bulk transfer"
    );
    Ok(sent as f64 / (1024.0 * 1024.0) / elapsed)
}

/// MiB/s of `bytes` pushed through [`PARALLEL`] connections at once, each moving its
/// share; an error when one of them fails (see [`bulk`]).
fn bulk_parallel(addr: SocketAddr, bytes: u64) -> Result<f64, String> {
    let share = bytes / PARALLEL as u64;
    let start = Instant::now();
    let senders: Vec<_> = (0..PARALLEL)
        .map(|_| std::thread::spawn(move || bulk(addr, share)))
        .collect();
    let mut sent = 0u64;
    for sender in senders {
        sender
            .join()
            .map_err(|_| "a parallel sender panicked".to_owned())??;
        sent += bulk_size(share);
    }
    Ok(sent as f64 / (1024.0 * 1024.0) / start.elapsed().as_secs_f64())
}

/// This bench's own binary, run again as the proxy process (see [`proxy_server`]).
fn bench_binary() -> PathBuf {
    std::env::current_exe().expect("the bench binary's path")
}

/// `proxy-server --listen ADDR --config FILE [--busy-poll D] [--workers N]
/// [--bulk-yield BOOL]`: the proxy server as `chaos-runner proxy` runs it (admin API,
/// PostgreSQL/Redis relays, the relay settings, the proxies of the populate file), in
/// this process, until it is killed.
fn proxy_server(args: &[String]) {
    use fault_proxy::server::{default_workers, ProxyServer, ServerOptions};
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let api: SocketAddr = flag("--listen")
        .and_then(|a| a.parse().ok())
        .expect("--listen ADDR");
    let config = flag("--config").expect("--config FILE");
    let busy_poll = flag("--busy-poll").map_or(fault_proxy::busy_poll::DEFAULT_WINDOW, |d| {
        humantime::parse_duration(d).expect("--busy-poll DURATION")
    });
    let workers =
        flag("--workers").map_or_else(default_workers, |n| n.parse().expect("--workers N"));
    let bulk_yield = flag("--bulk-yield").is_none_or(|b| b.parse().expect("--bulk-yield BOOL"));
    let text = std::fs::read_to_string(config).expect("read the proxy config");
    let proxies: Vec<fault_proxy::ProxyInput> =
        serde_json::from_str(&text).expect("a populate list");
    let server = ProxyServer::start_with(ServerOptions {
        api: Some(api),
        workers,
    })
    .expect("start the proxy server");
    fault_proxy::dbproto::DbRelays::default().register(server.registry());
    server.registry().set_busy_poll(busy_poll);
    server.registry().set_bulk_yield(bulk_yield);
    server.registry().populate(proxies).expect("populate");
    loop {
        std::thread::park();
    }
}

/// Our proxy as a process of its own, set up from a populate file, with `extra` flags.
fn ours(
    name: &'static str,
    extra: &[&str],
    echo: SocketAddr,
    sink: SocketAddr,
    dir: &std::path::Path,
) -> (Target, SocketAddr) {
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let echo_proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let sink_proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let config = dir.join(format!("proxies-{}.json", api.port()));
    let proxies = serde_json::json!([
        { "name": "echo", "listen": echo_proxy.to_string(), "upstream": echo.to_string(), "enabled": true },
        { "name": "sink", "listen": sink_proxy.to_string(), "upstream": sink.to_string(), "enabled": true },
    ]);
    std::fs::write(&config, proxies.to_string()).expect("write proxy config");
    let child = Command::new(bench_binary())
        .args(["proxy-server", "--listen", &api.to_string(), "--config"])
        .arg(&config)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the proxy process");
    let guard = ChildGuard(child);
    wait_listening(api);
    wait_listening(echo_proxy);
    wait_listening(sink_proxy);
    (
        Target {
            name,
            echo: echo_proxy,
            sink: sink_proxy,
            processes: vec![guard],
        },
        api,
    )
}

/// Copies `from` to `to` until the end, then half-closes `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The reference relay: blocking read/write through a 64 KiB buffer, one thread per
/// direction, nothing else. What a proxy process cannot do with less (splice measured
/// no faster here); the distance to it is what our proxy's own machinery costs.
fn reference_relay(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind reference relay");
    let addr = listener.local_addr().expect("reference relay addr");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            for s in [&client, &server] {
                let _ = s.set_nodelay(true);
            }
            let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || pump(client, server));
            std::thread::spawn(move || pump(server2, client2));
        }
    });
    addr
}

fn fault_cli_binary() -> Option<PathBuf> {
    let mut candidates = std::env::var_os("FAULT_CLI")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("fault"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .chain([PathBuf::from("/work/tools/bin/fault")]);
    candidates.find(|path| path.is_file())
}

/// One `fault run` process proxying to the echo and sink servers, with a single phase
/// that injects nothing (its pass-through path, like our proxy with no toxics).
fn fault_cli(
    echo: SocketAddr,
    sink: SocketAddr,
    dir: &std::path::Path,
    required: bool,
) -> Option<Target> {
    let Some(binary) = fault_cli_binary() else {
        if required {
            panic!("fault-cli is missing: cargo install fault-cli --version 1.2.1");
        }
        eprintln!(
            "fault-cli not found: its rows are skipped (cargo install fault-cli --version 1.2.1)"
        );
        return None;
    };
    let echo_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let sink_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let run = serde_json::json!({
        "schema_version": 1,
        "name": "proxy-bench",
        "proxies": [
            { "name": "echo", "protocol": "tcp", "listen": echo_addr.to_string(), "upstream": echo.to_string() },
            { "name": "sink", "protocol": "tcp", "listen": sink_addr.to_string(), "upstream": sink.to_string() },
        ],
        "phases": [ { "name": "clean", "proxies": [] } ],
    });
    let file = dir.join("fault-run.json");
    std::fs::write(&file, run.to_string()).expect("write the fault run document");
    let child = Command::new(&binary)
        .args(["--output", "json", "--color", "never", "run"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fault");
    let guard = ChildGuard(child);
    wait_listening(echo_addr);
    wait_listening(sink_addr);
    Some(Target {
        name: "fault-cli 1.2.1",
        echo: echo_addr,
        sink: sink_addr,
        processes: vec![guard],
    })
}

/// A CPU-per-round-trip figure, or `-` for a path with no process of its own.
fn cpu_text(us: Option<f64>) -> String {
    us.map_or_else(|| "-".to_owned(), |us| format!("{us:.1} us"))
}

/// A CPU-per-MiB figure, or `-` for a path with no process of its own.
fn ms_text(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3} ms"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Each figure's median over one target's rounds (a per-process figure only when every
/// round has it).
fn medians(rounds: &[Figures]) -> Figures {
    let of = |get: fn(&Figures) -> f64| median(&mut rounds.iter().map(get).collect::<Vec<_>>());
    let of_some = |get: fn(&Figures) -> Option<f64>| {
        rounds
            .iter()
            .map(get)
            .collect::<Option<Vec<_>>>()
            .map(|mut v| median(&mut v))
    };
    Figures {
        cpu_us_per_rt: of_some(|f| f.cpu_us_per_rt),
        p50_us: of(|f| f.p50_us),
        p99_us: of(|f| f.p99_us),
        mib_per_s: of(|f| f.mib_per_s),
        parallel_mib_per_s: of(|f| f.parallel_mib_per_s),
        cpu_ms_per_mib: of_some(|f| f.cpu_ms_per_mib),
        cores: of(|f| f.cores),
    }
}

/// The 100 ms latency toxic: p50 and p99 of round trips through it, in ms.
fn latency_toxic(api: SocketAddr, echo_proxy: SocketAddr, count: usize) -> (f64, f64) {
    let base = format!("http://{api}/proxies/echo/toxics");
    let toxic = serde_json::json!({
        "name": "bench-latency", "type": "latency", "stream": "downstream",
        "toxicity": 1.0, "attributes": { "latency": 100, "jitter": 0 },
    });
    ureq::post(&base)
        .send_json(&toxic)
        .expect("add the latency toxic");
    let histogram = round_trips(echo_proxy, count);
    ureq::delete(&format!("{base}/bench-latency"))
        .call()
        .expect("remove the latency toxic");
    (
        histogram.value_at_quantile(0.5) as f64 / 1e6,
        histogram.value_at_quantile(0.99) as f64 / 1e6,
    )
}

fn main() {
    // cargo-nextest first lists a binary's tests (`--list --format terse`, and again with
    // `--ignored`), then runs each by name: the smoke pass is this binary's one test.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| a == "proxy-server") {
        return proxy_server(&args[2..]);
    }
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("smoke: test");
        }
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this without it.
    let benching = args.iter().any(|a| a == "--bench");
    let scale = if benching { FULL } else { SMOKE };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dir = std::env::temp_dir().join(format!("proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let echo = echo_server();
    let sink = sink_server();
    let direct = Target {
        name: "direct loopback",
        echo,
        sink,
        processes: Vec::new(),
    };
    let (ours_default, api) = ours("fault-proxy", &[], echo, sink, &dir);
    let ours_echo = ours_default.echo;
    // The same proxy without busy polling: what the default's spin buys, and costs.
    let (ours_sleeping, _) = ours(
        "fault-proxy, no busy-poll",
        &["--busy-poll", "0"],
        echo,
        sink,
        &dir,
    );
    let reference = Target {
        name: "reference relay",
        echo: reference_relay(echo),
        sink: reference_relay(sink),
        processes: Vec::new(),
    };
    // One relay thread, against the default of one per core (`default_workers`).
    let (ours_one_worker, _) = ours(
        "fault-proxy, --workers 1",
        &["--workers", "1"],
        echo,
        sink,
        &dir,
    );
    // No yield after each bulk chunk, against the default that yields.
    let (ours_no_yield, _) = ours(
        "fault-proxy, --bulk-yield false",
        &["--bulk-yield", "false"],
        echo,
        sink,
        &dir,
    );
    let mut targets = vec![
        direct,
        ours_default,
        ours_sleeping,
        reference,
        ours_one_worker,
        ours_no_yield,
    ];
    match (kernel_relay::start(echo), kernel_relay::start(sink)) {
        (Ok(echo), Ok(sink)) => targets.push(Target {
            name: "kernel relay (eBPF)",
            echo,
            sink,
            processes: Vec::new(),
        }),
        (Err(why), _) | (_, Err(why)) => {
            assert!(!(benching && ci), "kernel relay: {why}");
            eprintln!("kernel relay (eBPF): missing: {why}");
        }
    }
    targets.extend(fault_cli(echo, sink, &dir, benching && ci));

    let mut samples: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
    // A reference path (the kernel relay) that stalls is dropped from the table; any
    // other path that stalls fails the bench.
    let mut dropped = vec![false; targets.len()];
    for round in 0..scale.rounds {
        for (i, target) in targets.iter().enumerate() {
            if dropped[i] {
                continue;
            }
            let cpu_before = target.cpu();
            let histogram = round_trips(target.echo, scale.round_trips);
            let cpu_us_per_rt = cpu_before.zip(target.cpu()).map(|(before, after)| {
                // Warm-up round trips run too (see `round_trips`).
                let trips = scale.round_trips + scale.round_trips / 10;
                (after - before).as_secs_f64() * 1e6 / trips as f64
            });
            let (proxy_before, bench_before) = (target.cpu(), own_cpu());
            let measured = bulk(target.sink, scale.bulk_bytes).and_then(|one| {
                let (proxy_used, bench_used) = (
                    proxy_before.zip(target.cpu()).map(|(b, a)| a - b),
                    own_cpu() - bench_before,
                );
                bulk_parallel(target.sink, scale.bulk_bytes)
                    .map(|parallel| (one, parallel, proxy_used, bench_used))
            });
            let (mib_per_s, parallel_mib_per_s, proxy_used, bench_used) = match measured {
                Ok(figures) => figures,
                Err(why) if target.name.starts_with("kernel relay") => {
                    eprintln!(
                        "round {}/{} {}: bulk transfer failed ({why}); its row is dropped",
                        round + 1,
                        scale.rounds,
                        target.name
                    );
                    dropped[i] = true;
                    continue;
                }
                Err(why) => panic!("{}: bulk transfer failed: {why}", target.name),
            };
            let mib = scale.bulk_bytes as f64 / (1024.0 * 1024.0);
            let used = bench_used + proxy_used.unwrap_or_default();
            samples[i].push(Figures {
                cpu_us_per_rt,
                p50_us: histogram.value_at_quantile(0.5) as f64 / 1e3,
                p99_us: histogram.value_at_quantile(0.99) as f64 / 1e3,
                mib_per_s,
                parallel_mib_per_s,
                cpu_ms_per_mib: proxy_used.map(|d| d.as_secs_f64() * 1e3 / mib),
                cores: used.as_secs_f64() / (mib / mib_per_s),
            });
            let f = samples[i][samples[i].len() - 1];
            eprintln!(
                "round {}/{} {:<32} p50 {:>7.1} us  p99 {:>7.1} us  proxy CPU {:>9}/trip  {:>5.0} MiB/s  proxy CPU {:>9}/MiB  {:.2} cores  {PARALLEL} conns {:>5.0} MiB/s",
                round + 1,
                scale.rounds,
                target.name,
                f.p50_us,
                f.p99_us,
                cpu_text(cpu_us_per_rt),
                mib_per_s,
                ms_text(f.cpu_ms_per_mib),
                f.cores,
                f.parallel_mib_per_s,
            );
        }
    }
    let (targets, figures): (Vec<Target>, Vec<Figures>) = targets
        .into_iter()
        .zip(samples.iter().zip(dropped))
        .filter(|(_, (_, dropped))| !dropped)
        .map(|(target, (rounds, _))| (target, medians(rounds)))
        .unzip();
    let (toxic_p50, toxic_p99) = latency_toxic(api, ours_echo, scale.toxic_round_trips);
    if !benching {
        eprintln!("smoke pass done (run `cargo bench -p fault-proxy --bench proxy` to measure)");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let direct = figures[0];
    println!("\n| path | RTT p50 | RTT p99 | proxy CPU per round trip | throughput | throughput vs direct | proxy CPU per MiB | cores busy in bulk | {PARALLEL} connections vs direct |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (target, f) in targets.iter().zip(&figures) {
        println!(
            "| {} | {:.1} us | {:.1} us | {} | {:.0} MiB/s | {:.2}x | {} | {:.2} | {:.0} MiB/s, {:.2}x |",
            target.name,
            f.p50_us,
            f.p99_us,
            cpu_text(f.cpu_us_per_rt),
            f.mib_per_s,
            f.mib_per_s / direct.mib_per_s,
            ms_text(f.cpu_ms_per_mib),
            f.cores,
            f.parallel_mib_per_s,
            f.parallel_mib_per_s / direct.parallel_mib_per_s,
        );
    }
    let figure_of = |prefix: &str| {
        targets
            .iter()
            .position(|t| t.name.starts_with(prefix))
            .map(|i| figures[i])
    };
    let (ours_f, sleeping_f, reference_f) = (figures[1], figures[2], figures[3]);
    let fault_f = figure_of("fault-cli");
    let one_worker_f = figure_of("fault-proxy, --workers 1");
    let no_yield_f = figure_of("fault-proxy, --bulk-yield false");
    if let Some(kernel) = figure_of("kernel relay") {
        println!(
            "\nkernel relay / direct: throughput {:.2}x; ours / kernel relay: RTT p50 {:.2}x, throughput {:.2}x",
            kernel.mib_per_s / direct.mib_per_s,
            ours_f.p50_us / kernel.p50_us,
            ours_f.mib_per_s / kernel.mib_per_s
        );
    }
    println!(
        "\nours / reference relay: RTT p50 {:.2}x, RTT p99 {:.2}x, throughput {:.2}x",
        ours_f.p50_us / reference_f.p50_us,
        ours_f.p99_us / reference_f.p99_us,
        ours_f.mib_per_s / reference_f.mib_per_s
    );
    println!(
        "ours / ours without busy-poll: RTT p50 {:.2}x, RTT p99 {:.2}x, throughput {:.2}x",
        ours_f.p50_us / sleeping_f.p50_us,
        ours_f.p99_us / sleeping_f.p99_us,
        ours_f.mib_per_s / sleeping_f.mib_per_s
    );
    if let Some(one) = one_worker_f {
        println!(
            "ours with 1 relay thread / ours with {} (the default): RTT p50 {:.2}x, RTT p99 {:.2}x, throughput {:.2}x, {PARALLEL} connections {:.2}x",
            fault_proxy::server::default_workers(),
            one.p50_us / ours_f.p50_us,
            one.p99_us / ours_f.p99_us,
            one.mib_per_s / ours_f.mib_per_s,
            one.parallel_mib_per_s / ours_f.parallel_mib_per_s
        );
    }
    if let Some(still) = no_yield_f {
        println!(
            "ours / ours without the bulk yield: throughput {:.2}x, {PARALLEL} connections {:.2}x, RTT p50 {:.2}x, RTT p99 {:.2}x",
            ours_f.mib_per_s / still.mib_per_s,
            ours_f.parallel_mib_per_s / still.parallel_mib_per_s,
            ours_f.p50_us / still.p50_us,
            ours_f.p99_us / still.p99_us
        );
    }
    if let Some(peer) = fault_f {
        for (name, f) in [("ours", ours_f), ("ours without busy-poll", sleeping_f)] {
            println!(
                "{name} / fault-cli: RTT p50 {:.2}x, RTT p99 {:.2}x, throughput {:.2}x",
                f.p50_us / peer.p50_us,
                f.p99_us / peer.p99_us,
                f.mib_per_s / peer.mib_per_s
            );
        }
    }
    println!(
        "100 ms latency toxic: p50 {toxic_p50:.2} ms, p99 {toxic_p99:.2} ms ({} round trips)",
        scale.toxic_round_trips
    );
    let targets_met = serde_json::json!({
        "throughput_at_least_0_8x_direct": ours_f.mib_per_s >= 0.8 * direct.mib_per_s,
        // Ahead means at least 5% lower on both figures: less is inside the round-to-round
        // spread of this machine, a tie.
        "ahead_of_fault_cli_latency": fault_f.map(|p| ours_f.p50_us <= 0.95 * p.p50_us && ours_f.p99_us <= 0.95 * p.p99_us),
        "ahead_of_fault_cli_throughput": fault_f.map(|p| ours_f.mib_per_s >= p.mib_per_s),
        "latency_toxic_p99_within_2ms": (toxic_p99 - 100.0).abs() <= 2.0,
        // Not a target of the issue: how close the proxy is to the least a relay costs.
        "within_5pct_of_reference_relay": ours_f.p50_us <= 1.05 * reference_f.p50_us
            && ours_f.mib_per_s >= 0.95 * reference_f.mib_per_s,
    });
    println!("targets: {targets_met}");
    let summary = serde_json::json!({
        "reference_relay": "blocking read/write, 64 KiB buffer, one thread per direction",
        "kernel_relay": "eBPF sk_skb verdict redirect between the sockets of a SOCKHASH",
        "rounds": scale.rounds,
        "round_trips": scale.round_trips,
        "message_bytes": MESSAGE,
        "bulk_bytes": scale.bulk_bytes,
        "parallel_connections": PARALLEL,
        "targets": targets.iter().zip(&figures).map(|(t, f)| serde_json::json!({
            "name": t.name, "rtt_p50_us": f.p50_us, "rtt_p99_us": f.p99_us, "mib_per_s": f.mib_per_s,
            "parallel_mib_per_s": f.parallel_mib_per_s,
            "proxy_cpu_us_per_round_trip": f.cpu_us_per_rt,
            "proxy_cpu_ms_per_mib": f.cpu_ms_per_mib, "cores_busy_in_bulk": f.cores,
        })).collect::<Vec<_>>(),
        "latency_toxic_100ms": { "p50_ms": toxic_p50, "p99_ms": toxic_p99 },
        "targets_met": targets_met,
    });
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("proxy-bench.json");
    if let Err(e) = std::fs::write(&out, summary.to_string()) {
        eprintln!("cannot write {}: {e}", out.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
