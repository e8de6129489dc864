//! Protocol-aware database faults: a relay between a client and a PostgreSQL or Redis
//! server that understands the wire protocol well enough to fail, delay or cut single
//! statements and commands, so the client sees a proper protocol error (a `DbError` with
//! a SQLSTATE, a RESP error) rather than a broken socket.
//!
//! A [`DbFaults`] holds named [`Rule`]s; rules can be set and removed from any thread at
//! any time and apply at once to connections already open. [`DbFaults::relay`] runs one
//! client connection against its upstream connection.
//!
//! How an error is injected without breaking the server's view of the session: the
//! matching statement (command) is not forwarded; in its place the relay sends a *poison*
//! the server is certain to reject (an identifier `chaos_injected_fault_<n>` as the whole
//! statement or command name). The server answers it in order with its own error, and
//! the relay swaps that one error message for the configured one. So replies keep their
//! order under pipelining without the relay queueing anything, and PostgreSQL's
//! transaction state stays right: inside `BEGIN` the server's transaction is failed just
//! as the client is told, outside it the implicit transaction is rolled back.

pub mod admin;
pub mod params;
mod postgres;
mod redis;
mod rules;

pub use rules::{
    check_redis_error, valid_sqlstate, Action, PgError, Phase, Protocol, RedisLineError, Rule,
    RuleError, Severity, REDIS_ERROR_PREFIXES,
};

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::busy_poll::BusyRead;
use crate::db_rules::{DbFaultInput, DbFaultView};
use crate::ApiError;

/// The identifier a poison statement or command is named with.
pub(crate) const MARKER: &[u8] = b"chaos_injected_fault_";

/// A rule and how often it fired.
#[derive(Debug)]
struct Entry {
    rule: Rule,
    id: u64,
    hits: AtomicU64,
    setting: RuleSetting,
}

impl Entry {
    /// Whether the rule is still in force at `now` (not past its expiry).
    fn live(&self, now: Instant) -> bool {
        self.setting.expires_at.is_none_or(|at| now < at)
    }
}

/// How a rule was set: when it stops by itself and, for rules set over the admin API,
/// the fault type and attributes it was given as (shown back by the API).
///
/// ```
/// use fault_proxy::dbproto::RuleSetting;
/// let s = RuleSetting::expiring_in(std::time::Duration::from_secs(30));
/// assert!(s.expires_at.is_some());
/// assert!(RuleSetting::default().expires_at.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSetting {
    /// When the rule stops applying by itself (`None`: until removed). An expired rule
    /// never fires again, whether or not anything removes it.
    pub expires_at: Option<Instant>,
    /// The fault type and attributes it was set from (admin API rules).
    pub source: Option<RuleSource>,
}

impl RuleSetting {
    /// A setting that expires `after` from now.
    pub fn expiring_in(after: std::time::Duration) -> RuleSetting {
        RuleSetting {
            expires_at: Some(Instant::now() + after),
            source: None,
        }
    }
}

/// The fault type and attributes an admin API rule was set from.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSource {
    /// The fault type (`postgres-latency`, ...).
    pub fault_type: String,
    /// The attributes as given.
    pub attributes: serde_json::Value,
}

/// A rule in force, as [`DbFaults::entries`] lists it.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    /// The rule.
    pub rule: Rule,
    /// The id of this setting (see [`DbFaults::remove_rule_id`]).
    pub id: u64,
    /// How many times it fired.
    pub hits: u64,
    /// How it was set.
    pub setting: RuleSetting,
}

/// How a relayed connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEnd {
    /// One side closed.
    Closed,
    /// Encrypted (TLS or GSS) or not understood: bytes were passed through untouched.
    Passthrough,
    /// Refused at startup by the rule named.
    Refused(String),
    /// Dropped at startup by the rule named.
    Dropped(String),
    /// Reset mid-request by the rule named.
    Reset(String),
    /// Ended by an injected `FATAL` error of the rule named.
    Fatal(String),
}

/// Counters of one [`DbFaults`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbStats {
    /// Connections relayed.
    pub connections: u64,
    /// Connections passed through untouched because they were encrypted (TLS/GSS)
    /// or their protocol was not understood: no fault applies to them.
    pub passthrough: u64,
}

/// Protocol fault rules shared by every connection of one proxy.
///
/// ```
/// use fault_proxy::dbproto::{Action, DbFaults, PgError, Protocol, Rule, Severity};
/// let faults = DbFaults::new(Protocol::Postgres);
/// let err = PgError { sqlstate: "40001".into(), severity: Severity::Error, message: "injected".into() };
/// faults.set_rule(Rule::new("ser", Some("UPDATE"), Action::PgError(err), 0.5).unwrap()).unwrap();
/// assert_eq!(faults.rules().len(), 1);
/// assert!(faults.remove_rule("ser"));
/// assert!(faults.rules().is_empty());
/// ```
#[derive(Debug)]
pub struct DbFaults {
    protocol: Protocol,
    rules: ArcSwap<Vec<Arc<Entry>>>,
    writer: Mutex<()>,
    connections: AtomicU64,
    passthrough: AtomicU64,
    next_id: AtomicU64,
}

impl DbFaults {
    /// An empty rule set for `protocol`.
    pub fn new(protocol: Protocol) -> Arc<DbFaults> {
        Arc::new(DbFaults {
            protocol,
            rules: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(()),
            connections: AtomicU64::new(0),
            passthrough: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        })
    }

    /// The protocol relayed.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Adds `rule`, replacing any rule of the same name (keeping its place). Rules are
    /// looked at in the order they were first added; the first that fires wins.
    /// Returns the id of this setting, for [`DbFaults::remove_rule_id`].
    pub fn set_rule(&self, rule: Rule) -> Result<u64, RuleError> {
        self.set_rule_with(rule, RuleSetting::default())
    }

    /// [`DbFaults::set_rule`] with a setting: an expiry after which the rule never fires
    /// (a runner that dies cannot leave it in force), and where it came from.
    ///
    /// ```
    /// use fault_proxy::dbproto::{Action, DbFaults, Protocol, Rule, RuleSetting};
    /// let faults = DbFaults::new(Protocol::Redis);
    /// let gone = RuleSetting { expires_at: Some(std::time::Instant::now()), source: None };
    /// faults.set_rule_with(Rule::new("d", None, Action::Drop, 1.0).unwrap(), gone).unwrap();
    /// assert!(faults.rules().is_empty(), "an expired rule is not in force");
    /// ```
    pub fn set_rule_with(&self, rule: Rule, setting: RuleSetting) -> Result<u64, RuleError> {
        rule.fits(self.protocol)?;
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        // Expired rules are dropped whenever the set changes.
        let mut next: Vec<Arc<Entry>> = self
            .rules
            .load()
            .iter()
            .filter(|e| e.live(now))
            .cloned()
            .collect();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            rule,
            id,
            hits: AtomicU64::new(0),
            setting,
        });
        match next.iter().position(|e| e.rule.name == entry.rule.name) {
            Some(i) => next[i] = entry,
            None => next.push(entry),
        }
        self.rules.store(Arc::new(next));
        Ok(id)
    }

    /// Removes the rule named `name`; whether it was there.
    pub fn remove_rule(&self, name: &str) -> bool {
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.rules.load();
        let next: Vec<Arc<Entry>> = current
            .iter()
            .filter(|e| e.rule.name != name)
            .cloned()
            .collect();
        let removed = next.len() != current.len();
        self.rules.store(Arc::new(next));
        removed
    }

    /// Removes the rule named `name` only if it is still the setting `id` (not replaced
    /// since): a fault's own expiry uses this. Whether it was removed.
    pub fn remove_rule_id(&self, name: &str, id: u64) -> bool {
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.rules.load();
        let next: Vec<Arc<Entry>> = current
            .iter()
            .filter(|e| !(e.rule.name == name && e.id == id))
            .cloned()
            .collect();
        let removed = next.len() != current.len();
        self.rules.store(Arc::new(next));
        removed
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.rules.store(Arc::new(Vec::new()));
    }

    /// The rules in force, in order.
    pub fn rules(&self) -> Vec<Rule> {
        self.entries().into_iter().map(|e| e.rule).collect()
    }

    /// The rules in force with their ids, hit counts and settings, in order.
    pub fn entries(&self) -> Vec<RuleEntry> {
        let now = Instant::now();
        self.rules
            .load()
            .iter()
            .filter(|e| e.live(now))
            .map(|e| RuleEntry {
                rule: e.rule.clone(),
                id: e.id,
                hits: e.hits.load(Ordering::Relaxed),
                setting: e.setting.clone(),
            })
            .collect()
    }

    /// The rule in force named `name`.
    pub fn entry(&self, name: &str) -> Option<RuleEntry> {
        self.entries().into_iter().find(|e| e.rule.name == name)
    }

    /// How many times the rule named `name` fired (`None` if there is no such rule).
    ///
    /// ```
    /// use fault_proxy::dbproto::{Action, DbFaults, Protocol, Rule};
    /// let faults = DbFaults::new(Protocol::Redis);
    /// faults.set_rule(Rule::new("d", None, Action::Drop, 1.0).unwrap()).unwrap();
    /// assert_eq!(faults.hits("d"), Some(0));
    /// ```
    pub fn hits(&self, name: &str) -> Option<u64> {
        self.entry(name).map(|e| e.hits)
    }

    /// The id of the current setting of the rule named `name` (in force).
    pub fn rule_id(&self, name: &str) -> Option<u64> {
        self.entry(name).map(|e| e.id)
    }

    /// Connection counters.
    pub fn stats(&self) -> DbStats {
        DbStats {
            connections: self.connections.load(Ordering::Relaxed),
            passthrough: self.passthrough.load(Ordering::Relaxed),
        }
    }

    /// The action of the first rule firing for `text` in `phase`, with the rule's name.
    pub(crate) fn pick(&self, phase: Phase, text: &str) -> Option<(String, Action)> {
        let rules = self.rules.load();
        let now = Instant::now();
        let entry = rules
            .iter()
            .find(|e| e.live(now) && e.rule.fires(phase, text))?;
        entry.hits.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(rule = %entry.rule.name, protocol = self.protocol.name(), "db fault fired");
        Some((entry.rule.name.clone(), entry.rule.action.clone()))
    }

    pub(crate) fn count_passthrough(&self) {
        self.passthrough.fetch_add(1, Ordering::Relaxed);
    }

    /// Relays one client connection to its upstream connection, applying the rules
    /// until either side closes.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use fault_proxy::dbproto::{DbFaults, Protocol};
    /// let faults = DbFaults::new(Protocol::Redis);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let (client, _) = listener.accept().await?;
    /// let upstream = tokio::net::TcpStream::connect("127.0.0.1:6379").await?;
    /// faults.relay(client, upstream).await?;
    /// # Ok(()) }
    /// ```
    pub async fn relay(
        self: &Arc<Self>,
        client: TcpStream,
        upstream: TcpStream,
    ) -> io::Result<RelayEnd> {
        self.relay_with(client, upstream, crate::busy_poll::DEFAULT_WINDOW)
            .await
    }

    /// [`DbFaults::relay`] with a busy-poll window other than the default (see
    /// [`crate::busy_poll`]; zero turns it off), as a proxy server's
    /// [`crate::ProxyRegistry::set_busy_poll`] sets it.
    pub async fn relay_with(
        self: &Arc<Self>,
        client: TcpStream,
        upstream: TcpStream,
        busy_poll: std::time::Duration,
    ) -> io::Result<RelayEnd> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        match self.protocol {
            Protocol::Postgres => postgres::relay(self, client, upstream, busy_poll).await,
            Protocol::Redis => redis::relay(self, client, upstream, busy_poll).await,
        }
    }

    /// The read halves of a connection, each busy-polling within `busy_poll` of the last
    /// bytes either brought (see [`crate::busy_poll::BusyRead`]).
    fn read_halves(
        client: tokio::net::tcp::OwnedReadHalf,
        upstream: tokio::net::tcp::OwnedReadHalf,
        busy_poll: std::time::Duration,
    ) -> (BusyRead, BusyRead) {
        let activity = Arc::new(crate::busy_poll::Activity::default());
        (
            BusyRead::new(client, activity.clone(), busy_poll),
            BusyRead::new(upstream, activity, busy_poll),
        )
    }

    /// Accepts connections on `listener` for ever, relaying each to a new connection to
    /// `upstream` (a connection whose upstream cannot be reached is closed).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, upstream: SocketAddr) {
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "db proxy accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let faults = Arc::clone(&self);
            tokio::spawn(async move {
                let upstream = match TcpStream::connect(upstream).await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(%peer, %upstream, error = %e, "db proxy cannot reach upstream");
                        return;
                    }
                };
                match faults.relay(client, upstream).await {
                    Ok(end) => tracing::debug!(%peer, ?end, "db proxy connection ended"),
                    Err(e) => tracing::debug!(%peer, error = %e, "db proxy connection failed"),
                }
            });
        }
    }
}

impl crate::ProtocolRelay for DbFaults {
    fn relay(
        self: Arc<Self>,
        client: TcpStream,
        upstream: TcpStream,
        busy_poll: std::time::Duration,
    ) -> crate::RelayFuture {
        Box::pin(async move {
            let end = DbFaults::relay_with(&self, client, upstream, busy_poll).await?;
            tracing::debug!(protocol = self.protocol.name(), ?end, "db relay ended");
            Ok(())
        })
    }
}

impl From<Protocol> for crate::Protocol {
    /// The proxy protocol that relays `protocol`.
    fn from(protocol: Protocol) -> crate::Protocol {
        match protocol {
            Protocol::Postgres => crate::Protocol::Postgres,
            Protocol::Redis => crate::Protocol::Redis,
        }
    }
}

/// The PostgreSQL and Redis rule sets of one proxy server, one per proxy: a rule set on
/// one `protocol: postgres` proxy never touches another database's proxy.
///
/// ```
/// use fault_proxy::dbproto::{DbRelays, Protocol};
/// let relays = DbRelays::default();
/// let saves = relays.get(Protocol::Postgres, "saves-db");
/// assert_eq!(saves.protocol(), Protocol::Postgres);
/// assert!(std::sync::Arc::ptr_eq(&saves, &relays.get(Protocol::Postgres, "saves-db")));
/// assert!(!std::sync::Arc::ptr_eq(&saves, &relays.get(Protocol::Postgres, "ratings-db")));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DbRelays {
    sets: Arc<Mutex<RuleSets>>,
}

/// The rule sets by protocol and proxy name.
type RuleSets = HashMap<(Protocol, String), Arc<DbFaults>>;

impl DbRelays {
    /// The rule set of the `protocol` proxy named `proxy` (created empty on first use).
    pub fn get(&self, protocol: Protocol, proxy: &str) -> Arc<DbFaults> {
        self.sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((protocol, proxy.to_owned()))
            .or_insert_with(|| DbFaults::new(protocol))
            .clone()
    }

    /// Registers the PostgreSQL and Redis relays with a proxy registry.
    pub fn register(&self, registry: &crate::ProxyRegistry) {
        for protocol in [Protocol::Postgres, Protocol::Redis] {
            registry.set_relay(
                protocol.into(),
                Arc::new(ProxyRelays {
                    relays: self.clone(),
                    protocol,
                }),
            );
        }
    }
}

/// The relays of one protocol, one per proxy name.
struct ProxyRelays {
    relays: DbRelays,
    protocol: Protocol,
}

impl crate::RelayProvider for ProxyRelays {
    fn relay_for_proxy(&self, proxy: &str) -> Arc<dyn crate::ProtocolRelay> {
        self.relays.get(self.protocol, proxy)
    }

    fn set_fault(&self, proxy: &str, fault: &DbFaultInput) -> Result<DbFaultView, ApiError> {
        let (rule, setting) = admin::rule_from_input(self.protocol, fault)?;
        let faults = self.relays.get(self.protocol, proxy);
        faults
            .set_rule_with(rule, setting)
            .map_err(|e| ApiError::bad_request(format!("attributes: {e}")))?;
        faults
            .entry(&fault.name)
            .map(|e| admin::view(&e))
            .ok_or_else(|| ApiError::bad_request("the rule expired as it was set"))
    }

    fn faults(&self, proxy: &str) -> Vec<DbFaultView> {
        self.relays
            .get(self.protocol, proxy)
            .entries()
            .iter()
            .map(admin::view)
            .collect()
    }

    fn remove_fault(&self, proxy: &str, name: &str) -> bool {
        let faults = self.relays.get(self.protocol, proxy);
        // An expired rule is not in force: removing it is not "found".
        let live = faults.entry(name).is_some();
        faults.remove_rule(name) && live
    }

    fn clear_faults(&self, proxy: &str) {
        self.relays.get(self.protocol, proxy).clear();
    }
}

/// The replies one connection owes in place of poison answers, by poison number.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, (String, T)>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending {
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Pending<T> {
    /// Registers `reply` (of rule `rule`) and returns the poison identifier to send.
    pub(crate) fn add(&self, rule: String, reply: T) -> Vec<u8> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(n, (rule, reply));
        let mut id = MARKER.to_vec();
        id.extend_from_slice(n.to_string().as_bytes());
        id
    }

    /// The reply owed for the poison named inside `text`, if any. Poisons the server
    /// never answered (skipped after an earlier error) are forgotten with it.
    pub(crate) fn take(&self, text: &[u8]) -> Option<(String, T)> {
        let at = find(text, MARKER)? + MARKER.len();
        let digits: Vec<u8> = text[at..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        let n: u64 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let found = waiting.remove(&n);
        if found.is_some() {
            waiting.retain(|k, _| *k > n);
        }
        found
    }

    /// Whether any reply is owed (a fast check before looking inside errors).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// Position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs both directions until the end: when the client closes, the server's last words
/// still go through; a reset arms SO_LINGER 0 on the client socket `fd` before all closes.
pub(crate) async fn finish(
    fd: std::os::fd::RawFd,
    up: impl std::future::Future<Output = io::Result<RelayEnd>>,
    down: impl std::future::Future<Output = io::Result<RelayEnd>>,
) -> io::Result<RelayEnd> {
    tokio::pin!(up, down);
    let (from_client, end) = tokio::select! {
        end = &mut up => (true, end?),
        end = &mut down => (false, end?),
    };
    match end {
        RelayEnd::Closed if from_client => down.await,
        RelayEnd::Reset(_) => {
            arm_reset(fd);
            Ok(end)
        }
        end => Ok(end),
    }
}

/// Copies bytes both ways untouched until both sides are done.
pub(crate) async fn passthrough<CR, CW, UR, UW>(
    cr: &mut CR,
    cw: &mut CW,
    ur: &mut UR,
    uw: &mut UW,
) -> io::Result<()>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let up = async {
        uw.flush().await?;
        tokio::io::copy(cr, uw).await?;
        uw.shutdown().await
    };
    let down = async {
        cw.flush().await?;
        tokio::io::copy(ur, cw).await?;
        cw.shutdown().await
    };
    tokio::try_join!(up, down)?;
    Ok(())
}

/// Sets SO_LINGER 0 on the socket `fd` so that closing it sends a TCP RST.
pub(crate) fn arm_reset(fd: std::os::fd::RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a descriptor the caller still owns (its halves are alive),
    // with a pointer to a live `linger` and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "cannot set SO_LINGER for a reset");
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A reader that hands out its bytes in chosen chunk sizes, to test framing across
    //! partial reads.

    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    /// Yields `data` in chunks of the given sizes (cycling), each on its own poll.
    pub(crate) struct Chunked {
        pub data: Vec<u8>,
        pub sizes: Vec<usize>,
        pub at: usize,
        pub turn: usize,
    }

    impl Chunked {
        pub(crate) fn new(data: Vec<u8>, sizes: Vec<usize>) -> Self {
            Chunked {
                data,
                sizes: if sizes.is_empty() { vec![1] } else { sizes },
                at: 0,
                turn: 0,
            }
        }
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let end = (self.at + size)
                .min(self.data.len())
                .min(self.at + buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..end]);
            self.at = end;
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_takes_by_number_and_forgets_older() {
        let p: Pending<u8> = Pending::default();
        let a = p.add("r".into(), 1);
        let b = p.add("r".into(), 2);
        let c = p.add("r".into(), 3);
        assert_eq!(a, b"chaos_injected_fault_0");
        let msg = [b"syntax error at or near \"".as_slice(), &b, b"\""].concat();
        assert_eq!(p.take(&msg).map(|x| x.1), Some(2));
        // 0 was skipped by the server: forgotten with 1.
        assert_eq!(p.take(&a), None);
        assert_eq!(p.take(&c).map(|x| x.1), Some(3));
        assert!(p.is_empty());
        assert_eq!(p.take(b"no marker"), None);
    }

    #[test]
    fn rules_replace_in_place_and_check_protocol() {
        let f = DbFaults::new(Protocol::Redis);
        f.set_rule(Rule::new("a", None, Action::Reset, 1.0).unwrap())
            .unwrap();
        f.set_rule(Rule::new("b", None, Action::Drop, 1.0).unwrap())
            .unwrap();
        f.set_rule(Rule::new("a", Some("GET"), Action::Reset, 0.0).unwrap())
            .unwrap();
        let names: Vec<_> = f.rules().iter().map(|r| r.name().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(f.rules()[0].rate(), 0.0);
        let pg = PgError {
            sqlstate: "40001".into(),
            severity: Severity::Error,
            message: "x".into(),
        };
        assert!(matches!(
            f.set_rule(Rule::new("c", None, Action::PgError(pg), 1.0).unwrap()),
            Err(RuleError::Unsupported { .. })
        ));
    }

    #[test]
    fn rate_zero_never_fires_rate_one_always() {
        let f = DbFaults::new(Protocol::Redis);
        f.set_rule(Rule::new("never", Some("GET"), Action::Reset, 0.0).unwrap())
            .unwrap();
        assert!((0..1000).all(|_| f.pick(Phase::Request, "GET k").is_none()));
        f.set_rule(Rule::new("always", Some("GET"), Action::Reset, 1.0).unwrap())
            .unwrap();
        assert!((0..1000).all(|_| f.pick(Phase::Request, "GET k").is_some()));
        assert!(f.pick(Phase::Connect, "GET k").is_none());
        assert!(f.pick(Phase::Request, "SET k").is_none());
        assert_eq!(f.hits("always"), Some(1000));
    }

    #[test]
    fn rule_validation() {
        let e = |s: &str| {
            Action::PgError(PgError {
                sqlstate: s.into(),
                severity: Severity::Error,
                message: "m".into(),
            })
        };
        assert!(matches!(
            Rule::new("x", None, e("4000"), 1.0),
            Err(RuleError::SqlState(_))
        ));
        assert!(Rule::new("x", None, e("57P01"), 1.0).is_ok());
        assert!(matches!(
            Rule::new("x", Some("[a"), Action::Reset, 1.0),
            Err(RuleError::Pattern(_))
        ));
        assert!(matches!(
            Rule::new("x", None, Action::Reset, -0.1),
            Err(RuleError::Rate(_))
        ));
        assert!(matches!(
            Rule::new("x", None, Action::RedisError("FOO bar".into()), 1.0),
            Err(RuleError::RedisError(_))
        ));
    }
}
