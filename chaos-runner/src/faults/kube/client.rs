//! The Kubernetes client of a run, and the bridge from the engine's synchronous fault
//! calls to the client's async API.
//!
//! The engine drives faults through synchronous calls on its own single-threaded runtime,
//! so the kube client lives on a runtime of its own (one worker thread); a fault call
//! spawns its request there and waits for the answer. Tests hand in a client built on any
//! tower service (a mock or an in-memory fake API server) with the runtime that drives it.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use super::KubeError;

/// A runtime owned by the client, shut down in the background when the last user drops
/// it (a runtime may not be dropped from inside another one).
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A kube client and the runtime its requests run on.
///
/// ```no_run
/// // Connect from the kubeconfig or the in-cluster service account:
/// let env = chaos_runner::faults::kube::KubeEnv::connect().unwrap();
/// let version = env.block_on({
///     let client = env.client();
///     async move { client.apiserver_version().await }
/// }).unwrap();
/// ```
#[derive(Clone)]
pub struct KubeEnv {
    client: kube::Client,
    handle: tokio::runtime::Handle,
    _runtime: Option<Arc<OwnedRuntime>>,
}

impl std::fmt::Debug for KubeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the client: its config holds credentials.
        f.debug_struct("KubeEnv")
            .field("default_namespace", &self.client.default_namespace())
            .finish_non_exhaustive()
    }
}

impl KubeEnv {
    /// A client built by the caller (e.g. on a test's tower service), whose requests run
    /// on `handle`'s runtime. That runtime must keep running while faults use the client
    /// (a multi-threaded one, or one a test drives from another thread).
    pub fn new(client: kube::Client, handle: tokio::runtime::Handle) -> KubeEnv {
        KubeEnv {
            client,
            handle,
            _runtime: None,
        }
    }

    /// Connects with the inferred configuration: `$KUBECONFIG` or `~/.kube/config`,
    /// else the in-cluster service account. Credentials are never logged.
    pub fn connect() -> Result<KubeEnv, KubeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chaos-kube")
            .enable_all()
            .build()
            .map_err(KubeError::Runtime)?;
        let owned = Arc::new(OwnedRuntime(Some(rt)));
        let handle = owned
            .0
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or(KubeError::RuntimeGone)?;
        let client = spawn_and_wait(&handle, async { kube::Client::try_default().await })?
            .map_err(|e| KubeError::Connect(Box::new(e)))?;
        tracing::info!(
            namespace = client.default_namespace(),
            "connected a Kubernetes client"
        );
        Ok(KubeEnv {
            client,
            handle,
            _runtime: Some(owned),
        })
    }

    /// A clone of the client (cheap).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Runs `fut` on the client's runtime and waits for it. Safe to call from inside the
    /// engine's runtime (the calling thread blocks; the client's runtime does the work).
    pub fn block_on<F, T>(&self, fut: F) -> Result<T, KubeError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        spawn_and_wait(&self.handle, fut)
    }

    /// Spawns `fut` on the client's runtime without waiting (e.g. a readiness watch).
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }
}

fn spawn_and_wait<F, T>(handle: &tokio::runtime::Handle, fut: F) -> Result<T, KubeError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| KubeError::NoAnswer)
}

/// The run's Kubernetes client, connected on first use (a local-only run never
/// connects), or handed in ready-made (tests, embedding programs).
///
/// ```
/// let k = chaos_runner::faults::kube::KubeConnector::lazy();
/// assert!(format!("{k:?}").contains("KubeConnector"));
/// ```
#[derive(Default)]
pub struct KubeConnector {
    env: OnceLock<Result<KubeEnv, Arc<KubeError>>>,
}

impl std::fmt::Debug for KubeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConnector")
            .field("connected", &matches!(self.env.get(), Some(Ok(_))))
            .finish()
    }
}

impl KubeConnector {
    /// Connects with [`KubeEnv::connect`] when first asked.
    pub fn lazy() -> KubeConnector {
        KubeConnector::default()
    }

    /// Always hands out `env`.
    pub fn with(env: KubeEnv) -> KubeConnector {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(env));
        KubeConnector { env: cell }
    }

    /// The client, connecting first if needed; a failed connection is remembered.
    pub fn get(&self) -> Result<&KubeEnv, KubeError> {
        self.env
            .get_or_init(|| KubeEnv::connect().map_err(Arc::new))
            .as_ref()
            .map_err(|e| KubeError::Remembered(Arc::clone(e)))
    }
}
