//! RESP2, the Redis wire protocol: commands out, values in, with Redis's own limits on lengths
//! and nesting.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// A command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The largest bulk string accepted (Redis's own limit), and the deepest nesting of arrays.
const MAX_BULK: i64 = 512 << 20;
const MAX_DEPTH: usize = 16;

/// Read one RESP2 value. Lengths past Redis's own limits are refused as malformed, and no
/// declared length is allocated up front: a bulk string's buffer grows with the bytes that
/// actually arrive, and an array's with its items.
pub async fn read_resp<R: AsyncBufRead + Unpin + Send>(r: &mut R) -> std::io::Result<Resp> {
    // Arrays nest: keep a stack of (items so far, items expected).
    let mut stack: Vec<(Vec<Resp>, usize)> = Vec::new();
    loop {
        let mut line = Vec::with_capacity(64);
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed RESP");
        let body = line.strip_suffix(b"\r\n").ok_or_else(bad)?;
        let (&tag, rest) = body.split_first().ok_or_else(bad)?;
        let text = String::from_utf8_lossy(rest).into_owned();
        let number = || text.parse::<i64>().map_err(|_| bad());
        let value = match tag {
            b'+' => Resp::Simple(text.clone()),
            b'-' => Resp::Error(text.clone()),
            b':' => Resp::Int(number()?),
            b'$' => {
                let len = number()?;
                if len > MAX_BULK {
                    return Err(bad());
                }
                if len < 0 {
                    Resp::Bulk(None)
                } else {
                    let want = len as u64 + 2;
                    let mut buf = Vec::with_capacity((want as usize).min(64 << 10));
                    (&mut *r).take(want).read_to_end(&mut buf).await?;
                    if buf.len() as u64 != want {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    if !buf.ends_with(b"\r\n") {
                        return Err(bad());
                    }
                    buf.truncate(len as usize);
                    Resp::Bulk(Some(buf))
                }
            }
            b'*' => {
                let len = number()?;
                if len > MAX_BULK || stack.len() >= MAX_DEPTH {
                    return Err(bad());
                }
                if len < 0 {
                    Resp::Array(None)
                } else if len == 0 {
                    Resp::Array(Some(Vec::new()))
                } else {
                    stack.push((Vec::with_capacity((len as usize).min(1024)), len as usize));
                    continue;
                }
            }
            _ => return Err(bad()),
        };
        // Fold the value into the arrays it completes.
        let mut value = value;
        loop {
            match stack.last_mut() {
                None => return Ok(value),
                Some((items, want)) => {
                    items.push(value);
                    if items.len() < *want {
                        break;
                    }
                    let (items, _) = stack.pop().expect("just looked");
                    value = Resp::Array(Some(items));
                }
            }
        }
    }
}
