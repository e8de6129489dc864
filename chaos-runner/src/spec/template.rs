//! Templates of the load scenarios: text with `{{name}}` holes, and JSON bodies whose
//! strings are such templates. Names are resolved when the scenario is checked, so a run
//! only fills holes by index.

use serde_json::Value;
use std::borrow::Cow;

/// What a hole is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `{{player}}`: the player's id, `p<n>`.
    Player,
    /// `{{playerNumber}}`: `n`.
    PlayerNumber,
    /// `{{seq}}`: how many calls (or messages) the player made before this one.
    Seq,
    /// A scenario variable, by index.
    Variable(usize),
    /// A captured value, by slot.
    Capture(usize),
}

/// The built-in names.
pub const BUILTINS: [&str; 3] = ["player", "playerNumber", "seq"];

impl Var {
    /// The built-in of that name.
    ///
    /// ```
    /// use chaos_runner::spec::template::Var;
    /// assert_eq!(Var::builtin("seq"), Some(Var::Seq));
    /// assert_eq!(Var::builtin("ticket"), None);
    /// ```
    pub fn builtin(name: &str) -> Option<Var> {
        match name {
            "player" => Some(Var::Player),
            "playerNumber" => Some(Var::PlayerNumber),
            "seq" => Some(Var::Seq),
            _ => None,
        }
    }
}

/// The values a template is filled from, for one player and call.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// `p<n>`.
    pub player: &'a str,
    /// `n`.
    pub number: u32,
    /// The player's count of calls before this one.
    pub seq: u64,
    /// The scenario variables' values, by index.
    pub variables: &'a [Value],
    /// Captured values, by slot (`None`: not captured).
    pub captures: &'a [Option<Value>],
}

impl Values<'_> {
    fn get(&self, var: Var) -> Option<Cow<'_, Value>> {
        match var {
            Var::Player => Some(Cow::Owned(Value::String(self.player.to_owned()))),
            Var::PlayerNumber => Some(Cow::Owned(Value::from(self.number))),
            Var::Seq => Some(Cow::Owned(Value::from(self.seq))),
            Var::Variable(i) => self.variables.get(i).map(Cow::Borrowed),
            Var::Capture(i) => self
                .captures
                .get(i)
                .and_then(Option::as_ref)
                .map(Cow::Borrowed),
        }
    }

    fn write(&self, var: Var, out: &mut String) -> Result<(), Var> {
        use std::fmt::Write;
        match var {
            Var::Player => out.push_str(self.player),
            Var::PlayerNumber => {
                let _ = write!(out, "{}", self.number);
            }
            Var::Seq => {
                let _ = write!(out, "{}", self.seq);
            }
            _ => match self.get(var).as_deref() {
                Some(Value::String(s)) => out.push_str(s),
                Some(other) => {
                    let _ = write!(out, "{other}");
                }
                None => return Err(var),
            },
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Hole(Var),
}

/// A text with `{{name}}` holes.
///
/// ```
/// use chaos_runner::spec::template::{Template, Values, Var};
/// let t = Template::parse("/v1/players/{{player}}/save", |n| Var::builtin(n)).unwrap();
/// let values = Values { player: "p7", number: 7, seq: 0, variables: &[], captures: &[] };
/// assert_eq!(t.render(&values).unwrap(), "/v1/players/p7/save");
/// assert!(Template::parse("/{{nope}}", |n| Var::builtin(n)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without `}}`.
    #[error("`{{{{` at byte {0} is not closed by `}}}}`")]
    Unclosed(usize),
    /// `{{}}`.
    #[error("`{{{{}}}}` names nothing")]
    Empty,
    /// A name that is neither built in, a variable nor a capture.
    #[error("unknown variable `{0}`")]
    Unknown(String),
}

impl Template {
    /// The empty text.
    pub fn empty() -> Template {
        Template { parts: Vec::new() }
    }

    /// Parses `text`, resolving each name with `resolve`.
    pub fn parse(
        text: &str,
        resolve: impl Fn(&str) -> Option<Var>,
    ) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + open))?;
            let name = after[..close].trim();
            if name.is_empty() {
                return Err(TemplateError::Empty);
            }
            let var = resolve(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?;
            parts.push(Part::Hole(var));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The holes, in order.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// The one hole, when the template is nothing else.
    pub fn only_hole(&self) -> Option<Var> {
        match self.parts.as_slice() {
            [Part::Hole(v)] => Some(*v),
            _ => None,
        }
    }

    /// The text with its holes filled; `Err` names a capture that has no value.
    pub fn render(&self, values: &Values<'_>) -> Result<String, Var> {
        let mut out = String::new();
        self.render_into(values, &mut out)?;
        Ok(out)
    }

    /// Appends the text with its holes filled to `out`.
    pub fn render_into(&self, values: &Values<'_>, out: &mut String) -> Result<(), Var> {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(v) => values.write(*v, out)?,
            }
        }
        Ok(())
    }
}

/// A JSON body whose strings are templates; a string that is only `{{name}}` takes the
/// value's own type.
///
/// ```
/// use chaos_runner::spec::template::{JsonTemplate, Values, Var};
/// let t = JsonTemplate::parse(&serde_json::json!({"id": "{{player}}", "n": "{{playerNumber}}", "k": [1]}),
///     |n| Var::builtin(n)).unwrap();
/// let values = Values { player: "p7", number: 7, seq: 0, variables: &[], captures: &[] };
/// assert_eq!(t.render(&values).unwrap(), serde_json::json!({"id": "p7", "n": 7, "k": [1]}));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// A value without holes.
    Literal(Value),
    /// A string with holes.
    Text(Template),
    /// A string that is one hole: the value itself.
    Whole(Var),
    /// An array with holes inside.
    Array(Vec<JsonTemplate>),
    /// An object with holes inside.
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses every string of `value`; an error comes with the JSON path of its string
    /// (`.a.b[2]`).
    pub fn parse(
        value: &Value,
        resolve: impl Fn(&str) -> Option<Var> + Copy,
    ) -> Result<JsonTemplate, (String, TemplateError)> {
        Ok(match value {
            Value::String(s) => {
                let t = Template::parse(s, resolve).map_err(|e| (String::new(), e))?;
                let has_holes = t.vars().next().is_some();
                match t.only_hole() {
                    Some(v) => JsonTemplate::Whole(v),
                    None if has_holes => JsonTemplate::Text(t),
                    None => JsonTemplate::Literal(value.clone()),
                }
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(
                        Self::parse(item, resolve).map_err(|(p, e)| (format!("[{i}]{p}"), e))?,
                    );
                }
                Self::literal_or(out, JsonTemplate::Array, value)
            }
            Value::Object(map) => {
                let mut out = Vec::with_capacity(map.len());
                for (k, item) in map {
                    out.push((
                        k.clone(),
                        Self::parse(item, resolve).map_err(|(p, e)| (format!(".{k}{p}"), e))?,
                    ));
                }
                if out
                    .iter()
                    .all(|(_, t)| matches!(t, JsonTemplate::Literal(_)))
                {
                    JsonTemplate::Literal(value.clone())
                } else {
                    JsonTemplate::Object(out)
                }
            }
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    fn literal_or(
        items: Vec<JsonTemplate>,
        make: fn(Vec<JsonTemplate>) -> JsonTemplate,
        value: &Value,
    ) -> JsonTemplate {
        if items.iter().all(|t| matches!(t, JsonTemplate::Literal(_))) {
            JsonTemplate::Literal(value.clone())
        } else {
            make(items)
        }
    }

    /// Every hole, in order.
    pub fn vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<Var>) {
        match self {
            JsonTemplate::Literal(_) => {}
            JsonTemplate::Text(t) => out.extend(t.vars()),
            JsonTemplate::Whole(v) => out.push(*v),
            JsonTemplate::Array(items) => items.iter().for_each(|t| t.collect(out)),
            JsonTemplate::Object(items) => items.iter().for_each(|(_, t)| t.collect(out)),
        }
    }

    /// The value with its holes filled; `Err` names a capture that has no value.
    pub fn render(&self, values: &Values<'_>) -> Result<Value, Var> {
        Ok(match self {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::Text(t) => Value::String(t.render(values)?),
            JsonTemplate::Whole(v) => values.get(*v).ok_or(*v)?.into_owned(),
            JsonTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(values))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(values)?)))
                    .collect::<Result<_, Var>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> Option<Var> {
        match name {
            "ticket" => Some(Var::Capture(0)),
            "skill" => Some(Var::Variable(0)),
            other => Var::builtin(other),
        }
    }

    #[test]
    fn holes_are_filled_and_a_missing_capture_is_named() {
        let t = Template::parse("/t/{{ ticket }}?s={{skill}}&n={{seq}}", resolve).unwrap();
        let variables = [Value::from(1500)];
        let values = |captures| Values {
            player: "p1",
            number: 1,
            seq: 3,
            variables: &variables,
            captures,
        };
        assert_eq!(t.render(&values(&[None])), Err(Var::Capture(0)));
        let captured = [Some(Value::from("t-9"))];
        assert_eq!(t.render(&values(&captured)).unwrap(), "/t/t-9?s=1500&n=3");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert_eq!(
            Template::parse("/a/{{player", resolve),
            Err(TemplateError::Unclosed(3))
        );
        assert_eq!(Template::parse("{{ }}", resolve), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("{{match}}", resolve),
            Err(TemplateError::Unknown("match".into()))
        );
        let err = JsonTemplate::parse(&serde_json::json!({"a": [1, "{{x}}"]}), resolve);
        assert_eq!(
            err,
            Err((".a[1]".into(), TemplateError::Unknown("x".into())))
        );
    }

    #[test]
    fn a_whole_hole_keeps_its_type_inside_json() {
        let t = JsonTemplate::parse(
            &serde_json::json!({"skill": "{{skill}}", "s": "x{{skill}}"}),
            resolve,
        )
        .unwrap();
        let variables = [Value::from(1200)];
        let values = Values {
            player: "p1",
            number: 1,
            seq: 0,
            variables: &variables,
            captures: &[],
        };
        assert_eq!(
            t.render(&values).unwrap(),
            serde_json::json!({"skill": 1200, "s": "x1200"})
        );
    }
}
