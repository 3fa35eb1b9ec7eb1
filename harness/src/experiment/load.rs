//! Loading experiments: YAML with `file:line:col` errors, `--set path=value` overrides, the
//! seed, and suites.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::Experiment;

/// Why an experiment could not be loaded. Every variant names the file (and, for YAML, the
/// line, column and field path).
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("--set {set}: {message}")]
    Override { set: String, message: String },
    #[error("{path}: no experiments (*.yaml) in this suite directory")]
    EmptySuite { path: PathBuf },
}

/// One `--set path=value` override; the value is parsed as YAML (`5`, `true`, `250ms`, `[a]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Value,
    pub raw: String,
}

impl std::str::FromStr for Override {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not of the form path=value"))?;
        let path: Vec<String> = path
            .trim()
            .split('.')
            .map(|p| p.trim().to_string())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!("`{s}`: empty field name in the path"));
        }
        let value: Value = serde_yaml::from_str(value)
            .map_err(|e| format!("`{s}`: the value is not valid YAML: {e}"))?;
        Ok(Override {
            path,
            value,
            raw: s.to_string(),
        })
    }
}

/// An experiment ready to run: the typed form, and the YAML as it will be recorded
/// (`experiment.yaml` in the run directory, seed included).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub experiment: Experiment,
    pub seed: u64,
    pub as_run: Value,
}

/// Load one experiment file, apply overrides and the seed (from `--seed`, the file, or fresh
/// randomness, in that order).
pub fn load_experiment(
    path: &Path,
    overrides: &[Override],
    seed: Option<u64>,
) -> Result<Loaded, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_experiment(path, &text, overrides, seed)
}

/// Parse an experiment from text; `path` is used in error messages.
pub fn parse_experiment(
    path: &Path,
    text: &str,
    overrides: &[Override],
    seed: Option<u64>,
) -> Result<Loaded, ExperimentError> {
    // First pass: typed, straight from the text, so every error has its location.
    let typed = Experiment::deserialize(serde_yaml::Deserializer::from_str(text))
        .map_err(|e| yaml_error_in(path, text, e))?;
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| yaml_error(path, e))?;
    let mut experiment = typed;
    if !overrides.is_empty() {
        for o in overrides {
            set_path(&mut value, &o.path, o.value.clone()).map_err(|message| {
                ExperimentError::Override {
                    set: o.raw.clone(),
                    message,
                }
            })?;
        }
        experiment = Experiment::deserialize(value.clone()).map_err(|e| {
            let raw: Vec<&str> = overrides.iter().map(|o| o.raw.as_str()).collect();
            ExperimentError::Override {
                set: raw.join(" --set "),
                message: strip_location(&e.to_string()),
            }
        })?;
    }
    // A cross-field error is located in the file, unless the field came from a `--set`.
    let error_at = |key: &str, index: Option<usize>, message: String| match overrides
        .iter()
        .find(|o| o.path.first().map(String::as_str) == Some(key))
    {
        Some(o) => ExperimentError::Override {
            set: o.raw.clone(),
            message,
        },
        None => located(path, text, key, index, message),
    };
    // Node ids of this cluster: n1 ..= n<target.nodes>.
    let nodes = experiment.target.nodes;
    let is_node = |id: &str| (1..=nodes).any(|n| id == format!("n{n}"));
    // Faults that could never fire, or never find their node.
    let duration = experiment.duration.0;
    for (i, f) in experiment.faults.iter().enumerate() {
        let first = match f.when {
            super::When::At(at) => ("at", at),
            super::When::Every { from, .. } => ("from", from),
        };
        if first.1 .0 >= duration {
            let message = format!(
                "faults[{i}]: `{}: {}` is not before the end of the run (duration: {}), so \
                 it would never fire",
                first.0, first.1, experiment.duration
            );
            return Err(error_at("faults", Some(i), message));
        }
        if let Some(id) = f.node_ids().into_iter().find(|id| !is_node(id)) {
            let message = format!(
                "faults[{i}]: no node `{id}` in this cluster of {nodes} (n1..n{nodes}), so it \
                 would never match"
            );
            return Err(error_at("faults", Some(i), message));
        }
    }
    if experiment.network.mode == super::NetworkMode::Direct {
        if let Some((i, f)) = experiment
            .faults
            .iter()
            .enumerate()
            .find(|(_, f)| f.touches_network())
        {
            let message = format!(
                "faults[{i}]: `{}` needs the link proxy, but network.mode is `direct` \
                 (use `network: {{mode: proxy}}`, the default)",
                std::iter::once(f)
                    .chain(&f.choices)
                    .find(|c| c.net.is_some())
                    .map_or(f.action, |c| c.action)
                    .as_str()
            );
            return Err(error_at("faults", Some(i), message));
        }
    }
    // etcd members and Redis servers dial each other at addresses they announce themselves,
    // so the harness cannot put its proxies between them: only netns cuts node links there.
    if !experiment.target.kind.peer_links_proxied {
        let mode = experiment.network.mode;
        for (i, f) in experiment.faults.iter().enumerate() {
            let blocked = std::iter::once(f)
                .chain(&f.choices)
                .filter_map(|c| c.net.as_ref())
                .find(|n| n.node_links_need_proxy(mode));
            if let Some(n) = blocked {
                let message = format!(
                    "faults[{i}]: `{}` acts on links between {} nodes, which the link proxy \
                     cannot reach (they dial each other at addresses they announce); use \
                     `network: {{mode: netns}}` for partitions, loss and bandwidth, or a \
                     `link:` with `from: clients` or `to: clients`",
                    n.action().as_str(),
                    experiment.target.kind.name
                );
                return Err(error_at("faults", Some(i), message));
            }
        }
    }
    for (i, f) in experiment.faults.iter().enumerate() {
        let why = std::iter::once(f)
            .chain(&f.choices)
            .filter_map(|c| c.net.as_ref())
            .find_map(|n| n.unsupported_in(experiment.network.mode));
        if let Some(why) = why {
            return Err(error_at("faults", Some(i), format!("faults[{i}]: {why}")));
        }
    }
    // Balancer weights name nodes of this cluster.
    let unknown = experiment
        .balancer
        .params
        .weights
        .keys()
        .find(|id| !is_node(id));
    if let Some(id) = unknown {
        let message =
            format!("balancer.weights: no node `{id}` in this cluster of {nodes} (n1..n{nodes})");
        // At the weight itself, unless `balancer` came from a `--set`.
        let from_set = overrides
            .iter()
            .any(|o| o.path.first().map(String::as_str) == Some("balancer"));
        return Err(
            match (!from_set)
                .then(|| locate_in_block(text, "balancer", &format!("{id}:")))
                .flatten()
            {
                Some((line, column)) => ExperimentError::Yaml {
                    file: path.to_owned(),
                    line,
                    column,
                    message,
                },
                None => error_at("balancer", None, message),
            },
        );
    }
    let seed = seed.or(experiment.seed).unwrap_or_else(rand::random::<u64>);
    experiment.seed = Some(seed);
    if let Value::Mapping(m) = &mut value {
        m.insert(Value::from("seed"), Value::from(seed));
    }
    Ok(Loaded {
        path: path.to_owned(),
        experiment,
        seed,
        as_run: value,
    })
}

/// An error found after parsing (a check across fields), placed at the line of the top-level
/// field it is about (or of its `index`th list item), when the text shows where that is.
fn located(
    path: &Path,
    text: &str,
    key: &str,
    index: Option<usize>,
    message: String,
) -> ExperimentError {
    match locate(text, key, index) {
        Some((line, column)) => ExperimentError::Yaml {
            file: path.to_owned(),
            line,
            column,
            message,
        },
        None => ExperimentError::Invalid {
            file: path.to_owned(),
            message,
        },
    }
}

/// Where a top-level field (1-based line and column of its value, or of the `index`th item of
/// a block list under it) starts in the YAML text. Falls back to the field's own line for a
/// flow list (`[a, b]`); `None` when the field is not written in the text (it came from a
/// default or a `--set`).
fn locate(text: &str, key: &str, index: Option<usize>) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let prefix = format!("{key}:");
    let at = lines.iter().position(|l| l.starts_with(&prefix))?;
    let value_col = |l: &str, from: usize| {
        let rest = &l[from..];
        from + (rest.len() - rest.trim_start().len()) + 1
    };
    let key_pos = (at + 1, value_col(lines[at], prefix.len()));
    let Some(index) = index else {
        return Some(key_pos);
    };
    let mut item_indent: Option<usize> = None;
    let mut seen = 0;
    for (n, l) in lines.iter().enumerate().skip(at + 1) {
        let body = l.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = l.len() - body.len();
        let is_item = body == "-" || body.starts_with("- ");
        match item_indent {
            None if is_item => item_indent = Some(indent),
            None => return Some(key_pos),
            Some(i) if indent < i || (indent == i && !is_item) => return Some(key_pos),
            Some(_) => {}
        }
        if is_item && Some(indent) == item_indent {
            if seen == index {
                return Some((n + 1, value_col(l, indent + 1)));
            }
            seen += 1;
        }
    }
    Some(key_pos)
}

/// Where `needle` first appears, not right after a letter, digit or `_`, in the block of the
/// top-level field `key`: its own line and the indented (or blank, or comment) lines after it.
/// 1-based line and column.
fn locate_in_block(text: &str, key: &str, needle: &str) -> Option<(usize, usize)> {
    let prefix = format!("{key}:");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with(&prefix))?;
    for (n, l) in lines.iter().enumerate().skip(at) {
        if n > at && !l.is_empty() && !l.starts_with([' ', '\t', '#']) {
            break;
        }
        let found = l.match_indices(needle).map(|(i, _)| i).find(|&i| {
            !l[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        if let Some(i) = found {
            return Some((n + 1, l[..i].chars().count() + 1));
        }
    }
    None
}

/// A YAML error of the experiment file `text`. A check across the fields of a nested block
/// (`target`, `workload`) fails after serde_yaml has left the block and comes without a place
/// of its own (1:1); its message starts with the field it is about (`workload.mix: ...`), so
/// it is placed there.
fn yaml_error_in(path: &Path, text: &str, e: serde_yaml::Error) -> ExperimentError {
    let at_start = e
        .location()
        .is_none_or(|l| (l.line(), l.column()) == (1, 1));
    let message = strip_location(&e.to_string());
    // `block.field: problem`, or `block: problem` whose first word is the field.
    let place = message
        .split_once(':')
        .filter(|(head, _)| !head.contains(char::is_whitespace))
        .map(|(head, rest)| match head.split_once('.') {
            Some((block, field)) => (block, field.split(['.', '[']).next().unwrap_or(field)),
            None => {
                let word = rest.trim_start().trim_start_matches('`');
                let end = word
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(word.len());
                (head, word[..end].rsplit('.').next().unwrap_or(""))
            }
        });
    if let (true, Some((block, field))) = (at_start, place) {
        let found = (!field.is_empty())
            .then(|| locate_in_block(text, block, &format!("{field}:")))
            .flatten();
        if let Some((line, column)) = found.or_else(|| locate(text, block, None)) {
            return ExperimentError::Yaml {
                file: path.to_owned(),
                line,
                column,
                message,
            };
        }
    }
    yaml_error(path, e)
}

fn yaml_error(path: &Path, e: serde_yaml::Error) -> ExperimentError {
    let message = strip_location(&e.to_string());
    match e.location() {
        Some(loc) => ExperimentError::Yaml {
            file: path.to_owned(),
            line: loc.line(),
            column: loc.column(),
            message,
        },
        None => ExperimentError::Invalid {
            file: path.to_owned(),
            message,
        },
    }
}

/// serde_yaml appends " at line L column C"; the location goes in front instead.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

fn set_path(root: &mut Value, path: &[String], new: Value) -> Result<(), String> {
    let mut cur = root;
    for (i, part) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        match cur {
            Value::Mapping(m) => {
                let key = Value::from(part.as_str());
                if last {
                    m.insert(key, new);
                    return Ok(());
                }
                cur = m
                    .entry(key)
                    .or_insert_with(|| Value::Mapping(Default::default()));
            }
            Value::Sequence(seq) => {
                let idx: usize = part
                    .parse()
                    .map_err(|_| format!("`{part}` indexes a list: give a number"))?;
                let len = seq.len();
                let slot = seq
                    .get_mut(idx)
                    .ok_or_else(|| format!("index {idx} is past the end of a list of {len}"))?;
                if last {
                    *slot = new;
                    return Ok(());
                }
                cur = slot;
            }
            _ => {
                return Err(format!(
                    "`{}` is not a mapping or list",
                    path[..i].join(".")
                ))
            }
        }
    }
    Err("empty path".into())
}

/// The experiments of a suite: a directory's `*.yaml` / `*.yml` files in name order, or a
/// single experiment file.
pub fn load_suite(path: &Path) -> Result<Vec<PathBuf>, ExperimentError> {
    if path.is_dir() {
        let rd = std::fs::read_dir(path).map_err(|source| ExperimentError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml") | Some("yml")
                    )
                    && p.file_name().and_then(|n| n.to_str()) != Some("gate.yaml")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ExperimentError::EmptySuite {
                path: path.to_owned(),
            });
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_owned()])
    } else {
        Err(ExperimentError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        })
    }
}

#[cfg(test)]
mod tests;
