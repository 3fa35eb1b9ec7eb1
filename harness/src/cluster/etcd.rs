//! `kind: etcd`: members launched from the `etcd` binary, and the driver that speaks to them
//! through etcd's v3 JSON gateway (HTTP/1.1 on each member's client port): reads (linearizable
//! or serializable), writes, cas as a transaction comparing the value, and status from the
//! maintenance API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use faultline_protocol::{ErrorCode, Op, Response, Role, Status, Value};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;

use super::client::{CallError, Driver};
use super::kind::{Ends, NodeStart, System, TargetKind};
use super::launch::{find_program, ClusterError};

/// `target.settings` of `kind: etcd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// `--heartbeat-interval`.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// `--election-timeout` (etcd draws each timeout from [this, twice this)).
    #[serde(default = "default_election", with = "humantime_serde")]
    pub election_timeout: Duration,
    /// `linearizable` (etcd's default: a read goes through ReadIndex) or `serializable` (a
    /// member answers from its own store, possibly stale).
    #[serde(default)]
    pub read: ReadMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    #[default]
    Linearizable,
    Serializable,
}

fn default_heartbeat() -> Duration {
    Duration::from_millis(100)
}
fn default_election() -> Duration {
    Duration::from_millis(1000)
}

impl EtcdSettings {
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let s: EtcdSettings = faultline_replica::parse_settings(map, "etcd")?;
        if s.heartbeat.as_millis() == 0 {
            return Err(
                "settings.heartbeat must be at least 1ms (etcd counts milliseconds)".into(),
            );
        }
        // etcd itself refuses an election timeout under five heartbeats.
        if s.election_timeout < s.heartbeat * 5 {
            return Err(format!(
                "settings.election_timeout ({}) must be at least 5 x settings.heartbeat ({}), as etcd requires",
                humantime::format_duration(s.election_timeout),
                humantime::format_duration(s.heartbeat)
            ));
        }
        if s.election_timeout > Duration::from_secs(50) {
            return Err("settings.election_timeout must be at most 50s (etcd's limit)".into());
        }
        Ok(s)
    }
}

/// `kind: etcd` in the target registry.
pub static KIND: TargetKind = TargetKind {
    name: "etcd",
    summary: "etcd members (Debian's etcd-server, or target.binary), through the JSON gateway",
    known_bugs: &[],
    node_main: None,
    peer_links_proxied: false,
    load: |input| {
        input.no_command("etcd")?;
        let settings = EtcdSettings::from_map(input.settings)
            .map_err(|e| format!("target.settings: for etcd, {e}"))?;
        Ok(Arc::new(Etcd {
            binary: input.program("etcd"),
            settings,
        }))
    },
};

/// An etcd cluster: the `etcd` binary and its settings.
#[derive(Debug)]
struct Etcd {
    binary: PathBuf,
    settings: EtcdSettings,
}

const ETCD_HINT: &str = "install Debian's etcd-server package, or set target.binary";

impl System for Etcd {
    fn check_host(&self) -> Result<(), ClusterError> {
        find_program(&self.binary.display().to_string(), ETCD_HINT).map(|_| ())
    }

    fn driver(&self, _ends: &Ends) -> Driver {
        Driver::Etcd(Arc::new(EtcdShared::new(&self.settings)))
    }

    fn command_line(&self, start: &NodeStart<'_>) -> Result<(PathBuf, Vec<String>), ClusterError> {
        let run = start.spec.run_dir.file_name().unwrap_or_default();
        let token = format!("faultline-{}", run.to_string_lossy());
        let node = start.node;
        Ok((
            find_program(&self.binary.display().to_string(), ETCD_HINT)?,
            args(&node.id, start.ends, &node.data_dir, &self.settings, &token),
        ))
    }
}

/// One member's command line. `members` holds every member's (id, client address, peer
/// address); the cluster token makes two runs' members refuse each other.
pub fn args(
    id: &str,
    members: &[(String, SocketAddr, SocketAddr)],
    data_dir: &Path,
    settings: &EtcdSettings,
    token: &str,
) -> Vec<String> {
    let me = members
        .iter()
        .find(|(m, _, _)| m == id)
        .expect("the member is one of the cluster");
    let initial: Vec<String> = members
        .iter()
        .map(|(m, _, peer)| format!("{m}=http://{peer}"))
        .collect();
    vec![
        "--name".into(),
        id.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        format!("http://{}", me.1),
        "--advertise-client-urls".into(),
        format!("http://{}", me.1),
        "--listen-peer-urls".into(),
        format!("http://{}", me.2),
        "--initial-advertise-peer-urls".into(),
        format!("http://{}", me.2),
        "--initial-cluster".into(),
        initial.join(","),
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        token.into(),
        "--heartbeat-interval".into(),
        settings.heartbeat.as_millis().to_string(),
        "--election-timeout".into(),
        settings.election_timeout.as_millis().to_string(),
        // etcd's defaults fsync every write; keep them. Quieter logs, no metrics endpoint.
        "--logger".into(),
        "zap".into(),
        "--log-outputs".into(),
        "stderr".into(),
    ]
}

/// What the clients of one etcd cluster share: the read mode, and member ids learned so far
/// (etcd names members by 64-bit ids; the harness by their `--name`).
pub struct EtcdShared {
    serializable: bool,
    names: Mutex<HashMap<u64, String>>,
}

impl EtcdShared {
    pub fn new(settings: &EtcdSettings) -> Self {
        EtcdShared {
            serializable: settings.read == ReadMode::Serializable,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn name(&self, member: u64) -> Option<String> {
        self.names.lock().expect("names").get(&member).cloned()
    }
}

/// Errors after which etcd certainly did not apply a write: it refused the proposal before
/// handing it to Raft. Any other failure of a write or cas is indeterminate.
const DEFINITE_WRITE_ERRORS: &[&str] = &[
    "etcdserver: no leader",
    "raft proposal dropped",
    "etcdserver: too many requests",
    "etcdserver: not capable",
    "etcdserver: request is too large",
];

/// A client of one member, over HTTP/1.1 connections kept alive between calls (one request in
/// flight per connection; a new connection is opened when none is idle).
pub struct EtcdClient {
    shared: Arc<EtcdShared>,
    id: String,
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    connect_timeout: Duration,
    /// The highest term in which this member named another member as leader.
    other_leader_term: Mutex<u64>,
}

/// The gateway's answer to a failed call.
#[derive(Deserialize, Default)]
struct GatewayError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
}

/// The fields of a `/v3/maintenance/status` answer the driver uses (etcd's JSON gives 64-bit
/// numbers as strings; a missing one is 0).
#[derive(Deserialize, Default)]
struct StatusAnswer {
    #[serde(default)]
    header: Header,
    #[serde(default, deserialize_with = "u64_str")]
    leader: u64,
    #[serde(default, rename = "raftTerm", deserialize_with = "u64_str")]
    term: u64,
    #[serde(default, rename = "raftIndex", deserialize_with = "u64_str")]
    index: u64,
    #[serde(default, rename = "raftAppliedIndex", deserialize_with = "u64_str")]
    applied: u64,
}

#[derive(Deserialize, Default)]
struct Header {
    #[serde(default, deserialize_with = "u64_str")]
    member_id: u64,
}

impl GatewayError {
    /// What a failed call's answer says, for the error message.
    fn describe(code: hyper::StatusCode, body: &[u8]) -> String {
        let err: GatewayError = serde_json::from_slice(body).unwrap_or_default();
        if err.message.is_empty() {
            format!("HTTP {code}: {}", err.error)
        } else {
            err.message
        }
    }
}

/// The largest gateway answer read (etcd refuses requests over 1.5 MiB by default, and every
/// answer to faultline's operations is far smaller).
const MAX_ANSWER: usize = 4 << 20;

fn u64_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl EtcdClient {
    pub fn new(shared: Arc<EtcdShared>, id: &str, addr: SocketAddr, timeout: Duration) -> Self {
        EtcdClient {
            shared,
            id: id.to_string(),
            addr,
            idle: Mutex::new(Vec::new()),
            connect_timeout: timeout.min(Duration::from_millis(200)),
            other_leader_term: Mutex::new(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {} timed out", self.addr)))?
            .map_err(|e| CallError::NotSent(format!("connect to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::NotSent(format!("HTTP handshake with {}: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// POST `body` to `path`: the status code and body, or why not. A request that provably
    /// never left (no connection, or hyper handed it back unsent) is [`CallError::NotSent`].
    async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
        deadline: tokio::time::Instant,
    ) -> Result<(hyper::StatusCode, Bytes), CallError> {
        let mut req = Some(
            hyper::Request::post(path)
                .header(hyper::header::HOST, self.addr.to_string())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("a valid request"),
        );
        // Idle connections the member closed meanwhile hand the request back; try the next.
        loop {
            let idle = self.idle.lock().expect("idle").pop();
            let mut sender = match idle {
                Some(s) if !s.is_closed() => s,
                Some(_) => continue,
                None => tokio::time::timeout_at(deadline, self.connect())
                    .await
                    .map_err(|_| {
                        CallError::NotSent(format!("connect to {} timed out", self.addr))
                    })??,
            };
            if tokio::time::timeout_at(deadline, sender.ready())
                .await
                .map_err(|_| CallError::NotSent(format!("{} not ready in time", self.addr)))?
                .is_err()
            {
                continue;
            }
            let sent = sender.try_send_request(req.take().expect("request kept until sent"));
            enum Failure {
                Send(Box<hyper::client::conn::TrySendError<hyper::Request<Full<Bytes>>>>),
                Body(String),
            }
            let exchange = async {
                let resp = sent.await.map_err(|e| Failure::Send(Box::new(e)))?;
                let status = resp.status();
                // An answer is read up to MAX_ANSWER bytes, whatever length it declares.
                let body = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                    .collect()
                    .await
                    .map_err(|e| Failure::Body(e.to_string()))?;
                Ok::<_, Failure>((status, body.to_bytes()))
            };
            return match tokio::time::timeout_at(deadline, exchange).await {
                Err(_) => Err(CallError::Timeout),
                Ok(Ok(answer)) => {
                    self.idle.lock().expect("idle").push(sender);
                    Ok(answer)
                }
                Ok(Err(Failure::Send(mut e))) => match e.take_message() {
                    Some(unsent) => {
                        req = Some(unsent);
                        continue;
                    }
                    None => Err(CallError::Lost(format!(
                        "{}: {}",
                        self.addr,
                        e.into_error()
                    ))),
                },
                Ok(Err(Failure::Body(e))) => Err(CallError::Lost(format!("{}: {e}", self.addr))),
            };
        }
    }

    pub async fn call(&self, op: Op, timeout: Duration) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if op == Op::Status {
            return self.status(deadline).await;
        }
        let (path, body) = request(&op, self.shared.serializable);
        let (code, body) = self.post(path, body, deadline).await?;
        if !code.is_success() {
            return Ok(failed(&op, GatewayError::describe(code, &body)));
        }
        decode_answer(&op, &body)
            .map_err(|e| CallError::Lost(format!("{}: unreadable answer: {e}", self.addr)))
    }

    /// A member's status: leader when the leader it names is itself; the leader's name from
    /// the member list (asked once per member id not seen before).
    ///
    /// etcd reports the term of the last entry it applied, so a member just elected names
    /// itself leader under its old term until its first entry commits. A member claiming
    /// leadership in a term where it named another leader is read again until its term moves
    /// on; if it does not in time, it is reported as a candidate.
    async fn status(&self, deadline: tokio::time::Instant) -> Result<Response, CallError> {
        let mut reads = 0;
        let (a, torn) = loop {
            let (path, body) = request(&Op::Status, false);
            let (code, body) = self.post(path, body, deadline).await?;
            if !code.is_success() {
                return Ok(failed(&Op::Status, GatewayError::describe(code, &body)));
            }
            let a: StatusAnswer = serde_json::from_slice(&body)
                .map_err(|e| CallError::Lost(format!("{}: unreadable status: {e}", self.addr)))?;
            let me = a.header.member_id;
            let known = {
                let mut t = self.other_leader_term.lock().expect("term");
                let known = *t;
                if a.leader != 0 && a.leader != me {
                    *t = known.max(a.term);
                }
                known
            };
            let torn = a.leader == me && me != 0 && a.term <= known;
            reads += 1;
            let late = tokio::time::Instant::now() + Duration::from_millis(5) >= deadline;
            if !torn || reads >= 20 || late {
                break (a, torn);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let me = a.header.member_id;
        if me != 0 {
            self.shared
                .names
                .lock()
                .expect("names")
                .insert(me, self.id.clone());
        }
        let mut leader = (a.leader != 0)
            .then(|| self.shared.name(a.leader))
            .flatten();
        if a.leader != 0 && leader.is_none() {
            if let Ok((code, body)) = self
                .post("/v3/cluster/member/list", json!({}), deadline)
                .await
            {
                if code.is_success() {
                    self.learn_members(&body);
                }
            }
            leader = self.shared.name(a.leader);
        }
        let role = match a.leader {
            _ if torn => Role::Candidate,
            0 => Role::Candidate,
            l if l == me => Role::Leader,
            _ => Role::Follower,
        };
        Ok(Response::status(
            0,
            Status {
                node: self.id.clone(),
                role,
                term: a.term,
                leader,
                commit: a.index,
                applied: Some(a.applied),
                role_us: None,
            },
        ))
    }

    fn learn_members(&self, body: &[u8]) {
        #[derive(Deserialize)]
        struct Member {
            #[serde(rename = "ID", deserialize_with = "u64_str")]
            id: u64,
            #[serde(default)]
            name: String,
        }
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            members: Vec<Member>,
        }
        if let Ok(list) = serde_json::from_slice::<List>(body) {
            let mut names = self.shared.names.lock().expect("names");
            for m in list.members.into_iter().filter(|m| !m.name.is_empty()) {
                names.insert(m.id, m.name);
            }
        }
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The gateway path and JSON body for an operation.
fn request(op: &Op, serializable: bool) -> (&'static str, serde_json::Value) {
    match op {
        Op::Read { key } => (
            "/v3/kv/range",
            json!({ "key": b64(key), "serializable": serializable }),
        ),
        Op::Write { key, value } => (
            "/v3/kv/put",
            json!({ "key": b64(key), "value": b64(&value.to_string()) }),
        ),
        Op::Cas { key, from, to } => {
            // `from: null` matches a key never written: its create revision is 0.
            let compare = match from {
                Some(f) => json!({
                    "key": b64(key), "target": "VALUE", "result": "EQUAL",
                    "value": b64(&f.to_string())
                }),
                None => json!({
                    "key": b64(key), "target": "CREATE", "result": "EQUAL",
                    "create_revision": "0"
                }),
            };
            (
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [{ "request_put": { "key": b64(key), "value": b64(&to.to_string()) } }]
                }),
            )
        }
        Op::Status => ("/v3/maintenance/status", json!({})),
    }
}

/// The register value a range answer holds (`None`: never written).
/// A successful gateway answer to a read, write or cas, as the native response. An answer
/// that is not JSON is an error (the caller cannot know whether a write took effect).
fn decode_answer(op: &Op, body: &[u8]) -> Result<Response, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    Ok(match op {
        Op::Read { .. } => match read_value(&v) {
            Ok(value) => Response::value(0, value),
            Err(message) => Response::failed(0, ErrorCode::Other, true, message),
        },
        Op::Write { .. } | Op::Status => Response::done(0),
        Op::Cas { .. } if v.get("succeeded").and_then(|s| s.as_bool()) == Some(true) => {
            Response::done(0)
        }
        Op::Cas { .. } => Response::failed(0, ErrorCode::CasMismatch, true, "compare failed"),
    })
}

fn read_value(v: &serde_json::Value) -> Result<Option<Value>, String> {
    let Some(kv) = v
        .get("kvs")
        .and_then(|k| k.as_array())
        .and_then(|a| a.first())
    else {
        return Ok(None);
    };
    let raw = kv.get("value").and_then(|x| x.as_str()).unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| format!("value is not base64: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    text.parse::<Value>()
        .map(Some)
        .map_err(|_| format!("value {text:?} is not a register value written by faultline"))
}

/// An error answer from etcd: a read or status never has an effect; a write or cas is
/// definite only when etcd refused it before proposing it.
fn failed(op: &Op, message: String) -> Response {
    match op {
        Op::Read { .. } | Op::Status => Response::failed(0, ErrorCode::Unavailable, true, message),
        Op::Write { .. } | Op::Cas { .. } => {
            if DEFINITE_WRITE_ERRORS.iter().any(|d| message.contains(d)) {
                Response::failed(0, ErrorCode::Unavailable, true, message)
            } else {
                Response::failed(0, ErrorCode::Timeout, false, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod hostile {
        use super::*;
        use proptest::prelude::*;

        fn ops() -> impl Strategy<Value = Op> {
            prop_oneof![
                Just(Op::Read { key: "k".into() }),
                Just(Op::Write {
                    key: "k".into(),
                    value: 1
                }),
                Just(Op::Cas {
                    key: "k".into(),
                    from: None,
                    to: 2
                }),
            ]
        }

        /// JSON built from the gateway's own field names, with wrong types and values.
        fn gatewayish() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("{".to_string()),
                    Just("}".to_string()),
                    Just("[".to_string()),
                    Just("]".to_string()),
                    Just(",".to_string()),
                    Just(":".to_string()),
                    Just("\"kvs\"".to_string()),
                    Just("\"value\"".to_string()),
                    Just("\"succeeded\"".to_string()),
                    Just("\"header\"".to_string()),
                    Just("\"member_id\"".to_string()),
                    Just("\"leader\"".to_string()),
                    Just("\"raftTerm\"".to_string()),
                    Just("\"message\"".to_string()),
                    Just("\"MTIz\"".to_string()),
                    Just("\"!!\"".to_string()),
                    Just("\"18446744073709551616\"".to_string()),
                    Just("true".to_string()),
                    Just("null".to_string()),
                    "-?[0-9]{1,21}",
                ],
                0..30,
            )
            .prop_map(|v| v.concat())
        }

        proptest! {
            /// Any answer body: a response, or an error the caller reports as a lost answer.
            #[test]
            fn answers_decode_or_fail_cleanly(
                op in ops(),
                body in prop_oneof![gatewayish(), "(?s).{0,120}"],
            ) {
                if let Ok(r) = decode_answer(&op, body.as_bytes()) {
                    // A read's value is either absent or a register value, never a guess.
                    if let Some(e) = &r.error {
                        prop_assert!(e.definite, "{e:?}");
                    }
                }
                let _ = serde_json::from_slice::<StatusAnswer>(body.as_bytes());
                let _ = GatewayError::describe(hyper::StatusCode::BAD_REQUEST, body.as_bytes());
            }
        }

        #[test]
        fn a_value_that_is_not_faultlines_is_an_error_not_a_value() {
            let op = Op::Read { key: "k".into() };
            let ok = decode_answer(&op, br#"{"kvs":[{"value":"MTIz"}]}"#).unwrap();
            assert_eq!(ok.value, Some(Some(123)), "{ok:?}");
            let bad = decode_answer(&op, br#"{"kvs":[{"value":"!!"}]}"#).unwrap();
            assert!(bad.error.is_some(), "{bad:?}");
            let none = decode_answer(&op, br#"{}"#).unwrap();
            assert_eq!(none.value, Some(None), "{none:?}");
            assert!(decode_answer(&op, b"<html>").is_err());
        }
    }

    #[test]
    fn settings_map_to_etcd_flags_and_are_checked() {
        let map = |j: serde_json::Value| j.as_object().unwrap().clone();
        let s = EtcdSettings::from_map(&map(
            json!({"heartbeat": "50ms", "election_timeout": "250ms", "read": "serializable"}),
        ))
        .unwrap();
        assert_eq!(s.read, ReadMode::Serializable);
        let members = vec![
            (
                "n1".to_string(),
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ),
            (
                "n2".to_string(),
                "127.0.0.1:3".parse().unwrap(),
                "127.0.0.1:4".parse().unwrap(),
            ),
        ];
        let a = args("n2", &members, Path::new("/d"), &s, "tok");
        let flag = |f: &str| a[a.iter().position(|x| x == f).unwrap() + 1].clone();
        assert_eq!(flag("--heartbeat-interval"), "50");
        assert_eq!(flag("--election-timeout"), "250");
        assert_eq!(flag("--listen-client-urls"), "http://127.0.0.1:3");
        assert_eq!(
            flag("--initial-cluster"),
            "n1=http://127.0.0.1:2,n2=http://127.0.0.1:4"
        );
        let e = EtcdSettings::from_map(&map(
            json!({"heartbeat": "100ms", "election_timeout": "200ms"}),
        ))
        .unwrap_err();
        assert!(e.contains("5 x settings.heartbeat"), "{e}");
        let e = EtcdSettings::from_map(&map(json!({"read": "sometimes"}))).unwrap_err();
        assert!(e.starts_with("settings.read"), "{e}");
    }

    #[test]
    fn operations_become_gateway_requests() {
        let (path, body) = request(
            &Op::Cas {
                key: "k1".into(),
                from: Some(17),
                to: 18,
            },
            false,
        );
        assert_eq!(path, "/v3/kv/txn");
        assert_eq!(body["compare"][0]["value"], b64("17"));
        assert_eq!(body["success"][0]["request_put"]["value"], b64("18"));
        let (_, body) = request(&Op::Read { key: "k1".into() }, true);
        assert_eq!(body["serializable"], true);
        let v = json!({"kvs": [{"key": b64("k1"), "value": b64("42")}]});
        assert_eq!(read_value(&v), Ok(Some(42)));
        assert_eq!(read_value(&json!({"header": {}})), Ok(None));
    }

    #[test]
    fn only_refused_proposals_are_definite() {
        let w = Op::Write {
            key: "k".into(),
            value: 1,
        };
        let e = failed(&w, "etcdserver: request timed out".into());
        assert!(!e.error.unwrap().definite);
        let e = failed(&w, "etcdserver: no leader".into());
        assert!(e.error.unwrap().definite);
        let e = failed(&Op::Read { key: "k".into() }, "anything".into());
        assert!(e.error.unwrap().definite);
    }
}
