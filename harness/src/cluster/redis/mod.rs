//! `kind: redis-sentinel`: a Redis primary and replicas (`redis-server`), a Sentinel beside
//! each of them (`redis-server --sentinel`, in the same network namespace), and the driver that
//! speaks RESP to them: reads, writes, cas as a Lua script, status from `ROLE` and the node's
//! own Sentinel, and clients that follow the Sentinels as Redis's client guidelines describe
//! (stay with the primary they know; when a replica refuses a write with `READONLY`, ask the
//! Sentinels where the primary is).
//!
//! `settings.rs` holds the settings and config files, `resp.rs` the RESP codec; this file is
//! the client.

mod resp;
mod settings;

pub use resp::{encode, read_resp, Resp};
pub use settings::{sentinel_config, server_config, Fsync, RedisSettings, KIND, MASTER_NAME};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_protocol::{ErrorCode, Op, Response, Role, Status, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::client::CallError;

/// What the clients of one Redis deployment share: every server's address (as the Sentinels
/// name it) and every Sentinel's.
pub struct RedisShared {
    /// (node id, the server's own address).
    pub servers: Vec<(String, SocketAddr)>,
    /// (node id, the address of the Sentinel beside that server).
    pub sentinels: Vec<(String, SocketAddr)>,
}

impl RedisShared {
    fn node_at(&self, ip: &str, port: &str) -> Option<String> {
        self.servers
            .iter()
            .find(|(_, a)| a.ip().to_string() == ip && a.port().to_string() == port)
            .map(|(id, _)| id.clone())
    }

    /// The primary as a client finds it: the first Sentinel that answers
    /// `SENTINEL get-master-addr-by-name`, asked in order, all within `timeout`.
    pub async fn ask_sentinels(&self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        for (_, addr) in &self.sentinels {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let asked = one_shot(
                *addr,
                &[
                    b"SENTINEL",
                    b"get-master-addr-by-name",
                    MASTER_NAME.as_bytes(),
                ],
                left,
            )
            .await;
            if let Ok(Resp::Array(Some(parts))) = asked {
                if let [Resp::Bulk(Some(ip)), Resp::Bulk(Some(port))] = parts.as_slice() {
                    let (ip, port) = (String::from_utf8_lossy(ip), String::from_utf8_lossy(port));
                    if let Some(id) = self.node_at(&ip, &port) {
                        return Some(id);
                    }
                }
            }
        }
        None
    }

    /// Whether the first primary has every replica attached (`ROLE` lists them): the Sentinels
    /// start then, so their first look at the primary finds all of them.
    pub async fn replicas_attached(&self, timeout: Duration) -> bool {
        let Some((_, primary)) = self.servers.first() else {
            return false;
        };
        match one_shot(*primary, &[b"ROLE"], timeout).await {
            Ok(Resp::Array(Some(items))) => matches!(
                items.get(2),
                Some(Resp::Array(Some(replicas))) if replicas.len() + 1 >= self.servers.len()
            ),
            _ => false,
        }
    }

    /// Whether every Sentinel knows every replica and every other Sentinel (else a failover
    /// could not reach its quorum yet); the detail says what is missing.
    pub async fn settled(&self, timeout: Duration) -> Result<(), String> {
        let n = self.servers.len();
        for (id, addr) in &self.sentinels {
            let fields = sentinel_master(*addr, timeout)
                .await
                .map_err(|e| format!("sentinel of {id}: {e}"))?;
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(f, _)| f == k)
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0)
            };
            let (replicas, others) = (get("num-slaves"), get("num-other-sentinels"));
            if replicas + 1 < n || others + 1 < self.sentinels.len() {
                return Err(format!(
                    "sentinel of {id} knows {replicas} of {} replicas and {others} of {} other sentinels",
                    n - 1,
                    self.sentinels.len() - 1
                ));
            }
        }
        Ok(())
    }
}

/// `SENTINEL MASTER <name>` as (field, value) pairs.
async fn sentinel_master(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<(String, String)>, String> {
    match one_shot(
        addr,
        &[b"SENTINEL", b"MASTER", MASTER_NAME.as_bytes()],
        timeout,
    )
    .await
    {
        Ok(Resp::Array(Some(items))) => Ok(items
            .chunks(2)
            .filter_map(|kv| match kv {
                [Resp::Bulk(Some(k)), Resp::Bulk(Some(v))] => Some((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )),
                _ => None,
            })
            .collect()),
        Ok(Resp::Error(e)) => Err(e),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Open a connection, send one command, read its answer.
async fn one_shot(addr: SocketAddr, args: &[&[u8]], timeout: Duration) -> std::io::Result<Resp> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        s.write_all(&encode(args)).await?;
        let mut r = BufReader::new(s);
        read_resp(&mut r).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
}

type Waiters = Arc<Mutex<VecDeque<oneshot::Sender<Resp>>>>;

/// One pipelined connection: answers come back in the order commands were written.
struct Conn {
    tx: mpsc::UnboundedSender<(Vec<u8>, oneshot::Sender<Resp>)>,
}

impl Conn {
    fn alive(&self) -> bool {
        !self.tx.is_closed()
    }

    fn start(stream: TcpStream) -> Conn {
        let (rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, oneshot::Sender<Resp>)>();
        let waiters: Waiters = Arc::new(Mutex::new(VecDeque::new()));
        let reader_waiters = waiters.clone();
        let writer = tokio::spawn(async move {
            while let Some((bytes, waiter)) = rx.recv().await {
                // Queued before written, so the reader always finds the waiter of the answer.
                waiters.lock().expect("waiters").push_back(waiter);
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut r = BufReader::new(rd);
            while let Ok(resp) = read_resp(&mut r).await {
                let waiter = reader_waiters.lock().expect("waiters").pop_front();
                if let Some(w) = waiter {
                    let _ = w.send(resp);
                }
            }
            writer.abort();
            reader_waiters.lock().expect("waiters").clear();
        });
        Conn { tx }
    }
}

/// A client of one Redis server, and of the Sentinel beside it for `status`.
pub struct RedisClient {
    shared: Arc<RedisShared>,
    id: String,
    addr: SocketAddr,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    /// One connection to each Sentinel, in the order of `shared.sentinels`, for `status`.
    sentinel_conns: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_slot: AtomicUsize,
    connect_timeout: Duration,
}

/// Compare-and-set as one script (atomic on the server). `ARGV[1]` empty matches a key never
/// written.
const CAS_SCRIPT: &str = "local v = redis.call('GET', KEYS[1]) \
    if (ARGV[1] == '' and v == false) or v == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";

impl RedisClient {
    pub fn new(
        shared: Arc<RedisShared>,
        id: &str,
        addr: SocketAddr,
        pool: usize,
        timeout: Duration,
    ) -> Self {
        RedisClient {
            id: id.to_string(),
            addr,
            slots: (0..pool.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            sentinel_conns: shared
                .sentinels
                .iter()
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            shared,
            next_slot: AtomicUsize::new(0),
            connect_timeout: timeout.min(Duration::from_millis(200)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn conn(
        &self,
        slot: &tokio::sync::Mutex<Option<Arc<Conn>>>,
        addr: SocketAddr,
    ) -> Result<Arc<Conn>, CallError> {
        let mut guard = slot.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.alive() {
                return Ok(c.clone());
            }
        }
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {addr} timed out")))?
            .map_err(|e| CallError::NotSent(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn::start(stream));
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn command(
        &self,
        slot: &tokio::sync::Mutex<Option<Arc<Conn>>>,
        addr: SocketAddr,
        args: &[&[u8]],
        deadline: tokio::time::Instant,
    ) -> Result<Resp, CallError> {
        let conn = tokio::time::timeout_at(deadline, self.conn(slot, addr))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {addr} timed out")))??;
        let (tx, rx) = oneshot::channel();
        if conn.tx.send((encode(args), tx)).is_err() {
            return Err(CallError::NotSent(
                "connection closed before sending".into(),
            ));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Lost(format!("connection to {addr} closed"))),
            Err(_) => Err(CallError::Timeout),
        }
    }

    pub async fn call(&self, op: Op, timeout: Duration) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if op == Op::Status {
            return self.status(deadline).await;
        }
        let slot = &self.slots[self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let answer = match &op {
            Op::Read { key } => {
                self.command(slot, self.addr, &[b"GET", key.as_bytes()], deadline)
                    .await?
            }
            Op::Write { key, value } => {
                let v = value.to_string();
                self.command(
                    slot,
                    self.addr,
                    &[b"SET", key.as_bytes(), v.as_bytes()],
                    deadline,
                )
                .await?
            }
            Op::Cas { key, from, to } => {
                let from = from.map(|f| f.to_string()).unwrap_or_default();
                let to = to.to_string();
                self.command(
                    slot,
                    self.addr,
                    &[
                        b"EVAL",
                        CAS_SCRIPT.as_bytes(),
                        b"1",
                        key.as_bytes(),
                        from.as_bytes(),
                        to.as_bytes(),
                    ],
                    deadline,
                )
                .await?
            }
            Op::Status => unreachable!("answered above"),
        };
        let mut resp = answer_to_response(&op, answer);
        // A replica refused a write: ask the Sentinels where the primary is, as a client does.
        if let Some(err) = resp.error.as_mut() {
            if err.code == ErrorCode::NotLeader {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                err.leader = self.shared.ask_sentinels(left).await;
            }
        }
        Ok(resp)
    }

    /// `ROLE` from the server; from its own Sentinel, the primary it names; and as the term,
    /// the highest configuration epoch (which orders failovers) of any Sentinel naming this
    /// server as primary, so an old primary cut off with its Sentinel keeps its old epoch while
    /// the one promoted carries the new one. Term 0 when no Sentinel names it.
    async fn status(&self, deadline: tokio::time::Instant) -> Result<Response, CallError> {
        let slot = &self.slots[0];
        let role = self.command(slot, self.addr, &[b"ROLE"], deadline).await?;
        let (role, offset) = match &role {
            Resp::Array(Some(items)) => {
                let name = match items.first() {
                    Some(Resp::Bulk(Some(b))) => String::from_utf8_lossy(b).into_owned(),
                    _ => String::new(),
                };
                // `["master", offset, replicas]`, `["slave", host, port, state, offset]`.
                let at = |i: usize| match items.get(i) {
                    Some(Resp::Int(n)) => (*n).max(0) as u64,
                    _ => 0,
                };
                match name.as_str() {
                    "master" => (Role::Leader, at(1)),
                    "slave" => (Role::Follower, at(4)),
                    _ => (Role::Unknown, 0),
                }
            }
            Resp::Error(e) if e.starts_with("LOADING") => (Role::Recovering, 0),
            _ => (Role::Unknown, 0),
        };
        let (mut term, mut leader) = (0, None);
        for ((sentinel_of, addr), conn) in self.shared.sentinels.iter().zip(&self.sentinel_conns) {
            let asked = self
                .command(
                    conn,
                    *addr,
                    &[b"SENTINEL", b"MASTER", MASTER_NAME.as_bytes()],
                    deadline,
                )
                .await;
            let Ok(Resp::Array(Some(items))) = asked else {
                continue;
            };
            let field = |k: &str| {
                items.chunks(2).find_map(|kv| match kv {
                    [Resp::Bulk(Some(f)), Resp::Bulk(Some(v))] if f == k.as_bytes() => {
                        Some(String::from_utf8_lossy(v).into_owned())
                    }
                    _ => None,
                })
            };
            let named = match (field("ip"), field("port")) {
                (Some(ip), Some(port)) => self.shared.node_at(&ip, &port),
                _ => None,
            };
            let epoch: u64 = field("config-epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            if named.as_deref() == Some(self.id.as_str()) {
                term = term.max(epoch);
            }
            if *sentinel_of == self.id {
                leader = named;
            }
        }
        Ok(Response::status(
            0,
            Status {
                node: self.id.clone(),
                role,
                term,
                leader,
                commit: offset,
                applied: None,
                role_us: None,
            },
        ))
    }
}

/// Redis errors that mean the command was refused before it ran.
fn refused(message: &str) -> Option<ErrorCode> {
    let code = message.split_whitespace().next().unwrap_or("");
    if message.contains("READONLY") {
        return Some(ErrorCode::NotLeader);
    }
    match code {
        "NOREPLICAS" | "LOADING" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" => {
            Some(ErrorCode::Unavailable)
        }
        _ => None,
    }
}

/// A Redis answer as a native response. A read's failure never had an effect; a write's is
/// definite only when Redis refused it before running it.
fn answer_to_response(op: &Op, answer: Resp) -> Response {
    match (op, answer) {
        (_, Resp::Error(e)) => match (refused(&e), op) {
            (Some(code), _) => Response::failed(0, code, true, e),
            (None, Op::Read { .. }) => Response::failed(0, ErrorCode::Unavailable, true, e),
            (None, _) => Response::failed(0, ErrorCode::Other, false, e),
        },
        (Op::Read { .. }, Resp::Bulk(None)) => Response::value(0, None),
        (Op::Read { .. }, Resp::Bulk(Some(b))) => {
            match String::from_utf8_lossy(&b).parse::<Value>() {
                Ok(v) => Response::value(0, Some(v)),
                Err(_) => Response::failed(
                    0,
                    ErrorCode::Other,
                    true,
                    format!(
                        "value {:?} was not written by faultline",
                        String::from_utf8_lossy(&b)
                    ),
                ),
            }
        }
        (Op::Write { .. }, Resp::Simple(s)) if s == "OK" => Response::done(0),
        (Op::Cas { .. }, Resp::Int(1)) => Response::done(0),
        (Op::Cas { .. }, Resp::Int(0)) => {
            Response::failed(0, ErrorCode::CasMismatch, true, "compare failed")
        }
        (_, other) => Response::failed(
            0,
            ErrorCode::Other,
            matches!(op, Op::Read { .. }),
            format!("unexpected answer {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resp_values_round_trip_through_the_reader() {
        let wire: &[u8] = b"*3\r\n$6\r\nmaster\r\n:42\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n$2\r\n42\r\n+OK\r\n-READONLY You can't write\r\n$-1\r\n";
        let mut r = BufReader::new(wire);
        let role = read_resp(&mut r).await.unwrap();
        let Resp::Array(Some(items)) = role else {
            panic!("{role:?}")
        };
        assert_eq!(items[0], Resp::Bulk(Some(b"master".to_vec())));
        assert_eq!(items[1], Resp::Int(42));
        assert!(matches!(&items[2], Resp::Array(Some(inner)) if inner.len() == 1));
        assert_eq!(read_resp(&mut r).await.unwrap(), Resp::Simple("OK".into()));
        assert!(
            matches!(read_resp(&mut r).await.unwrap(), Resp::Error(e) if e.starts_with("READONLY"))
        );
        assert_eq!(read_resp(&mut r).await.unwrap(), Resp::Bulk(None));
        assert!(read_resp(&mut r).await.is_err(), "end of input is an error");
        // Lengths past Redis's limits are refused, not allocated.
        let huge: &[u8] = b"$99999999999\r\n";
        assert!(read_resp(&mut BufReader::new(huge)).await.is_err());
        let wide: &[u8] = b"*9223372036854775807\r\n";
        assert!(read_resp(&mut BufReader::new(wide)).await.is_err());
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[test]
    fn refusals_are_definite_and_other_write_errors_are_not() {
        let w = Op::Write {
            key: "k".into(),
            value: 1,
        };
        let r = answer_to_response(
            &w,
            Resp::Error("READONLY You can't write against a read only replica.".into()),
        );
        let e = r.error.unwrap();
        assert_eq!((e.code, e.definite), (ErrorCode::NotLeader, true));
        let r = answer_to_response(
            &w,
            Resp::Error("NOREPLICAS Not enough good replicas to write.".into()),
        );
        assert!(r.error.unwrap().definite);
        let r = answer_to_response(&w, Resp::Error("ERR something odd".into()));
        assert!(!r.error.unwrap().definite);
        let cas = Op::Cas {
            key: "k".into(),
            from: None,
            to: 2,
        };
        assert_eq!(
            answer_to_response(&cas, Resp::Int(0)).error.unwrap().code,
            ErrorCode::CasMismatch
        );
        let read = Op::Read { key: "k".into() };
        assert_eq!(
            answer_to_response(&read, Resp::Bulk(Some(b"17".to_vec()))).value,
            Some(Some(17))
        );
    }
}
