//! Protocol-aware database faults against a real redis-server, started by the test in a
//! temp dir on a free port, driven by a real client (redis) through `DbFaults::relay`.
//! (The PostgreSQL relay's tests are chaos-runner's `tests/dbproto.rs`: they start
//! PostgreSQL with the runner's own setup code.)

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_proxy::dbproto::{Action, DbFaults, Protocol, RelayEnd, Rule};
use support::Redis;
use tokio::net::{TcpListener, TcpStream};

/// The tiny proxy: every accepted connection goes to `DbFaults::relay`; how each ended
/// is sent on the returned channel.
async fn proxy(
    faults: Arc<DbFaults>,
    upstream: SocketAddr,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<RelayEnd>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let faults = Arc::clone(&faults);
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(upstream).await else {
                    return;
                };
                if let Ok(end) = faults.relay(client, upstream).await {
                    let _ = tx.send(end);
                }
            });
        }
    });
    (addr, rx)
}

async fn redis_conn(addr: SocketAddr) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let start = Instant::now();
    loop {
        match client.get_multiplexed_async_connection().await {
            Ok(c) => return c,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis did not start: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_errors_latency_and_pipeline_order() {
    let Some(server) = Redis::start() else { return };
    let _ready = redis_conn(server.addr()).await;
    let faults = DbFaults::new(Protocol::Redis);
    let (addr, _ends) = proxy(Arc::clone(&faults), server.addr()).await;
    let mut con = redis_conn(addr).await;
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }

    // Each error prefix comes back as the client's own error kind.
    for (line, kind) in [
        (
            "READONLY You can't write against a read only replica.",
            redis::ErrorKind::ReadOnly,
        ),
        (
            "LOADING Redis is loading the dataset in memory",
            redis::ErrorKind::BusyLoadingError,
        ),
        ("ERR injected", redis::ErrorKind::ResponseError),
    ] {
        faults
            .set_rule(
                Rule::new(
                    "err",
                    Some("^GET k1$"),
                    Action::RedisError(line.into()),
                    1.0,
                )
                .unwrap(),
            )
            .unwrap();
        let e = redis::cmd("GET")
            .arg("k1")
            .query_async::<String>(&mut con)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{line}: {e:?}");
        let v: String = redis::cmd("GET")
            .arg("k2")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, "v2");
    }
    // The write the rule stood for never reached the server.
    faults
        .set_rule(
            Rule::new(
                "ro",
                Some("^SET "),
                Action::RedisError("READONLY replica".into()),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let e = redis::cmd("SET")
        .arg("k2")
        .arg("changed")
        .query_async::<()>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::ReadOnly);
    faults.clear();
    let v: String = redis::cmd("GET")
        .arg("k2")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(v, "v2");

    // Pipelined on one connection: 20 GETs in flight at once, some answered with the
    // injected error; every reply still belongs to its own request.
    faults
        .set_rule(
            Rule::new(
                "some",
                Some("^GET k(3|7|11|19)$"),
                Action::RedisError("LOADING busy".into()),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    for _round in 0..5 {
        let mut tasks = Vec::new();
        for i in 0..20 {
            let mut c = con.clone();
            tasks.push(tokio::spawn(async move {
                (
                    i,
                    redis::cmd("GET")
                        .arg(format!("k{i}"))
                        .query_async::<String>(&mut c)
                        .await,
                )
            }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if [3, 7, 11, 19].contains(&i) {
                assert_eq!(r.unwrap_err().kind(), redis::ErrorKind::BusyLoadingError);
            } else {
                assert_eq!(r.unwrap(), format!("v{i}"));
            }
        }
    }
    // The same through an explicit pipeline.
    let (a, b): (String, String) = redis::pipe()
        .get("k0")
        .get("k1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("v0", "v1"));
    let e = redis::pipe()
        .get("k0")
        .get("k3")
        .get("k4")
        .query_async::<(String, String, String)>(&mut con)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::BusyLoadingError);
    faults.clear();

    // Latency.
    faults
        .set_rule(
            Rule::new(
                "slow",
                Some("^GET k5$"),
                Action::Delay(Duration::from_millis(300)),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let start = Instant::now();
    let v: String = redis::cmd("GET")
        .arg("k5")
        .query_async(&mut con)
        .await
        .unwrap();
    let slow = start.elapsed();
    assert_eq!(v, "v5");
    let start = Instant::now();
    let _: String = redis::cmd("GET")
        .arg("k6")
        .query_async(&mut con)
        .await
        .unwrap();
    let quick = start.elapsed();
    eprintln!("delayed GET {slow:?}, plain GET {quick:?}");
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
    assert!(quick < Duration::from_millis(300), "{quick:?}");
    assert_eq!(faults.hits("slow"), Some(1));
}
