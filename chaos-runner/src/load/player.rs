//! Virtual players and their journeys through the game API (GAME-API.md): queue for a
//! match, poll the ticket until matched, join the session, leave it; write the save, read
//! it back. Each request the driver hands a player is the next step of the journey of the
//! kind drawn from the mix.

use serde_json::{json, Value};

use crate::load::recorder::Outcome;
use crate::spec::LoadOperation;

/// The kinds of request the mix weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Queue or poll.
    Matchmaking,
    /// Join, leave or list sessions.
    Session,
    /// Write the save.
    SaveWrite,
    /// Read the save.
    SaveRead,
}

/// One virtual player and where it is in its journeys.
#[derive(Debug, Clone)]
pub struct Player {
    /// `p<number>`.
    pub id: String,
    skill: u32,
    ticket: Option<String>,
    matched: Option<String>,
    session: Option<String>,
    saves: u64,
}

/// One step: the call to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Which operation it is.
    pub operation: LoadOperation,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path under the base URL.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Step {
    /// Whether the journey reads this step's answer body (the matchmaking calls: the ticket,
    /// the match); the others move on by the status alone, and their bodies are not parsed.
    ///
    /// ```
    /// use chaos_runner::load::player::{Kind, Player};
    /// let p = Player::new(1);
    /// assert!(p.next(Kind::Matchmaking).reads_body());
    /// assert!(!p.next(Kind::SaveWrite).reads_body());
    /// ```
    pub fn reads_body(&self) -> bool {
        matches!(
            self.operation,
            LoadOperation::Queue | LoadOperation::PollTicket
        )
    }
}

impl Player {
    /// Player number `n` (`p<n>`), skill spread over 1000..2000.
    ///
    /// ```
    /// let p = chaos_runner::load::player::Player::new(7);
    /// assert_eq!(p.id, "p7");
    /// ```
    pub fn new(n: u32) -> Player {
        Player {
            id: format!("p{n}"),
            skill: 1000 + (n.wrapping_mul(7919) % 1000),
            ticket: None,
            matched: None,
            session: None,
            saves: 0,
        }
    }

    /// The next call of a `kind` journey.
    ///
    /// ```
    /// use chaos_runner::load::player::{Kind, Player};
    /// use chaos_runner::spec::LoadOperation;
    /// let p = Player::new(1);
    /// assert_eq!(p.next(Kind::Matchmaking).operation, LoadOperation::Queue);
    /// // never saved: a read becomes a write
    /// assert_eq!(p.next(Kind::SaveRead).operation, LoadOperation::SaveWrite);
    /// ```
    pub fn next(&self, kind: Kind) -> Step {
        let post = |operation, path: String, body| Step {
            operation,
            method: reqwest::Method::POST,
            path,
            body: Some(body),
        };
        let get = |operation, path: String| Step {
            operation,
            method: reqwest::Method::GET,
            path,
            body: None,
        };
        let player = json!({ "player_id": self.id });
        match kind {
            Kind::Matchmaking => match &self.ticket {
                Some(t) => get(
                    LoadOperation::PollTicket,
                    format!("/v1/matchmaking/tickets/{t}"),
                ),
                None => post(
                    LoadOperation::Queue,
                    "/v1/matchmaking/queue".into(),
                    json!({ "player_id": self.id, "skill": self.skill }),
                ),
            },
            Kind::Session => match (&self.session, &self.matched) {
                (Some(m), _) => post(
                    LoadOperation::Leave,
                    format!("/v1/sessions/{m}/leave"),
                    player,
                ),
                (None, Some(m)) => post(
                    LoadOperation::Join,
                    format!("/v1/sessions/{m}/join"),
                    player,
                ),
                (None, None) => get(LoadOperation::Sessions, "/v1/sessions".into()),
            },
            Kind::SaveRead if self.saves > 0 => get(
                LoadOperation::SaveRead,
                format!("/v1/players/{}/save", self.id),
            ),
            Kind::SaveWrite | Kind::SaveRead => Step {
                operation: LoadOperation::SaveWrite,
                method: reqwest::Method::PUT,
                path: format!("/v1/players/{}/save", self.id),
                body: Some(json!({
                    "level": 1 + self.saves % 50,
                    "coins": self.saves * 10,
                    "inventory": ["sword", "shield"],
                })),
            },
        }
    }

    /// Moves the journey on after `step` answered `status` with `body`.
    ///
    /// ```
    /// use chaos_runner::load::player::{Kind, Player};
    /// use chaos_runner::spec::LoadOperation;
    /// let mut p = Player::new(1);
    /// let step = p.next(Kind::Matchmaking);
    /// p.advance(&step, 202, &serde_json::json!({"status": "queued", "ticket": "t-1"}));
    /// assert_eq!(p.next(Kind::Matchmaking).operation, LoadOperation::PollTicket);
    /// p.advance(&p.next(Kind::Matchmaking), 200, &serde_json::json!({"status": "matched", "match_id": "m-1"}));
    /// assert_eq!(p.next(Kind::Session).path, "/v1/sessions/m-1/join");
    /// ```
    pub fn advance(&mut self, step: &Step, status: u16, body: &Value) {
        let ok = (200..300).contains(&status);
        let match_id = body
            .get("match_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match step.operation {
            LoadOperation::Queue | LoadOperation::PollTicket => {
                if ok && body.get("status").and_then(Value::as_str) == Some("matched") {
                    self.ticket = None;
                    if match_id.is_some() {
                        self.matched = match_id;
                    }
                } else if ok {
                    if let Some(t) = body.get("ticket").and_then(Value::as_str) {
                        self.ticket = Some(t.to_owned());
                    }
                } else if status == 404 {
                    // The ticket is gone (expired, server restarted): queue again.
                    self.ticket = None;
                }
            }
            LoadOperation::Join => {
                if ok {
                    self.session = self.matched.take();
                } else if status == 404 {
                    self.matched = None;
                }
            }
            LoadOperation::Leave => {
                if ok || status == 404 {
                    self.session = None;
                }
            }
            LoadOperation::SaveWrite => {
                if ok {
                    self.saves += 1;
                }
            }
            LoadOperation::Sessions | LoadOperation::SaveRead => {}
        }
    }
}

/// How an HTTP status counts for the SLIs: 2xx success, 429 rate limited, anything else
/// an error.
///
/// ```
/// use chaos_runner::load::{player::classify, recorder::Outcome};
/// assert_eq!(classify(202), Outcome::Success);
/// assert_eq!(classify(429), Outcome::RateLimited);
/// assert_eq!(classify(503), Outcome::Error);
/// ```
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Success,
        429 => Outcome::RateLimited,
        _ => Outcome::Error,
    }
}
