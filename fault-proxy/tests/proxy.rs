//! The TCP fault proxy against real sockets: pass-through, every toxic's effect, toxics
//! reaching open connections at once, nothing lost when toxics go, the toxiproxy-compatible
//! API (status codes, JSON shapes, `/metrics`).

use fault_proxy::api::ToxicJson;
use fault_proxy::busy_poll;
use fault_proxy::server::ProxyServer;
use fault_proxy::ProxyInput;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// An echo server on a free port; each connection echoes until EOF, then closes.
fn echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

struct Fixture {
    server: ProxyServer,
    listen: String,
}

fn fixture(name: &str) -> Fixture {
    fixture_polling(name, busy_poll::DEFAULT_WINDOW)
}

/// A proxy `name` whose connections busy-poll for `window` after each exchange.
fn fixture_polling(name: &str, window: Duration) -> Fixture {
    fixture_relaying(name, window, true)
}

/// A proxy whose pass-through busy-polls for `window` and yields the core after each bulk
/// chunk when `bulk_yield`.
fn fixture_relaying(name: &str, window: Duration, bulk_yield: bool) -> Fixture {
    let server = ProxyServer::start(None).unwrap();
    server.registry().set_busy_poll(window);
    server.registry().set_bulk_yield(bulk_yield);
    let view = server
        .registry()
        .create(ProxyInput {
            name: Some(name.into()),
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(echo()),
            ..Default::default()
        })
        .unwrap();
    Fixture {
        server,
        listen: view.listen,
    }
}

impl Fixture {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.listen).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
    fn toxic(&self, proxy: &str, name: &str, kind: &str, stream: &str, attrs: serde_json::Value) {
        self.server
            .registry()
            .add_toxic(
                proxy,
                ToxicJson {
                    name: Some(name.into()),
                    toxic_type: kind.into(),
                    stream: Some(stream.into()),
                    toxicity: None,
                    attributes: attrs,
                }
                .to_toxic()
                .unwrap(),
            )
            .unwrap();
    }
    fn remove(&self, proxy: &str, name: &str) {
        self.server.registry().remove_toxic(proxy, name).unwrap();
    }
}

fn round_trip(s: &mut TcpStream, byte: u8) -> Duration {
    let start = Instant::now();
    s.write_all(&[byte]).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert_eq!(b[0], byte);
    start.elapsed()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` on a clone of `s` from a thread and reads the echo back in full.
fn echo_through(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = s.try_clone().unwrap();
    let out = data.to_vec();
    let sender = std::thread::spawn(move || writer.write_all(&out).unwrap());
    let mut back = vec![0u8; data.len()];
    s.read_exact(&mut back).unwrap();
    sender.join().unwrap();
    back
}

#[test]
fn passes_bytes_through_unchanged() {
    let f = fixture("clean");
    let mut s = f.connect();
    let data = pseudo_random(4 * 1024 * 1024, 7);
    assert!(echo_through(&mut s, &data) == data);
}

/// One connection going from round trips to bulk transfers and back (the pass-through's
/// small-message path, its switch to splice at a full 4 KiB probe and back after a short
/// fill), with busy polling off, at its default and with a long window, and with the bulk
/// yield on and off: every byte arrives, in order.
#[test]
fn pass_through_switches_between_messages_and_bulk_without_loss() {
    for (window, bulk_yield) in [
        (Duration::ZERO, true),
        (Duration::from_micros(200), true),
        (Duration::from_millis(10), true),
        (Duration::from_micros(200), false),
    ] {
        let f = fixture_relaying("switch", window, bulk_yield);
        let mut s = f.connect();
        for (i, size) in [
            1,
            4096,
            4095,
            4097,
            3 * 1024 * 1024 + 5,
            64,
            2 * 1024 * 1024,
            1,
        ]
        .into_iter()
        .enumerate()
        {
            for byte in 0..5 {
                round_trip(&mut s, byte);
            }
            let data = pseudo_random(size, i as u64 + 11);
            assert!(
                echo_through(&mut s, &data) == data,
                "busy-poll {window:?}, bulk yield {bulk_yield}: {size} bytes came back changed"
            );
        }
    }
}

#[test]
fn latency_toxic_adds_its_latency() {
    let f = fixture("lat");
    let mut s = f.connect();
    let base: Vec<Duration> = (0..20).map(|i| round_trip(&mut s, i)).collect();
    f.toxic(
        "lat",
        "lat",
        "latency",
        "downstream",
        serde_json::json!({"latency": 100}),
    );
    let mut rtts: Vec<Duration> = (0..200).map(|i| round_trip(&mut s, i as u8)).collect();
    rtts.sort();
    let p = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    eprintln!(
        "latency 100ms: base max {:?}; min {:?} p50 {:?} p99 {:?} max {:?}",
        base.iter().max().unwrap(),
        p(0.0),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    // Every round trip carries the latency, and none carries it twice. How close it lands
    // (100 ms +/- 2 ms at p99) is a timing figure, measured by the bench on an idle
    // machine (`cargo bench -p fault-proxy --bench proxy`), not asserted here where other
    // tests of this binary run alongside.
    assert!(p(0.0) >= Duration::from_millis(100), "min {:?}", p(0.0));
    // A latency applied twice would put every round trip past 200 ms, the fastest too; a
    // busy machine can hold up any few of them, so the tail is printed, not asserted.
    assert!(p(0.0) < Duration::from_millis(200), "min {:?}", p(0.0));
    assert!(p(0.5) < Duration::from_millis(200), "p50 {:?}", p(0.5));
}

#[test]
fn toxic_reaches_an_open_connection_at_once_and_goes_away_at_once() {
    let f = fixture("live");
    let mut s = f.connect();
    // Fast means under the toxic's 300 ms, which a toxic in place adds to every round
    // trip: the fastest of three tells, however busy the machine.
    let fastest = |s: &mut TcpStream, first: u8| {
        (first..first + 3)
            .map(|i| round_trip(s, i))
            .min()
            .expect("three round trips")
    };
    assert!(fastest(&mut s, 1) < Duration::from_millis(300));
    f.toxic(
        "live",
        "slow",
        "latency",
        "upstream",
        serde_json::json!({"latency": 300}),
    );
    assert!(round_trip(&mut s, 10) >= Duration::from_millis(300));
    f.remove("live", "slow");
    assert!(fastest(&mut s, 20) < Duration::from_millis(300));
}

#[test]
fn bandwidth_toxic_limits_throughput() {
    let f = fixture("bw");
    let mut s = f.connect();
    f.toxic(
        "bw",
        "bw",
        "bandwidth",
        "downstream",
        serde_json::json!({"rate": 100}),
    );
    let data = pseudo_random(100_000, 3);
    let start = Instant::now();
    assert!(echo_through(&mut s, &data) == data);
    let took = start.elapsed();
    eprintln!("100 KB at 100 KB/s took {took:?}");
    // The limit holds (it cannot go faster); how close to 1 s it lands is the machine's.
    assert!(took >= Duration::from_millis(850), "{took:?}");
    assert!(took <= Duration::from_secs(10), "stalled: {took:?}");
}

#[test]
fn timeout_zero_black_holes_and_removal_delivers_the_held_data() {
    let f = fixture("hole");
    let mut s = f.connect();
    f.toxic(
        "hole",
        "partition",
        "timeout",
        "downstream",
        serde_json::json!({"timeout": 0}),
    );
    s.write_all(b"held data").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 9];
    let err = s.read(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    f.remove("hole", "partition");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held data");
}

#[test]
fn timeout_closes_the_connection_after_its_time() {
    let f = fixture("to");
    f.toxic(
        "to",
        "to",
        "timeout",
        "downstream",
        serde_json::json!({"timeout": 300}),
    );
    // From before the connection exists: the toxic's clock cannot start earlier, so the
    // lower bound holds however the test thread is scheduled.
    let start = Instant::now();
    let mut s = f.connect();
    s.write_all(b"x").unwrap();
    let mut buf = [0u8; 1];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no data, then closed");
    assert!(start.elapsed() >= Duration::from_millis(280));
}

#[test]
fn reset_peer_resets_the_connection() {
    let f = fixture("rst");
    f.toxic(
        "rst",
        "rst",
        "reset_peer",
        "downstream",
        serde_json::json!({"timeout": 200}),
    );
    let start = Instant::now(); // before the connection: see the timeout toxic's test
    let mut s = f.connect();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(start.elapsed() >= Duration::from_millis(180));
}

#[test]
fn limit_data_closes_after_the_limit() {
    let f = fixture("limit");
    f.toxic(
        "limit",
        "limit",
        "limit_data",
        "downstream",
        serde_json::json!({"bytes": 10}),
    );
    let mut s = f.connect();
    s.write_all(&[7u8; 100]).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert_eq!(got, vec![7u8; 10]);
}

#[test]
fn slicer_cuts_data_into_delayed_slices() {
    let f = fixture("slice");
    let mut s = f.connect();
    f.toxic(
        "slice",
        "slice",
        "slicer",
        "downstream",
        serde_json::json!({"average_size": 10, "size_variation": 0, "delay": 20_000}),
    );
    let data = pseudo_random(100, 5);
    let start = Instant::now(); // before the data leaves: the slices cannot start earlier
    s.write_all(&data).unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while got.len() < data.len() {
        let mut buf = [0u8; 100];
        let n = s.read(&mut buf).unwrap();
        assert!(n <= 10, "slices of 10 bytes, got {n}");
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, data);
    assert!(reads >= 10);
    assert!(start.elapsed() >= Duration::from_millis(170));
}

#[test]
fn slow_close_delays_the_close() {
    let f = fixture("slowclose");
    f.toxic(
        "slowclose",
        "sc",
        "slow_close",
        "downstream",
        serde_json::json!({"delay": 400}),
    );
    let mut s = f.connect();
    s.write_all(b"bye").unwrap();
    let start = Instant::now();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"bye");
    assert!(
        start.elapsed() >= Duration::from_millis(380),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn down_refuses_new_connections_cuts_open_ones_and_comes_back() {
    let f = fixture("down");
    let mut s = f.connect();
    round_trip(&mut s, 1);
    let registry = f.server.registry();
    registry
        .update(
            "down",
            ProxyInput {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    let mut buf = [0u8; 1];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "open connection cut");
    let refused = TcpStream::connect(&f.listen).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    registry
        .update(
            "down",
            ProxyInput {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let mut again = f.connect();
    round_trip(&mut again, 2);
}

#[test]
fn loss_drops_chunks_at_about_its_rate() {
    let f = fixture("loss");
    f.toxic(
        "loss",
        "loss",
        "loss",
        "upstream",
        serde_json::json!({"probability": 0.3}),
    );
    let mut s = f.connect();
    // One byte per trial, each its own chunk: the trial's byte comes back within 40 ms or
    // counts as lost for now. A byte that comes later (a busy machine) was delivered,
    // not lost: it is counted when it arrives, in a later trial or the final wait.
    s.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
    let trials: u8 = 200;
    let mut delivered: Vec<u8> = Vec::new();
    let mut take = |s: &mut TcpStream, until: Option<u8>| {
        let mut b = [0u8; 256];
        loop {
            match s.read(&mut b) {
                Ok(0) => panic!("the proxy closed the connection"),
                Ok(n) => {
                    for &byte in &b[..n] {
                        // Dropped chunks leave gaps; what comes is in order, once.
                        assert!(
                            delivered.last().is_none_or(|&last| byte > last),
                            "byte {byte} after {delivered:?}"
                        );
                        delivered.push(byte);
                    }
                    if until.is_some_and(|i| delivered.last() == Some(&i)) {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    };
    for i in 0..trials {
        s.write_all(&[i]).unwrap();
        take(&mut s, Some(i));
    }
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    take(&mut s, None);
    let lost = u32::from(trials) - delivered.len() as u32;
    let rate = f64::from(lost) / f64::from(trials);
    eprintln!("loss 0.3: lost {lost}/{trials}");
    assert!((0.15..=0.45).contains(&rate), "rate {rate}");
}

#[test]
fn removing_toxics_mid_stream_loses_nothing() {
    let f = fixture("churn");
    let mut s = f.connect();
    let data = pseudo_random(16 * 1024 * 1024, 11);
    let registry = f.server.registry().clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // The transfer starts once the first toxics are in: the churn overlaps it however the
    // threads are scheduled.
    let (ready, toxics_in) = std::sync::mpsc::channel();
    let mut ready = Some(ready);
    let churn = std::thread::spawn(move || {
        let kinds = [
            ("latency", serde_json::json!({"latency": 5, "jitter": 3})),
            ("timeout", serde_json::json!({"timeout": 0})),
            ("bandwidth", serde_json::json!({"rate": 50_000})),
            (
                "slicer",
                serde_json::json!({"average_size": 1000, "size_variation": 500, "delay": 10}),
            ),
        ];
        let mut rounds = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for (kind, attrs) in &kinds {
                for stream in ["upstream", "downstream"] {
                    let json = ToxicJson {
                        name: Some(format!("{kind}-{stream}")),
                        toxic_type: (*kind).into(),
                        stream: Some(stream.into()),
                        toxicity: None,
                        attributes: attrs.clone(),
                    };
                    registry
                        .add_toxic("churn", json.to_toxic().unwrap())
                        .unwrap();
                }
                if let Some(ready) = ready.take() {
                    ready.send(()).unwrap();
                }
                std::thread::sleep(Duration::from_millis(15));
                for stream in ["upstream", "downstream"] {
                    registry
                        .remove_toxic("churn", &format!("{kind}-{stream}"))
                        .unwrap();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            rounds += 1;
        }
        rounds
    });
    toxics_in.recv().expect("the churn thread started");
    let back = echo_through(&mut s, &data);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(rounds >= 1);
    assert!(back == data, "stream corrupted or lost data");
}

fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let request = ureq::request(method, url);
    let result = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn js(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn api_speaks_toxiproxy_v2() {
    let server = ProxyServer::start(Some("127.0.0.1:0".parse().unwrap())).unwrap();
    let api = format!("http://{}", server.api_addr().unwrap());
    let upstream = echo();
    let (code, body) = http("GET", &format!("{api}/version"), None);
    assert_eq!(code, 200);
    assert!(js(&body)["version"].as_str().unwrap().starts_with("2."));
    let create = format!(r#"{{"name":"redis","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
    let (code, body) = http("POST", &format!("{api}/proxies"), Some(&create));
    assert_eq!(code, 201, "{body}");
    let proxy = js(&body);
    assert_eq!(proxy["name"], "redis");
    assert_eq!(proxy["upstream"], upstream.as_str());
    assert_eq!(proxy["enabled"], true);
    assert_eq!(proxy["toxics"], serde_json::json!([]));
    let listen = proxy["listen"].as_str().unwrap().to_owned();
    assert!(!listen.ends_with(":0"));
    let (code, body) = http("POST", &format!("{api}/proxies"), Some(&create));
    assert_eq!(code, 409);
    assert_eq!(js(&body)["status"], 409);
    assert!(js(&body)["error"].as_str().unwrap().contains("exists"));
    let (code, body) = http("POST", &format!("{api}/proxies"), Some(r#"{"name":"x"}"#));
    assert_eq!(code, 400);
    assert!(js(&body)["error"].as_str().unwrap().contains("upstream"));
    let (code, body) = http("GET", &format!("{api}/proxies/nope"), None);
    assert_eq!((code, js(&body)["status"].clone()), (404, 404.into()));
    let (code, body) = http("GET", &format!("{api}/proxies"), None);
    assert_eq!(code, 200);
    assert_eq!(js(&body)["redis"]["listen"], listen.as_str());

    let toxic = r#"{"name":"lat","type":"latency","stream":"upstream","toxicity":1.0,"attributes":{"latency":10,"jitter":1}}"#;
    let (code, body) = http("POST", &format!("{api}/proxies/redis/toxics"), Some(toxic));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        js(&body),
        serde_json::json!({"name":"lat","type":"latency","stream":"upstream","toxicity":1.0,"attributes":{"latency":10,"jitter":1}})
    );
    let (code, _) = http("POST", &format!("{api}/proxies/redis/toxics"), Some(toxic));
    assert_eq!(code, 409);
    let (code, body) = http(
        "POST",
        &format!("{api}/proxies/redis/toxics"),
        Some(r#"{"type":"nonsense"}"#),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(
        "POST",
        &format!("{api}/proxies/redis/toxics"),
        Some(r#"{"type":"latency","attributes":{"latncy":5}}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("attributes.latncy"));
    // Default name <type>_<stream>.
    let (code, body) = http(
        "POST",
        &format!("{api}/proxies/redis/toxics"),
        Some(r#"{"type":"bandwidth","attributes":{"rate":1000}}"#),
    );
    assert_eq!(code, 200);
    assert_eq!(js(&body)["name"], "bandwidth_downstream");
    let (code, body) = http(
        "POST",
        &format!("{api}/proxies/redis/toxics/lat"),
        Some(r#"{"attributes":{"latency":20}}"#),
    );
    assert_eq!(code, 200);
    assert_eq!(
        js(&body)["attributes"],
        serde_json::json!({"latency":20,"jitter":1})
    );
    let (code, body) = http("GET", &format!("{api}/proxies/redis/toxics"), None);
    assert_eq!(code, 200);
    assert_eq!(js(&body).as_array().unwrap().len(), 2);
    let (code, body) = http("GET", &format!("{api}/proxies/redis/toxics/lat"), None);
    assert_eq!((code, js(&body)["type"].clone()), (200, "latency".into()));

    // Traffic, then metrics.
    let mut s = TcpStream::connect(&listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"0123456789").unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    // The relay counts the bytes it wrote after writing them: the client can read them
    // before the counter moves, so wait for it (bounded) rather than race it.
    let counted = r#"chaos_proxy_bytes_total{proxy="redis",direction="downstream"} 10"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (code, metrics) = http("GET", &format!("{api}/metrics"), None);
        assert_eq!(code, 200);
        if metrics.contains(counted) || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        metrics.contains(r#"chaos_proxy_bytes_total{proxy="redis",direction="upstream"} 10"#),
        "{metrics}"
    );
    assert!(metrics.contains(counted), "{metrics}");
    assert!(metrics.contains(r#"chaos_proxy_connections_total{proxy="redis"} 1"#));
    assert!(metrics.contains(r#"chaos_proxy_connections_open{proxy="redis"} 1"#));
    assert!(metrics.contains(r#"chaos_proxy_toxics_active{proxy="redis"} 2"#));

    // Disable / enable through POST /proxies/{name}.
    let (code, body) = http(
        "POST",
        &format!("{api}/proxies/redis"),
        Some(r#"{"enabled":false}"#),
    );
    assert_eq!((code, js(&body)["enabled"].clone()), (200, false.into()));
    assert!(TcpStream::connect(&listen).is_err());
    // Reset: enabled again, toxics gone.
    let (code, _) = http("POST", &format!("{api}/reset"), None);
    assert_eq!(code, 204);
    let (_, body) = http("GET", &format!("{api}/proxies/redis"), None);
    assert_eq!(js(&body)["enabled"], true);
    assert_eq!(js(&body)["toxics"], serde_json::json!([]));
    assert!(TcpStream::connect(&listen).is_ok());

    let (code, _) = http("DELETE", &format!("{api}/proxies/redis/toxics/lat"), None);
    assert_eq!(code, 404);
    let (code, body) = http(
        "POST",
        &format!("{api}/populate"),
        Some(&format!(
            r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{upstream}"}},{{"name":"redis","listen":"{listen}","upstream":"{upstream}"}}]"#
        )),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(js(&body)["proxies"].as_array().unwrap().len(), 2);
    let (code, _) = http("DELETE", &format!("{api}/proxies/redis"), None);
    assert_eq!(code, 204);
    let (code, _) = http("DELETE", &format!("{api}/proxies/redis"), None);
    assert_eq!(code, 404);
    let (code, body) = http("POST", &format!("{api}/proxies"), Some("not json"));
    assert_eq!(code, 400);
    assert_eq!(js(&body)["status"], 400);
}
