//! The WebSocket lobby end to end: the real binary, real WebSocket sessions
//! (tokio-tungstenite) over loopback sockets. The lobby does not use the database: the
//! server runs with one that is down, so these tests need no PostgreSQL.
//!
//! Timeouts below only guard against a hang; no test asserts how long anything took.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{client, closed_port_url, eventually, test_config, GameServer, TempDir};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for one frame before the test fails as hung.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn start(tag: &str, lobby: &str) -> (TempDir, GameServer) {
    let dir = TempDir::new(tag);
    let config = test_config(&dir.path().join("spool"), lobby);
    let server = GameServer::start(dir.path(), &config, &closed_port_url()).await;
    (dir, server)
}

fn ws_url(server: &GameServer, query: &str) -> String {
    format!(
        "{}/v1/lobby/ws{query}",
        server.base.replacen("http://", "ws://", 1)
    )
}

async fn connect(server: &GameServer, player: &str) -> Ws {
    let url = ws_url(server, &format!("?player={player}"));
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Ok((ws, response)) => {
            assert_eq!(response.status(), 101);
            ws
        }
        Err(e) => panic!("{url}: {e}: {}", server.log_text()),
    }
}

/// The status, `Retry-After` and body of a refused upgrade.
async fn refused(url: &str) -> (u16, Option<String>, Value) {
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (response.status().as_u16(), retry_after, body)
        }
        Err(e) => panic!("{url}: expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("{url}: upgraded, expected a refusal"),
    }
}

/// The next frame from the server.
async fn next(ws: &mut Ws) -> Message {
    match tokio::time::timeout(HANG_GUARD, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(other) => panic!("session ended: {other:?}"),
        Err(_) => panic!("no frame within {HANG_GUARD:?}"),
    }
}

/// Sends `text` and returns the JSON reply.
async fn exchange(ws: &mut Ws, text: &str) -> Value {
    ws.send(Message::text(text)).await.expect("sent");
    match next(ws).await {
        Message::Text(reply) => serde_json::from_str(reply.as_str()).expect("JSON reply"),
        other => panic!("{text}: expected a text reply, got {other:?}"),
    }
}

async fn metrics(server: &GameServer) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics text")
}

/// Sends Close and reads until the server's Close (the session ends on both sides).
async fn close(mut ws: Ws) {
    ws.close(None).await.expect("close sent");
    loop {
        match tokio::time::timeout(HANG_GUARD, ws.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return,
            Err(_) => panic!("the server did not answer Close within {HANG_GUARD:?}"),
        }
    }
}

/// The close frame's code and reason, or panics on anything else.
fn close_of(message: Message) -> (CloseCode, String) {
    match message {
        Message::Close(Some(frame)) => (frame.code, frame.reason.as_str().to_owned()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_answers_pings_chats_and_errors_on_one_open_session() {
    let (_dir, server) = start("lobby-messages", "").await;

    // No player, or not a valid one: 400 before the upgrade.
    for query in ["", "?player=", "?player=bad%20id", "?other=p1"] {
        let (status, _, body) = refused(&ws_url(&server, query)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("player")),
            "{query}: {body}"
        );
    }

    let mut ws = connect(&server, "p1").await;
    assert_eq!(
        exchange(&mut ws, r#"{"type":"ping","id":1}"#).await,
        json!({"type": "pong", "id": 1})
    );
    assert_eq!(
        exchange(&mut ws, r#"{"type":"ping","id":"req-7"}"#).await,
        json!({"type": "pong", "id": "req-7"})
    );
    assert_eq!(
        exchange(&mut ws, r#"{"type":"chat","id":2,"text":"glhf"}"#).await,
        json!({"type": "ack", "id": 2})
    );

    // Errors: the id is echoed when there is one, and the session stays open.
    for (text, id, error) in [
        ("not json at all", json!(null), "not JSON"),
        (r#"{"type":"dance","id":3}"#, json!(3), "unknown type"),
        (r#"{"type":"ping"}"#, json!(null), "missing id"),
        (r#"{"id":"x"}"#, json!("x"), "missing type"),
        (r#"{"type":"chat","id":4}"#, json!(4), "chat needs a text"),
    ] {
        let reply = exchange(&mut ws, text).await;
        assert_eq!(reply["type"], "error", "{text}: {reply}");
        assert_eq!(reply["id"], id, "{text}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.starts_with(error)),
            "{text}: {reply}"
        );
    }
    let long = json!({"type": "chat", "id": 5, "text": "x".repeat(1025)}).to_string();
    assert_eq!(
        exchange(&mut ws, &long).await,
        json!({"type": "error", "id": 5, "error": "text is 1025 bytes, at most 1024"})
    );
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    match next(&mut ws).await {
        Message::Text(reply) => {
            let reply: Value = serde_json::from_str(reply.as_str()).unwrap();
            assert_eq!(reply["type"], "error");
            assert_eq!(reply["id"], Value::Null);
        }
        other => panic!("expected an error reply to binary, got {other:?}"),
    }

    // A Ping frame is answered with a Pong frame carrying its payload.
    ws.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    match next(&mut ws).await {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are-you-there"),
        other => panic!("expected a Pong frame, got {other:?}"),
    }
    // Still open after all the errors.
    assert_eq!(
        exchange(&mut ws, r#"{"type":"ping","id":{"n":[1,2]}}"#).await,
        json!({"type": "pong", "id": {"n": [1, 2]}})
    );

    let text = metrics(&server).await;
    for line in [
        "game_lobby_sessions 1",
        r#"game_lobby_messages_total{type="ping"} 3"#,
        r#"game_lobby_messages_total{type="chat"} 1"#,
        r#"game_lobby_messages_total{type="invalid"} 7"#,
        r#"game_http_requests_total{route="/v1/lobby/ws",method="GET",outcome="success"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }

    close(ws).await;

    // A message above 64 KiB ends the session: with a 1009 close frame, unless the
    // connection's reset overtakes it (the server reads nothing after the refusal).
    let mut big = connect(&server, "p2").await;
    let text = json!({"type": "chat", "id": 1, "text": "x".repeat(70 * 1024)}).to_string();
    // The server may close before the whole message is written.
    let _ = big.send(Message::text(text)).await;
    match tokio::time::timeout(HANG_GUARD, big.next()).await {
        Ok(Some(Ok(message))) => {
            let (code, reason) = close_of(message);
            assert_eq!(u16::from(code), 1009);
            assert_eq!(reason, "message too big");
        }
        Ok(None | Some(Err(_))) => {}
        Err(_) => panic!("the session was not ended within {HANG_GUARD:?}"),
    }

    let server_ref = &server;
    eventually(
        Duration::from_secs(20),
        "game_lobby_sessions 0",
        move || async move { metrics(server_ref).await.contains("game_lobby_sessions 0") },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_refuses_upgrades_beyond_max_sessions_with_503_and_retry_after() {
    let (_dir, server) = start("lobby-full", "lobby: { maxSessions: 2 }\n").await;
    let mut first = connect(&server, "p1").await;
    let second = connect(&server, "p2").await;

    let (status, retry_after, body) = refused(&ws_url(&server, "?player=p3")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("full")),
        "{body}"
    );
    // The open sessions are not disturbed.
    assert_eq!(
        exchange(&mut first, r#"{"type":"ping","id":1}"#).await,
        json!({"type": "pong", "id": 1})
    );

    // A place frees when a session ends.
    close(second).await;
    let url = ws_url(&server, "?player=p3");
    let url_ref = &url;
    eventually(
        Duration::from_secs(20),
        "a place in the lobby",
        move || async move {
            match tokio_tungstenite::connect_async(url_ref.as_str()).await {
                Ok((ws, _)) => {
                    close(ws).await;
                    true
                }
                Err(_) => false,
            }
        },
    )
    .await;
    let text = metrics(&server).await;
    assert!(
        text.contains(
            r#"game_http_requests_total{route="/v1/lobby/ws",method="GET",outcome="error"}"#
        ),
        "{text}"
    );
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_closes_a_silent_session_with_1008_after_the_idle_timeout() {
    let (_dir, server) = start("lobby-idle", "lobby: { idleTimeout: 300ms }\n").await;
    let mut ws = connect(&server, "p1").await;
    // The client sends nothing: the server closes, whenever the timer fires.
    let (code, reason) = close_of(next(&mut ws).await);
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(u16::from(code), 1008);
    assert_eq!(reason, "idle timeout");
    let server_ref = &server;
    eventually(
        Duration::from_secs(20),
        "game_lobby_sessions 0",
        move || async move { metrics(server_ref).await.contains("game_lobby_sessions 0") },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_lobby_sessions_with_1001_and_exits_zero() {
    let (_dir, mut server) = start("lobby-sigterm", "").await;
    let mut sessions = Vec::new();
    for player in ["p1", "p2"] {
        let mut ws = connect(&server, player).await;
        assert_eq!(
            exchange(&mut ws, r#"{"type":"ping","id":0}"#).await["type"],
            "pong"
        );
        // Each session is read while the server stops, so the close handshake completes.
        sessions.push(tokio::spawn(async move { close_of(next(&mut ws).await) }));
    }
    let (server, status) = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(15));
        (server, status)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    for session in sessions {
        let (code, reason) = session.await.unwrap();
        assert_eq!(code, CloseCode::Away);
        assert_eq!(u16::from(code), 1001);
        assert_eq!(reason, "server shutting down");
    }
    let log = server.log_text();
    assert!(log.contains("closing lobby sessions"), "{log}");
}
