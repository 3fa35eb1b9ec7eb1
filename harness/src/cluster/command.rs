//! `kind: command`: nodes of any system started from an argv template (`{id}`,
//! `{client_port}`, `{peer_port}`, `{data_dir}`, `{peers}`, ...) that speak the native client
//! protocol. The placeholders, their expansion, and the template's checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::kind::{NodeStart, System, TargetKind};
use super::launch::{find_program, ClusterError};

/// Every placeholder a template may use, with what it becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("{id}", "the node's id: n1, n2, ..."),
    ("{host}", "the IP address the node listens on"),
    ("{client_port}", "the port to serve clients on"),
    ("{client_addr}", "{host}:{client_port}"),
    ("{peer_port}", "the port to accept peers on"),
    ("{peer_addr}", "{host}:{peer_port}"),
    (
        "{peers}",
        "every other node as id=host:port, comma-separated: the addresses to dial peers at \
         (link proxies in proxy mode)",
    ),
    (
        "{data_dir}",
        "a directory for durable state, kept across restarts",
    ),
    (
        "{config}",
        "a JSON file with all of the above (the reference nodes' config format)",
    ),
    ("{faultline}", "the path of the faultline executable"),
];

/// What one node's placeholders stand for.
pub struct Vars<'a> {
    pub id: &'a str,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub peers: &'a BTreeMap<String, SocketAddr>,
    pub data_dir: &'a Path,
    pub config: &'a Path,
    pub faultline: &'a Path,
}

/// Expand every placeholder in every argument.
pub fn expand(template: &[String], v: &Vars<'_>) -> Vec<String> {
    let peers: Vec<String> = v.peers.iter().map(|(p, a)| format!("{p}={a}")).collect();
    let values = [
        ("{id}", v.id.to_string()),
        ("{host}", v.client_addr.ip().to_string()),
        ("{client_port}", v.client_addr.port().to_string()),
        ("{client_addr}", v.client_addr.to_string()),
        ("{peer_port}", v.peer_addr.port().to_string()),
        ("{peer_addr}", v.peer_addr.to_string()),
        ("{peers}", peers.join(",")),
        ("{data_dir}", v.data_dir.display().to_string()),
        ("{config}", v.config.display().to_string()),
        ("{faultline}", v.faultline.display().to_string()),
    ];
    template
        .iter()
        .map(|arg| {
            let mut out = arg.clone();
            for (name, value) in &values {
                out = out.replace(name, value);
            }
            out
        })
        .collect()
}

/// `kind: command` in the target registry. Its settings are passed through to the node's
/// `{config}` file, unchecked.
pub static KIND: TargetKind = TargetKind {
    name: "command",
    summary: "any program that speaks the native protocol, started from `command:`",
    known_bugs: &[],
    node_main: None,
    peer_links_proxied: true,
    load: |input| {
        let Some(argv) = input.command else {
            return Err(
                "target.command: kind: command needs `command:`, the argv that starts a node, \
                 as in [my-node, --id, \"{id}\", --port, \"{client_port}\"]"
                    .into(),
            );
        };
        check(argv).map_err(|e| format!("target.command: {e}"))?;
        if input.binary.is_some() {
            return Err(
                "target.binary: not used by kind: command (the program is command[0])".into(),
            );
        }
        Ok(Arc::new(Template(argv.to_vec())))
    },
};

/// A `command` target: the argv template.
#[derive(Debug)]
struct Template(Vec<String>);

impl System for Template {
    fn command_line(&self, start: &NodeStart<'_>) -> Result<(PathBuf, Vec<String>), ClusterError> {
        let node = start.node;
        let argv = expand(
            &self.0,
            &Vars {
                id: &node.id,
                client_addr: node.client_addr,
                peer_addr: node.peer_addr,
                peers: start.peers,
                data_dir: &node.data_dir,
                config: &node.config_path,
                faultline: &start.spec.exe,
            },
        );
        let program = find_program(&argv[0], "name it by its path, or put it on PATH")?;
        Ok((program, argv[1..].to_vec()))
    }
}

/// Check a template: not empty, and every `{word}` in it is a known placeholder (other
/// braces, as in a JSON argument, are left alone).
pub fn check(template: &[String]) -> Result<(), String> {
    if template.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("command: give the program and its arguments, as in \
                    [my-node, --id, \"{id}\", --port, \"{client_port}\"]"
            .into());
    }
    for (i, arg) in template.iter().enumerate() {
        let mut rest = arg.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open..];
            let Some(close) = after.find('}') else { break };
            let name = &after[..=close];
            let inner = &name[1..name.len() - 1];
            let word =
                !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if word && !PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
                let known: Vec<&str> = PLACEHOLDERS.iter().map(|(p, _)| *p).collect();
                return Err(format!(
                    "command[{i}]: unknown placeholder `{name}` (known: {})",
                    known.join(", ")
                ));
            }
            rest = &after[close + 1..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_every_placeholder() {
        let t: Vec<String> = [
            "{faultline}",
            "node",
            "raft",
            "--id={id}",
            "--client",
            "{client_addr}",
            "--port={client_port}/{peer_port}",
            "--peers",
            "{peers}",
            "{data_dir}",
            "{host}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        check(&t).unwrap();
        let peers = BTreeMap::from([
            ("n2".to_string(), "127.0.0.1:9002".parse().unwrap()),
            ("n3".to_string(), "127.0.0.1:9003".parse().unwrap()),
        ]);
        let out = expand(
            &t,
            &Vars {
                id: "n1",
                client_addr: "127.0.0.5:7000".parse().unwrap(),
                peer_addr: "127.0.0.5:7001".parse().unwrap(),
                peers: &peers,
                data_dir: Path::new("/d/n1"),
                config: Path::new("/d/n1.json"),
                faultline: Path::new("/bin/faultline"),
            },
        );
        assert_eq!(
            out,
            [
                "/bin/faultline",
                "node",
                "raft",
                "--id=n1",
                "--client",
                "127.0.0.5:7000",
                "--port=7000/7001",
                "--peers",
                "n2=127.0.0.1:9002,n3=127.0.0.1:9003",
                "/d/n1",
                "127.0.0.5"
            ]
        );
    }

    #[test]
    fn unknown_placeholders_and_empty_commands_are_errors() {
        let e = check(&["x".into(), "--p={port}".into()]).unwrap_err();
        assert!(
            e.starts_with("command[1]: unknown placeholder `{port}`"),
            "{e}"
        );
        assert!(check(&[]).is_err());
        // Braces that are not placeholders, like a JSON argument, are left alone.
        check(&["x".into(), "{\"a\": 1}".into()]).unwrap();
        check(&["x".into(), "{".into()]).unwrap();
        check(&["x".into(), "{}".into()]).unwrap();
    }
}
