//! Telling a webhook of each GameDay run and skip: the history record as a JSON POST, five
//! seconds at most. A webhook that fails is a warning, never a failed GameDay. Its URL is a
//! secret (it carries its own token): it comes from the file, an environment variable or a
//! file, and only its host is ever printed.

use std::time::Duration;

use super::history::Record;
use crate::spec::gameday::ValidatedGameDay;

/// Posts `record` to the GameDay's webhook, if it has one.
pub fn send(gameday: &ValidatedGameDay, record: &Record) {
    let Some(notify) = &gameday.gameday.spec.notify else {
        return;
    };
    let url = if let Some(url) = &notify.webhook {
        url.clone()
    } else if let Some(var) = &notify.webhook_env {
        match std::env::var(var) {
            Ok(url) => url,
            Err(_) => {
                eprintln!("warning: spec.notify.webhookEnv: {var} is not set; nobody was told");
                return;
            }
        }
    } else if let Some(file) = &notify.webhook_file {
        match std::fs::read_to_string(file) {
            Ok(url) => url,
            Err(e) => {
                eprintln!(
                    "warning: spec.notify.webhookFile: cannot read {file}: {e}; nobody was told"
                );
                return;
            }
        }
    } else {
        return;
    };
    let url = url.trim();
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "(not a URL)".to_owned());
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let body = serde_json::json!({
        "text": summary(record),
        "record": record,
    });
    match agent.post(url).send_json(body) {
        Ok(_) => {}
        Err(ureq::Error::Status(code, _)) => {
            eprintln!("warning: the webhook at {host} answered {code}");
        }
        Err(ureq::Error::Transport(t)) => {
            eprintln!(
                "warning: the webhook at {host} could not be reached: {}",
                t.kind()
            );
        }
    }
}

/// One line for a chat channel.
fn summary(record: &Record) -> String {
    match record.verdict.as_deref() {
        Some(verdict) => format!(
            "GameDay {} / {} ({}): {verdict}: {}",
            record.gameday, record.entry, record.local, record.reason
        ),
        None => format!(
            "GameDay {} / {} ({}): skipped: {}",
            record.gameday, record.entry, record.local, record.reason
        ),
    }
}
