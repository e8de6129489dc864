//! The runner's only YAML code: deserializing documents (serde_yaml, deprecated upstream,
//! kept behind this module) and finding the line and column of any field path (yaml-rust2's
//! marked events), so every error can point at the text.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A deserialization failure: the field path, the 1-based position if known, the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlFailure {
    pub path: String,
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// How deep nodes may nest: experiment and SLO files need about ten levels. Deeper input
/// is refused before it is deserialized (50,000 levels took the parser 27 s).
pub(crate) const MAX_DEPTH: usize = 64;

/// Deserializes one YAML document into `T`.
pub(crate) fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlFailure> {
    check_depth(text)?;
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| failure(err, text, 0))
}

/// Deserializes the documents of a text (`---` between them) into `T`, in order: `None`
/// for an empty document (a leading or trailing `---`), a failure located in its own
/// document. The first failure is the last item: after a syntax error the parser has no
/// next document (serde_yaml would repeat the error forever). A text that nests too deep
/// is one failure.
pub(crate) fn documents<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<Vec<Result<Option<T>, YamlFailure>>, YamlFailure> {
    check_depth(text)?;
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let read =
            serde_path_to_error::deserialize(document).map_err(|err| failure(err, text, index));
        let failed = read.is_err();
        documents.push(read);
        if failed {
            break;
        }
    }
    Ok(documents)
}

/// Document `index` (0 for the first) of a text into `T`, the others not read: `None` when
/// the text has no such document or it is empty.
pub(crate) fn document<T: serde::de::DeserializeOwned>(
    text: &str,
    index: usize,
) -> Result<Option<T>, YamlFailure> {
    check_depth(text)?;
    match serde_yaml::Deserializer::from_str(text).nth(index) {
        Some(document) => {
            serde_path_to_error::deserialize(document).map_err(|err| failure(err, text, index))
        }
        None => Ok(None),
    }
}

/// A deserializer's error with its field path and position, in document `document` of
/// `text`.
fn failure(
    err: serde_path_to_error::Error<serde_yaml::Error>,
    text: &str,
    document: usize,
) -> YamlFailure {
    {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut location = inner.location().map(|l| (l.line(), l.column()));
        let mut message = inner.to_string();
        if let (Some(cut), Some(_)) = (message.rfind(" at line "), location) {
            message.truncate(cut);
        }
        // serde_yaml starts some messages with its own path (`spec.faults[0]: ...`); the
        // path is reported separately.
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.is_empty() && !head.contains(char::is_whitespace) {
                message = rest.to_owned();
            }
        }
        let mut path = if path == "." { String::new() } else { path };
        // A missing field is reported at its parent; name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            path = child(&path, field);
        }
        // A duplicate is reported at the mapping that holds it; point at the duplicate.
        if let Some(field) = message
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.split('`').next())
        {
            path = child(&path, field);
            if let Some(at) = Positions::of_document(text, document).duplicate(&path) {
                location = Some(at);
            }
        }
        if location.is_none() {
            location = Positions::of_document(text, document).find(&path);
        }
        YamlFailure {
            path,
            location,
            message,
        }
    }
}

fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Refuses text whose nodes nest deeper than [`MAX_DEPTH`], at the first node too deep.
/// One pass over the parser's events, keeping only a counter.
fn check_depth(text: &str) -> Result<(), YamlFailure> {
    struct Depth {
        depth: usize,
        too_deep: Option<Marker>,
    }
    impl MarkedEventReceiver for Depth {
        fn on_event(&mut self, event: Event, mark: Marker) {
            match event {
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH && self.too_deep.is_none() {
                        self.too_deep = Some(mark);
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    let mut depth = Depth {
        depth: 0,
        too_deep: None,
    };
    // Stops at the first node too deep: nothing after it is needed.
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((event, mark)) => depth.on_event(event, mark),
            // The scanner has a nesting limit of its own, met while looking ahead.
            Err(e) if e.info().contains("recursion limit") => {
                depth.too_deep = Some(*e.marker());
            }
            // Other syntax errors are the deserializer's to report.
            Err(_) => break,
        }
        if depth.too_deep.is_some() {
            break;
        }
    }
    match depth.too_deep {
        None => Ok(()),
        Some(mark) => Err(YamlFailure {
            path: String::new(),
            location: Some((mark.line(), mark.col() + 1)),
            message: format!(
                "nested deeper than {MAX_DEPTH} levels (the limit; experiment and SLO files \
                 need about ten)"
            ),
        }),
    }
}

/// Positions (1-based line and column) of every node, by field path (`a.b[2].c`).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_path: HashMap<String, (usize, usize)>,
    /// Where a key is written a second time in the same mapping.
    duplicates: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map {
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    frames: Vec<Frame>,
    by_path: HashMap<String, (usize, usize)>,
    duplicates: HashMap<String, (usize, usize)>,
    /// The document whose positions are kept (0 for the first).
    wanted: usize,
    /// How many documents have started so far.
    started: usize,
}

impl Builder {
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.frames {
            match frame {
                Frame::Map { key: Some(key), .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Frame::Map { key: None, .. } => {}
                Frame::Seq { index } => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }

    fn record(&mut self, mark: Marker) {
        let path = self.path();
        self.by_path
            .entry(path)
            .or_insert((mark.line(), mark.col() + 1));
    }

    /// After a complete value: the parent map expects a key again, the parent sequence moves
    /// to its next index.
    fn value_done(&mut self) {
        match self.frames.last_mut() {
            Some(Frame::Map { key, expecting_key }) => {
                *key = None;
                *expecting_key = true;
            }
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if event == Event::DocumentStart {
            self.started += 1;
            return;
        }
        // Only the wanted document's nodes (the parser starts every document, implicit ones
        // too, with a `DocumentStart`).
        if self.started != self.wanted + 1 {
            return;
        }
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    key, expecting_key, ..
                }) = self.frames.last_mut()
                {
                    if *expecting_key {
                        *key = Some(value);
                        *expecting_key = false;
                        let at = (mark.line(), mark.col() + 1);
                        let path = self.path();
                        match self.by_path.entry(path) {
                            std::collections::hash_map::Entry::Occupied(first) => {
                                self.duplicates.entry(first.key().clone()).or_insert(at);
                            }
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                slot.insert(at);
                            }
                        }
                        return;
                    }
                }
                self.record(mark);
                self.value_done();
            }
            Event::Alias(_) => {
                self.record(mark);
                self.value_done();
            }
            Event::MappingStart(..) => {
                self.record(mark);
                self.frames.push(Frame::Map {
                    key: None,
                    expecting_key: true,
                });
            }
            Event::SequenceStart(..) => {
                self.record(mark);
                self.frames.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.value_done();
            }
            _ => {}
        }
    }
}

impl Positions {
    /// Reads the positions of every node of the first document of `text` (best effort:
    /// stops at the first syntax error, keeping what it read).
    pub(crate) fn of(text: &str) -> Positions {
        Self::read(text, 0, false)
    }

    /// Reads the positions of the nodes of document `index` (0 for the first) of a text of
    /// several documents (best effort, as [`Positions::of`]).
    pub(crate) fn of_document(text: &str, index: usize) -> Positions {
        Self::read(text, index, index > 0)
    }

    fn read(text: &str, wanted: usize, every_document: bool) -> Positions {
        let mut builder = Builder {
            wanted,
            ..Builder::default()
        };
        // A tab after `key:` is taken by the deserializer but stops this parser, which
        // would lose every position after it; a space in its place keeps every column.
        let text = text.replace('\t', " ");
        let mut parser = Parser::new_from_str(&text);
        let _ = parser.load(&mut builder, every_document);
        Positions {
            by_path: builder.by_path,
            duplicates: builder.duplicates,
        }
    }

    /// Where `path` is written a second time in its mapping, if it is.
    pub(crate) fn duplicate(&self, path: &str) -> Option<(usize, usize)> {
        self.duplicates.get(path).copied()
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub(crate) fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path;
        loop {
            if let Some(found) = self.by_path.get(candidate) {
                return Some(*found);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

/// Writes `value` as YAML (the runner's generated files: Prometheus rules).
pub(crate) fn to_string<T: serde::Serialize>(value: &T) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_paths() {
        let text = "a: 1\nspec:\n  faults:\n    - name: x\n      duration: 5s\n    - { name: y, duration: 2s }\n";
        let p = Positions::of(text);
        assert_eq!(p.find("a"), Some((1, 1)));
        assert_eq!(p.find("spec.faults[0].duration"), Some((5, 7)));
        assert_eq!(p.find("spec.faults[1].duration"), Some((6, 18)));
        assert_eq!(p.find("spec.faults[1].missing"), Some((6, 7)));
    }

    #[test]
    fn positions_of_a_later_document() {
        let text = "kind: A\nspec: 1\n---\nkind: B\nspec:\n  x: 2\n";
        // A field is where its key is written.
        assert_eq!(Positions::of(text).find("spec"), Some((2, 1)));
        assert_eq!(Positions::of_document(text, 0).find("spec"), Some((2, 1)));
        let second = Positions::of_document(text, 1);
        assert_eq!(second.find("kind"), Some((4, 1)));
        assert_eq!(second.find("spec.x"), Some((6, 3)));
        assert_eq!(Positions::of_document(text, 2).find("kind"), None);
    }

    #[derive(serde::Deserialize, Debug, Clone, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Kind {
        kind: String,
    }

    #[test]
    fn documents_one_by_one_with_their_own_failures() {
        let text = "---\nkind: A\n---\nkind: B\nbogus: 1\n---\n";
        let docs = documents::<Kind>(text).unwrap();
        assert_eq!(
            docs[0],
            Ok(Some(Kind {
                kind: "A".to_owned()
            }))
        );
        let failure = docs[1].clone().unwrap_err();
        assert_eq!(failure.path, "bogus");
        assert_eq!(failure.location.map(|l| l.0), Some(5));
        assert!(
            docs.iter().skip(2).all(|d| matches!(d, Ok(None))),
            "{docs:?}"
        );
        let second: Option<Kind> = document(text, 1).unwrap_or(None);
        assert_eq!(second, None, "the second document does not deserialize");
        assert!(document::<Kind>(text, 1).is_err());
        let first: Option<Kind> = document(text, 0).unwrap();
        assert_eq!(first.map(|k| k.kind).as_deref(), Some("A"));
        assert_eq!(document::<Kind>(text, 7), Ok(None));
    }
}
