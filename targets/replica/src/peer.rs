//! Peer transport: length-delimited frames over TCP, one outbound connection per peer.
//!
//! Frames are `[len: u32 LE][payload]`, the payload encoded by [`crate::codec`] (a format-version
//! byte, then postcard). Each outbound connection starts with a hello frame naming the sender,
//! so the receiving side knows whom later frames come from; a peer of another format version
//! fails at its hello and is refused with a warning naming both versions. Sending
//! never blocks the node: every peer has a bounded queue drained by its own task, and a
//! message that does not fit (slow or unreachable peer) is dropped, as are messages queued
//! while the connection is down. A connection the peer closed is noticed at once and
//! re-dialed, and a batch whose write failed is sent once more on the new connection.
//! Protocols on top must tolerate loss, duplication across reconnects, and delay; they get no
//! delivery guarantee beyond per-connection ordering.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::codec::{self, CodecError};

/// Largest frame accepted or sent.
pub const MAX_FRAME: u32 = 64 << 20;
/// Per-peer outbound queue length; beyond it messages are dropped.
pub const PEER_QUEUE: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Reconnecting to a restarted peer waits at most this long (loopback refusals are cheap).
const BACKOFF_MAX: Duration = Duration::from_millis(50);

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    from: String,
}

/// Encode one frame (length prefix included) onto `out`. A message larger than [`MAX_FRAME`]
/// is an error and leaves `out` as it was.
pub fn encode_frame<M: Serialize>(msg: &M, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = codec::encode_into(msg, out) {
        out.truncate(start);
        return Err(e.into());
    }
    let len = out.len() - start - 4;
    if len > MAX_FRAME as usize {
        out.truncate(start);
        return Err(FrameError::TooLarge(len));
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Decode one frame's payload.
pub fn decode_frame<M: DeserializeOwned>(payload: &[u8]) -> Result<M, FrameError> {
    Ok(codec::decode(payload)?)
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
}

/// The sending half of the transport: one queue per peer.
#[derive(Debug)]
pub struct PeerNet<M> {
    queues: HashMap<String, mpsc::Sender<M>>,
    _msg: PhantomData<fn(M)>,
}

impl<M> PeerNet<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Bind `listen` and start the transport: an accept loop delivering `(from, message)` into
    /// `inbound`, and an outbound task per entry of `peers` (dialing the given address, which
    /// may be a proxy). Must be called inside a tokio runtime; the tasks live until the runtime
    /// shuts down.
    pub async fn start(
        me: &str,
        listen: SocketAddr,
        peers: &BTreeMap<String, SocketAddr>,
        inbound: mpsc::Sender<(String, M)>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        tokio::spawn(accept_loop::<M>(listener, inbound));
        let mut queues = HashMap::new();
        for (id, addr) in peers {
            if id == me {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            tokio::spawn(outbound::<M>(me.to_owned(), id.clone(), *addr, rx));
            queues.insert(id.clone(), tx);
        }
        Ok(PeerNet {
            queues,
            _msg: PhantomData,
        })
    }

    /// Queue `msg` for `to`. Returns `false` (and drops it) when `to` is unknown or its queue
    /// is full; never waits.
    pub fn send(&self, to: &str, msg: M) -> bool {
        match self.queues.get(to) {
            Some(q) => q.try_send(msg).is_ok(),
            None => false,
        }
    }
}

async fn outbound<M: Serialize>(
    me: String,
    peer: String,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<M>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut buf = Vec::with_capacity(64 * 1024);
    // Frames a failed write may not have delivered: sent once more on the next connection
    // (the protocols tolerate duplicates), so a peer's restart does not eat the first
    // messages after it, which are typically an election's.
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                // Drop what queued up while we could not deliver it, then wait and retry.
                pending = None;
                loop {
                    match rx.try_recv() {
                        Ok(_) => {}
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                back_off(&mut backoff).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        buf.clear();
        if encode_frame(&Hello { from: me.clone() }, &mut buf).is_err()
            || wr.write_all(&buf).await.is_err()
        {
            back_off(&mut backoff).await;
            continue;
        }
        if let Some(p) = pending.take() {
            if wr.write_all(&p).await.is_err() {
                continue;
            }
        }
        tracing::debug!(%peer, %addr, "peer connection up");
        let up_at = tokio::time::Instant::now();
        loop {
            // The peer never writes on this connection, so the read side only wakes up when
            // the connection is gone (the peer process died, or a proxy closed it): then
            // reconnect at once rather than lose the next message to a dead socket.
            let first = tokio::select! {
                // A close first: a message taken now would go into a dead socket and be lost.
                biased;
                () = closed(&mut rd) => {
                    tracing::debug!(%peer, "peer closed the connection");
                    break;
                }
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            buf.clear();
            if let Err(e) = encode_frame(&first, &mut buf) {
                tracing::error!(%peer, error = %e, "cannot encode peer message; dropped");
                continue;
            }
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(m) => {
                        if let Err(e) = encode_frame(&m, &mut buf) {
                            tracing::error!(%peer, error = %e, "cannot encode peer message; dropped");
                        }
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = wr.write_all(&buf).await {
                tracing::debug!(%peer, error = %e, "peer connection lost");
                pending = Some(std::mem::take(&mut buf));
                break;
            }
        }
        // A connection that dies young (a link proxy accepts and then resets while the peer
        // is down or a reset partition holds) must not turn into a reconnect loop: back off
        // as for a refused dial. One that lived re-dials at once.
        if up_at.elapsed() < BACKOFF_MAX {
            back_off(&mut backoff).await;
        } else {
            backoff = BACKOFF_MIN;
        }
    }
}

/// Wait `backoff`, then double it (up to [`BACKOFF_MAX`]) for the next failure.
async fn back_off(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Resolves when the connection's read side reaches end of file or fails. Cancel-safe.
async fn closed(rd: &mut tokio::net::tcp::OwnedReadHalf) {
    let mut scratch = [0u8; 256];
    loop {
        match rd.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn accept_loop<M: DeserializeOwned + Send + 'static>(
    listener: TcpListener,
    inbound: mpsc::Sender<(String, M)>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(inbound_conn(stream, inbound.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a peer connection failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = inbound.closed() => return,
        }
    }
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Option<()> {
    let len = r.read_u32_le().await.ok()?;
    if len > MAX_FRAME {
        return None;
    }
    buf.resize(len as usize, 0);
    r.read_exact(buf).await.ok()?;
    Some(())
}

async fn inbound_conn<M: DeserializeOwned>(stream: TcpStream, inbound: mpsc::Sender<(String, M)>) {
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut buf = Vec::new();
    if read_frame(&mut r, &mut buf).await.is_none() {
        return;
    }
    let from = match decode_frame::<Hello>(&buf) {
        Ok(Hello { from }) => from,
        Err(e) => {
            tracing::warn!(error = %e, "peer connection without a valid hello; closing it");
            return;
        }
    };
    while read_frame(&mut r, &mut buf).await.is_some() {
        match decode_frame::<M>(&buf) {
            Ok(msg) => {
                if inbound.send((from.clone(), msg)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(%from, error = %e, "undecodable peer frame; closing the connection");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Ping(u64),
        Data(Vec<String>),
    }

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    #[test]
    fn frames_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        encode_frame(&Msg::Ping(3), &mut buf).unwrap();
        encode_frame(&Msg::Data(vec!["a".into()]), &mut buf).unwrap();
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(decode_frame::<Msg>(&buf[4..4 + len]).unwrap(), Msg::Ping(3));
        let rest = &buf[4 + len..];
        assert_eq!(
            decode_frame::<Msg>(&rest[4..]).unwrap(),
            Msg::Data(vec!["a".into()])
        );
        // Another format version, an unknown variant, and a truncated frame.
        assert!(decode_frame::<Msg>(&[9, 0, 3]).is_err());
        assert!(decode_frame::<Msg>(&[codec::FORMAT_VERSION, 9]).is_err());
        assert!(decode_frame::<Msg>(&[codec::FORMAT_VERSION]).is_err());
        // A huge declared vector length (2^32 - 1 strings) must fail cleanly, not allocate.
        let huge = [codec::FORMAT_VERSION, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_frame::<Msg>(&huge).is_err());
    }

    /// Read one frame from a raw connection standing in for the peer.
    async fn raw_frame(c: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), read_frame(c, &mut buf))
            .await
            .expect("a frame in time")
            .expect("a whole frame");
        buf
    }

    #[tokio::test]
    async fn the_first_message_after_a_peer_restart_is_not_lost() {
        // The "peer" is a raw listener: it takes a connection, then closes it as a dying
        // process would, and waits for the next one.
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let peers = BTreeMap::from([("b".to_owned(), peer.local_addr().unwrap())]);
        let net = PeerNet::<Msg>::start("a", free_addr(), &peers, tx)
            .await
            .unwrap();
        let (mut conn, _) = peer.accept().await.unwrap();
        let hello: Hello = decode_frame(&raw_frame(&mut conn).await).unwrap();
        assert_eq!(hello.from, "a");
        assert!(net.send("b", Msg::Ping(1)));
        assert_eq!(
            decode_frame::<Msg>(&raw_frame(&mut conn).await).unwrap(),
            Msg::Ping(1)
        );
        drop(conn);
        tokio::time::sleep(Duration::from_millis(100)).await;
        // One message after the restart, and no retries: it must arrive on a new connection.
        assert!(net.send("b", Msg::Ping(2)));
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(2), peer.accept())
            .await
            .expect("the transport re-dials a peer that closed its connection")
            .unwrap();
        let _hello: Hello = decode_frame(&raw_frame(&mut conn).await).unwrap();
        assert_eq!(
            decode_frame::<Msg>(&raw_frame(&mut conn).await).unwrap(),
            Msg::Ping(2)
        );
    }

    #[tokio::test]
    async fn a_peer_that_accepts_and_resets_is_redialed_with_backoff() {
        // What a link proxy does while the node behind it is down: accept, then close at once.
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (tx, _rx) = mpsc::channel(8);
        let peers = BTreeMap::from([("b".to_owned(), peer.local_addr().unwrap())]);
        let _net = PeerNet::<Msg>::start("a", free_addr(), &peers, tx)
            .await
            .unwrap();
        let mut accepted = 0;
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok((c, _))) = tokio::time::timeout_at(until, peer.accept()).await {
            drop(c);
            accepted += 1;
        }
        // Backoff 10, 20, 40, then 50 ms: about a dozen dials in 500 ms, not a busy loop.
        assert!((2..=20).contains(&accepted), "{accepted} dials in 500 ms");
    }

    #[tokio::test]
    async fn peers_exchange_messages_and_reconnect() {
        let a_addr = free_addr();
        let b_addr = free_addr();
        let (a_tx, mut a_rx) = mpsc::channel(64);
        let (b_tx, mut b_rx) = mpsc::channel(64);
        let a_peers = BTreeMap::from([("b".to_owned(), b_addr)]);
        let b_peers = BTreeMap::from([("a".to_owned(), a_addr)]);
        let a = PeerNet::<Msg>::start("a", a_addr, &a_peers, a_tx)
            .await
            .unwrap();
        let b = PeerNet::<Msg>::start("b", b_addr, &b_peers, b_tx)
            .await
            .unwrap();
        assert!(!a.send("nobody", Msg::Ping(0)));
        // Messages sent before the connection is up may be dropped: keep sending until one
        // arrives (bounded).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let got = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no message delivered"
            );
            a.send("b", Msg::Ping(1));
            b.send("a", Msg::Data(vec!["x".into(), "y".into()]));
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), b_rx.recv()).await
            {
                break m;
            }
        };
        assert_eq!(got, ("a".to_owned(), Msg::Ping(1)));
        let got = tokio::time::timeout(Duration::from_secs(5), a_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            ("b".to_owned(), Msg::Data(vec!["x".into(), "y".into()]))
        );
        // In-order delivery on a live connection.
        for i in 10..20 {
            assert!(a.send("b", Msg::Ping(i)));
        }
        let mut seen = Vec::new();
        while seen.len() < 10 {
            let (_, m) = tokio::time::timeout(Duration::from_secs(5), b_rx.recv())
                .await
                .unwrap()
                .unwrap();
            if let Msg::Ping(i) = m {
                if i >= 10 {
                    seen.push(i);
                }
            }
        }
        assert_eq!(seen, (10..20).collect::<Vec<_>>());
    }
}
