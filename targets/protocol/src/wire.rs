//! Request and response types of the newline-delimited JSON client protocol.

use serde::{Deserialize, Serialize};

/// Register values are integers; every write in a faultline workload writes a value unique to
/// its key, so a read names the write it observed.
pub type Value = i64;

/// One client request: an `id` chosen by the client, echoed in the response, and the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

/// The operations of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    /// Read a register; the response's `value` is `null` when the key was never written.
    Read { key: String },
    /// Overwrite a register.
    Write { key: String, value: Value },
    /// Compare-and-set: set `key` to `to` only if it currently holds `from`
    /// (`from: null` matches a key never written).
    Cas {
        key: String,
        from: Option<Value>,
        to: Value,
    },
    /// The node's view of the cluster; answered by every node whatever its role.
    Status,
}

/// The kind of an operation, without its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Read,
    Write,
    Cas,
    Status,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::Cas => "cas",
            OpKind::Status => "status",
        }
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Read { .. } => OpKind::Read,
            Op::Write { .. } => OpKind::Write,
            Op::Cas { .. } => OpKind::Cas,
            Op::Status => OpKind::Status,
        }
    }

    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Read { key } | Op::Write { key, .. } | Op::Cas { key, .. } => Some(key),
            Op::Status => None,
        }
    }
}

/// A response line. Exactly one of `value`/`status` (on success) or `error` (on failure) is
/// meaningful; `value` is present for reads (possibly `null`) and absent otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub id: u64,
    pub ok: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub value: Option<Option<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    /// A successful write or cas.
    pub fn done(id: u64) -> Self {
        Response {
            id,
            ok: true,
            value: None,
            status: None,
            error: None,
        }
    }

    /// A successful read.
    pub fn value(id: u64, value: Option<Value>) -> Self {
        Response {
            value: Some(value),
            ..Response::done(id)
        }
    }

    /// A status reply.
    pub fn status(id: u64, status: Status) -> Self {
        Response {
            status: Some(status),
            ..Response::done(id)
        }
    }

    /// A failure. `definite` is taken from the code (see [`ErrorCode::definite`]).
    pub fn error(id: u64, code: ErrorCode) -> Self {
        Response {
            id,
            ok: false,
            value: None,
            status: None,
            error: Some(ErrorBody {
                code,
                definite: code.definite(),
                leader: None,
                message: None,
            }),
        }
    }

    /// A failure whose definiteness the caller knows better than the code does (a foreign
    /// system's error mapped onto a native code), with a message.
    pub fn failed(id: u64, code: ErrorCode, definite: bool, message: impl Into<String>) -> Self {
        let mut r = Response::error(id, code).with_message(message);
        if let Some(e) = r.error.as_mut() {
            e.definite = definite;
        }
        r
    }

    /// A `not_leader` failure with the node's best guess of the leader.
    pub fn not_leader(id: u64, leader: Option<String>) -> Self {
        let mut r = Response::error(id, ErrorCode::NotLeader);
        if let Some(e) = r.error.as_mut() {
            e.leader = leader;
        }
        r
    }

    /// Attach a human-readable message to an error response.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        if let Some(e) = self.error.as_mut() {
            e.message = Some(message.into());
        }
        self
    }
}

/// Why a request failed, and whether it certainly had no effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// `true`: the operation certainly had no effect (recorded as `fail`). `false`: it may or
    /// may not have taken effect (recorded as `info`, indeterminate).
    pub definite: bool,
    /// For `not_leader`: the node this one believes leads, if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Error codes. Unknown codes from foreign systems parse as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// This node does not serve the request; `leader` hints where to go. Definite.
    NotLeader,
    /// A cas whose `from` did not match. Definite.
    CasMismatch,
    /// The node cannot serve now (recovering, no quorum, lease not held). Definite.
    Unavailable,
    /// The request was malformed. Definite.
    BadRequest,
    /// The node accepted the request but could not confirm its outcome in time (for example
    /// replication did not finish, or leadership was lost while it was pending). Indefinite.
    Timeout,
    /// Any other failure; indefinite unless the response says otherwise.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Whether a failure with this code certainly had no effect.
    pub fn definite(self) -> bool {
        !matches!(self, ErrorCode::Timeout | ErrorCode::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::CasMismatch => "cas_mismatch",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Other => "other",
        }
    }
}

/// A node's role as it reports it. Primary-backup nodes report `leader` for the primary and
/// `follower` for a backup, so selectors work the same for every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    /// Restarted and catching up; serves no client operation yet.
    Recovering,
    #[serde(other)]
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Recovering => "recovering",
            Role::Unknown => "unknown",
        }
    }
}

/// The answer to a `status` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node: String,
    pub role: Role,
    /// Term, view, epoch or ballot round: whatever number orders leaderships in this protocol.
    pub term: u64,
    /// The node this one believes leads, if any.
    #[serde(default)]
    pub leader: Option<String>,
    /// Highest committed (chosen, replicated) log index.
    #[serde(default)]
    pub commit: u64,
    /// Highest index applied to the state machine, when the protocol tracks it separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
    /// Microseconds since the node took its current `role` in its current `term`, when it
    /// knows: lets an observer that polls date a role change to when it happened, not to when
    /// the next poll saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_us: Option<u64>,
}

/// A response or request line that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed protocol line: {0}")]
pub struct WireError(#[from] serde_json::Error);

/// Decode one request line (without its trailing newline).
pub fn decode_request(line: &[u8]) -> Result<Request, WireError> {
    Ok(serde_json::from_slice(line)?)
}

/// Decode one response line (without its trailing newline).
pub fn decode_response(line: &[u8]) -> Result<Response, WireError> {
    Ok(serde_json::from_slice(line)?)
}

/// Encode a request or response as one line, newline included.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(msg).expect("protocol types always serialize");
    out.push(b'\n');
    out
}

/// `Option<Option<T>>` that tells a missing field (`None`) from an explicit `null`
/// (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_the_documented_shape() {
        let cases = [
            (
                r#"{"id":1,"op":"read","key":"k3"}"#,
                Op::Read { key: "k3".into() },
            ),
            (
                r#"{"id":2,"op":"write","key":"k3","value":17}"#,
                Op::Write {
                    key: "k3".into(),
                    value: 17,
                },
            ),
            (
                r#"{"id":3,"op":"cas","key":"k3","from":17,"to":18}"#,
                Op::Cas {
                    key: "k3".into(),
                    from: Some(17),
                    to: 18,
                },
            ),
            (r#"{"id":4,"op":"status"}"#, Op::Status),
        ];
        for (line, op) in cases {
            let req = decode_request(line.as_bytes()).unwrap();
            assert_eq!(req.op, op, "{line}");
            let back = encode(&req);
            assert_eq!(decode_request(&back[..back.len() - 1]).unwrap(), req);
        }
    }

    #[test]
    fn bad_requests_are_rejected() {
        for line in [
            r#"{"id":1,"op":"read"}"#,
            r#"{"id":1,"op":"frobnicate","key":"a"}"#,
            r#"{"op":"read","key":"a"}"#,
            r#"{"id":1,"op":"write","key":"a","value":"x"}"#,
            "not json",
        ] {
            assert!(decode_request(line.as_bytes()).is_err(), "{line}");
        }
    }

    #[test]
    fn read_of_missing_key_has_explicit_null() {
        let line = encode(&Response::value(1, None));
        assert_eq!(line, b"{\"id\":1,\"ok\":true,\"value\":null}\n");
        let back = decode_response(&line[..line.len() - 1]).unwrap();
        assert_eq!(back.value, Some(None));
        let write = decode_response(br#"{"id":2,"ok":true}"#).unwrap();
        assert_eq!(write.value, None);
    }

    #[test]
    fn errors_carry_definiteness_and_hint() {
        let r = Response::not_leader(2, Some("n2".into()));
        assert_eq!(
            String::from_utf8(encode(&r)).unwrap(),
            "{\"id\":2,\"ok\":false,\"error\":{\"code\":\"not_leader\",\"definite\":true,\"leader\":\"n2\"}}\n"
        );
        let t = Response::error(5, ErrorCode::Timeout);
        assert!(!t.error.unwrap().definite);
        let foreign =
            decode_response(br#"{"id":9,"ok":false,"error":{"code":"disk_full","definite":true}}"#)
                .unwrap();
        assert_eq!(foreign.error.as_ref().unwrap().code, ErrorCode::Other);
        assert!(foreign.error.unwrap().definite);
    }

    #[test]
    fn status_parses() {
        let r = decode_response(
            br#"{"id":4,"ok":true,"status":{"node":"n1","role":"leader","term":7,"leader":"n1","commit":812}}"#,
        )
        .unwrap();
        let s = r.status.unwrap();
        assert_eq!(s.role, Role::Leader);
        assert_eq!(s.term, 7);
        assert_eq!(s.commit, 812);
    }
}
