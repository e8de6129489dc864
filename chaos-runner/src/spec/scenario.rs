//! Load scenarios checked and compiled: every name resolved (operations, groups,
//! variables, captures), every template parsed, and each flow's captures checked to come
//! from an earlier step. What the load generator runs.

use rand::Rng;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::model::{
    OperationSpec, ScenarioSpec, StatusMatch, VariableScope, VariableSpec, WebSocketSpec,
};
use super::params::Problems;
use super::template::{JsonTemplate, Template, TemplateError, Var, BUILTINS};

/// The load generator's input, checked: `spec.load` as written, its scenario and its
/// WebSocket sessions compiled.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// As written.
    pub spec: super::model::LoadSpec,
    /// The HTTP calls.
    pub scenario: Option<std::sync::Arc<Scenario>>,
    /// The WebSocket sessions.
    pub websocket: Option<std::sync::Arc<WsPlan>>,
}

impl LoadPlan {
    /// The plan of a `spec.load` whose scenario is written inline (a `scenarioFile` is read
    /// by [`crate::spec::load_experiment`]); `Err` lists the problems as (field, message).
    ///
    /// ```
    /// let spec: chaos_runner::spec::LoadSpec = serde_json::from_value(serde_json::json!({
    ///     "target": "http://127.0.0.1:1", "rate": 10,
    ///     "scenario": {"operations": {"a": {"path": "/a", "weight": 1}}}})).unwrap();
    /// let plan = chaos_runner::spec::scenario::LoadPlan::from_spec(spec).unwrap();
    /// assert_eq!(plan.scenario.unwrap().operations[0].name, "a");
    /// ```
    pub fn from_spec(spec: super::model::LoadSpec) -> Result<LoadPlan, Vec<(String, String)>> {
        let mut problems = Problems::default();
        let scenario = spec
            .scenario
            .as_ref()
            .and_then(|s| compile(s, "scenario", spec.timeout, &mut problems));
        let websocket = spec
            .websocket
            .as_ref()
            .and_then(|w| compile_websocket(w, "websocket", spec.timeout, &mut problems));
        if !problems.found().is_empty() {
            return Err(problems.into_found());
        }
        Ok(LoadPlan {
            spec,
            scenario: scenario.map(std::sync::Arc::new),
            websocket: websocket.map(std::sync::Arc::new),
        })
    }
}

/// A scenario variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// What it is drawn from.
    pub draw: Draw,
    /// Drawn per player or per call.
    pub per: VariableScope,
}

/// What a variable is drawn from.
#[derive(Debug, Clone, PartialEq)]
pub enum Draw {
    /// A whole number, both ends included.
    Range(i64, i64),
    /// One of these values.
    OneOf(Vec<Value>),
}

impl Variable {
    /// A fresh value.
    ///
    /// ```
    /// use chaos_runner::spec::scenario::{Draw, Variable};
    /// use chaos_runner::spec::VariableScope;
    /// let v = Variable { name: "skill".into(), draw: Draw::Range(5, 5), per: VariableScope::Player };
    /// assert_eq!(v.draw(&mut rand::rng()), serde_json::json!(5));
    /// ```
    pub fn draw(&self, rng: &mut impl Rng) -> Value {
        match &self.draw {
            Draw::Range(low, high) => Value::from(rng.random_range(*low..=*high)),
            Draw::OneOf(values) => values[rng.random_range(0..values.len())].clone(),
        }
    }
}

/// Fresh values of `variables`: all of them, or only the per-call ones.
///
/// ```
/// use chaos_runner::spec::scenario::{draw_variables, Draw, Variable};
/// use chaos_runner::spec::VariableScope;
/// let vars = [Variable { name: "r".into(), draw: Draw::OneOf(vec!["eu".into()]), per: VariableScope::Call }];
/// let mut values = vec![serde_json::Value::Null];
/// draw_variables(&vars, &mut values, true, &mut rand::rng());
/// assert_eq!(values[0], "eu");
/// ```
pub fn draw_variables(
    variables: &[Variable],
    values: &mut Vec<Value>,
    per_call_only: bool,
    rng: &mut impl Rng,
) {
    values.resize(variables.len(), Value::Null);
    for (v, slot) in variables.iter().zip(values.iter_mut()) {
        if !per_call_only || v.per == VariableScope::Call {
            *slot = v.draw(rng);
        }
    }
}

/// Statuses that count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `status` is in the set.
    ///
    /// ```
    /// let s = chaos_runner::spec::scenario::StatusSet::two_xx();
    /// assert!(s.contains(204) && !s.contains(404));
    /// ```
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    /// `2xx`.
    pub fn two_xx() -> StatusSet {
        StatusSet(vec![(200, 299)])
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// None.
    Empty,
    /// JSON (sent as `application/json`).
    Json(JsonTemplate),
    /// Text (sent as `text/plain` unless a header says otherwise).
    Text(Template),
}

/// One operation, compiled.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Its name.
    pub name: String,
    /// The method.
    pub method: http::Method,
    /// The path under the target.
    pub path: Template,
    /// Headers.
    pub headers: Vec<(http::HeaderName, Template)>,
    /// The body.
    pub body: Body,
    /// Its group, by index into [`Scenario::groups`].
    pub group: Option<usize>,
    /// What counts as success.
    pub success: StatusSet,
    /// Its timeout.
    pub timeout: Duration,
    /// Capture slots and the JSON pointer each is read from.
    pub captures: Vec<(usize, String)>,
    /// Whether the answer is parsed (it captures, or a repeated step reads it).
    pub reads_body: bool,
}

impl Operation {
    /// The captures the templates read.
    pub fn captures_used(&self) -> Vec<usize> {
        let mut vars: Vec<Var> = self.path.vars().collect();
        for (_, t) in &self.headers {
            vars.extend(t.vars());
        }
        match &self.body {
            Body::Empty => {}
            Body::Json(j) => vars.extend(j.vars()),
            Body::Text(t) => vars.extend(t.vars()),
        }
        let mut slots: Vec<usize> = vars
            .into_iter()
            .filter_map(|v| match v {
                Var::Capture(i) => Some(i),
                _ => None,
            })
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }
}

/// One step of a flow, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The operation, by index.
    pub operation: usize,
    /// Wait before the call.
    pub think: Duration,
    /// Repeat while the last answer has this value at this pointer.
    pub repeat_while: Option<(String, Value)>,
    /// At most this many calls when repeated.
    pub max_repeats: u32,
}

/// A flow (an operation called on its own is a flow of one step).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Its name (the operation's for a single call).
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// A checked, compiled scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The operations, in name order.
    pub operations: Vec<Operation>,
    /// Group names, in name order.
    pub groups: Vec<String>,
    /// Flows, then single calls.
    pub flows: Vec<Flow>,
    /// Variables, in name order.
    pub variables: Vec<Variable>,
    /// Capture names, by slot.
    pub captures: Vec<String>,
    cumulative: Vec<f64>,
}

impl Scenario {
    /// A flow drawn by weight.
    pub fn pick_flow(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let r = rng.random::<f64>() * total;
        self.cumulative
            .iter()
            .position(|s| r < *s)
            .unwrap_or(self.cumulative.len().saturating_sub(1))
    }

    /// The index of operation `name`.
    pub fn operation(&self, name: &str) -> Option<usize> {
        self.operations.iter().position(|o| o.name == name)
    }

    /// The index of group `name`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g == name)
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_pointer(p: &str) -> bool {
    p.is_empty() || p.starts_with('/')
}

fn template_message(e: &TemplateError, known: &[String]) -> String {
    match e {
        TemplateError::Unknown(_) => format!(
            "{e} (known: {}; a capture must be named in some operation's `capture`)",
            known.join(", ")
        ),
        _ => e.to_string(),
    }
}

/// Checks `variables` (at `at`.variables) and returns them compiled, with a resolver of
/// names for templates.
fn compile_variables(
    specs: &BTreeMap<String, VariableSpec>,
    at: &str,
    problems: &mut Problems,
) -> Vec<Variable> {
    let mut out = Vec::new();
    for (name, v) in specs {
        let here = format!("{at}.variables.{name}");
        problems.check(
            is_name(name) && !BUILTINS.contains(&name.as_str()),
            here.clone(),
            format!(
                "must be 1-63 letters, digits, `_` or `-`, and not a built-in ({})",
                BUILTINS.join(", ")
            ),
        );
        let draw = match (&v.range, &v.one_of) {
            (Some([lo, hi]), None) => {
                problems.check(
                    lo <= hi,
                    format!("{here}.range"),
                    "must be [low, high] with low <= high",
                );
                Draw::Range(*lo, (*hi).max(*lo))
            }
            (None, Some(values)) => {
                problems.check(
                    !values.is_empty(),
                    format!("{here}.oneOf"),
                    "must list at least one value",
                );
                Draw::OneOf(if values.is_empty() {
                    vec![Value::Null]
                } else {
                    values.clone()
                })
            }
            _ => {
                problems.check(
                    false,
                    here.clone(),
                    "needs exactly one of `range` or `oneOf`",
                );
                Draw::OneOf(vec![Value::Null])
            }
        };
        out.push(Variable {
            name: name.clone(),
            draw,
            per: v.per,
        });
    }
    out
}

fn resolver<'a>(
    variables: &'a [Variable],
    captures: &'a [String],
) -> impl Fn(&str) -> Option<Var> + Copy + 'a {
    move |name: &str| {
        Var::builtin(name)
            .or_else(|| {
                variables
                    .iter()
                    .position(|v| v.name == name)
                    .map(Var::Variable)
            })
            .or_else(|| captures.iter().position(|c| c == name).map(Var::Capture))
    }
}

fn known_names(variables: &[Variable], captures: &[String]) -> Vec<String> {
    BUILTINS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(variables.iter().map(|v| v.name.clone()))
        .chain(captures.iter().cloned())
        .collect()
}

fn status_set(specs: &[StatusMatch], at: &str, problems: &mut Problems) -> StatusSet {
    let mut ranges = Vec::new();
    problems.check(!specs.is_empty(), at, "must list at least one status");
    for (i, s) in specs.iter().enumerate() {
        match s {
            StatusMatch::Code(code) if (100..=599).contains(code) => ranges.push((*code, *code)),
            StatusMatch::Class(class)
                if class.len() == 3
                    && class.ends_with("xx")
                    && matches!(class.as_bytes()[0], b'1'..=b'5') =>
            {
                let base = u16::from(class.as_bytes()[0] - b'0') * 100;
                ranges.push((base, base + 99));
            }
            _ => {
                problems.check(
                    false,
                    format!("{at}[{i}]"),
                    "must be a status code (100-599) or a class (`1xx` to `5xx`)",
                );
            }
        }
    }
    StatusSet(ranges)
}

#[allow(clippy::too_many_arguments)]
fn compile_operation(
    name: &str,
    op: &OperationSpec,
    here: &str,
    default_timeout: Duration,
    resolve: impl Fn(&str) -> Option<Var> + Copy,
    known: &[String],
    groups: &[String],
    captures: &[String],
    problems: &mut Problems,
) -> Operation {
    problems.check(
        is_name(name),
        here,
        "an operation's name must be 1-63 letters, digits, `_` or `-`",
    );
    let method = http::Method::from_bytes(op.method.as_bytes());
    problems.check(
        method.is_ok() && op.method.bytes().all(|b| b.is_ascii_uppercase()),
        format!("{here}.method"),
        "must be an HTTP method in capitals (GET, POST, PUT, DELETE, PATCH, ...)",
    );
    let path = template(&op.path, format!("{here}.path"), resolve, known, problems);
    let mut headers = Vec::new();
    for (k, v) in &op.headers {
        let value = template(v, format!("{here}.headers.{k}"), resolve, known, problems);
        if let Ok(h) = http::HeaderName::from_bytes(k.as_bytes()) {
            headers.push((h, value));
        }
    }
    let body = compile_body(
        op.json.as_ref(),
        op.text.as_deref(),
        here,
        resolve,
        known,
        problems,
    )
    .unwrap_or(Body::Empty);
    problems.check(
        op.path.starts_with('/'),
        format!("{here}.path"),
        "must start with `/`",
    );
    for k in op.headers.keys() {
        problems.check(
            http::HeaderName::from_bytes(k.as_bytes()).is_ok(),
            format!("{here}.headers.{k}"),
            "is not a valid header name",
        );
    }
    problems.check(
        op.weight.is_finite() && op.weight >= 0.0,
        format!("{here}.weight"),
        "must be a finite number >= 0",
    );
    if let Some(g) = &op.group {
        problems.check(
            is_name(g),
            format!("{here}.group"),
            "must be 1-63 letters, digits, `_` or `-`",
        );
    }
    let timeout = timeout_of(
        op.timeout,
        default_timeout,
        &format!("{here}.timeout"),
        problems,
    );
    for (capture, pointer) in &op.capture {
        problems.check(
            is_pointer(pointer),
            format!("{here}.capture.{capture}"),
            "must be a JSON pointer (`/ticket`, `/players/0/id`)",
        );
    }
    Operation {
        name: name.to_owned(),
        method: method.unwrap_or(http::Method::GET),
        path,
        headers,
        body,
        group: op
            .group
            .as_ref()
            .and_then(|g| groups.iter().position(|x| x == g)),
        success: status_set(&op.success, &format!("{here}.success"), problems),
        timeout,
        captures: op
            .capture
            .iter()
            .filter_map(|(c, p)| captures.iter().position(|x| x == c).map(|i| (i, p.clone())))
            .collect(),
        reads_body: !op.capture.is_empty(),
    }
}

/// A call's or message's own timeout (checked at `field`), else the default (checked
/// where it is written, `load.timeout`).
fn timeout_of(
    own: Option<Duration>,
    default: Duration,
    field: &str,
    problems: &mut Problems,
) -> Duration {
    problems.check(
        own.is_none_or(|t| t >= Duration::from_millis(10) && t <= Duration::from_secs(60)),
        field,
        "must be between 10ms and 60s",
    );
    own.unwrap_or(default)
}

/// The body given as `json` or `text` (at `here`), compiled; `None` when neither is given.
fn compile_body(
    json: Option<&Value>,
    text: Option<&str>,
    here: &str,
    resolve: impl Fn(&str) -> Option<Var> + Copy,
    known: &[String],
    problems: &mut Problems,
) -> Option<Body> {
    match (json, text) {
        (Some(json), None) => Some(match JsonTemplate::parse(json, resolve) {
            Ok(t) => Body::Json(t),
            Err((path, e)) => {
                problems.check(
                    false,
                    format!("{here}.json{path}"),
                    template_message(&e, known),
                );
                Body::Empty
            }
        }),
        (None, Some(text)) => Some(Body::Text(template(
            text,
            format!("{here}.text"),
            resolve,
            known,
            problems,
        ))),
        (None, None) => None,
        (Some(_), Some(_)) => {
            problems.check(
                false,
                format!("{here}.text"),
                "give either `json` or `text`, not both",
            );
            Some(Body::Empty)
        }
    }
}

/// `text` parsed, or (a problem recorded at `field`) the empty template.
fn template(
    text: &str,
    field: String,
    resolve: impl Fn(&str) -> Option<Var>,
    known: &[String],
    problems: &mut Problems,
) -> Template {
    Template::parse(text, resolve).unwrap_or_else(|e| {
        problems.check(false, field, template_message(&e, known));
        Template::empty()
    })
}

/// Checks `spec` (its fields reported under `at`) and compiles it; `None` when a problem
/// was recorded.
///
/// ```
/// use chaos_runner::spec::{scenario::compile, Problems, ScenarioSpec};
/// let spec: ScenarioSpec = serde_json::from_value(serde_json::json!({
///   "operations": {
///     "queue": {"method": "POST", "path": "/q", "json": {"p": "{{player}}"}, "capture": {"ticket": "/ticket"}},
///     "poll": {"path": "/t/{{ticket}}", "group": "mm"}},
///   "flows": {"match": {"steps": [{"call": "queue"}, {"call": "poll"}]}}})).unwrap();
/// let mut problems = Problems::default();
/// let s = compile(&spec, "scenario", std::time::Duration::from_secs(1), &mut problems).unwrap();
/// assert_eq!(s.groups, ["mm"]);
/// ```
pub fn compile(
    spec: &ScenarioSpec,
    at: &str,
    default_timeout: Duration,
    problems: &mut Problems,
) -> Option<Scenario> {
    let before = problems.found().len();
    let variables = compile_variables(&spec.variables, at, problems);
    let mut captures: Vec<String> = Vec::new();
    for (name, op) in &spec.operations {
        for capture in op.capture.keys() {
            let taken = BUILTINS.contains(&capture.as_str())
                || variables.iter().any(|v| &v.name == capture);
            problems.check(
                is_name(capture) && !taken,
                format!("{at}.operations.{name}.capture.{capture}"),
                "must be 1-63 letters, digits, `_` or `-`, not a built-in or a variable",
            );
            if !captures.contains(capture) {
                captures.push(capture.clone());
            }
        }
    }
    captures.sort();
    let mut groups: Vec<String> = spec
        .operations
        .values()
        .filter_map(|o| o.group.clone())
        .collect();
    groups.sort();
    groups.dedup();
    let resolve = resolver(&variables, &captures);
    let known = known_names(&variables, &captures);
    problems.check(
        !spec.operations.is_empty(),
        format!("{at}.operations"),
        "must name at least one operation",
    );
    let mut operations: Vec<Operation> = spec
        .operations
        .iter()
        .map(|(name, op)| {
            compile_operation(
                name,
                op,
                &format!("{at}.operations.{name}"),
                default_timeout,
                resolve,
                &known,
                &groups,
                &captures,
                problems,
            )
        })
        .collect();
    let index: HashMap<String, usize> = operations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.clone(), i))
        .collect();
    let mut flows = Vec::new();
    for (name, flow) in &spec.flows {
        let here = format!("{at}.flows.{name}");
        problems.check(
            is_name(name),
            here.clone(),
            "a flow's name must be 1-63 letters, digits, `_` or `-`",
        );
        problems.check(
            flow.weight.is_finite() && flow.weight >= 0.0,
            format!("{here}.weight"),
            "must be a finite number >= 0",
        );
        problems.check(
            !flow.steps.is_empty(),
            format!("{here}.steps"),
            "must list at least one step",
        );
        let mut captured: Vec<usize> = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in flow.steps.iter().enumerate() {
            let at_step = format!("{here}.steps[{i}]");
            let Some(&op) = index.get(&step.call) else {
                problems.check(
                    false,
                    format!("{at_step}.call"),
                    format!(
                        "no operation `{}` (operations: {})",
                        step.call,
                        spec.operations
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            };
            for slot in operations[op].captures_used() {
                problems.check(
                    captured.contains(&slot),
                    format!("{at_step}.call"),
                    format!(
                        "`{}` uses `{{{{{}}}}}`, which no earlier step of flow `{name}` captures",
                        step.call, captures[slot]
                    ),
                );
            }
            let repeat_while = step.repeat_while.as_ref().map(|m| {
                problems.check(
                    is_pointer(&m.at),
                    format!("{at_step}.repeatWhile.at"),
                    "must be a JSON pointer (`/status`)",
                );
                (m.at.clone(), m.equals.clone())
            });
            problems.check(
                i > 0 || repeat_while.is_none(),
                format!("{at_step}.repeatWhile"),
                "the first step of a flow has no answer before it to repeat on",
            );
            if repeat_while.is_some() {
                // The answer before a repeated step is read, and so is its own.
                if let Some(prev) = steps.last().map(|s: &Step| s.operation) {
                    operations[prev].reads_body = true;
                }
                operations[op].reads_body = true;
            }
            problems.check(
                (1..=1000).contains(&step.max_repeats),
                format!("{at_step}.maxRepeats"),
                "must be between 1 and 1000",
            );
            let think = step.think.unwrap_or_default();
            problems.check(
                think <= Duration::from_secs(3600),
                format!("{at_step}.think"),
                "must be at most 1h",
            );
            captured.extend(operations[op].captures.iter().map(|(slot, _)| *slot));
            steps.push(Step {
                operation: op,
                think,
                repeat_while,
                max_repeats: step.max_repeats,
            });
        }
        flows.push(Flow {
            name: name.clone(),
            weight: flow.weight,
            steps,
        });
    }
    for (i, op) in operations.iter().enumerate() {
        if spec.operations[&op.name].weight > 0.0 {
            for slot in op.captures_used() {
                problems.check(
                    false,
                    format!("{at}.operations.{}.weight", op.name),
                    format!(
                        "a weighted operation is called on its own, but it uses `{{{{{}}}}}`, which only a flow can capture",
                        captures[slot]
                    ),
                );
            }
            flows.push(Flow {
                name: op.name.clone(),
                weight: spec.operations[&op.name].weight,
                steps: vec![Step {
                    operation: i,
                    think: Duration::ZERO,
                    repeat_while: None,
                    max_repeats: 1,
                }],
            });
        }
    }
    let mut sum = 0.0;
    let cumulative: Vec<f64> = flows
        .iter()
        .map(|f| {
            sum += f.weight.max(0.0);
            sum
        })
        .collect();
    problems.check(
        sum > 0.0 && sum.is_finite(),
        format!("{at}.flows"),
        "needs a flow or a weighted operation: the weights must sum to more than 0",
    );
    (problems.found().len() == before).then_some(Scenario {
        operations,
        groups,
        flows,
        variables,
        captures,
        cumulative,
    })
}

/// One WebSocket message, compiled.
#[derive(Debug, Clone)]
pub struct WsMessage {
    /// Its name.
    pub name: String,
    /// Its interval.
    pub every: Duration,
    /// Its content: JSON or text.
    pub body: Body,
    /// Pointer of the field that matches the answer.
    pub reply_match: Option<String>,
    /// No answer within this long is an error.
    pub timeout: Duration,
}

/// Checked WebSocket sessions.
#[derive(Debug, Clone)]
pub struct WsPlan {
    /// The path template.
    pub path: Template,
    /// Sessions to hold.
    pub sessions: u32,
    /// New sessions per second.
    pub connect_rate: u32,
    /// Variables.
    pub variables: Vec<Variable>,
    /// Messages.
    pub messages: Vec<WsMessage>,
    /// Local addresses to connect from (empty: the runner's choice).
    pub source_addresses: Vec<std::net::IpAddr>,
    /// The group of the messages.
    pub group: String,
}

/// Checks `spec` (at `at`) and compiles it; `None` when a problem was recorded.
///
/// ```
/// use chaos_runner::spec::{scenario::compile_websocket, Problems, WebSocketSpec};
/// let spec: WebSocketSpec = serde_json::from_value(serde_json::json!({
///     "path": "/ws?player={{player}}", "sessions": 10,
///     "messages": [{"name": "ping", "every": "1s", "json": {"id": "{{seq}}"}, "replyMatch": "/id"}]})).unwrap();
/// let mut problems = Problems::default();
/// assert!(compile_websocket(&spec, "ws", std::time::Duration::from_secs(1), &mut problems).is_some());
/// ```
pub fn compile_websocket(
    spec: &WebSocketSpec,
    at: &str,
    default_timeout: Duration,
    problems: &mut Problems,
) -> Option<WsPlan> {
    let before = problems.found().len();
    let variables = compile_variables(&spec.variables, at, problems);
    let resolve = resolver(&variables, &[]);
    let known = known_names(&variables, &[]);
    let path = template(&spec.path, format!("{at}.path"), resolve, &known, problems);
    problems.check(
        spec.path.starts_with('/'),
        format!("{at}.path"),
        "must start with `/`",
    );
    problems.check(
        (1..=200_000).contains(&spec.sessions),
        format!("{at}.sessions"),
        "must be between 1 and 200000",
    );
    problems.check(
        (1..=100_000).contains(&spec.connect_rate),
        format!("{at}.connectRate"),
        "must be between 1 and 100000 sessions per second",
    );
    problems.check(
        is_name(&spec.group),
        format!("{at}.group"),
        "must be 1-63 letters, digits, `_` or `-`",
    );
    let mut messages = Vec::new();
    let mut names = Vec::new();
    for (i, m) in spec.messages.iter().enumerate() {
        let here = format!("{at}.messages[{i}]");
        problems.check(
            is_name(&m.name) && !names.contains(&m.name),
            format!("{here}.name"),
            "must be 1-63 letters, digits, `_` or `-`, and differ from the other messages'",
        );
        names.push(m.name.clone());
        problems.check(
            m.every >= Duration::from_millis(100) && m.every <= Duration::from_secs(3600),
            format!("{here}.every"),
            "must be between 100ms and 1h",
        );
        let body = compile_body(
            m.json.as_ref(),
            m.text.as_deref(),
            &here,
            resolve,
            &known,
            problems,
        )
        .unwrap_or_else(|| {
            problems.check(false, here.clone(), "needs exactly one of `json` or `text`");
            Body::Empty
        });
        if let Some(p) = &m.reply_match {
            problems.check(
                is_pointer(p) && !p.is_empty(),
                format!("{here}.replyMatch"),
                "must be a JSON pointer (`/id`)",
            );
            problems.check(
                m.json.is_some(),
                format!("{here}.replyMatch"),
                "matches a field of a JSON message; this message is text",
            );
        }
        let timeout = timeout_of(
            m.timeout,
            default_timeout,
            &format!("{here}.timeout"),
            problems,
        );
        messages.push(WsMessage {
            name: m.name.clone(),
            every: m.every,
            body,
            reply_match: m.reply_match.clone(),
            timeout,
        });
    }
    (problems.found().len() == before).then_some(WsPlan {
        path,
        sessions: spec.sessions,
        connect_rate: spec.connect_rate,
        variables,
        messages,
        source_addresses: spec.source_addresses.clone(),
        group: spec.group.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(spec: serde_json::Value) -> Vec<(String, String)> {
        let spec: ScenarioSpec = serde_json::from_value(spec).unwrap();
        let mut problems = Problems::default();
        let _ = compile(&spec, "s", Duration::from_secs(1), &mut problems);
        problems.into_found()
    }

    #[test]
    fn a_capture_no_earlier_step_provides_is_named_at_the_step() {
        let found = problems_of(serde_json::json!({
            "operations": {
                "queue": {"path": "/q", "capture": {"ticket": "/ticket"}},
                "poll": {"path": "/t/{{ticket}}"}},
            "flows": {"m": {"steps": [{"call": "poll"}, {"call": "queue"}]}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "s.flows.m.steps[0].call");
        assert!(found[0].1.contains("{{ticket}}"), "{}", found[0].1);
    }

    #[test]
    fn unknown_variables_and_bad_fields_are_named() {
        let found = problems_of(serde_json::json!({
            "variables": {"skill": {"range": [5, 1]}},
            "operations": {
                "a": {"method": "get", "path": "x/{{nope}}", "weight": 1, "success": ["7xx"],
                      "json": {"deep": ["{{alsoNope}}"]}}}}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "s.variables.skill.range",
            "s.operations.a.method",
            "s.operations.a.path",
            "s.operations.a.json.deep[0]",
            "s.operations.a.success[0]",
        ] {
            assert!(fields.contains(&want), "{want} not in {found:?}");
        }
        let unknown = found
            .iter()
            .find(|(f, m)| f == "s.operations.a.path" && m.contains("unknown"))
            .unwrap();
        assert!(
            unknown
                .1
                .contains("known: player, playerNumber, seq, skill"),
            "{}",
            unknown.1
        );
    }

    #[test]
    fn weights_must_leave_something_to_call() {
        let found = problems_of(serde_json::json!({"operations": {"a": {"path": "/a"}}}));
        assert_eq!(found[0].0, "s.flows", "{found:?}");
    }

    #[test]
    fn a_repeated_step_reads_the_answer_before_it() {
        let spec: ScenarioSpec = serde_json::from_value(serde_json::json!({
            "operations": {"q": {"path": "/q"}, "p": {"path": "/p"}},
            "flows": {"m": {"steps": [{"call": "q"},
                {"call": "p", "repeatWhile": {"at": "/status", "equals": "queued"}}]}}}))
        .unwrap();
        let mut problems = Problems::default();
        let s = compile(&spec, "s", Duration::from_secs(1), &mut problems).unwrap();
        assert!(s.operations.iter().all(|o| o.reads_body));
        assert_eq!(s.pick_flow(&mut rand::rng()), 0);
    }
}
