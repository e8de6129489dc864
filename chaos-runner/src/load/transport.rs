//! How a player's requests reach the target: over the player's own HTTP/1.1 connection for
//! a plain `http://` target (opened on first use, opened again after any failure), or
//! through one shared client with TLS for `https://`.
//!
//! A connection per player mirrors what a game client holds and costs the generator far
//! less per request than a pooled client (no pool checkout, no URL parsing per request):
//! see `docs/BENCHMARKS.md` ("The load generator").

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde_json::Value;
use std::time::Duration;

use super::player::Request;

/// A request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be opened.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The exchange failed (connection closed, malformed answer).
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The request could not be built (a path the URI syntax refuses).
    #[error("bad request: {0}")]
    Request(#[source] http::Error),
    /// The TLS client failed (the URL is left out of the message).
    #[error("{0}")]
    Tls(#[source] reqwest::Error),
}

/// A player's own connection (unused for an `https://` target).
#[derive(Default)]
pub struct PlayerConnection(Option<SendRequest<Full<Bytes>>>);

impl std::fmt::Debug for PlayerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PlayerConnection(open)"
        } else {
            "PlayerConnection(closed)"
        })
    }
}

/// Where and how requests go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `http://`: each player's own connection.
    Plain {
        /// Host to connect to (a name is resolved at each connect).
        host: String,
        /// Port.
        port: u16,
        /// The `Host` header.
        authority: http::HeaderValue,
        /// The target's path, prefixed to every step's (`""` or `/api`).
        prefix: String,
    },
    /// `https://`: a shared client.
    Tls {
        /// The client.
        client: reqwest::Client,
        /// The base URL, without a trailing `/`.
        base: String,
    },
}

impl Transport {
    /// The transport for `target` (an `http://` or `https://` URL, validated before).
    ///
    /// ```
    /// use chaos_runner::load::transport::Transport;
    /// let t = Transport::for_target("http://127.0.0.1:18080/api/", 50).unwrap();
    /// assert!(matches!(t, Transport::Plain { port: 18080, ref prefix, .. } if prefix == "/api"));
    /// assert!(Transport::for_target("ftp://x", 1).is_err());
    /// ```
    pub fn for_target(target: &str, players: u32) -> Result<Transport, String> {
        let url = reqwest::Url::parse(target).map_err(|e| e.to_string())?;
        match url.scheme() {
            "http" => {
                let host = url
                    .host_str()
                    .ok_or_else(|| "the target has no host".to_owned())?
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let port = url.port_or_known_default().unwrap_or(80);
                let authority = match url.port() {
                    Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_owned(),
                };
                Ok(Transport::Plain {
                    host,
                    port,
                    authority: http::HeaderValue::from_str(&authority)
                        .map_err(|e| e.to_string())?,
                    prefix: url.path().trim_end_matches('/').to_owned(),
                })
            }
            "https" => Ok(Transport::Tls {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(players as usize)
                    .build()
                    .map_err(|e| e.to_string())?,
                base: target.trim_end_matches('/').to_owned(),
            }),
            other => Err(format!("`{other}` targets are not supported")),
        }
    }

    /// Sends `request` and returns its status and JSON body (`Null` when the body is not
    /// JSON, or the call does not read it). A failure closes the player's connection; the
    /// next call opens another.
    pub async fn send(
        &self,
        connection: &mut PlayerConnection,
        request: &Request,
    ) -> Result<(u16, Value), SendError> {
        let timeout = request.timeout;
        let exchange = async {
            match self {
                Transport::Plain {
                    host,
                    port,
                    authority,
                    prefix,
                } => plain(connection, host, *port, authority, prefix, request).await,
                Transport::Tls { client, base } => tls(client, base, request).await,
            }
        };
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(SendError::Timeout(timeout)),
        };
        if answer.is_err() {
            connection.0 = None;
        }
        let (status, bytes) = answer?;
        let body = if request.reads_body {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        Ok((status, body))
    }
}

async fn plain(
    connection: &mut PlayerConnection,
    host: &str,
    port: u16,
    authority: &http::HeaderValue,
    prefix: &str,
    call: &Request,
) -> Result<(u16, Bytes), SendError> {
    let sender = match &mut connection.0 {
        Some(sender) if !sender.is_closed() => sender,
        slot => {
            let stream = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(SendError::Connect)?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(SendError::Http)?;
            // The connection's I/O runs beside the player; it ends when the sender drops.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            slot.insert(sender)
        }
    };
    sender.ready().await.map_err(SendError::Http)?;
    let mut request = http::Request::builder()
        .method(call.method.clone())
        .uri(format!("{prefix}{}", call.path))
        .header(http::header::HOST, authority.clone());
    for (name, value) in call.headers_to_send() {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(call.body.clone()))
        .map_err(SendError::Request)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(SendError::Http)?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(SendError::Http)?
        .to_bytes();
    Ok((status, bytes))
}

async fn tls(
    client: &reqwest::Client,
    base: &str,
    call: &Request,
) -> Result<(u16, Bytes), SendError> {
    let mut request = client.request(call.method.clone(), format!("{base}{}", call.path));
    for (name, value) in call.headers_to_send() {
        request = request.header(name, value);
    }
    request = request.body(call.body.clone());
    let response = request
        .send()
        .await
        .map_err(|e| SendError::Tls(e.without_url()))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| SendError::Tls(e.without_url()))?;
    Ok((status, bytes))
}
