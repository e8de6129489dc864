//! How a player's requests reach the target: over the player's own HTTP/1.1 connection for
//! a plain `http://` target (opened on first use, opened again after any failure), or
//! through one shared client with TLS for `https://`.
//!
//! A connection per player mirrors what a game client holds, and the exchange on the
//! player's own task ([`super::http1`]) costs the generator far less per request than a
//! pooled client or a connection task: see `docs/BENCHMARKS.md` ("The load generator").

use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

use super::http1::{ExchangeError, Http1, Origin};
use super::player::Request;

/// A request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The HTTP/1.1 exchange failed.
    #[error("{0}")]
    Exchange(#[from] ExchangeError),
    /// The TLS client failed (the URL is left out of the message).
    #[error("{0}")]
    Tls(#[source] reqwest::Error),
}

/// A player's own connection (unused for an `https://` target).
pub type PlayerConnection = Http1;

/// Where and how requests go.
#[derive(Debug, Clone)]
pub enum Transport {
    /// `http://`: each player's own connection.
    Plain(Origin),
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
    /// assert!(matches!(t, Transport::Plain(ref o) if o.port == 18080 && o.prefix == "/api"));
    /// assert!(Transport::for_target("ftp://x", 1).is_err());
    /// ```
    pub fn for_target(target: &str, players: u32) -> Result<Transport, String> {
        let url = reqwest::Url::parse(target).map_err(|e| e.to_string())?;
        match url.scheme() {
            "http" => {
                let named = url
                    .host_str()
                    .ok_or_else(|| "the target has no host".to_owned())?;
                let host = named.trim_start_matches('[').trim_end_matches(']');
                let port = url.port_or_known_default().unwrap_or(80);
                let authority = match url.port() {
                    Some(p) => format!("{named}:{p}"),
                    None => named.to_owned(),
                };
                Ok(Transport::Plain(Origin::new(
                    host,
                    port,
                    &authority,
                    url.path().trim_end_matches('/'),
                )))
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
    /// JSON, or the call does not read it). No timeout of its own: the caller abandons it,
    /// and then closes the connection ([`Http1::close`]).
    pub async fn send(
        &self,
        connection: &mut PlayerConnection,
        request: &Request,
    ) -> Result<(u16, Value), SendError> {
        let (status, bytes) = match self {
            Transport::Plain(origin) => connection.exchange(origin, request).await?,
            Transport::Tls { client, base } => tls(client, base, request).await?,
        };
        let body = if request.reads_body && !bytes.is_empty() {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        Ok((status, body))
    }
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
    let bytes = if call.reads_body { bytes } else { Bytes::new() };
    Ok((status, bytes))
}
