//! Protocol-aware database faults against a real PostgreSQL 15, started by the test in a
//! temp dir on a free port with the runner's own setup code, driven by a real client
//! (tokio-postgres) through `DbFaults::relay`, the runner's fault types and the
//! `chaos-runner proxy` server. (The Redis relay's test is fault-proxy's.)

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_proxy::dbproto::{Action, DbFaults, PgError, Protocol, RelayEnd, Rule, Severity};
use support::free_port;
use support::servers::Postgres;
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

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

fn pg_config(addr: SocketAddr) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres application_name=dbproto-test connect_timeout=10",
        addr.port()
    )
}

async fn pg_connect(addr: SocketAddr) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&pg_config(addr), NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Waits until the server answers a query (it takes a moment to start).
async fn pg_ready(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if let Ok(c) = pg_connect(addr).await {
            if c.simple_query("SELECT 1").await.is_ok() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "postgres did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pg_error(code: &str, severity: Severity) -> Action {
    Action::PgError(PgError {
        sqlstate: code.into(),
        severity,
        message: format!("injected {code}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_errors_latency_and_rates() {
    let Some(pg) = Postgres::start() else { return };
    pg_ready(pg.addr()).await;
    let faults = DbFaults::new(Protocol::Postgres);
    let (addr, _ends) = proxy(Arc::clone(&faults), pg.addr()).await;
    let client = pg_connect(addr).await.unwrap();
    client
        .batch_execute("CREATE TABLE saves (id int PRIMARY KEY, v text)")
        .await
        .unwrap();

    // A matching statement gets SQLSTATE 40001 as a real DbError, extended protocol and
    // simple query alike; a non-matching one passes.
    faults
        .set_rule(
            Rule::new(
                "serialization",
                Some("(?i)update saves"),
                pg_error("40001", Severity::Error),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let err = client
        .execute("UPDATE saves SET v = $1 WHERE id = $2", &[&"x", &1i32])
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a DbError, not a broken socket");
    assert_eq!(db.code(), &SqlState::T_R_SERIALIZATION_FAILURE);
    assert_eq!(db.message(), "injected 40001");
    let err = client
        .simple_query("update saves set v = 'y'")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    let rows = client.query("SELECT $1::int + 1", &[&41i32]).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 42);
    // A prepared statement executed again (no new Parse) is still matched.
    let stmt = client.prepare("UPDATE saves SET v = 'z'").await.unwrap();
    for _ in 0..3 {
        let e = client.execute(&stmt, &[]).await.unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    }

    // Inside a transaction the server's transaction fails with the injected error, just
    // as the client is told: its earlier insert does not survive a COMMIT.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO saves VALUES (7, 'a')", &[])
        .await
        .unwrap();
    let e = tx
        .execute("UPDATE saves SET v = 'b' WHERE id = 7", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    let next = tx.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(next.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    tx.commit().await.ok();
    let n: i64 = client
        .query_one("SELECT count(*) FROM saves", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the failed transaction must not commit");

    // Removing the rule takes effect on the open connection at once.
    assert!(faults.remove_rule("serialization"));
    client
        .execute("UPDATE saves SET v = 'ok'", &[])
        .await
        .unwrap();

    // Rate 0.5: about half of 200 statements fail, every one a proper 40001.
    faults
        .set_rule(
            Rule::new(
                "half",
                Some("chaos_rate"),
                pg_error("40001", Severity::Error),
                0.5,
            )
            .unwrap(),
        )
        .unwrap();
    let mut failed = 0;
    for i in 0..200i32 {
        match client.query("SELECT $1::int AS chaos_rate", &[&i]).await {
            Ok(rows) => assert_eq!(rows[0].get::<_, i32>(0), i),
            Err(e) => {
                assert_eq!(e.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
                failed += 1;
            }
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(faults.hits("half"), Some(failed));
    faults.clear();

    // Latency: a matching statement takes at least the delay, others do not get it.
    faults
        .set_rule(
            Rule::new(
                "slow",
                Some("pg_sleep_target"),
                Action::Delay(Duration::from_millis(400)),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let start = Instant::now();
    client
        .query("SELECT 1 AS pg_sleep_target", &[])
        .await
        .unwrap();
    let slow = start.elapsed();
    let start = Instant::now();
    client.query("SELECT 1 AS quick", &[]).await.unwrap();
    let quick = start.elapsed();
    eprintln!("delayed statement {slow:?}, plain statement {quick:?}");
    assert!(slow >= Duration::from_millis(400), "{slow:?}");
    assert!(quick < Duration::from_millis(400), "{quick:?}");

    // A FATAL admin shutdown (57P01) ends the session after the error.
    faults.clear();
    faults
        .set_rule(
            Rule::new(
                "shutdown",
                Some("chaos_fatal"),
                pg_error("57P01", Severity::Fatal),
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let e = client
        .simple_query("SELECT 'chaos_fatal'")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::ADMIN_SHUTDOWN));
    let after = client.simple_query("SELECT 1").await.unwrap_err();
    assert!(after.is_closed(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reset_refuse_drop_and_tls_request() {
    let Some(pg) = Postgres::start() else { return };
    pg_ready(pg.addr()).await;
    let faults = DbFaults::new(Protocol::Postgres);
    let (addr, mut ends) = proxy(Arc::clone(&faults), pg.addr()).await;

    // Reset mid-query: a connection error, not a DbError.
    let client = pg_connect(addr).await.unwrap();
    faults
        .set_rule(Rule::new("reset", Some("chaos_reset"), Action::Reset, 1.0).unwrap())
        .unwrap();
    let e = client
        .query("SELECT pg_sleep(0.2), 'chaos_reset'", &[])
        .await
        .unwrap_err();
    assert!(e.as_db_error().is_none(), "{e:?}");
    assert!(client.is_closed() || client.simple_query("SELECT 1").await.is_err());
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ends.recv().await {
                Some(RelayEnd::Reset(rule)) => break rule,
                Some(_) => continue,
                None => panic!("proxy gone"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, "reset");
    faults.clear();

    // Refused at startup: 53300 at connect, as a DbError.
    faults
        .set_rule(
            Rule::new(
                "full",
                Some("application_name=dbproto-test"),
                Action::Refuse {
                    sqlstate: "53300".into(),
                    message: "sorry, too many clients already".into(),
                },
                1.0,
            )
            .unwrap(),
        )
        .unwrap();
    let Err(e) = pg_connect(addr).await else {
        panic!("connect must fail")
    };
    assert_eq!(e.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e:?}");
    // A connection the pattern does not match is let in.
    let other = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres application_name=other",
        addr.port()
    );
    let (c, conn) = tokio_postgres::connect(&other, NoTls).await.unwrap();
    tokio::spawn(conn);
    c.simple_query("SELECT 1").await.unwrap();
    faults.clear();

    // Dropped at startup: an I/O error, no DbError.
    faults
        .set_rule(Rule::new("drop", None, Action::Drop, 1.0).unwrap())
        .unwrap();
    let Err(e) = pg_connect(addr).await else {
        panic!("connect must fail")
    };
    assert!(e.as_db_error().is_none(), "{e:?}");
    faults.clear();

    // An SSLRequest goes to the server and its answer ('N' here: no TLS configured)
    // comes back; the session then goes on in the clear.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    assert_eq!(raw.read_u8().await.unwrap(), b'N');
    pg_connect(addr)
        .await
        .unwrap()
        .simple_query("SELECT 1")
        .await
        .unwrap();
    assert!(faults.stats().connections >= 5);
}

/// The `postgres-error` fault type end to end: parsed from an experiment, built by the
/// registry, injected on the run's own proxy (`protocol: postgres`), seen by a real
/// client, reverted, gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_error_fault_type_on_the_runs_proxy() {
    use chaos_runner::faults::{build, FaultContext, FaultRecord};
    use chaos_runner::spec::{params, FaultType, Problems};
    let Some(pg) = Postgres::start() else { return };
    pg_ready(pg.addr()).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let text = format!(
        "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: db-error-test\nspec:\n  target:\n    backend: local\n  faults:\n    - name: conflicts\n      type: postgres-error\n      selector:\n        proxy: {{ listen: \"{listen}\", upstream: \"{}\", protocol: postgres }}\n      parameters: {{ pattern: \"chaos_fault_type\", sqlstate: \"40P01\" }}\n      duration: 30s\n",
        pg.addr()
    );
    let exp = chaos_runner::spec::parse_experiment("db-error-test.yaml", &text).unwrap();
    let spec = &exp.spec.faults[0];
    let mut problems = Problems::default();
    let value = serde_json::to_value(&spec.parameters).unwrap();
    let p = params::parse(FaultType::PostgresError, "p", value, &mut problems)
        .unwrap_or_else(|| panic!("{:?}", problems.found()));
    let ctx = FaultContext::new("r1", "/bin/false");
    let mut fault = build(&ctx, &unchecked(spec, &p), &p, Duration::from_secs(30));
    let record = fault.inject().unwrap();
    assert!(matches!(
        &record,
        FaultRecord::ProxyToxic { api: None, toxic, .. } if toxic == "chaos-r1-conflicts"
    ));
    let client = pg_connect(listen).await.unwrap();
    let e = client
        .query("SELECT 1 AS chaos_fault_type", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::T_R_DEADLOCK_DETECTED));
    client.query("SELECT 1 AS other", &[]).await.unwrap();
    // A second PostgreSQL proxy of the same run has rules of its own: the fault on the
    // first leaves it alone.
    let other_listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    ctx.proxies
        .ensure(
            &other_listen.to_string(),
            &pg.addr().to_string(),
            chaos_runner::spec::ProxyProtocol::Postgres,
        )
        .unwrap();
    let other = pg_connect(other_listen).await.unwrap();
    other
        .query("SELECT 1 AS chaos_fault_type", &[])
        .await
        .expect("the other proxy has no rule");
    fault.revert().unwrap();
    fault.verify_reverted().unwrap();
    // It fired once (the other query and the other proxy did not match).
    assert_eq!(
        fault.measurements(),
        vec![("rule_hits".to_owned(), "1".to_owned())]
    );
    client
        .query("SELECT 1 AS chaos_fault_type", &[])
        .await
        .unwrap();
    // After a crash, the record needs nothing more: the proxy died with its runner.
    chaos_runner::faults::revert_from_journal("r1", "conflicts", Some(&record)).unwrap();
    // A TCP toxic on this protocol proxy would be ignored by its relay: it is refused
    // rather than reported as injected.
    let mut timeout_spec = spec.clone();
    timeout_spec.fault_type = FaultType::ProxyTimeout;
    timeout_spec.name = "black-hole".into();
    let mut problems = Problems::default();
    let p = params::parse(
        FaultType::ProxyTimeout,
        "p",
        serde_json::json!({ "timeout": "0s" }),
        &mut problems,
    )
    .unwrap_or_else(|| panic!("{:?}", problems.found()));
    let mut toxic = build(
        &ctx,
        &unchecked(&timeout_spec, &p),
        &p,
        Duration::from_secs(30),
    );
    let refused = toxic.inject().unwrap_err().to_string();
    assert!(refused.contains("toxics need a tcp proxy"), "{refused}");
    client.query("SELECT 1 AS after", &[]).await.unwrap();
    ctx.proxies.shutdown();
}

/// One admin API call from async test code (the HTTP client blocks).
fn admin(
    proxy: &support::proxy_process::ProxyProcess,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string());
    let (code, text) = tokio::task::block_in_place(|| proxy.call(method, path, body.as_deref()));
    let value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (code, value)
}

/// The address proxy `name` of a running proxy server bound.
fn bound(proxy: &support::proxy_process::ProxyProcess, name: &str) -> SocketAddr {
    let (code, body) = proxy.get(&format!("/proxies/{name}"));
    assert_eq!(code, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    view["listen"].as_str().unwrap().parse().unwrap()
}

/// How long one query takes, and whether it failed with which SQLSTATE.
async fn timed(client: &Client, sql: &str) -> (Duration, Option<SqlState>) {
    let start = Instant::now();
    let result = client.simple_query(sql).await;
    (
        start.elapsed(),
        result.err().and_then(|e| e.code().cloned()),
    )
}

/// `chaos-runner proxy` as a real process takes database fault rules at start (its
/// config) and over its admin API (`/proxies/{p}/dbfaults`): they act on a real
/// PostgreSQL client, bad rules get a 400 naming the field, rules expire by themselves,
/// `DELETE` and `POST /reset` remove them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_proxy_takes_database_faults_in_its_config_and_over_its_api() {
    let Some(pg) = Postgres::start() else { return };
    let dir = support::TempDir::new("dbfaults-api");
    let config = dir.path().join("proxies.json");
    // Port 0: the proxy binds a free port itself (no race with parallel tests); the
    // address is read back from its API.
    let proxies = serde_json::json!([
        { "name": "saves-db", "listen": "127.0.0.1:0", "upstream": pg.addr().to_string(),
          "protocol": "postgres",
          "dbfaults": [{ "name": "boot-latency", "type": "postgres-latency",
                         "attributes": { "pattern": "boot_marker", "delay": "200ms" },
                         "expiresIn": "8s" }] },
        { "name": "plain", "listen": "127.0.0.1:0", "upstream": pg.addr().to_string() },
    ]);
    std::fs::write(&config, proxies.to_string()).unwrap();
    let proxy = support::proxy_process::ProxyProcess::start(Some(&config));
    let listen = bound(&proxy, "saves-db");
    let client = pg_connect(listen).await.unwrap();

    // The rule from the config is in force from the first connection, until it expires.
    let (took, failed) = timed(&client, "SELECT 1 AS boot_marker").await;
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert_eq!(failed, None);
    let (code, list) = admin(&proxy, "GET", "/proxies/saves-db/dbfaults", None);
    assert_eq!(code, 200, "{list}");
    assert_eq!(list[0]["name"], "boot-latency");
    assert_eq!(list[0]["type"], "postgres-latency");
    assert_eq!(list[0]["hits"], 1);
    assert!(list[0]["expiresInMs"].as_u64().unwrap() <= 8000, "{list}");

    // A rule over the API acts on the open connection's next statement.
    let rule = serde_json::json!({
        "name": "conflicts", "type": "postgres-error",
        "attributes": { "pattern": "api_marker", "sqlstate": "40001" },
    });
    let (code, view) = admin(&proxy, "POST", "/proxies/saves-db/dbfaults", Some(rule));
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["attributes"]["sqlstate"], "40001");
    assert!(view.get("expiresInMs").is_none(), "no expiry asked: {view}");
    let (_, failed) = timed(&client, "SELECT 1 AS api_marker").await;
    assert_eq!(failed, Some(SqlState::T_R_SERIALIZATION_FAILURE));
    let (_, failed) = timed(&client, "SELECT 1 AS other").await;
    assert_eq!(failed, None, "only matching statements fail");

    // Bad rules: 400 naming the field; unknown proxy 404; a tcp proxy takes none.
    for (path, body, want) in [
        (
            "/proxies/saves-db/dbfaults",
            serde_json::json!({"name": "x", "type": "redis-error", "attributes": {"pattern": "."}}),
            "type: `redis-error` is not a fault type of this postgres proxy",
        ),
        (
            "/proxies/saves-db/dbfaults",
            serde_json::json!({"name": "x", "type": "postgres-error", "attributes": {"pattern": ".", "sqlstate": "4001"}}),
            "attributes.sqlstate",
        ),
        (
            "/proxies/saves-db/dbfaults",
            serde_json::json!({"name": "x", "type": "postgres-latency", "attributes": {"pattern": "(", "delay": "1s"}}),
            "attributes.pattern",
        ),
        (
            "/proxies/saves-db/dbfaults",
            serde_json::json!({"name": "x", "type": "postgres-reset", "attributes": {"pattern": "."}, "expiresIn": "0s"}),
            "expiresIn",
        ),
        (
            "/proxies/saves-db/dbfaults",
            serde_json::json!({"name": "x", "type": "postgres-reset", "attributes": {"pattern": "."}, "toxicity": 1}),
            "unknown field `toxicity`",
        ),
        (
            "/proxies/plain/dbfaults",
            serde_json::json!({"name": "x", "type": "postgres-reset", "attributes": {"pattern": "."}}),
            "relays plain tcp",
        ),
    ] {
        let (code, answer) = admin(&proxy, "POST", path, Some(body.clone()));
        assert_eq!(code, 400, "{body} -> {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{body} -> {message}");
    }
    let (code, _) = admin(&proxy, "GET", "/proxies/nope/dbfaults", None);
    assert_eq!(code, 404);
    assert_eq!(
        proxy.names("/proxies/saves-db/dbfaults"),
        ["boot-latency", "conflicts"],
        "a refused rule changes nothing"
    );

    // DELETE removes it at once; a second DELETE is a 404.
    let (code, _) = admin(
        &proxy,
        "DELETE",
        "/proxies/saves-db/dbfaults/conflicts",
        None,
    );
    assert_eq!(code, 204);
    let (_, failed) = timed(&client, "SELECT 1 AS api_marker").await;
    assert_eq!(failed, None);
    let (code, _) = admin(
        &proxy,
        "DELETE",
        "/proxies/saves-db/dbfaults/conflicts",
        None,
    );
    assert_eq!(code, 404);

    // The config's rule expired by itself (8 s after the start: long enough for the checks
    // above to run while it is in force, however busy the machine).
    support::wait_for(Duration::from_secs(30), "the boot rule expires", || {
        tokio::task::block_in_place(|| proxy.names("/proxies/saves-db/dbfaults").is_empty())
    });
    // A rule still in force would delay every such query by its 200 ms, the fastest too.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        fastest = fastest.min(timed(&client, "SELECT 1 AS boot_marker").await.0);
    }
    assert!(fastest < Duration::from_millis(200), "{fastest:?}");

    // POST /reset removes database fault rules as it removes toxics.
    let rule = serde_json::json!({"name": "r", "type": "postgres-reset", "attributes": {"pattern": "never_sent"}});
    assert_eq!(
        admin(&proxy, "POST", "/proxies/saves-db/dbfaults", Some(rule)).0,
        200
    );
    assert_eq!(admin(&proxy, "POST", "/reset", None).0, 204);
    assert!(proxy.names("/proxies/saves-db/dbfaults").is_empty());

    // Switching the proxy to plain TCP drops its rules: switching back does not revive them.
    let rule = serde_json::json!({"name": "r", "type": "postgres-reset", "attributes": {"pattern": "never_sent"}});
    assert_eq!(
        admin(&proxy, "POST", "/proxies/saves-db/dbfaults", Some(rule)).0,
        200
    );
    for protocol in ["tcp", "postgres"] {
        let body = serde_json::json!({ "protocol": protocol });
        let (code, view) = admin(&proxy, "POST", "/proxies/saves-db", Some(body));
        assert_eq!(code, 200, "{view}");
    }
    assert!(proxy.names("/proxies/saves-db/dbfaults").is_empty());
}

/// The `api` form of a database fault (`proxy: {name, api}`): preflight checks the
/// server's proxy speaks the fault's protocol, the rule goes over the admin API with the
/// fault's expiry, revert and `recover` (from the journal record) delete it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_fault_on_a_running_proxy_server_over_its_api() {
    use chaos_runner::faults::{build, FaultContext, FaultRecord};
    use chaos_runner::spec::{params, FaultType, Problems};
    let Some(pg) = Postgres::start() else { return };
    let dir = support::TempDir::new("dbfaults-api-form");
    let config = dir.path().join("proxies.json");
    let proxies = serde_json::json!([
        { "name": "saves-db", "listen": "127.0.0.1:0", "upstream": pg.addr().to_string(), "protocol": "postgres" },
        { "name": "plain", "listen": "127.0.0.1:0", "upstream": pg.addr().to_string() },
    ]);
    std::fs::write(&config, proxies.to_string()).unwrap();
    let proxy = support::proxy_process::ProxyProcess::start(Some(&config));
    let listen = bound(&proxy, "saves-db");
    let client = pg_connect(listen).await.unwrap();
    let experiment = |proxy_name: &str| {
        format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: Experiment\nmetadata:\n  name: db-api-test\nspec:\n  target:\n    backend: local\n  faults:\n    - name: api-errors\n      type: postgres-error\n      selector:\n        proxy: {{ name: {proxy_name}, api: \"{}\" }}\n      parameters: {{ pattern: \"api_form\", sqlstate: \"57P01\", severity: FATAL }}\n      duration: 30s\n",
            proxy.api
        )
    };
    let fault_for = |proxy_name: &str| {
        let exp = chaos_runner::spec::parse_experiment("db-api-test.yaml", &experiment(proxy_name))
            .unwrap();
        let spec = exp.spec.faults[0].clone();
        let mut problems = Problems::default();
        let value = serde_json::to_value(&spec.parameters).unwrap();
        let p = params::parse(FaultType::PostgresError, "p", value, &mut problems)
            .unwrap_or_else(|| panic!("{:?}", problems.found()));
        build(
            &FaultContext::new("r2", "/bin/false"),
            &unchecked(&spec, &p),
            &p,
            Duration::from_secs(30),
        )
    };

    // A tcp proxy is refused before anything is touched.
    let wrong = fault_for("plain");
    let refused = tokio::task::block_in_place(|| wrong.preflight())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("relays tcp"), "{refused}");

    let mut fault = fault_for("saves-db");
    tokio::task::block_in_place(|| fault.preflight()).unwrap();
    let planned = fault.planned_record().expect("journaled with the intent");
    let record = tokio::task::block_in_place(|| fault.inject()).unwrap();
    assert_eq!(planned, record);
    assert!(matches!(
        &record,
        FaultRecord::ProxyDbFault { proxy, rule, .. } if proxy == "saves-db" && rule == "chaos-r2-api-errors"
    ));
    let (code, list) = admin(&proxy, "GET", "/proxies/saves-db/dbfaults", None);
    assert_eq!(code, 200);
    assert_eq!(list[0]["name"], "chaos-r2-api-errors");
    let expires = list[0]["expiresInMs"].as_u64().expect("the fault's expiry");
    assert!((25_000..=30_000).contains(&expires), "{expires}");
    let (_, failed) = timed(&client, "SELECT 1 AS api_form").await;
    assert_eq!(failed, Some(SqlState::ADMIN_SHUTDOWN));
    tokio::task::block_in_place(|| {
        fault.revert().unwrap();
        fault.verify_reverted().unwrap();
    });
    assert_eq!(
        fault.measurements(),
        vec![("rule_hits".to_owned(), "1".to_owned())]
    );
    assert!(proxy.names("/proxies/saves-db/dbfaults").is_empty());
    let client = pg_connect(listen).await.unwrap();
    assert_eq!(timed(&client, "SELECT 1 AS api_form").await.1, None);

    // A runner that died with the rule set: `recover` deletes it from the record.
    let mut again = fault_for("saves-db");
    let record = tokio::task::block_in_place(|| again.inject()).unwrap();
    assert_eq!(proxy.names("/proxies/saves-db/dbfaults").len(), 1);
    tokio::task::block_in_place(|| {
        chaos_runner::faults::revert_from_journal("r2", "api-errors", Some(&record)).unwrap()
    });
    assert!(proxy.names("/proxies/saves-db/dbfaults").is_empty());
    assert_eq!(timed(&client, "SELECT 1 AS api_form").await.1, None);
}

/// A fault built from a spec and parameters parsed here, past the file-level validation
/// (these tests reach the checks a fault makes itself, at inject).
fn unchecked(
    spec: &chaos_runner::spec::FaultSpec,
    p: &chaos_runner::spec::FaultParams,
) -> chaos_runner::spec::ValidatedFault {
    chaos_runner::spec::ValidatedFault {
        spec: spec.clone(),
        steps: vec![p.clone()],
        network: None,
    }
}
