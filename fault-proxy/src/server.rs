//! Runs a [`ProxyRegistry`] (and optionally the HTTP admin API) on threads of its own: one
//! tokio runtime thread accepts connections, serves the API and runs the timers, and the
//! relay threads (each a single-threaded runtime) own the connections handed to them. So it
//! works the same inside the engine (whose runtime is single-threaded on the main thread
//! and whose fault methods are sync and may block) and as the standalone
//! `chaos-runner proxy` server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::relay_threads::RelayThreads;
use crate::ProxyRegistry;

/// The proxy server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The runtime or thread could not be created.
    #[error("cannot start the proxy runtime: {0}")]
    Runtime(std::io::Error),
    /// The admin API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running proxy server; stops (closing every proxy and connection) when dropped.
#[derive(Debug)]
pub struct ProxyServer {
    registry: Arc<ProxyRegistry>,
    api_addr: Option<SocketAddr>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// How many relay threads there are when nothing says otherwise: one per core, as haproxy.
/// Measured side by side on two cores, one thread moved four bulk transfers at once at
/// 0.73x of two in the latest bench run, and `pgbench -S -c 64` ran at 0.82x-0.90x of two;
/// see docs/fault-proxy.md, "Relay threads". `--workers` confines the proxy to fewer.
///
/// ```
/// assert!(fault_proxy::server::default_workers() >= 1);
/// ```
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// How to start a [`ProxyServer`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Serve the admin API on this address (port 0 picks one).
    pub api: Option<SocketAddr>,
    /// Relay threads, each owning the connections handed to it (see [`default_workers`]).
    pub workers: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            api: None,
            workers: default_workers(),
        }
    }
}

impl ProxyServer {
    /// Starts the proxy thread with [`default_workers`] relay threads; with `api`, also
    /// serves the admin API on that address (port 0 picks one; see
    /// [`ProxyServer::api_addr`]).
    ///
    /// ```
    /// let server = fault_proxy::server::ProxyServer::start(
    ///     Some("127.0.0.1:0".parse().unwrap())).unwrap();
    /// assert!(server.api_addr().unwrap().port() > 0);
    /// ```
    pub fn start(api: Option<SocketAddr>) -> Result<ProxyServer, ServerError> {
        ProxyServer::start_with(ServerOptions {
            api,
            ..ServerOptions::default()
        })
    }

    /// Starts the proxy thread as `options` say.
    ///
    /// ```
    /// use fault_proxy::server::{ProxyServer, ServerOptions};
    /// let server = ProxyServer::start_with(ServerOptions { api: None, workers: 1 }).unwrap();
    /// assert!(server.api_addr().is_none());
    /// ```
    pub fn start_with(options: ServerOptions) -> Result<ProxyServer, ServerError> {
        let ServerOptions { api, workers } = options;
        let listener = match api {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let api_addr = match &listener {
            Some(l) => Some(l.local_addr().map_err(ServerError::Runtime)?),
            None => None,
        };
        // One thread accepts, serves the API and runs the timers; the relay threads own
        // the connections (see `relay_threads`).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chaos-proxy")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let relay_threads = Arc::new(RelayThreads::start(workers).map_err(ServerError::Runtime)?);
        let registry = Arc::new(ProxyRegistry::with_relay_threads(
            runtime.handle().clone(),
            Some(relay_threads.clone()),
        ));
        let stop = CancellationToken::new();
        let (reg, token) = (registry.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("chaos-proxy-main".into())
            .spawn(move || {
                runtime.block_on(async {
                    if let Some(listener) = listener {
                        let app = crate::api::router(reg.clone());
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => {
                                let shutdown = token.clone();
                                tokio::spawn(async move {
                                    let served = axum::serve(listener, app)
                                        .with_graceful_shutdown(async move {
                                            shutdown.cancelled().await
                                        })
                                        .await;
                                    if let Err(e) = served {
                                        tracing::warn!("proxy admin API stopped: {e}");
                                    }
                                });
                            }
                            Err(e) => tracing::warn!("proxy admin API cannot listen: {e}"),
                        }
                    }
                    token.cancelled().await;
                });
                // Blocking waits are fine here: this thread is outside the runtime.
                reg.close_all();
                runtime.shutdown_timeout(Duration::from_secs(1));
                relay_threads.shutdown();
            })
            .map_err(ServerError::Runtime)?;
        Ok(ProxyServer {
            registry,
            api_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The registry: create proxies and toxics here (sync calls, usable from any thread).
    pub fn registry(&self) -> &Arc<ProxyRegistry> {
        &self.registry
    }

    /// Where the admin API listens, if it was asked for.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// A token that, cancelled, stops the server (for signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops every proxy and the API, and waits for the proxy thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}
