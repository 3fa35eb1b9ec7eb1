//! The client-facing server: newline-delimited JSON requests in, responses out, pipelined.
//!
//! Every connection gets a reader and a writer task. The reader decodes each line and hands the
//! request to the node as a [`ClientRequest`]; the node answers through the request's
//! [`Reply`] whenever it is ready, so responses on one connection may come back out of order.
//! A line that does not decode gets a `bad_request` response (with the line's `id` when one
//! can be found, else 0) and the connection stays open.

use std::net::SocketAddr;

use faultline_protocol::{decode_request, encode, ErrorCode, Request, Response};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest request line accepted; longer lines are answered with `bad_request` and skipped.
pub const MAX_LINE: usize = 1 << 20;

/// One client request on its way to the node, with the way back to its connection.
#[derive(Debug)]
pub struct ClientRequest {
    pub request: Request,
    pub reply: Reply,
}

/// Where the response to one request goes. Dropping a `Reply` without sending answers the
/// client with an indefinite `timeout` (the node stopped before deciding), so a request is
/// never left hanging while its connection lives.
#[derive(Debug)]
pub struct Reply {
    id: u64,
    tx: Option<mpsc::UnboundedSender<Response>>,
}

impl Reply {
    /// A reply handle that delivers into `tx` (used by the server, and by tests).
    pub fn new(id: u64, tx: mpsc::UnboundedSender<Response>) -> Self {
        Reply { id, tx: Some(tx) }
    }

    /// The id of the request this answers.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Send the response; a closed connection is not an error (the client went away).
    pub fn send(mut self, response: Response) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(response);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ =
                tx.send(Response::error(self.id, ErrorCode::Timeout).with_message("node stopped"));
        }
    }
}

/// Bind the client listener (separately from [`serve_clients`], so a busy port is reported
/// before the node starts).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accept client connections forever, feeding requests into `to_node`. Returns when the node
/// side of `to_node` is gone.
pub async fn serve_clients(listener: TcpListener, to_node: mpsc::Sender<ClientRequest>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, peer, to_node.clone()));
                }
                Err(e) => {
                    // Typically EMFILE; back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accepting a client connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            },
            () = to_node.closed() => return,
        }
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, to_node: mpsc::Sender<ClientRequest>) {
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Response>();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(4096);
        while let Some(first) = rx.recv().await {
            buf.clear();
            buf.extend_from_slice(&encode(&first));
            // Batch whatever else is ready into one write.
            while buf.len() < 64 * 1024 {
                match rx.try_recv() {
                    Ok(r) => buf.extend_from_slice(&encode(&r)),
                    Err(_) => break,
                }
            }
            if write.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut line = Vec::new();
    loop {
        match read_line_capped(&mut reader, &mut line, MAX_LINE).await {
            Ok(Line::Eof) | Err(_) => break,
            Ok(Line::TooLong) => {
                let _ = tx.send(
                    Response::error(0, ErrorCode::BadRequest)
                        .with_message(format!("request line longer than {MAX_LINE} bytes")),
                );
            }
            Ok(Line::Complete) => {
                let text = trim_line(&line);
                if text.is_empty() {
                    continue;
                }
                match decode_request(text) {
                    Ok(request) => {
                        let reply = Reply::new(request.id, tx.clone());
                        if to_node
                            .send(ClientRequest { request, reply })
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(
                            Response::error(salvage_id(text), ErrorCode::BadRequest)
                                .with_message(e.to_string()),
                        );
                    }
                }
            }
        }
    }
    tracing::debug!(%peer, "client connection closed");
    drop(tx);
    // Outstanding replies still hold senders; the writer ends when the last one is answered.
    let _ = writer.await;
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// The `id` of a line that is JSON but not a valid request, so the error can be matched.
fn salvage_id(line: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_u64()))
        .unwrap_or(0)
}

/// What [`read_line_capped`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// `buf` holds one line (with its newline, unless the stream ended without one).
    Complete,
    /// The line exceeded the cap; it was consumed up to and including its newline and `buf`
    /// holds nothing useful.
    TooLong,
    /// The stream ended with no more data.
    Eof,
}

/// Read one `\n`-terminated line into `buf` (cleared first), never buffering more than `cap`
/// bytes of it.
pub async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let used = chunk.len();
        if !too_long {
            if buf.len() + used > cap {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_protocol::{decode_response, Op};
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_are_capped_and_the_stream_continues() {
        let mut input = Vec::new();
        input.extend_from_slice(b"short\n");
        input.extend_from_slice(&[b'x'; 100]);
        input.extend_from_slice(b"\nafter\nlast");
        let mut reader = BufReader::with_capacity(16, &input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            let l = read_line_capped(&mut reader, &mut buf, 50).await.unwrap();
            if l == Line::Eof {
                break;
            }
            got.push((l, String::from_utf8_lossy(trim_line(&buf)).into_owned()));
        }
        assert_eq!(
            got,
            vec![
                (Line::Complete, "short".to_owned()),
                (Line::TooLong, String::new()),
                (Line::Complete, "after".to_owned()),
                (Line::Complete, "last".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn server_pipelines_and_survives_bad_lines() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        tokio::spawn(serve_clients(listener, tx));
        // A fake node: answers reads in reverse order of arrival, in pairs.
        tokio::spawn(async move {
            let mut held: Vec<ClientRequest> = Vec::new();
            while let Some(req) = rx.recv().await {
                held.push(req);
                if held.len() == 2 {
                    for r in held.drain(..).rev() {
                        let id = r.request.id;
                        assert!(matches!(r.request.op, Op::Read { .. }));
                        r.reply.send(Response::value(id, Some(id as i64 * 10)));
                    }
                }
            }
        });
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            b"{\"id\":1,\"op\":\"read\",\"key\":\"a\"}\nnot json\n{\"id\":7,\"op\":\"nope\"}\n\n{\"id\":2,\"op\":\"read\",\"key\":\"b\"}\n",
        )
        .await
        .unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 1024];
        while text.lines().count() < 4 {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "server closed the connection");
            text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        let responses: Vec<Response> = text
            .lines()
            .map(|l| decode_response(l.as_bytes()).unwrap())
            .collect();
        let bad: Vec<u64> = responses.iter().filter(|r| !r.ok).map(|r| r.id).collect();
        assert_eq!(bad, vec![0, 7]);
        for r in responses.iter().filter(|r| !r.ok) {
            assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::BadRequest);
        }
        let ok: Vec<(u64, Option<Option<i64>>)> = responses
            .iter()
            .filter(|r| r.ok)
            .map(|r| (r.id, r.value))
            .collect();
        assert_eq!(ok, vec![(2, Some(Some(20))), (1, Some(Some(10)))]);
    }

    #[test]
    fn dropped_reply_answers_timeout() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(Reply::new(9, tx));
        let r = rx.try_recv().unwrap();
        assert_eq!(r.id, 9);
        assert_eq!(r.error.unwrap().code, ErrorCode::Timeout);
    }
}
