//! Virtual players walking a scenario's flows: each call the driver hands a player is the
//! next step of its flow (a new flow, drawn by weight, when one ends); the answer moves it
//! on, fills its captures and ends the flow when it failed.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

use crate::load::recorder::Outcome;
use crate::spec::scenario::{draw_variables, Body, Scenario};
use crate::spec::template::Values;

/// One call, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The operation, by index into the scenario's.
    pub operation: usize,
    /// HTTP method.
    pub method: http::Method,
    /// Path (and query) under the base URL.
    pub path: String,
    /// Headers (values rendered; an invalid one fails the call).
    pub headers: Vec<(http::HeaderName, String)>,
    /// The body.
    pub body: Bytes,
    /// Its content type, for a body the headers do not type.
    pub content_type: Option<&'static str>,
    /// The call's timeout.
    pub timeout: Duration,
    /// Whether the answer is parsed as JSON.
    pub reads_body: bool,
}

impl Request {
    /// The headers to send: the operation's, and the body's content type unless they
    /// give one.
    pub fn headers_to_send(&self) -> impl Iterator<Item = (&http::HeaderName, &str)> {
        let typed = self
            .headers
            .iter()
            .any(|(name, _)| name == http::header::CONTENT_TYPE);
        let content_type = self
            .content_type
            .filter(|_| !typed)
            .map(|t| (&http::header::CONTENT_TYPE, t));
        content_type
            .into_iter()
            .chain(self.headers.iter().map(|(n, v)| (n, v.as_str())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    flow: usize,
    step: usize,
    repeats: u32,
}

/// One virtual player and where it is in its flow.
///
/// ```
/// use chaos_runner::load::player::Player;
/// use chaos_runner::spec::{scenario::compile, Problems, ScenarioSpec};
/// let spec: ScenarioSpec = serde_json::from_value(serde_json::json!({
///   "operations": {
///     "queue": {"method": "POST", "path": "/q", "json": {"p": "{{player}}"}, "capture": {"ticket": "/ticket"}},
///     "poll": {"path": "/t/{{ticket}}"}},
///   "flows": {"match": {"steps": [{"call": "queue"}, {"call": "poll"}]}}})).unwrap();
/// let scenario = std::sync::Arc::new(compile(&spec, "s", std::time::Duration::from_secs(1), &mut Problems::default()).unwrap());
/// let mut p = Player::new(7, scenario.clone(), 1);
/// let queue = p.next_call().unwrap();
/// assert_eq!(queue.body.as_ref(), br#"{"p":"p7"}"#);
/// p.answered(&queue, 202, serde_json::json!({"ticket": "t-1"}));
/// assert_eq!(p.next_call().unwrap().path, "/t/t-1");
/// ```
#[derive(Debug)]
pub struct Player {
    /// `p<number>`.
    pub id: String,
    number: u32,
    scenario: Arc<Scenario>,
    rng: SmallRng,
    variables: Vec<Value>,
    captures: Vec<Option<Value>>,
    seq: u64,
    at: Option<Position>,
    last: Value,
    /// Flows started, and of them completed.
    pub flows_started: u64,
    /// Flows walked to their end.
    pub flows_completed: u64,
}

impl Player {
    /// Player number `n` (`p<n>`), its per-player variables drawn from `seed`.
    pub fn new(n: u32, scenario: Arc<Scenario>, seed: u64) -> Player {
        let mut rng =
            SmallRng::seed_from_u64(seed ^ u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut variables = Vec::new();
        draw_variables(&scenario.variables, &mut variables, false, &mut rng);
        Player {
            id: format!("p{n}"),
            number: n,
            captures: vec![None; scenario.captures.len()],
            scenario,
            rng,
            variables,
            seq: 0,
            at: None,
            last: Value::Null,
            flows_started: 0,
            flows_completed: 0,
        }
    }

    /// Moves to the next step to call: past repeated steps whose condition no longer
    /// holds, into a new flow when this one ended.
    fn settle(&mut self) {
        // Each pass either returns, moves a step on, or starts a flow whose first step is
        // callable (no repeat, no captures: checked when the scenario was): bounded.
        for _ in 0..10_000 {
            let Some(at) = self.at else {
                let flow = self.scenario.pick_flow(&mut self.rng);
                self.at = Some(Position {
                    flow,
                    step: 0,
                    repeats: 0,
                });
                self.captures.iter_mut().for_each(|c| *c = None);
                self.last = Value::Null;
                self.flows_started += 1;
                return;
            };
            let steps = &self.scenario.flows[at.flow].steps;
            let Some(step) = steps.get(at.step) else {
                self.flows_completed += 1;
                self.at = None;
                continue;
            };
            match &step.repeat_while {
                Some((pointer, value))
                    if at.repeats >= step.max_repeats
                        || self.last.pointer(pointer) != Some(value) =>
                {
                    self.at = Some(Position {
                        step: at.step + 1,
                        repeats: 0,
                        ..at
                    });
                }
                _ => return,
            }
        }
    }

    /// How long the player waits before its next call (the think time of its next step).
    pub fn think(&mut self) -> Duration {
        self.settle();
        self.at
            .and_then(|at| self.scenario.flows[at.flow].steps.get(at.step))
            .map_or(Duration::ZERO, |s| s.think)
    }

    /// The next call. A step whose captured value is missing ends the flow, and the next
    /// flow's first step is called instead.
    pub fn next_call(&mut self) -> Option<Request> {
        for _ in 0..3 {
            self.settle();
            let at = self.at?;
            let step = &self.scenario.flows[at.flow].steps[at.step];
            let op = &self.scenario.operations[step.operation];
            draw_variables(
                &self.scenario.variables,
                &mut self.variables,
                true,
                &mut self.rng,
            );
            let values = Values {
                player: &self.id,
                number: self.number,
                seq: self.seq,
                variables: &self.variables,
                captures: &self.captures,
            };
            let rendered = (|| {
                let path = op.path.render(&values)?;
                let headers = op
                    .headers
                    .iter()
                    .map(|(name, t)| Ok((name.clone(), t.render(&values)?)))
                    .collect::<Result<Vec<_>, _>>()?;
                let (body, content_type) = match &op.body {
                    Body::Empty => (Bytes::new(), None),
                    Body::Json(t) => (
                        Bytes::from(serde_json::to_vec(&t.render(&values)?).unwrap_or_default()),
                        Some("application/json"),
                    ),
                    Body::Text(t) => (Bytes::from(t.render(&values)?), Some("text/plain")),
                };
                Ok::<_, crate::spec::template::Var>((path, headers, body, content_type))
            })();
            match rendered {
                Ok((path, headers, body, content_type)) => {
                    self.seq += 1;
                    return Some(Request {
                        operation: step.operation,
                        method: op.method.clone(),
                        path,
                        headers,
                        body,
                        content_type,
                        timeout: op.timeout,
                        reads_body: op.reads_body,
                    });
                }
                Err(_) => self.at = None,
            }
        }
        None
    }

    /// Moves the flow on after `request` was answered `status` with `body` (`Null` when
    /// not read), and says how the answer counts: success as the operation defines it, a
    /// 429 it does not list as rate limited, anything else an error (which ends the flow).
    pub fn answered(&mut self, request: &Request, status: u16, body: Value) -> Outcome {
        let op = &self.scenario.operations[request.operation];
        let outcome = if op.success.contains(status) {
            Outcome::Success
        } else if status == 429 {
            Outcome::RateLimited
        } else {
            Outcome::Error
        };
        if outcome != Outcome::Success {
            self.at = None;
            return outcome;
        }
        for (slot, pointer) in &op.captures {
            if let Some(v) = body.pointer(pointer) {
                self.captures[*slot] = Some(v.clone());
            }
        }
        if let Some(at) = self.at {
            let repeated = self.scenario.flows[at.flow]
                .steps
                .get(at.step)
                .is_some_and(|s| s.repeat_while.is_some());
            self.at = Some(if repeated {
                Position {
                    repeats: at.repeats + 1,
                    ..at
                }
            } else {
                Position {
                    step: at.step + 1,
                    repeats: 0,
                    ..at
                }
            });
        }
        self.last = body;
        outcome
    }

    /// The call got no answer (timeout, connection failure): the flow ends.
    pub fn failed(&mut self) {
        self.at = None;
    }
}
