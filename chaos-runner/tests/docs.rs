//! The documentation stays true: every YAML example in `README.md`, `resilience/README.md`
//! and `docs/*.md` is valid, and every relative link between them resolves.
//!
//! A block fenced ```` ```yaml ```` is a whole file: an experiment, an SLO set or a Sloth or
//! OpenSLO SLO file (checked by `chaos-runner validate`, as a user would) or a `resilience`
//! policy (checked by `ResiliencePolicyConfig::from_yaml`). A block fenced
//! ```` ```yaml fragment ```` is an excerpt of a bigger file; it must at least be
//! well-formed YAML.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The user-facing Markdown pages: the README, the crate README and every page in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![
        repo().join("README.md"),
        repo().join("resilience/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// A fenced code block: where it starts, its info string and its text.
struct Block {
    line: usize,
    info: String,
    text: String,
}

/// The fenced code blocks of a Markdown page (fences may be indented, as in lists).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((index + 1, info.trim().to_owned(), String::new()));
                }
            }
            Some((start, info, text)) => {
                if trimmed.trim_end() == "```" {
                    found.push(Block {
                        line: *start,
                        info: std::mem::take(info),
                        text: std::mem::take(text),
                    });
                    open = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    found
}

fn page_name(page: &Path) -> String {
    page.strip_prefix(repo())
        .unwrap_or(page)
        .display()
        .to_string()
}

/// What a whole-file YAML example is, from its top-level `kind` (experiment, SLO set, load
/// scenario; or, for the SLO files the runner reads from other tools, their version).
fn is_chaos_document(text: &str) -> bool {
    text.lines().any(|l| {
        matches!(
            l.trim_end(),
            "kind: Experiment"
                | "kind: SLOSet"
                | "kind: GameDay"
                | "kind: LoadScenario"
                | "version: prometheus/v1"
                | "version: \"prometheus/v1\""
                | "apiVersion: openslo/v1"
        )
    })
}

#[test]
fn every_yaml_example_in_the_docs_is_valid() {
    let dir = tempfile_dir("docs-yaml");
    let slo = repo().join("experiments/slo/game-services.yaml");
    let mut chaos_files = Vec::new();
    let mut policies = 0;
    let mut fragments = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let markdown = std::fs::read_to_string(&page).expect("read page");
        for block in blocks(&markdown) {
            let mut words = block.info.split_whitespace();
            if words.next() != Some("yaml") {
                continue;
            }
            let at = format!("{}:{}", page_name(&page), block.line);
            if words.any(|w| w == "fragment") {
                fragments += 1;
                if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&block.text) {
                    failures.push(format!("{at}: a yaml fragment that is not YAML: {e}"));
                }
            } else if is_chaos_document(&block.text) {
                // Named after the page and line, so `validate`'s errors point back to them.
                let name = format!(
                    "{}-line-{}.yaml",
                    page_name(&page).replace('/', "_"),
                    block.line
                );
                let path = dir.join(name);
                let experiments = repo().join("experiments");
                let text = block
                    .text
                    .replace("../slo/game-services.yaml", &slo.display().to_string())
                    .replace(
                        "../kubernetes/",
                        &format!("{}/kubernetes/", experiments.display()),
                    )
                    .replace("../local/", &format!("{}/local/", experiments.display()));
                std::fs::write(&path, text).expect("write example");
                chaos_files.push(path);
            } else {
                policies += 1;
                if let Err(e) = resilience::ResiliencePolicyConfig::from_yaml(&block.text) {
                    failures.push(format!(
                        "{at}: not a valid resilience policy (a whole-file ```yaml block must be \
                         an experiment, an SLO set or a policy; mark excerpts ```yaml fragment): {e}"
                    ));
                }
            }
        }
    }
    assert!(
        chaos_files.len() >= 3 && policies >= 1 && fragments >= 1,
        "too few examples found ({} experiments/SLO sets, {policies} policies, {fragments} \
         fragments): has the fence convention changed?",
        chaos_files.len()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-runner"))
        .arg("validate")
        .args(&chaos_files)
        .output()
        .expect("run chaos-runner validate");
    if !out.status.success() {
        failures.push(format!(
            "chaos-runner validate refused documented examples:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-`
/// and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of a page's inline links `[text](target)`, outside code, with their lines.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").expect("regex");
    let mut found = Vec::new();
    let mut in_code = false;
    for (index, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Inline code spans may show link syntax without being links.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        for capture in link.captures_iter(&prose) {
            found.push((index + 1, capture[1].to_owned()));
        }
    }
    found
}

#[test]
fn every_link_between_the_docs_resolves() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let markdown = std::fs::read_to_string(&page).expect("read page");
        for (line, target) in links(&markdown) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let at = format!("{}:{line}", page_name(&page));
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().expect("page dir").join(path)
            };
            if !file.exists() {
                failures.push(format!("{at}: link to {target}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment {
                if file.extension().is_some_and(|e| e == "md") {
                    let text = std::fs::read_to_string(&file).expect("read link target");
                    if !anchors(&text).contains(fragment) {
                        failures.push(format!("{at}: link to {target}: no such heading"));
                    }
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} relative links found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    for page in pages().iter().skip(2) {
        let name = format!("docs/{}", page.file_name().expect("name").to_string_lossy());
        assert!(
            linked
                .iter()
                .any(|t| t.split('#').next() == Some(name.as_str())),
            "README.md does not link {name}"
        );
    }
}

#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(anchor(" The two commands"), "the-two-commands");
    assert_eq!(
        anchor("`resilience` in one minute"),
        "resilience-in-one-minute"
    );
    assert_eq!(
        anchor("Exit codes (CLI contract)"),
        "exit-codes-cli-contract"
    );
    let found = blocks("text\n```yaml fragment\na: 1\n```\n  ```sh\n  ls\n  ```\n");
    assert_eq!(found.len(), 2);
    assert_eq!(
        (found[0].line, found[0].info.as_str()),
        (2, "yaml fragment")
    );
    assert_eq!(found[0].text, "a: 1\n");
    assert_eq!(found[1].info, "sh");
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
