//! The proxies of one server and their toxics: [`ProxyRegistry`], the forms the API creates
//! and shows proxies in, and the accept loop that hands each connection to its relay.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::ToxicJson;
use crate::busy_poll;
use crate::db_rules::{DbFaultInput, DbFaultView};
use crate::metrics::Metrics;
use crate::pipe::{Connection, Pipe, Relaying};
use crate::relay_threads::RelayThreads;
use crate::toxics::{Armed, Stream, Toxic};
use crate::ApiError;

/// How a proxy relays its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain TCP with toxics (the default).
    #[default]
    Tcp,
    /// PostgreSQL wire protocol (needs a relay registered with [`ProxyRegistry::set_relay`]).
    Postgres,
    /// Redis RESP (needs a relay registered with [`ProxyRegistry::set_relay`]).
    Redis,
}

impl Protocol {
    /// `tcp`, `postgres` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Postgres => "postgres",
            Protocol::Redis => "redis",
        }
    }
}

/// A boxed relay future.
pub type RelayFuture = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

/// A protocol-aware relay (e.g. [`crate::dbproto::DbFaults`]): takes over one accepted client
/// connection and its freshly opened upstream connection.
pub trait ProtocolRelay: Send + Sync + 'static {
    /// Relays `client` to `upstream` until either side closes, busy-polling within
    /// `busy_poll` of each exchange if it can (see [`crate::busy_poll`]; zero: never).
    fn relay(
        self: Arc<Self>,
        client: TcpStream,
        upstream: TcpStream,
        busy_poll: Duration,
    ) -> RelayFuture;
}

/// Gives each proxy of a protocol its own relay (its own fault rules), by proxy name, and
/// manages those rules for the admin API (`/proxies/{proxy}/dbfaults`).
pub trait RelayProvider: Send + Sync + 'static {
    /// The relay of the proxy named `proxy` (the same one every time for that name).
    fn relay_for_proxy(&self, proxy: &str) -> Arc<dyn ProtocolRelay>;
    /// Sets (or replaces, by name) a fault rule on proxy `proxy`; 400 naming the field
    /// when the rule is invalid or does not fit the protocol.
    fn set_fault(&self, proxy: &str, fault: &DbFaultInput) -> Result<DbFaultView, ApiError>;
    /// The rules in force on proxy `proxy`, in order.
    fn faults(&self, proxy: &str) -> Vec<DbFaultView>;
    /// Removes the rule named `name` of proxy `proxy`; whether it was in force.
    fn remove_fault(&self, proxy: &str, name: &str) -> bool;
    /// Removes every rule of proxy `proxy`.
    fn clear_faults(&self, proxy: &str);
}

/// A proxy as the API creates or updates it (toxiproxy's JSON; `protocol` and `dbfaults`
/// are ours). Also the form of `chaos-runner proxy --config` entries. In-process callers
/// leave `toxics` and `dbfaults` empty and add typed toxics with
/// [`ProxyRegistry::add_toxic`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyInput {
    /// Unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Listen address (`127.0.0.1:0` picks a free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Upstream `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Accepting connections (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `tcp` (default), `postgres` or `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Toxics to add at once (toxiproxy's clients send the list back; ours applies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxics: Option<Vec<ToxicJson>>,
    /// Database fault rules to set at once (`protocol: postgres|redis` only; ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbfaults: Option<Vec<DbFaultInput>>,
}

/// A proxy as the registry shows it (the API writes it as [`crate::api::ProxyJson`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyView {
    /// Name.
    pub name: String,
    /// The address it listens on (the bound port when `:0` was asked).
    pub listen: String,
    /// Upstream `host:port`.
    pub upstream: String,
    /// Accepting connections.
    pub enabled: bool,
    /// Relay protocol.
    pub protocol: Protocol,
    /// Its toxics, in the order they were added.
    pub toxics: Vec<Toxic>,
}

struct Listening {
    stop: CancellationToken,
    closed: Arc<AtomicBool>,
}

struct Entry {
    listen: String,
    upstream: String,
    protocol: Protocol,
    enabled: bool,
    toxics: Vec<Armed>,
    tx: watch::Sender<Arc<Vec<Armed>>>,
    listening: Option<Listening>,
}

impl Entry {
    fn view(&self, name: &str) -> ProxyView {
        ProxyView {
            name: name.to_owned(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.enabled,
            protocol: self.protocol,
            toxics: self.toxics.iter().map(|t| t.toxic.clone()).collect(),
        }
    }
}

/// The proxies of one proxy server, their toxics and metrics.
pub struct ProxyRegistry {
    proxies: Mutex<BTreeMap<String, Entry>>,
    relays: Mutex<HashMap<Protocol, Arc<dyn RelayProvider>>>,
    handle: Handle,
    /// Where accepted connections are relayed; none: on `handle`'s runtime.
    relay_threads: Option<Arc<RelayThreads>>,
    metrics: Arc<Metrics>,
    next_id: AtomicU64,
    /// The pass-through's busy-poll window in nanoseconds (see [`busy_poll`]).
    busy_poll_ns: AtomicU64,
    /// Whether the pass-through yields its core after each chunk of a bulk transfer.
    bulk_yield: AtomicBool,
}

impl std::fmt::Debug for ProxyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyRegistry").finish_non_exhaustive()
    }
}

/// How long a stop waits for the listener to close its socket.
const STOP_WAIT: Duration = Duration::from_secs(3);

impl ProxyRegistry {
    /// A registry whose listeners and connections run on `handle` (a multi-thread runtime
    /// other than the caller's, see [`crate::server::ProxyServer`]).
    pub fn new(handle: Handle) -> ProxyRegistry {
        ProxyRegistry::with_relay_threads(handle, None)
    }

    /// A registry whose listeners run on `handle` and whose connections are relayed by
    /// `relay_threads` (each connection owned by one of them).
    pub(crate) fn with_relay_threads(
        handle: Handle,
        relay_threads: Option<Arc<RelayThreads>>,
    ) -> ProxyRegistry {
        ProxyRegistry {
            proxies: Mutex::new(BTreeMap::new()),
            relays: Mutex::new(HashMap::new()),
            handle,
            relay_threads,
            metrics: Arc::new(Metrics::new()),
            next_id: AtomicU64::new(1),
            busy_poll_ns: AtomicU64::new(busy_poll::DEFAULT_WINDOW.as_nanos() as u64),
            bulk_yield: AtomicBool::new(true),
        }
    }

    /// Sets how long the pass-through of connections accepted from now on busy-polls after
    /// each exchange (default [`busy_poll::DEFAULT_WINDOW`]; zero turns it off). A longer
    /// window catches slower replies without a wake-up and costs more CPU while traffic
    /// flows.
    ///
    /// ```
    /// use fault_proxy::server::ProxyServer;
    /// let server = ProxyServer::start(None).unwrap();
    /// server.registry().set_busy_poll(std::time::Duration::ZERO);
    /// assert!(server.registry().busy_poll().is_zero());
    /// ```
    pub fn set_busy_poll(&self, window: Duration) {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        self.busy_poll_ns.store(nanos, Ordering::Relaxed);
    }

    /// The busy-poll window (see [`ProxyRegistry::set_busy_poll`]).
    pub fn busy_poll(&self) -> Duration {
        Duration::from_nanos(self.busy_poll_ns.load(Ordering::Relaxed))
    }

    /// Sets whether the pass-through of connections accepted from now on yields its core
    /// (`sched_yield`) after each spliced chunk of a bulk transfer (default on). The
    /// yield lets the sender and the receiver, which on a small machine share the
    /// proxy's cores, run before the next chunk is taken, so chunks are bigger and every
    /// side makes fewer wake-ups and system calls per MiB. It never delays bytes already
    /// taken (the chunk is written first) and costs one system call per chunk when no
    /// other thread wants the core. When one does, the relay thread's other connections
    /// wait with it, until the scheduler gives the thread its core back: turn it off
    /// where a latency-bound connection shares a proxy with bulk transfers on a loaded
    /// host.
    ///
    /// ```
    /// use fault_proxy::server::ProxyServer;
    /// let server = ProxyServer::start(None).unwrap();
    /// assert!(server.registry().bulk_yield());
    /// server.registry().set_bulk_yield(false);
    /// assert!(!server.registry().bulk_yield());
    /// ```
    pub fn set_bulk_yield(&self, on: bool) {
        self.bulk_yield.store(on, Ordering::Relaxed);
    }

    /// Whether bulk transfers yield the core after each chunk (see
    /// [`ProxyRegistry::set_bulk_yield`]).
    pub fn bulk_yield(&self) -> bool {
        self.bulk_yield.load(Ordering::Relaxed)
    }

    /// The relaying settings a newly opened listener gives its connections.
    fn relaying(&self) -> Relaying {
        Relaying {
            busy_poll: self.busy_poll(),
            bulk_yield: self.bulk_yield(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metrics of every proxy.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Registers the relays for proxies of `protocol` (e.g. the PostgreSQL fault relay):
    /// each proxy gets its own from `provider`.
    pub fn set_relay(&self, protocol: Protocol, provider: Arc<dyn RelayProvider>) {
        self.relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(protocol, provider);
    }

    fn provider_for(&self, protocol: Protocol) -> Result<Option<Arc<dyn RelayProvider>>, ApiError> {
        if protocol == Protocol::Tcp {
            return Ok(None);
        }
        self.relays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&protocol)
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "protocol: no {} relay is available in this runner",
                    protocol.as_str()
                ))
            })
    }

    fn relay_for(
        &self,
        protocol: Protocol,
        proxy: &str,
    ) -> Result<Option<Arc<dyn ProtocolRelay>>, ApiError> {
        Ok(self
            .provider_for(protocol)?
            .map(|provider| provider.relay_for_proxy(proxy)))
    }

    /// Every proxy, by name.
    pub fn list(&self) -> BTreeMap<String, ProxyView> {
        self.lock()
            .iter()
            .map(|(name, e)| (name.clone(), e.view(name)))
            .collect()
    }

    /// One proxy.
    pub fn get(&self, name: &str) -> Result<ProxyView, ApiError> {
        self.lock()
            .get(name)
            .map(|e| e.view(name))
            .ok_or_else(|| ApiError::not_found("proxy not found"))
    }

    /// Creates a proxy (409 if the name is taken, 400 on a missing field or a listen
    /// address that cannot be bound). Toxics given in `input.toxics` are added.
    pub fn create(&self, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let name = input
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("name: missing required field"))?;
        let upstream = input
            .upstream
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::bad_request("upstream: missing required field"))?;
        let listen = input
            .listen
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let protocol = input.protocol.unwrap_or_default();
        let enabled = input.enabled.unwrap_or(true);
        let provider = self.provider_for(protocol)?;
        let dbfaults = input.dbfaults.unwrap_or_default();
        if provider.is_none() && !dbfaults.is_empty() {
            return Err(ApiError::bad_request(
                "dbfaults: database fault rules need `protocol: postgres` or `protocol: redis`",
            ));
        }
        let mut toxics = Vec::new();
        for json in input.toxics.iter().flatten() {
            let toxic = self.arm(json.to_toxic()?)?;
            if toxics
                .iter()
                .any(|t: &Armed| t.toxic.name == toxic.toxic.name)
            {
                return Err(ApiError::conflict("toxic already exists"));
            }
            toxics.push(toxic);
        }
        let mut proxies = self.lock();
        if proxies.contains_key(&name) {
            return Err(ApiError::conflict("proxy already exists"));
        }
        let (tx, _) = watch::channel(Arc::new(toxics.clone()));
        let mut entry = Entry {
            listen,
            upstream,
            protocol,
            enabled,
            toxics,
            tx,
            listening: None,
        };
        // The rules are in force before the first connection is accepted (a proxy of
        // this name deleted earlier leaves none behind: start clean).
        if let Some(provider) = &provider {
            provider.clear_faults(&name);
            for (i, fault) in dbfaults.iter().enumerate() {
                if let Err(e) = provider.set_fault(&name, fault) {
                    provider.clear_faults(&name);
                    return Err(e.prefixed(&format!("dbfaults[{i}].")));
                }
            }
        }
        if enabled {
            if let Err(e) = self.start(&name, &mut entry) {
                if let Some(provider) = &provider {
                    provider.clear_faults(&name);
                }
                return Err(e);
            }
        }
        self.metrics
            .toxics
            .get_or_create(&Metrics::labels(&name))
            .set(entry.toxics.len() as i64);
        let view = entry.view(&name);
        tracing::info!(proxy = %name, listen = %entry.listen, upstream = %entry.upstream, "proxy created");
        proxies.insert(name, entry);
        Ok(view)
    }

    /// Updates `listen`, `upstream`, `enabled` of proxy `name` (toxiproxy's
    /// `POST /proxies/{name}`). Disabling refuses new connections and cuts open ones.
    pub fn update(&self, name: &str, input: ProxyInput) -> Result<ProxyView, ApiError> {
        let mut proxies = self.lock();
        let entry = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        let listen = input.listen.filter(|l| !l.is_empty());
        let upstream = input.upstream.filter(|u| !u.is_empty());
        let protocol = input.protocol.unwrap_or(entry.protocol);
        self.provider_for(protocol)?;
        let enabled = input.enabled.unwrap_or(entry.enabled);
        let changed = listen.as_ref().is_some_and(|l| *l != entry.listen)
            || upstream.as_ref().is_some_and(|u| *u != entry.upstream)
            || protocol != entry.protocol;
        if changed || !enabled {
            Self::stop(entry);
        }
        if protocol != entry.protocol {
            // Rules of the old protocol do not carry over (nor come back later).
            if let Ok(Some(provider)) = self.provider_for(entry.protocol) {
                provider.clear_faults(name);
            }
        }
        if let Some(l) = listen {
            entry.listen = l;
        }
        if let Some(u) = upstream {
            entry.upstream = u;
        }
        entry.protocol = protocol;
        entry.enabled = enabled;
        if enabled && entry.listening.is_none() {
            if let Err(e) = self.start(name, entry) {
                entry.enabled = false;
                return Err(e);
            }
        }
        Ok(entry.view(name))
    }

    /// Deletes proxy `name`, closing its listener and connections.
    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut entry = self
            .lock()
            .remove(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        Self::stop(&mut entry);
        if let Ok(Some(provider)) = self.provider_for(entry.protocol) {
            provider.clear_faults(name);
        }
        self.metrics
            .toxics
            .get_or_create(&Metrics::labels(name))
            .set(0);
        tracing::info!(proxy = %name, "proxy deleted");
        Ok(())
    }

    /// Re-enables every proxy and removes every toxic and database fault rule
    /// (toxiproxy's `POST /reset`).
    pub fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.lock();
        let mut first_error = None;
        for (name, entry) in proxies.iter_mut() {
            if let Ok(Some(provider)) = self.provider_for(entry.protocol) {
                provider.clear_faults(name);
            }
            entry.toxics.clear();
            entry.tx.send_replace(Arc::new(Vec::new()));
            self.metrics
                .toxics
                .get_or_create(&Metrics::labels(name))
                .set(0);
            entry.enabled = true;
            if entry.listening.is_none() {
                if let Err(e) = self.start(name, entry) {
                    entry.enabled = false;
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Creates or replaces each proxy of `inputs` (toxiproxy's `POST /populate`): one that
    /// exists with the same listen address, upstream and protocol is kept, others are
    /// recreated. On an error, proxies created by this call are removed again.
    pub fn populate(&self, inputs: Vec<ProxyInput>) -> Result<Vec<ProxyView>, ApiError> {
        let mut created: Vec<String> = Vec::new();
        let mut views = Vec::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let result = (|| {
                let name = input.name.clone().unwrap_or_default();
                if let Ok(existing) = self.get(&name) {
                    let same = input.upstream.as_deref() == Some(existing.upstream.as_str())
                        && input.listen.as_deref().is_none_or(|l| l == existing.listen)
                        && input.protocol.unwrap_or_default() == existing.protocol;
                    if same {
                        return Ok((existing, false));
                    }
                    self.delete(&name)?;
                }
                self.create(input).map(|v| (v, true))
            })();
            match result {
                Ok((view, new)) => {
                    if new {
                        created.push(view.name.clone());
                    }
                    views.push(view);
                }
                Err(e) => {
                    for name in &created {
                        let _ = self.delete(name);
                    }
                    return Err(e.prefixed(&format!("proxies[{i}].")));
                }
            }
        }
        Ok(views)
    }

    /// The toxics of proxy `name`.
    pub fn toxics(&self, name: &str) -> Result<Vec<Toxic>, ApiError> {
        self.get(name).map(|v| v.toxics)
    }

    /// The database fault provider of proxy `name` (404 if no such proxy, 400 if it
    /// relays plain TCP).
    fn db_provider(&self, name: &str) -> Result<Arc<dyn RelayProvider>, ApiError> {
        let protocol = self
            .lock()
            .get(name)
            .map(|e| e.protocol)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        self.provider_for(protocol)?.ok_or_else(|| {
            ApiError::bad_request(format!(
                "proxy `{name}` relays plain tcp: database faults need a proxy with \
                 `protocol: postgres` or `protocol: redis`"
            ))
        })
    }

    /// The database fault rules in force on proxy `name`.
    pub fn db_faults(&self, name: &str) -> Result<Vec<DbFaultView>, ApiError> {
        Ok(self.db_provider(name)?.faults(name))
    }

    /// One database fault rule of proxy `name` (404 if not in force).
    pub fn db_fault(&self, name: &str, fault: &str) -> Result<DbFaultView, ApiError> {
        self.db_faults(name)?
            .into_iter()
            .find(|f| f.name == fault)
            .ok_or_else(|| ApiError::not_found("database fault not found"))
    }

    /// Sets (or replaces) a database fault rule on proxy `name`; open connections feel
    /// it from their next statement or command.
    pub fn set_db_fault(&self, name: &str, fault: &DbFaultInput) -> Result<DbFaultView, ApiError> {
        let view = self.db_provider(name)?.set_fault(name, fault)?;
        tracing::info!(proxy = %name, rule = %fault.name, kind = %fault.fault_type, "database fault set");
        Ok(view)
    }

    /// Removes database fault rule `fault` of proxy `name` (404 if not in force).
    pub fn remove_db_fault(&self, name: &str, fault: &str) -> Result<(), ApiError> {
        if self.db_provider(name)?.remove_fault(name, fault) {
            tracing::info!(proxy = %name, rule = %fault, "database fault removed");
            Ok(())
        } else {
            Err(ApiError::not_found("database fault not found"))
        }
    }

    /// One toxic of proxy `name`.
    pub fn toxic(&self, name: &str, toxic: &str) -> Result<Toxic, ApiError> {
        let proxies = self.lock();
        let entry = proxies
            .get(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        entry
            .toxics
            .iter()
            .find(|t| t.toxic.name == toxic)
            .map(|t| t.toxic.clone())
            .ok_or_else(|| ApiError::not_found("toxic not found"))
    }

    /// `toxic`, checked, with a fresh setting id (its connections roll their dice anew).
    fn arm(&self, toxic: Toxic) -> Result<Armed, ApiError> {
        toxic.check()?;
        Ok(Armed {
            toxic,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn publish(&self, name: &str, entry: &Entry) {
        entry.tx.send_replace(Arc::new(entry.toxics.clone()));
        self.metrics
            .toxics
            .get_or_create(&Metrics::labels(name))
            .set(entry.toxics.len() as i64);
    }

    /// Adds `toxic` to proxy `name`; open connections feel it at once (400 if it does not
    /// pass [`Toxic::check`]; 409 if a toxic of that name exists; 400 on a
    /// `postgres`/`redis` proxy, whose protocol relay applies no toxic). The toxic as
    /// added.
    pub fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<Toxic, ApiError> {
        let armed = self.arm(toxic)?;
        let mut proxies = self.lock();
        let entry = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        if entry.protocol != Protocol::Tcp {
            return Err(ApiError::bad_request(format!(
                "proxy `{name}` relays the {} protocol, which applies no toxic: toxics need a tcp proxy",
                entry.protocol.as_str()
            )));
        }
        if entry
            .toxics
            .iter()
            .any(|t| t.toxic.name == armed.toxic.name)
        {
            return Err(ApiError::conflict("toxic already exists"));
        }
        let added = armed.toxic.clone();
        tracing::info!(proxy = %name, toxic = %added.name, kind = added.kind.type_name(), "toxic added");
        entry.toxics.push(armed);
        self.publish(name, entry);
        Ok(added)
    }

    /// Replaces toxic `toxic` of proxy `name` by what `update` makes of it (under the
    /// registry's lock, so nothing changes it meanwhile); the name stays. The toxic as
    /// updated.
    pub fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        update: impl FnOnce(&Toxic) -> Result<Toxic, ApiError>,
    ) -> Result<Toxic, ApiError> {
        let mut proxies = self.lock();
        let entry = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        let index = entry
            .toxics
            .iter()
            .position(|t| t.toxic.name == toxic)
            .ok_or_else(|| ApiError::not_found("toxic not found"))?;
        let old = &entry.toxics[index].toxic;
        let updated = Toxic {
            name: old.name.clone(),
            ..update(old)?
        };
        let armed = self.arm(updated)?;
        let view = armed.toxic.clone();
        entry.toxics[index] = armed;
        self.publish(name, entry);
        Ok(view)
    }

    /// Removes toxic `toxic` of proxy `name`; data it held flows on, nothing is lost.
    pub fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.lock();
        let entry = proxies
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("proxy not found"))?;
        let before = entry.toxics.len();
        entry.toxics.retain(|t| t.toxic.name != toxic);
        if entry.toxics.len() == before {
            return Err(ApiError::not_found("toxic not found"));
        }
        tracing::info!(proxy = %name, toxic = %toxic, "toxic removed");
        self.publish(name, entry);
        Ok(())
    }

    /// Removes toxic `toxic` of proxy `name` after `after` unless it was removed or
    /// replaced meanwhile: the fault's own expiry.
    pub fn expire_toxic(self: &Arc<Self>, name: &str, toxic: &str, after: Duration) {
        let id = self.lock().get(name).and_then(|e| {
            e.toxics
                .iter()
                .find(|t| t.toxic.name == toxic)
                .map(|t| t.id)
        });
        let Some(id) = id else { return };
        let (this, name, toxic) = (self.clone(), name.to_owned(), toxic.to_owned());
        self.handle.spawn(async move {
            tokio::time::sleep(after).await;
            let mut proxies = this.lock();
            if let Some(entry) = proxies.get_mut(&name) {
                if entry.toxics.iter().any(|t| t.id == id) {
                    tracing::warn!(proxy = %name, toxic = %toxic, "toxic expired; removing it");
                    entry.toxics.retain(|t| t.id != id);
                    this.publish(&name, entry);
                }
            }
        });
    }

    /// Re-enables proxy `name` after `after` (the expiry of a `down` fault).
    pub fn expire_down(self: &Arc<Self>, name: &str, after: Duration) {
        let (this, name) = (self.clone(), name.to_owned());
        self.handle.spawn(async move {
            tokio::time::sleep(after).await;
            let enable = ProxyInput {
                enabled: Some(true),
                ..Default::default()
            };
            let _ = tokio::task::spawn_blocking(move || this.update(&name, enable)).await;
        });
    }

    /// Stops every proxy (listeners and connections); used at shutdown.
    pub fn close_all(&self) {
        let mut proxies = self.lock();
        for entry in proxies.values_mut() {
            Self::stop(entry);
        }
        proxies.clear();
    }

    /// Binds the listen address and starts accepting.
    fn start(&self, name: &str, entry: &mut Entry) -> Result<(), ApiError> {
        let relay = self.relay_for(entry.protocol, name)?;
        let listener = std::net::TcpListener::bind(&entry.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                ApiError::bad_request(format!("listen: cannot listen on {}: {e}", entry.listen))
            })?;
        if let Ok(addr) = listener.local_addr() {
            entry.listen = addr.to_string();
        }
        let stop = CancellationToken::new();
        let closed = Arc::new(AtomicBool::new(false));
        let accept = Accept {
            name: name.to_owned(),
            upstream: entry.upstream.clone(),
            relay,
            toxics: entry.tx.subscribe(),
            stop: stop.clone(),
            metrics: self.metrics.clone(),
            relaying: self.relaying(),
            relay_threads: self.relay_threads.clone(),
        };
        let done = closed.clone();
        self.handle.spawn(async move {
            accept.run(listener).await;
            done.store(true, Ordering::SeqCst);
        });
        entry.listening = Some(Listening { stop, closed });
        Ok(())
    }

    /// Stops accepting, cuts open connections, and waits (briefly) until the listening
    /// socket is closed so its address can be bound again at once.
    fn stop(entry: &mut Entry) {
        if let Some(listening) = entry.listening.take() {
            listening.stop.cancel();
            let start = Instant::now();
            while !listening.closed.load(Ordering::SeqCst) && start.elapsed() < STOP_WAIT {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The accept loop of one proxy.
struct Accept {
    name: String,
    upstream: String,
    relay: Option<Arc<dyn ProtocolRelay>>,
    toxics: watch::Receiver<Arc<Vec<Armed>>>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    /// How the pass-through relays this proxy's connections.
    relaying: Relaying,
    /// The threads that relay its connections (none: this runtime).
    relay_threads: Option<Arc<RelayThreads>>,
}

impl Accept {
    async fn run(self, listener: std::net::TcpListener) {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(proxy = %self.name, "cannot listen: {e}");
                return;
            }
        };
        let this = Arc::new(self);
        loop {
            tokio::select! {
                _ = this.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((client, _)) => this.clone().dispatch(client),
                    Err(e) => {
                        tracing::warn!(proxy = %this.name, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    }

    /// Hands an accepted connection to the next relay thread (or relays it here).
    fn dispatch(self: Arc<Self>, client: TcpStream) {
        let Some(threads) = self.relay_threads.clone() else {
            tokio::spawn(async move { self.connection(client).await });
            return;
        };
        // A socket belongs to the runtime it is registered with: leave this one's.
        let client = match client.into_std() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(proxy = %self.name, "cannot hand a connection over: {e}");
                return;
            }
        };
        threads.spawn(async move {
            match TcpStream::from_std(client) {
                Ok(client) => self.connection(client).await,
                Err(e) => tracing::warn!(proxy = %self.name, "cannot take a connection over: {e}"),
            }
        });
    }

    async fn connection(&self, client: TcpStream) {
        let cut = self.stop.child_token();
        let upstream = tokio::select! {
            _ = cut.cancelled() => return,
            up = TcpStream::connect(&self.upstream) => up,
        };
        let upstream = match upstream {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!(proxy = %self.name, upstream = %self.upstream, "upstream refused: {e}");
                return;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let labels = Metrics::labels(&self.name);
        self.metrics.accepted.get_or_create(&labels).inc();
        let open = self.metrics.open.get_or_create(&labels).clone();
        open.inc();
        hand_off(self, client, upstream, cut).await;
        open.dec();
    }
}

/// The one place where a connection is handed to its relay: the protocol relay when the
/// proxy has one, else the toxic TCP pipes (one per direction).
async fn hand_off(accept: &Accept, client: TcpStream, upstream: TcpStream, cut: CancellationToken) {
    if let Some(relay) = &accept.relay {
        tokio::select! {
            _ = cut.cancelled() => {}
            result = relay.clone().relay(client, upstream, accept.relaying.busy_poll) => {
                if let Err(e) = result {
                    tracing::debug!(proxy = %accept.name, "relay ended: {e}");
                }
            }
        }
        return;
    }
    let conn = Connection::new(cut, accept.relaying);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let up = Pipe {
        src: client_read,
        dst: upstream_write,
        stream: Stream::Upstream,
        toxics: accept.toxics.clone(),
        conn: conn.clone(),
        bytes: accept.metrics.bytes_of(&accept.name, "upstream"),
    };
    let down = Pipe {
        src: upstream_read,
        dst: client_write,
        stream: Stream::Downstream,
        toxics: accept.toxics.clone(),
        conn,
        bytes: accept.metrics.bytes_of(&accept.name, "downstream"),
    };
    // A task per direction: a wake-up (bytes arrived on one socket) polls only the
    // direction it concerns. Both run on this thread (a relay thread owns its connections).
    let down = tokio::spawn(down.run());
    up.run().await;
    let _ = down.await;
}
