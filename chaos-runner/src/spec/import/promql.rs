//! The OpenSLO query rule: a Prometheus query of an OpenSLO SLI as events per second over
//! the runner's `$window`.
//!
//! ```text
//! game_saves_total{result="stored"}         (counter: true)  ->  sum(rate(game_saves_total{result="stored"}[$window]))
//! sum(rate(game_saves_total[$window]))      (any)            ->  as it is
//! sum(rate(game_saves_total[5m]))           (any)            ->  refused: a range of its own
//! sum(game_saves_total)                     (counter: true)  ->  refused: not a plain selector
//! game_saves_total                          (not a counter)  ->  refused: not a counter
//! ```

/// Why a query cannot be made a rate over `$window`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RateError {
    /// Not `counter: true`, and no `$window` of its own.
    NotACounter,
    /// A counter query that is not a plain selector.
    Query(String),
}

/// A query as events per second over `$window`: as it is when it has `$window`, else a
/// counter selector wrapped in `sum(rate(...[$window]))`.
pub(crate) fn rate_query(query: &str, counter: bool) -> Result<String, RateError> {
    if query.contains("$window") {
        return Ok(query.to_owned());
    }
    if !counter {
        return Err(RateError::NotACounter);
    }
    if query.contains('[') {
        return Err(RateError::Query(
            "has a range of its own: the runner chooses the window (5m to the SLO's period); \
             write this SLI in the runner's own format (kind: SLOSet) with `$window` as the \
             range, e.g. `sum(rate(metric_total[$window]))`, or give the plain counter \
             selector here"
                .to_owned(),
        ));
    }
    if !is_plain_selector(query) {
        return Err(RateError::Query(
            "is not a plain counter selector (a metric name with optional {label matchers}), \
             so it cannot be wrapped in rate(); write this SLI in the runner's own format \
             (kind: SLOSet) with `$window` as the range"
                .to_owned(),
        ));
    }
    Ok(format!("sum(rate({query}[$window]))"))
}

/// `name`, `name{matchers}` or `{matchers}`: a PromQL instant-vector selector, with
/// nothing around it.
fn is_plain_selector(query: &str) -> bool {
    let name_end = query
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(query.len());
    let (name, rest) = query.split_at(name_end);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return !name.is_empty();
    }
    let Some(matchers) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    // Outside quoted label values, no brackets of any kind.
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in matchers.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' | '`' => quote = Some(c),
                '{' | '}' | '(' | ')' | '[' | ']' => return false,
                _ => {}
            },
        }
    }
    quote.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_selectors_become_rates_over_the_window() {
        assert_eq!(
            rate_query(r#"game_saves_total{result="stored"}"#, true).as_deref(),
            Ok(r#"sum(rate(game_saves_total{result="stored"}[$window]))"#)
        );
        assert_eq!(
            rate_query("game_saves_total", true).as_deref(),
            Ok("sum(rate(game_saves_total[$window]))")
        );
        assert_eq!(
            rate_query("sum(rate(x[$window]))", false).as_deref(),
            Ok("sum(rate(x[$window]))")
        );
        assert_eq!(rate_query("x", false), Err(RateError::NotACounter));
        assert!(matches!(
            rate_query("sum(rate(x[5m]))", true),
            Err(RateError::Query(m)) if m.contains("range of its own")
        ));
        assert!(matches!(
            rate_query("sum(x)", true),
            Err(RateError::Query(m)) if m.contains("plain counter selector")
        ));
    }

    #[test]
    fn plain_selectors() {
        assert!(is_plain_selector("up"));
        assert!(is_plain_selector(r#"x{a="}", b=~"(c|d)"}"#));
        assert!(is_plain_selector(r#"{__name__="x"}"#));
        assert!(!is_plain_selector("sum(x)"));
        assert!(!is_plain_selector("x + y"));
        assert!(!is_plain_selector(r#"x{a="b"} or y"#));
        assert!(!is_plain_selector("9x"));
        assert!(!is_plain_selector(r#"x{a="b}"#));
    }
}
