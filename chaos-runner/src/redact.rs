//! Credentials out of text shown to people: run lines in CI logs carry URLs, command lines
//! and a service's own output, which may hold a password in a URL's userinfo
//! (`postgres://app:secret@db/game`) or a token in its query (`?token=...`).

/// Query keys whose values are secrets (compared lower-cased, as substrings).
const SECRET_KEYS: [&str; 7] = [
    "token", "key", "secret", "password", "passwd", "sig", "auth",
];

/// `text` with the userinfo of every URL in it and the values of secret-looking query
/// parameters replaced by `***`.
///
/// ```
/// use chaos_runner::redact::credentials;
/// assert_eq!(credentials("postgres://app:s3cret@db:5432/game"), "postgres://***@db:5432/game");
/// assert_eq!(credentials("GET http://h/ready?api_key=abc&x=1 ok"), "GET http://h/ready?api_key=***&x=1 ok");
/// assert_eq!(credentials("no url here"), "no url here");
/// ```
pub fn credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The URL runs to the next blank.
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        out.push_str(&redact_url(url));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// One URL after its `scheme://`.
fn redact_url(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_owned(),
    };
    let Some((before_query, query)) = path.split_once('?') else {
        return authority + path;
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, format!("#{f}")),
        None => (query, String::new()),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if SECRET_KEYS
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s)) =>
            {
                format!("{k}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{authority}{before_query}?{}{fragment}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn every_url_in_a_line_loses_its_secrets_and_nothing_else() {
        assert_eq!(
            credentials("starting `game`: app --db postgres://u:p@127.0.0.1:5432/g?sslmode=disable&password=x#f; waiting for http://127.0.0.1:8080/healthz"),
            "starting `game`: app --db postgres://***@127.0.0.1:5432/g?sslmode=disable&password=***#f; waiting for http://127.0.0.1:8080/healthz"
        );
        assert_eq!(credentials("redis://:pw@r:6379"), "redis://***@r:6379");
        assert_eq!(
            credentials("http://h:1/a@b"),
            "http://h:1/a@b",
            "an @ in the path stays"
        );
        assert_eq!(credentials("://"), "://");
        assert_eq!(credentials("x ://@"), "x ://***@");
    }
}
