//! Clients of the nodes: [`NodeClient`] speaks to any target through the driver its kind
//! needs (the native protocol, etcd's JSON gateway, or Redis with Sentinel), and
//! [`NativeClient`] is the native one: a small pool of pipelined connections per node, speaking
//! the newline-delimited JSON protocol. Every call says whether a failure was definite (the
//! request never left) or indeterminate (it may have reached the node).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_protocol::{decode_response, encode, Op, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Why a call did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request was never sent (no connection could be made): definitely no effect.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The connection broke after the request may have been sent: indeterminate.
    #[error("connection lost: {0}")]
    Lost(String),
    /// No response within the deadline: indeterminate.
    #[error("timed out")]
    Timeout,
}

impl CallError {
    pub fn definite(&self) -> bool {
        matches!(self, CallError::NotSent(_))
    }

    pub fn code(&self) -> &'static str {
        match self {
            CallError::NotSent(_) => "connect_failed",
            CallError::Lost(_) => "connection_lost",
            CallError::Timeout => "timeout",
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
}

impl Conn {
    fn alive(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// How the harness talks to the nodes of one kind of target.
#[derive(Clone)]
pub enum Driver {
    /// The native newline-delimited JSON protocol (reference nodes, `kind: command`).
    Native,
    /// etcd's v3 JSON gateway.
    Etcd(Arc<super::etcd::EtcdShared>),
    /// Redis (RESP), with the primary named by the Sentinels.
    Redis(Arc<super::redis::RedisShared>),
}

impl Driver {
    /// A client of node `id` at `addr` (its client address, or a proxy in front of it).
    pub fn client(&self, id: &str, addr: SocketAddr, pool: usize, timeout: Duration) -> NodeClient {
        match self {
            Driver::Native => NodeClient::Native(NativeClient::new(addr, pool, timeout)),
            Driver::Etcd(shared) => NodeClient::Etcd(super::etcd::EtcdClient::new(
                shared.clone(),
                id,
                addr,
                timeout,
            )),
            Driver::Redis(shared) => NodeClient::Redis(super::redis::RedisClient::new(
                shared.clone(),
                id,
                addr,
                pool,
                timeout,
            )),
        }
    }
}

/// A client of one node, whatever protocol the target speaks: every operation and `status`
/// come back as native [`Response`]s, with failures sorted into definite and indeterminate.
pub enum NodeClient {
    Native(NativeClient),
    Etcd(super::etcd::EtcdClient),
    Redis(super::redis::RedisClient),
}

impl NodeClient {
    pub fn addr(&self) -> SocketAddr {
        match self {
            NodeClient::Native(c) => c.addr(),
            NodeClient::Etcd(c) => c.addr(),
            NodeClient::Redis(c) => c.addr(),
        }
    }

    /// Send one operation and wait up to `timeout` for its response.
    pub async fn call(&self, op: Op, timeout: Duration) -> Result<Response, CallError> {
        match self {
            NodeClient::Native(c) => c.call(op, timeout).await,
            NodeClient::Etcd(c) => c.call(op, timeout).await,
            NodeClient::Redis(c) => c.call(op, timeout).await,
        }
    }
}

/// Connections to one node, opened lazily and replaced when they break.
pub struct NativeClient {
    addr: SocketAddr,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_slot: AtomicUsize,
    next_id: AtomicU64,
    connect_timeout: Duration,
}

impl NativeClient {
    pub fn new(addr: SocketAddr, pool: usize, connect_timeout: Duration) -> Self {
        NativeClient {
            addr,
            slots: (0..pool.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next_slot: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            connect_timeout,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn conn(&self) -> Result<Arc<Conn>, CallError> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut guard = self.slots[slot].lock().await;
        if let Some(c) = guard.as_ref() {
            if c.alive() {
                return Ok(c.clone());
            }
        }
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {} timed out", self.addr)))?
            .map_err(|e| CallError::NotSent(format!("connect to {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(start_conn(stream));
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Send one operation and wait up to `timeout` for its response.
    pub async fn call(&self, op: Op, timeout: Duration) -> Result<Response, CallError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = tokio::time::timeout_at(deadline, self.conn())
            .await
            .map_err(|_| CallError::NotSent(format!("connect to {} timed out", self.addr)))??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().expect("pending map").insert(id, tx);
        let line = encode(&Request { id, op });
        if conn.tx.send(line).is_err() {
            conn.pending.lock().expect("pending map").remove(&id);
            return Err(CallError::NotSent(
                "connection closed before sending".into(),
            ));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Lost(format!(
                "connection to {} closed",
                self.addr
            ))),
            Err(_) => {
                conn.pending.lock().expect("pending map").remove(&id);
                Err(CallError::Timeout)
            }
        }
    }
}

fn start_conn(stream: TcpStream) -> Conn {
    let (rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let reader_pending = pending.clone();
    // The writer owns the receiving end: when it exits (write error, or the reader closed the
    // channel), `tx.is_closed()` tells callers the connection is gone.
    let writer = tokio::spawn(async move {
        let mut wr = tokio::io::BufWriter::new(wr);
        while let Some(line) = rx.recv().await {
            if wr.write_all(&line).await.is_err() {
                break;
            }
            // Coalesce whatever else is queued into one write.
            while let Ok(more) = rx.try_recv() {
                if wr.write_all(&more).await.is_err() {
                    return;
                }
            }
            if wr.flush().await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(rd);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    if let Ok(resp) = decode_response(line) {
                        if let Some(tx) =
                            reader_pending.lock().expect("pending map").remove(&resp.id)
                        {
                            let _ = tx.send(resp);
                        }
                    }
                }
            }
        }
        // Connection gone: stop the writer, and every pending call learns it (its sender drops).
        writer.abort();
        reader_pending.lock().expect("pending map").clear();
    });
    Conn { tx, pending }
}
