//! The toxics a proxy applies, as typed values: what each does ([`ToxicKind`], with
//! [`Duration`]s and byte counts), which way ([`Stream`]), to what share of connections
//! (`toxicity`), and the checks a toxic must pass before a proxy takes it.
//!
//! Their toxiproxy JSON form (`{"name", "type", "stream", "toxicity", "attributes"}`,
//! milliseconds and KB/s) lives at the HTTP edge, in [`crate::api`].

use std::time::Duration;

/// A toxic that cannot be applied: the attribute (in toxiproxy's JSON names) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToxicError {
    /// The name is empty.
    #[error("name: must not be empty")]
    Name,
    /// The toxicity is not within 0..=1.
    #[error("toxicity: must be from 0 to 1, got {0}")]
    Toxicity(f64),
    /// A slicer's `average_size` is 0.
    #[error("attributes.average_size: must be at least 1")]
    AverageSize,
    /// A slicer's `size_variation` is not below its `average_size`.
    #[error("attributes.size_variation: must be below average_size")]
    SizeVariation,
    /// A loss probability is not within 0..=1.
    #[error("attributes.probability: must be a number from 0 to 1, got {0}")]
    Probability(f64),
}

/// Which way a toxic acts: `upstream` (client to server) or `downstream` (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client (toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    /// `upstream` or `downstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// What a toxic does, with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// Delays every chunk by `latency` plus a uniform random amount in `[-jitter, jitter]`.
    Latency {
        /// Added delay.
        latency: Duration,
        /// Random spread.
        jitter: Duration,
    },
    /// Limits throughput to `rate` KB/s (0 = no limit, as in toxiproxy).
    Bandwidth {
        /// KB (1000 bytes) per second.
        rate: u64,
    },
    /// Delays the close of the connection by `delay` after the source closed.
    SlowClose {
        /// Delay of the close.
        delay: Duration,
    },
    /// Holds all data; with a non-zero `timeout`, closes the connection after it. With 0 the
    /// data is held until the toxic is removed (a partition), then delivered.
    Timeout {
        /// Time before the connection is closed (0 = never).
        timeout: Duration,
    },
    /// Resets the connection (TCP RST) after `timeout`.
    ResetPeer {
        /// Time before the reset (0 = at once).
        timeout: Duration,
    },
    /// Cuts chunks into slices of `average_size +/- size_variation` bytes, `delay` apart.
    Slicer {
        /// Mean slice size in bytes (at least 1).
        average_size: u64,
        /// Spread of the slice size in bytes (below `average_size`).
        size_variation: u64,
        /// Pause between slices.
        delay: Duration,
    },
    /// Closes the connection once `bytes` bytes have passed.
    LimitData {
        /// Bytes let through.
        bytes: u64,
    },
    /// Ours: drops each chunk with `probability`, or, with a non-zero `delay`, delays it.
    Loss {
        /// Share of chunks hit (0 to 1).
        probability: f64,
        /// 0 = drop the chunk; else delay it by this much.
        delay: Duration,
    },
}

impl ToxicKind {
    /// The toxiproxy type name (`latency`, `bandwidth`, ..., and our `loss`).
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Loss { .. } => "loss",
        }
    }

    /// Checks the values the type cannot rule out (a slicer's sizes, a loss
    /// probability).
    ///
    /// ```
    /// use fault_proxy::toxics::{ToxicError, ToxicKind};
    /// let slicer = ToxicKind::Slicer { average_size: 0, size_variation: 0, delay: Default::default() };
    /// assert_eq!(slicer.check(), Err(ToxicError::AverageSize));
    /// ```
    pub fn check(&self) -> Result<(), ToxicError> {
        match self {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } => check_slicer(*average_size, *size_variation),
            ToxicKind::Loss { probability, .. } if !(0.0..=1.0).contains(probability) => {
                Err(ToxicError::Probability(*probability))
            }
            _ => Ok(()),
        }
    }
}

/// A slicer's sizes: `average_size` at least 1, `size_variation` below it.
pub(crate) fn check_slicer(average_size: u64, size_variation: u64) -> Result<(), ToxicError> {
    if average_size == 0 {
        return Err(ToxicError::AverageSize);
    }
    if size_variation >= average_size {
        return Err(ToxicError::SizeVariation);
    }
    Ok(())
}

/// One toxic on a proxy.
///
/// ```
/// use fault_proxy::toxics::{Stream, Toxic, ToxicKind};
/// let t = Toxic::new("cut", ToxicKind::ResetPeer { timeout: Default::default() })
///     .with_stream(Stream::Upstream)
///     .with_toxicity(0.5);
/// assert_eq!((t.stream, t.toxicity), (Stream::Upstream, 0.5));
/// assert!(t.check().is_ok());
/// assert!(t.with_toxicity(2.0).check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique on its proxy.
    pub name: String,
    /// Which way it acts.
    pub stream: Stream,
    /// Probability (0 to 1) that it applies to a given connection.
    pub toxicity: f64,
    /// What it does.
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic named `name` doing `kind` downstream (server to client) on every
    /// connection: toxiproxy's defaults.
    pub fn new(name: impl Into<String>, kind: ToxicKind) -> Toxic {
        Toxic {
            name: name.into(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            kind,
        }
    }

    /// The same toxic acting on `stream`.
    pub fn with_stream(mut self, stream: Stream) -> Toxic {
        self.stream = stream;
        self
    }

    /// The same toxic applying to a connection with probability `toxicity`.
    pub fn with_toxicity(mut self, toxicity: f64) -> Toxic {
        self.toxicity = toxicity;
        self
    }

    /// Checks the name, the toxicity and the kind's values.
    pub fn check(&self) -> Result<(), ToxicError> {
        if self.name.is_empty() {
            return Err(ToxicError::Name);
        }
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Err(ToxicError::Toxicity(self.toxicity));
        }
        self.kind.check()
    }
}

/// A toxic in force on a proxy, with the id of this setting: it changes whenever the
/// toxic is created or updated, and connections roll their toxicity dice once per id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Armed {
    /// The toxic.
    pub toxic: Toxic,
    /// The setting's id.
    pub id: u64,
}
