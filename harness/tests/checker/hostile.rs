//! Generated hostile input for every decoder of outside data: the experiment loader and
//! `--set` values, gate rules, the Jepsen EDN and Porcupine kv importers, the native wire
//! protocol (node side and client side), and Redis's RESP. The properties: never a panic,
//! never an allocation sized by a length the input declares beyond the documented limits, and
//! errors of the documented kind that say where. 256 cases a property in `cargo test`; for a
//! longer run (nightly): `PROPTEST_CASES=20000 cargo test --release -p faultline --test checker
//! hostile`. The etcd answer decoder and the netns journal reader have theirs beside the code
//! (`harness/src/cluster/etcd.rs`, `faults/src/netns/journal.rs`).

use std::path::Path;

use faultline::experiment::{parse_experiment, ExperimentError, Override};
use faultline::history::import::{Foreign, ImportError};
use faultline::report::gate::{parse_rule, parse_rules};
use faultline_protocol::{decode_request, decode_response, encode, Op, Request};
use proptest::prelude::*;

const GOOD: &str = "\
name: hostile
seed: 1
duration: 5s
target:
  kind: raft
  nodes: 3
  settings: { heartbeat: 50ms, election_timeout: [150ms, 300ms] }
workload:
  kind: cas-register
  keys: 4
  mix: { read: 0.5, write: 0.4, cas: 0.1 }
  rate: 100/s
balancer:
  kind: leader-aware
faults:
  - { at: 1s, kill: leader, restart_after: 500ms }
  - { every: 1s, from: 2s, until: 4s, partition: isolate-leader, duration: 300ms }
slo: { availability: 0.5 }
";

/// A loader error names the file, and a located one has a line inside the text.
fn check_loader_error(text: &str, e: &ExperimentError) -> Result<(), TestCaseError> {
    let shown = e.to_string();
    prop_assert!(shown.starts_with("x.yaml"), "{shown}");
    if let ExperimentError::Yaml { line, column, .. } = e {
        // YAML breaks lines at LF, CRLF and a lone CR.
        let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
        prop_assert!(*line >= 1 && *column >= 1, "{shown}");
        // One past the last line: the end of the input.
        prop_assert!(*line <= lines + 1, "{shown} ({lines} lines): {text:?}");
    }
    Ok(())
}

/// Text made of the experiment's own pieces: keys, values, YAML punctuation.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("name: ".to_string()),
        Just("duration: ".to_string()),
        Just("target:\n".to_string()),
        Just("  kind: raft\n".to_string()),
        Just("  nodes: ".to_string()),
        Just("workload:\n".to_string()),
        Just("faults:\n  - ".to_string()),
        Just("{ at: 1s, kill: n7 }".to_string()),
        Just("[[n1], [n9]]".to_string()),
        Just("../../".to_string()), // not-a-path: hostile input
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("9999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("\n".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        "[ -~]{0,12}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// One of `tokens`, as a string.
fn token(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::sample::select(tokens).prop_map(String::from)
}

/// The tokens Jepsen and Porcupine EDN histories are made of, and some that break them.
const EDN_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ":process ",
    ":type ",
    ":invoke ",
    ":ok ",
    ":fail ",
    ":info ",
    ":f ",
    ":read ",
    ":write ",
    ":cas ",
    ":get ",
    ":put ",
    ":append ",
    ":key ",
    ":value ",
    "nil ",
    "\"x 1 0 y\" ",
    "\"",
    "\\",
    "#{",
    "#_",
    ";",
    "\n",
    ", ",
];

/// The protocol's keys and values, and numbers past what its fields hold.
const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"id\"",
    "\"op\"",
    "\"read\"",
    "\"write\"",
    "\"cas\"",
    "\"status\"",
    "\"key\"",
    "\"value\"",
    "\"from\"",
    "\"to\"",
    "\"ok\"",
    "\"error\"",
    "null",
    "true",
    "18446744073709551616",
    "-9223372036854775809",
    "1e999",
];

proptest! {
    /// A key from any history (an imported one is anyone's) names its counterexample page with
    /// one short, plain file name inside the run's `counterexamples/`.
    #[test]
    fn counterexample_file_names_stay_in_their_directory(key in "(?s).{0,400}") {
        let name = faultline::check::counterexample_file_name(&key);
        prop_assert!(name.len() <= 120, "{} bytes", name.len());
        prop_assert!(name.ends_with(".html"));
        let mut parts = Path::new(&name).components();
        prop_assert!(matches!(parts.next(), Some(std::path::Component::Normal(_))));
        prop_assert!(parts.next().is_none());
        // Distinct long keys keep distinct names.
        let other = faultline::check::counterexample_file_name(&format!("{key}x"));
        prop_assert_ne!(name, other);
    }

    #[test]
    fn loader_survives_any_text(text in "(?s).{0,300}") {
        if let Err(e) = parse_experiment(Path::new("x.yaml"), &text, &[], None) {
            check_loader_error(&text, &e)?;
        }
    }

    #[test]
    fn loader_survives_yaml_shaped_text(text in yamlish()) {
        if let Err(e) = parse_experiment(Path::new("x.yaml"), &text, &[], None) {
            check_loader_error(&text, &e)?;
        }
    }

    /// A good file with one line replaced by garbage or one byte flipped.
    #[test]
    fn loader_survives_damaged_good_files(
        line in 0usize..22,
        garbage in "[ -~]{0,30}",
        byte in 0usize..600,
        flip in any::<u8>(),
    ) {
        let mut lines: Vec<String> = GOOD.lines().map(String::from).collect();
        let i = line % lines.len();
        lines[i] = garbage;
        let text = lines.join("\n");
        if let Err(e) = parse_experiment(Path::new("x.yaml"), &text, &[], None) {
            check_loader_error(&text, &e)?;
        }
        let mut bytes = GOOD.as_bytes().to_vec();
        let at = byte % bytes.len();
        bytes[at] ^= flip;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) = parse_experiment(Path::new("x.yaml"), &text, &[], None) {
            check_loader_error(&text, &e)?;
        }
    }

    /// `--set path=value` with any path and value: refused with the flag named, or applied.
    #[test]
    fn overrides_survive_anything(
        path in prop_oneof![
            Just("name".to_string()),
            Just("duration".to_string()),
            Just("target.nodes".to_string()),
            Just("target.settings.heartbeat".to_string()),
            Just("workload.mix.read".to_string()),
            Just("faults".to_string()),
            Just("faults.0.at".to_string()),
            "[a-z_.0-9]{0,20}",
        ],
        value in prop_oneof![yamlish(), "[ -~]{0,20}"],
    ) {
        let raw = format!("{path}={value}");
        let Ok(o) = raw.parse::<Override>() else { return Ok(()) };
        if let Err(e) = parse_experiment(Path::new("x.yaml"), GOOD, &[o], None) {
            let shown = e.to_string();
            prop_assert!(
                shown.starts_with("--set ") || shown.starts_with("x.yaml"),
                "{shown}"
            );
        }
    }

    #[test]
    fn gate_rules_survive_anything(text in "[ -~]{0,60}") {
        let _ = parse_rule(&text);
        let file = format!("rules:\n  - {text}\n");
        if let Err(e) = parse_rules(Path::new("gate.yaml"), &file) {
            prop_assert!(e.to_string().starts_with("gate.yaml"), "{e}");
        }
    }

    #[test]
    fn gate_rules_of_rule_shaped_text(
        metric in "[a-z_0-9]{1,16}",
        op in "(==|!=|<=|>=|<|>|=<|=)",
        value in prop_oneof![
            "[0-9.]{1,8}(%|ms|s|us)?",
            "baseline( [*+-] [0-9.]{0,6}(ms|s)?)?",
            "[ -~]{0,10}",
        ],
    ) {
        let _ = parse_rule(&format!("{metric} {op} {value}"));
    }

    /// EDN maps built from the tokens Jepsen and Porcupine histories use, in any order.
    #[test]
    fn importers_survive_edn_shaped_text(
        forms in proptest::collection::vec(
            prop_oneof![
                EDN_TOKENS.len() as u32 => token(EDN_TOKENS),
                1 => "-?[0-9]{1,22} ",
                1 => "[ -~]{0,6}",
            ],
            0..60,
        )
    ) {
        let text = forms.concat();
        match Foreign::parse(&text, "h.edn") {
            Ok(f) => {
                let _ = f.to_history();
                let _ = f.to_kv();
            }
            Err(ImportError::Parse { line, path, .. }) => {
                prop_assert_eq!(path, "h.edn");
                prop_assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            }
            Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
        }
    }

    #[test]
    fn importers_survive_any_text(text in "(?s).{0,300}") {
        if let Ok(f) = Foreign::parse(&text, "h.edn") {
            let _ = f.to_history();
            let _ = f.to_kv();
        }
    }

    /// Node side: any line is a request or a `malformed protocol line` error.
    #[test]
    fn request_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = decode_request(&bytes) {
            prop_assert!(e.to_string().starts_with("malformed protocol line"), "{e}");
        }
    }

    /// Client side, likewise for responses.
    #[test]
    fn response_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = decode_response(&bytes) {
            prop_assert!(e.to_string().starts_with("malformed protocol line"), "{e}");
        }
    }

    /// JSON-shaped lines: right keys, wrong types, huge numbers, deep nesting.
    #[test]
    fn decoders_survive_json_shaped_lines(
        parts in proptest::collection::vec(
            prop_oneof![
                JSON_TOKENS.len() as u32 => token(JSON_TOKENS),
                1 => "-?[0-9]{1,5}",
            ],
            0..40,
        )
    ) {
        let line = parts.concat();
        let _ = decode_request(line.as_bytes());
        let _ = decode_response(line.as_bytes());
    }

    /// Every request the harness can send decodes to itself.
    #[test]
    fn requests_round_trip(
        id in any::<u64>(),
        key in "[ -~]{0,20}",
        a in any::<i64>(),
        b in proptest::option::of(any::<i64>()),
        which in 0u8..4,
    ) {
        let op = match which {
            0 => Op::Read { key },
            1 => Op::Write { key, value: a },
            2 => Op::Cas { key, from: b, to: a },
            _ => Op::Status,
        };
        let req = Request { id, op };
        let line = encode(&req);
        prop_assert_eq!(decode_request(&line[..line.len() - 1]).unwrap(), req);
    }

    /// RESP from a server that lies: any bytes end in a value or an error, never a panic.
    #[test]
    fn resp_reader_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = block_on_resp(&bytes);
    }

    /// RESP-shaped input: right tags, wrong lengths.
    #[test]
    fn resp_reader_survives_resp_shaped_bytes(
        parts in proptest::collection::vec(
            prop_oneof![
                "[+-][ -~]{0,10}\r\n",
                ":-?[0-9]{1,20}\r\n",
                "\\$-?[0-9]{1,12}\r\n",
                "\\*-?[0-9]{1,12}\r\n",
                "[ -~]{0,10}\r\n",
                "[ -~]{0,4}",
            ],
            0..20,
        )
    ) {
        let _ = block_on_resp(parts.concat().as_bytes());
    }
}

fn block_on_resp(bytes: &[u8]) -> std::io::Result<faultline::cluster::redis::Resp> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let mut r = bytes;
            faultline::cluster::redis::read_resp(&mut r).await
        })
}

/// A bulk string or array declaring more than Redis's 512 MiB limit is refused, and one just
/// under it that then sends three bytes ends at the end of input: neither allocates what it
/// declared.
#[test]
fn resp_declared_lengths_are_not_allocated() {
    for header in ["$536870913\r\n", "*536870913\r\n"] {
        let e = block_on_resp(header.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{header}");
    }
    let e = block_on_resp(b"$536870911\r\nabc").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    // A bulk string must end with CRLF where its length says.
    let e = block_on_resp(b"$3\r\nabcde\r\n").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let v = block_on_resp(b"*2\r\n$3\r\nabc\r\n:7\r\n").unwrap();
    assert!(format!("{v:?}").contains("Int(7)"), "{v:?}");
}
