//! The game service end to end: the real binary, a real PostgreSQL 15 started by each test,
//! real HTTP over sockets; the WebSocket lobby's tests are in the `lobby` module.

mod lobby;
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{
    client, closed_port_url, eventually, parts, test_config, GameServer, Postgres, TempDir,
};

async fn saved_in_db(pg: &Postgres, player: &str) -> Option<(serde_json::Value, i64)> {
    let db = pg.client().await.ok()?;
    let row = db
        .query_opt(
            "SELECT data::text, version FROM player_saves WHERE player_id = $1",
            &[&player],
        )
        .await
        .ok()??;
    let text: String = row.get(0);
    Some((serde_json::from_str(&text).ok()?, row.get(1)))
}

async fn put(
    server: &GameServer,
    player: &str,
    body: &serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    parts(
        client()
            .put(server.url(&format!("/v1/players/{player}/save")))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(server: &GameServer, path: &str) -> (u16, Option<String>, serde_json::Value) {
    parts(client().get(server.url(path)).send().await.unwrap()).await
}

async fn post(
    server: &GameServer,
    path: &str,
    body: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    parts(
        client()
            .post(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_round_trip_through_postgres() {
    let Some(pg) = Postgres::start() else { return };
    pg.ready().await;
    let dir = TempDir::new("roundtrip");
    let server = GameServer::start(
        dir.path(),
        &test_config(&dir.path().join("spool"), ""),
        &pg.url(),
    )
    .await;

    let (status, _, body) = put(&server, "p1", &json!({"level": 1, "gold": 10})).await;
    assert_eq!(status, 200, "{body} {}", server.log_text());
    assert_eq!(body["stored"], "database");
    assert_eq!(body["version"], 1);
    let (status, _, body) = put(&server, "p1", &json!({"level": 2, "gold": 30})).await;
    assert_eq!((status, &body["version"]), (200, &json!(2)));

    let (status, _, body) = get(&server, "/v1/players/p1/save").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"data": {"level": 2, "gold": 30}, "version": 2, "source": "database"})
    );
    assert_eq!(
        saved_in_db(&pg, "p1").await,
        Some((json!({"level": 2, "gold": 30}), 2))
    );

    // Never saved, too big, not an object.
    assert_eq!(get(&server, "/v1/players/p9/save").await.0, 404);
    let big = json!({ "blob": "x".repeat(70 * 1024) });
    assert_eq!(put(&server, "p1", &big).await.0, 413);
    assert_eq!(put(&server, "p1", &json!([1, 2])).await.0, 400);
    assert_eq!(put(&server, "bad%20id", &json!({})).await.0, 400);
    assert_eq!(put(&server, "p%3Bdrop", &json!({})).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_queues_saves_serves_cache_and_drains_when_back() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    pg.ready().await;
    let dir = TempDir::new("down");
    let server = GameServer::start(
        dir.path(),
        &test_config(&dir.path().join("spool"), ""),
        &pg.url(),
    )
    .await;
    assert_eq!(put(&server, "p1", &json!({"n": 0})).await.0, 200);

    pg.stop();
    let mut last = std::collections::HashMap::new();
    for i in 1..=12 {
        let player = format!("p{}", i % 3 + 1);
        let started = Instant::now();
        let (status, _, body) = put(&server, &player, &json!({"n": i})).await;
        let took = started.elapsed();
        assert_eq!(
            (status, &body),
            (202, &json!({"stored": "queued"})),
            "{}",
            server.log_text()
        );
        // Answered without waiting on the dead database (the policy's overall timeout is
        // 400 ms; a busy machine may stretch that, not into seconds).
        assert!(took < Duration::from_secs(2), "save {i} took {took:?}");
        last.insert(player, i);
    }
    // Reads come from the cache, queued saves included.
    let started = Instant::now();
    let (status, _, body) = get(&server, "/v1/players/p1/save").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200);
    assert_eq!(body["source"], "cache");
    assert_eq!(body["data"], json!({"n": last["p1"]}));
    let (_, _, metrics) = get(&server, "/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("game_save_queue_depth 12"), "{metrics}");
    assert!(
        metrics.contains(r#"game_saves_total{result="queued"} 12"#),
        "{metrics}"
    );

    // The database comes back: the queue drains, every acknowledged save is in it.
    pg.restart().await;
    let (pg_ref, last_ref, server_ref) = (&pg, &last, &server);
    eventually(
        Duration::from_secs(30),
        "the queue to drain into PostgreSQL",
        move || async move {
            let mut all = true;
            for (player, n) in last_ref {
                all &= saved_in_db(pg_ref, player).await.map(|(d, _)| d) == Some(json!({"n": n}));
            }
            all
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "queue depth 0",
        move || async move {
            let (_, _, m) = get(server_ref, "/metrics").await;
            m.as_str()
                .is_some_and(|m| m.contains("game_save_queue_depth 0"))
        },
    )
    .await;
    // p1 had 1 direct write and 4 queued ones: version 5.
    assert_eq!(saved_in_db(&pg, "p1").await.map(|(_, v)| v), Some(5));
    let spool = std::fs::read_to_string(dir.path().join("spool/saves.spool")).unwrap();
    assert!(spool.is_empty(), "spool not truncated: {spool}");
    let (status, _, body) = get(&server, "/v1/players/p1/save").await;
    assert_eq!((status, &body["source"]), (200, &json!("database")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_queued_saves_keeps_them_in_the_spool_until_the_next_start() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    pg.ready().await;
    let dir = TempDir::new("sigterm");
    let config = test_config(&dir.path().join("spool"), "");
    let mut server = GameServer::start(dir.path(), &config, &pg.url()).await;
    pg.stop();
    for i in 1..=5 {
        let (status, _, _) = put(&server, &format!("p{i}"), &json!({"slot": i})).await;
        assert_eq!(status, 202);
    }
    let status = server.terminate(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    let spool = std::fs::read_to_string(dir.path().join("spool/saves.spool")).unwrap();
    assert_eq!(spool.lines().count(), 5, "{spool}");

    pg.restart().await;
    let server = GameServer::start(dir.path(), &config, &pg.url()).await;
    let pg_ref = &pg;
    eventually(
        Duration::from_secs(30),
        "the replayed spool in PostgreSQL",
        move || async move {
            let mut all = true;
            for i in 1..=5 {
                all &= saved_in_db(pg_ref, &format!("p{i}")).await == Some((json!({"slot": i}), 1));
            }
            all
        },
    )
    .await;
    let spool_path = dir.path().join("spool/saves.spool");
    let spool_ref = &spool_path;
    eventually(
        Duration::from_secs(30),
        "the spool to be truncated",
        move || async move { std::fs::read_to_string(spool_ref).is_ok_and(|s| s.is_empty()) },
    )
    .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_player_rate_limit_answers_429_with_retry_after() {
    let dir = TempDir::new("ratelimit");
    let config = test_config(
        &dir.path().join("spool"),
        // One call per 100 s beyond the burst: no token comes back while the test runs,
        // however slowly the machine answers.
        "player_rate_limit: { per_second: 0.01, burst: 3 }\n",
    );
    // The limit is in front of the database: a database that is down does not matter.
    let server = GameServer::start(dir.path(), &config, &closed_port_url()).await;
    for _ in 0..3 {
        let (status, _, body) = put(&server, "p1", &json!({"x": 1})).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, retry_after, _) = put(&server, "p1", &json!({"x": 2})).await;
    assert_eq!(status, 429);
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    // The next token is about 100 s away (less whatever the burst's calls took).
    assert!((50..=101).contains(&secs), "{secs}");
    // Another player has their own quota.
    assert_eq!(put(&server, "p2", &json!({"x": 1})).await.0, 202);
    let (status, _, _) = post(
        &server,
        "/v1/matchmaking/queue",
        json!({"player_id": "p1", "skill": 1000}),
    )
    .await;
    assert_eq!(status, 429);
    let (_, _, metrics) = get(&server, "/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(r#"game_http_requests_total{route="/v1/players/{player_id}/save",method="PUT",outcome="rate_limited"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"resilience_rate_limited_total{policy="player_rate_limit"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matchmaking_pairs_close_skills_and_degrades_to_a_wider_band_without_the_database() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    pg.ready().await;
    let dir = TempDir::new("match");
    let server = GameServer::start(
        dir.path(),
        &test_config(&dir.path().join("spool"), ""),
        &pg.url(),
    )
    .await;

    let (status, _, body) = post(
        &server,
        "/v1/matchmaking/queue",
        json!({"player_id": "p1", "skill": 1500}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&server, &format!("/v1/matchmaking/tickets/{ticket}"))
            .await
            .0,
        202
    );
    // Too far apart for the normal band.
    let (status, _, _) = post(
        &server,
        "/v1/matchmaking/queue",
        json!({"player_id": "p9", "skill": 1750}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, matched) = post(
        &server,
        "/v1/matchmaking/queue",
        json!({"player_id": "p2", "skill": 1560}),
    )
    .await;
    assert_eq!(status, 200, "{matched}");
    assert_eq!(matched["status"], "matched");
    assert_eq!(matched["players"], json!(["p1", "p2"]));
    assert_eq!(matched["skill_band"], 100);
    let match_id = matched["match_id"].as_str().unwrap().to_owned();
    let (status, _, polled) = get(&server, &format!("/v1/matchmaking/tickets/{ticket}")).await;
    assert_eq!((status, &polled), (200, &matched));
    assert_eq!(
        get(&server, "/v1/matchmaking/tickets/t-unknown").await.0,
        404
    );

    // Sessions of the match.
    let join = format!("/v1/sessions/{match_id}/join");
    let (status, _, body) = post(&server, &join, json!({"player_id": "p1"})).await;
    assert_eq!(
        (status, &body),
        (200, &json!({"session": match_id, "active_players": 1}))
    );
    assert_eq!(
        post(&server, &join, json!({"player_id": "p2"})).await.2["active_players"],
        2
    );
    assert_eq!(
        get(&server, "/v1/sessions").await.2,
        json!({"active_sessions": 1, "active_players": 2})
    );
    let leave = format!("/v1/sessions/{match_id}/leave");
    assert_eq!(
        post(&server, &leave, json!({"player_id": "p2"})).await.0,
        200
    );
    assert_eq!(
        post(
            &server,
            "/v1/sessions/m-nope/join",
            json!({"player_id": "p1"})
        )
        .await
        .0,
        404
    );

    // Ratings and the match are in PostgreSQL.
    let db = pg.client().await.unwrap();
    let skill: i32 = db
        .query_one(
            "SELECT skill FROM player_ratings WHERE player_id = 'p1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(skill, 1500);
    let (db_ref, id_ref) = (&db, &match_id);
    eventually(
        Duration::from_secs(30),
        "the match record",
        move || async move {
            db_ref
                .query_opt("SELECT 1 FROM matches WHERE match_id = $1", &[id_ref])
                .await
                .is_ok_and(|r| r.is_some())
        },
    )
    .await;
    drop(db);

    // Without the database: the client's skill and the wider band (p9 at 1750 waits).
    pg.stop();
    let started = Instant::now();
    let (status, _, body) = post(
        &server,
        "/v1/matchmaking/queue",
        json!({"player_id": "p3", "skill": 1500}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["players"], json!(["p9", "p3"]));
    assert_eq!(body["skill_band"], 300);
    let (_, _, metrics) = get(&server, "/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(r#"game_matchmaking_total{result="matched"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("game_active_sessions 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_names() {
    let dir = TempDir::new("metrics");
    let server = GameServer::start(
        dir.path(),
        &test_config(&dir.path().join("spool"), ""),
        &closed_port_url(),
    )
    .await;
    assert_eq!(put(&server, "p1", &json!({"a": 1})).await.0, 202);
    let (status, _, body) = get(&server, "/readyz").await;
    assert_eq!(status, 200, "fallbacks armed: {body}");
    assert_eq!(body["database"], "down");
    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for name in [
        r#"game_http_requests_total{route="/v1/players/{player_id}/save",method="PUT",outcome="success"} 1"#,
        "game_http_request_duration_seconds_bucket{",
        r#"le="0.5""#,
        r#"game_matchmaking_total{result="failed"} 0"#,
        r#"game_saves_total{result="queued"} 1"#,
        "game_save_queue_depth 1",
        "game_active_sessions 0",
        "game_lobby_sessions 0",
        r#"game_lobby_messages_total{type="invalid"} 0"#,
        r#"resilience_calls_total{policy="save_writes",outcome="failure"}"#,
        r#"resilience_circuit_state{policy="save_reads",state="closed"}"#,
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[test]
fn bad_config_names_field_and_line_and_exits_non_zero() {
    let dir = TempDir::new("badconfig");
    for (yaml, field, line) in [
        (
            "listen: 127.0.0.1:1\npolicies:\n  save_writes:\n    retry: { max_attempts: 0 }\n",
            "policies.save_writes.retry.max_attempts",
            "line 4",
        ),
        (
            "matchmaking:\n  skill_band: 100\n  skil_band: 5\n",
            "skil_band",
            "line 3",
        ),
        ("listen: nowhere\n", "listen", "line 1"),
    ] {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_game-server"))
            .arg("--config")
            .arg(&path)
            .env("GAME_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(field) && stderr.contains(line),
            "{yaml}: {stderr}"
        );
        assert!(stderr.contains("bad.yaml"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_game-server"))
        .env("GAME_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GAME_LISTEN"));
}
