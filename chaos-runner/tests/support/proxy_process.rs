//! `chaos-runner proxy` as a real process, and calls to its admin API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `chaos-runner proxy` process on a free loopback API port; killed on drop.
pub struct ProxyProcess {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub api: String,
}

impl ProxyProcess {
    /// Starts it (with `--config` when given) and reads the API address it prints.
    pub fn start(config: Option<&Path>) -> ProxyProcess {
        ProxyProcess::start_with(config, &[])
    }

    /// [`ProxyProcess::start`] with more flags.
    pub fn start_with(config: Option<&Path>, flags: &[&str]) -> ProxyProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos-runner"));
        cmd.args(["proxy", "--listen", "127.0.0.1:0"]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(flags);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chaos-runner proxy starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the first line");
        let api = line
            .trim()
            .strip_prefix("proxy admin API listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        ProxyProcess { child, api }
    }

    /// One admin API call: its status and body.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        super::http_call(method, &format!("{}{path}", self.api), None, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.call("GET", path, None)
    }

    /// The names in the list at `path` (toxics or database fault rules).
    pub fn names(&self, path: &str) -> Vec<String> {
        let (code, body) = self.get(path);
        assert_eq!(code, 200, "{body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("a JSON list");
        list.iter()
            .map(|t| t["name"].as_str().expect("a name").to_owned())
            .collect()
    }

    /// The toxics of `proxy`, by name.
    pub fn toxic_names(&self, proxy: &str) -> Vec<String> {
        self.names(&format!("/proxies/{proxy}/toxics"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
