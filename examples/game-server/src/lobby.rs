//! The WebSocket lobby: `GET /v1/lobby/ws?player=<player id>` (the handler is in
//! [`crate::routes`]), built to hold 100,000 idle sessions on one machine.
//!
//! Text messages are JSON objects, each answered with one text message:
//!
//! | received | reply |
//! |---|---|
//! | `{"type":"ping","id":<any JSON>}` | `{"type":"pong","id":<same>}` |
//! | `{"type":"chat","id":<any JSON>,"text":"..."}` (text at most 1 KiB) | `{"type":"ack","id":<same>}` |
//! | anything else, or a binary message | `{"type":"error","id":<id or null>,"error":"..."}` |
//!
//! An error reply leaves the session open. Ping frames are answered with Pong frames by
//! tungstenite (the reply is written before the next read, which the session loop starts
//! right away).
//!
//! Closing: a session that receives nothing (no message, not even a Ping frame) for
//! `lobby.idleTimeout` is closed with [`IDLE_CLOSE_CODE`] (1008, policy violation); at
//! shutdown every session is closed with [`SHUTDOWN_CLOSE_CODE`] (1001, going away). A
//! message larger than [`MAX_MESSAGE_BYTES`] ends the session with [`TOO_BIG_CLOSE_CODE`]
//! (1009, message too big): the library refuses it, and the rest of the stream cannot be
//! read.
//!
//! Cost of an idle session: one task (axum's, running [`Lobby::run`]), the socket,
//! tungstenite's [`READ_BUFFER_BYTES`] read buffer and a slot in the timer wheel; nothing
//! else is kept per session (not even the player id).

use axum::extract::ws::{close_code, CloseCode, CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::WebSocketUpgrade;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::LobbyConfig;
use crate::metrics::{LobbyMessage, Metrics};

/// tungstenite's read buffer per session (its default is 128 KiB).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// tungstenite's write buffering threshold: 0, every reply is written at once and nothing
/// is held between messages.
pub const WRITE_BUFFER_BYTES: usize = 0;
/// Largest message (and frame) accepted; a larger one ends the session.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Largest chat `text`, in bytes of UTF-8.
pub const MAX_CHAT_TEXT_BYTES: usize = 1024;
/// Close code after `lobby.idleTimeout` without anything received: policy violation.
pub const IDLE_CLOSE_CODE: CloseCode = close_code::POLICY;
/// Close code at server shutdown: going away.
pub const SHUTDOWN_CLOSE_CODE: CloseCode = close_code::AWAY;
/// Close code after a message above [`MAX_MESSAGE_BYTES`]: message too big.
pub const TOO_BIG_CLOSE_CODE: CloseCode = close_code::SIZE;
/// Time a session waits for the client's Close frame after sending its own.
pub const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// `Retry-After` of a refused upgrade (lobby full or shutting down).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a message got an error reply; the `error` field is this error's text.
///
/// ```
/// use game_server::lobby::MessageError;
/// assert_eq!(MessageError::MissingId.to_string(), "missing id");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Not JSON text.
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// No `id` field.
    #[error("missing id")]
    MissingId,
    /// No `type` field, or not a string.
    #[error("missing type (a string: ping or chat)")]
    MissingType,
    /// A `type` other than `ping` and `chat`.
    #[error("unknown type (expected ping or chat)")]
    UnknownType,
    /// A chat without a `text` string.
    #[error("chat needs a text string")]
    MissingText,
    /// A chat `text` above [`MAX_CHAT_TEXT_BYTES`].
    #[error("text is {len} bytes, at most 1024")]
    TextTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A binary message.
    #[error("binary messages are not supported (send JSON text)")]
    Binary,
}

/// One reply: its text and how the message it answers is counted.
///
/// ```
/// let reply = game_server::lobby::answer(r#"{"type":"ping","id":7}"#);
/// assert_eq!(reply.text, r#"{"type":"pong","id":7}"#);
/// assert_eq!(reply.kind, game_server::metrics::LobbyMessage::Ping);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message answered, as counted in `game_lobby_messages_total{type}`.
    pub kind: LobbyMessage,
    /// The reply, a JSON object.
    pub text: String,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn encode(kind: &'static str, id: &Value, error: Option<&str>) -> String {
    serde_json::to_string(&Out { kind, id, error }).unwrap_or_else(|_| {
        // A parsed JSON value always serializes; this is never sent.
        r#"{"type":"error","id":null,"error":"reply not encodable"}"#.to_owned()
    })
}

/// The error reply to `error`, echoing `id` (`null` when there is none).
///
/// ```
/// use game_server::lobby::{error_reply, MessageError};
/// assert_eq!(
///     error_reply(None, &MessageError::Binary).text,
///     r#"{"type":"error","id":null,"error":"binary messages are not supported (send JSON text)"}"#,
/// );
/// ```
pub fn error_reply(id: Option<&Value>, error: &MessageError) -> Reply {
    Reply {
        kind: LobbyMessage::Invalid,
        text: encode(
            "error",
            id.unwrap_or(&Value::Null),
            Some(&error.to_string()),
        ),
    }
}

/// The reply to one text message (see the module's table).
///
/// ```
/// use game_server::lobby::answer;
/// assert_eq!(answer(r#"{"type":"ping","id":"a-1"}"#).text, r#"{"type":"pong","id":"a-1"}"#);
/// assert_eq!(answer(r#"{"type":"chat","id":3,"text":"gg"}"#).text, r#"{"type":"ack","id":3}"#);
/// assert_eq!(answer(r#"{"type":"dance","id":4}"#).text,
///     r#"{"type":"error","id":4,"error":"unknown type (expected ping or chat)"}"#);
/// assert!(answer("garbage").text.starts_with(r#"{"type":"error","id":null,"error":"not JSON: "#));
/// ```
pub fn answer(text: &str) -> Reply {
    let mut object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return error_reply(None, &MessageError::NotAnObject),
        Err(e) => return error_reply(None, &MessageError::NotJson(e)),
    };
    let Some(id) = object.remove("id") else {
        return error_reply(None, &MessageError::MissingId);
    };
    match object.get("type").and_then(Value::as_str) {
        Some("ping") => Reply {
            kind: LobbyMessage::Ping,
            text: encode("pong", &id, None),
        },
        Some("chat") => match object.get("text").and_then(Value::as_str) {
            None => error_reply(Some(&id), &MessageError::MissingText),
            Some(chat) if chat.len() > MAX_CHAT_TEXT_BYTES => {
                error_reply(Some(&id), &MessageError::TextTooLong { len: chat.len() })
            }
            Some(_) => Reply {
                kind: LobbyMessage::Chat,
                text: encode("ack", &id, None),
            },
        },
        Some(_) => error_reply(Some(&id), &MessageError::UnknownType),
        None => error_reply(Some(&id), &MessageError::MissingType),
    }
}

/// Why an upgrade was refused (answered 503 with `Retry-After`).
///
/// ```
/// let e = game_server::lobby::Refused::Full { max_sessions: 2 };
/// assert_eq!(e.to_string(), "lobby is full (2 sessions)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `lobby.maxSessions` sessions are open.
    #[error("lobby is full ({max_sessions} sessions)")]
    Full {
        /// The limit.
        max_sessions: usize,
    },
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

#[derive(Debug)]
struct Inner {
    max_sessions: usize,
    idle_timeout: Duration,
    /// Sessions admitted and not ended (upgrades in progress included).
    open: AtomicUsize,
    /// Woken when `open` drops to zero.
    all_closed: Notify,
    shutdown: CancellationToken,
    metrics: Metrics,
}

/// The lobby's shared state: the session count, the limits, the shutdown signal. Cheap to
/// clone.
///
/// ```
/// use game_server::config::LobbyConfig;
/// let config = LobbyConfig { max_sessions: 1, ..LobbyConfig::default() };
/// let lobby = game_server::lobby::Lobby::new(&config, game_server::metrics::Metrics::new(), Default::default());
/// let slot = lobby.admit().unwrap();
/// assert!(lobby.admit().is_err());
/// drop(slot);
/// assert_eq!(lobby.sessions(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct Lobby {
    inner: Arc<Inner>,
}

/// A place in the lobby, held by one session (or by the upgrade leading to it); dropping it
/// frees the place.
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    counted: bool,
}

impl Slot {
    /// The session is open: counted in `game_lobby_sessions` until the slot is dropped.
    fn opened(&mut self) {
        if !self.counted {
            self.counted = true;
            self.inner.metrics.lobby_sessions.inc();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.counted {
            self.inner.metrics.lobby_sessions.dec();
        }
        if self.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.all_closed.notify_waiters();
        }
    }
}

enum Ending {
    Closed,
    TooBig,
    Idle,
    Shutdown,
}

/// Whether a receive error is a message (or frame) above the limits.
fn too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        error.into_inner().downcast::<Error>().map(|e| *e),
        Ok(Error::Capacity(_))
    )
}

impl Lobby {
    /// A lobby with `config`'s limits, counting in `metrics`; `shutdown` closes every
    /// session (code 1001) when cancelled.
    ///
    /// ```
    /// let lobby = game_server::lobby::Lobby::new(
    ///     &Default::default(), game_server::metrics::Metrics::new(), Default::default());
    /// assert_eq!(lobby.sessions(), 0);
    /// ```
    pub fn new(config: &LobbyConfig, metrics: Metrics, shutdown: CancellationToken) -> Lobby {
        Lobby {
            inner: Arc::new(Inner {
                max_sessions: config.max_sessions,
                idle_timeout: config.idle_timeout,
                open: AtomicUsize::new(0),
                all_closed: Notify::new(),
                shutdown,
                metrics,
            }),
        }
    }

    /// Sessions admitted and not ended yet (upgrades in progress included).
    ///
    /// ```
    /// let lobby = game_server::lobby::Lobby::new(
    ///     &Default::default(), game_server::metrics::Metrics::new(), Default::default());
    /// let _slot = lobby.admit().unwrap();
    /// assert_eq!(lobby.sessions(), 1);
    /// ```
    pub fn sessions(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Takes a place, unless `maxSessions` are taken or the server is shutting down.
    ///
    /// ```
    /// let shutdown = tokio_util::sync::CancellationToken::new();
    /// let lobby = game_server::lobby::Lobby::new(
    ///     &Default::default(), game_server::metrics::Metrics::new(), shutdown.clone());
    /// shutdown.cancel();
    /// assert_eq!(lobby.admit().unwrap_err(), game_server::lobby::Refused::ShuttingDown);
    /// ```
    pub fn admit(&self) -> Result<Slot, Refused> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Refused::ShuttingDown);
        }
        let max = self.inner.max_sessions;
        self.inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| Refused::Full { max_sessions: max })?;
        Ok(Slot {
            inner: self.inner.clone(),
            counted: false,
        })
    }

    /// The upgrade with the lobby's small buffers and message limits.
    pub fn configure<F>(&self, upgrade: WebSocketUpgrade<F>) -> WebSocketUpgrade<F> {
        upgrade
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
    }

    /// Resolves when every session has ended (at once when there is none).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let lobby = game_server::lobby::Lobby::new(
    ///     &Default::default(), game_server::metrics::Metrics::new(), Default::default());
    /// let slot = lobby.admit().unwrap();
    /// let waiting = tokio::spawn({ let lobby = lobby.clone(); async move { lobby.all_closed().await } });
    /// drop(slot);
    /// waiting.await.unwrap();
    /// # }
    /// ```
    pub async fn all_closed(&self) {
        loop {
            let notified = self.inner.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.sessions() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// One session, from the upgrade to the end: answers messages, closes after the idle
    /// timeout (1008) or at shutdown (1001). `slot` is freed when it returns.
    pub async fn run(self, mut socket: WebSocket, mut slot: Slot) {
        slot.opened();
        let inner = &*self.inner;
        let idle = tokio::time::sleep(inner.idle_timeout);
        tokio::pin!(idle);
        let ending = loop {
            let received = tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => break Ending::Shutdown,
                _ = &mut idle => break Ending::Idle,
                received = socket.recv() => received,
            };
            let message = match received {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "lobby session ended on an error");
                    break if too_big(e) {
                        Ending::TooBig
                    } else {
                        Ending::Closed
                    };
                }
                None => break Ending::Closed,
            };
            // Anything received, control frames included, keeps the session alive.
            idle.as_mut()
                .reset(tokio::time::Instant::now() + inner.idle_timeout);
            let reply = match message {
                Message::Text(text) => answer(text.as_str()),
                Message::Binary(_) => error_reply(None, &MessageError::Binary),
                // Ping: tungstenite queued the Pong, written at the next read. Close: its
                // answer too; the next read ends the stream.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
            };
            inner.metrics.count_lobby_message(reply.kind);
            let sent = tokio::select! {
                biased;
                _ = inner.shutdown.cancelled() => break Ending::Shutdown,
                sent = socket.send(Message::Text(reply.text.into())) => sent,
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "lobby session ended: reply not sent");
                break Ending::Closed;
            }
        };
        let (code, reason) = match ending {
            Ending::Closed => return,
            Ending::TooBig => (TOO_BIG_CLOSE_CODE, "message too big"),
            Ending::Idle => (IDLE_CLOSE_CODE, "idle timeout"),
            Ending::Shutdown => (SHUTDOWN_CLOSE_CODE, "server shutting down"),
        };
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // Close handshake: our Close, then the client's; bounded, the client may be gone.
        // After a message too big the stream is out of step: nothing more is read.
        let read_on = !matches!(ending, Ending::TooBig);
        let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
            if socket.send(Message::Close(Some(frame))).await.is_ok() && read_on {
                while let Some(Ok(_)) = socket.recv().await {}
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(text: &str) -> (LobbyMessage, Value) {
        let r = answer(text);
        (
            r.kind,
            serde_json::from_str(&r.text).expect("replies are JSON"),
        )
    }

    #[test]
    fn pings_and_chats_echo_any_id() {
        for id in [
            json!(1),
            json!("x"),
            json!(null),
            json!({"a": [1, 2]}),
            json!(-2.5),
        ] {
            let ping = json!({"type": "ping", "id": id}).to_string();
            assert_eq!(
                reply(&ping),
                (LobbyMessage::Ping, json!({"type": "pong", "id": id}))
            );
            let chat = json!({"type": "chat", "id": id, "text": "hi"}).to_string();
            assert_eq!(
                reply(&chat),
                (LobbyMessage::Chat, json!({"type": "ack", "id": id}))
            );
        }
        // Key order of the reply: type first.
        assert_eq!(
            answer(r#"{"id":1,"type":"ping"}"#).text,
            r#"{"type":"pong","id":1}"#
        );
    }

    #[test]
    fn errors_name_the_problem_and_echo_the_id_when_there_is_one() {
        let cases = [
            ("nope", json!(null), "not JSON"),
            ("[1]", json!(null), "a message must be a JSON object"),
            (r#"{"type":"ping"}"#, json!(null), "missing id"),
            (r#"{"id":5}"#, json!(5), "missing type"),
            (r#"{"id":5,"type":7}"#, json!(5), "missing type"),
            (r#"{"id":"q","type":"pang"}"#, json!("q"), "unknown type"),
            (r#"{"id":6,"type":"chat"}"#, json!(6), "chat needs a text"),
            (
                r#"{"id":6,"type":"chat","text":1}"#,
                json!(6),
                "chat needs a text",
            ),
        ];
        for (text, id, error) in cases {
            let (kind, body) = reply(text);
            assert_eq!(kind, LobbyMessage::Invalid, "{text}");
            assert_eq!(body["type"], "error", "{text}");
            assert_eq!(body["id"], id, "{text}");
            let message = body["error"].as_str().unwrap_or_default();
            assert!(message.starts_with(error), "{text}: {message}");
        }
    }

    #[test]
    fn chat_text_is_limited_to_1_kib() {
        let ok = json!({"type": "chat", "id": 1, "text": "é".repeat(512)}).to_string();
        assert_eq!(reply(&ok).0, LobbyMessage::Chat);
        let long = json!({"type": "chat", "id": 1, "text": "x".repeat(1025)}).to_string();
        let (kind, body) = reply(&long);
        assert_eq!(kind, LobbyMessage::Invalid);
        assert_eq!(body["error"], "text is 1025 bytes, at most 1024");
    }

    #[tokio::test]
    async fn slots_count_and_free_places() {
        let metrics = Metrics::new();
        let config = LobbyConfig {
            max_sessions: 2,
            ..LobbyConfig::default()
        };
        let lobby = Lobby::new(&config, metrics.clone(), CancellationToken::new());
        let mut a = lobby.admit().unwrap();
        let b = lobby.admit().unwrap();
        assert_eq!(
            lobby.admit().unwrap_err(),
            Refused::Full { max_sessions: 2 }
        );
        a.opened();
        assert_eq!(metrics.lobby_sessions.get(), 1);
        drop(a);
        assert_eq!(metrics.lobby_sessions.get(), 0);
        assert_eq!(lobby.sessions(), 1);
        let _c = lobby.admit().unwrap();
        drop(b);
        assert_eq!(lobby.sessions(), 1);
    }
}
