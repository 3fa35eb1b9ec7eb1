//! Bench binary: the cost of one link-proxy hop on loopback, measured side by side with a
//! direct connection in one run. 64-byte request/response round trips (p50, p99, added
//! latency), and bulk throughput of one link. `cargo bench -p faultline-faults --bench
//! proxy_hop`.

use std::time::{Duration, Instant};

use faultline_faults::proxy::LinkProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUNDS: usize = 20_000;
const BULK: usize = 256 << 20;

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        // Bulk mode: a leading 0xff byte means "just sink".
                        Ok(n) if buf[0] == 0xff => {
                            let _ = n;
                        }
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The floor to compare with: a plain relay with no fault machinery (tokio's
/// `copy_bidirectional`, one task per connection).
async fn plain_relay(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut u) = TcpStream::connect(upstream).await else {
                    return;
                };
                c.set_nodelay(true).unwrap();
                u.set_nodelay(true).unwrap();
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            });
        }
    });
    addr
}

/// A relay of blocking threads, one per direction: no runtime between the two sockets.
fn thread_relay(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let Ok(u) = std::net::TcpStream::connect(upstream) else {
                return;
            };
            c.set_nodelay(true).unwrap();
            u.set_nodelay(true).unwrap();
            for (mut a, mut b) in [(c.try_clone().unwrap(), u.try_clone().unwrap()), (u, c)] {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = a.read(&mut buf) {
                        if n == 0 || b.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    addr
}

/// An echo server of blocking threads (a node in its own process, as far as the proxy's
/// runtime can tell).
fn blocking_echo() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// 64-byte round trips from a blocking client thread, interleaved over the given addresses.
fn blocking_round_trips(addrs: Vec<std::net::SocketAddr>) -> Vec<Vec<Duration>> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut socks: Vec<std::net::TcpStream> = addrs
            .iter()
            .map(|a| {
                let s = std::net::TcpStream::connect(a).unwrap();
                s.set_nodelay(true).unwrap();
                s
            })
            .collect();
        let msg = [7u8; 64];
        let mut back = [0u8; 64];
        let mut out = vec![Vec::with_capacity(ROUNDS); socks.len()];
        for round in 0..ROUNDS + 1000 {
            for (i, s) in socks.iter_mut().enumerate() {
                let t = Instant::now();
                s.write_all(&msg).unwrap();
                s.read_exact(&mut back).unwrap();
                if round >= 1000 {
                    out[i].push(t.elapsed());
                }
            }
        }
        out
    })
    .join()
    .unwrap()
}

/// p50 and p99 of each series, then what each adds over the first (direct) at p50 and p99.
fn print_series(title: &str, mut series: Vec<(&str, Vec<Duration>)>) {
    let q: Vec<(&str, Duration, Duration)> = series
        .iter_mut()
        .map(|(name, v)| (*name, pct(v, 0.5), pct(v, 0.99)))
        .collect();
    println!("{title}");
    for (name, p50, p99) in &q {
        println!("  {name:<12} p50 {p50:>8.1?}  p99 {p99:>8.1?}");
    }
    let (_, d50, d99) = q[0];
    for (name, p50, p99) in &q[1..] {
        println!(
            "  added by {:<16} p50 {:>8.1?}  p99 {:>8.1?}",
            name,
            p50.saturating_sub(d50),
            p99.saturating_sub(d99)
        );
    }
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

async fn round_trip(s: &mut TcpStream, msg: &[u8; 64], back: &mut [u8; 64]) -> Duration {
    let t = Instant::now();
    s.write_all(msg).await.unwrap();
    s.read_exact(back).await.unwrap();
    t.elapsed()
}

async fn bulk(addr: std::net::SocketAddr) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![0xffu8; 1 << 16];
    let t = Instant::now();
    let mut sent = 0;
    while sent < BULK {
        s.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    s.shutdown().await.unwrap();
    // Wait for the server side to see EOF (our read returns 0).
    let mut b = [0u8; 1];
    let _ = s.read(&mut b).await;
    BULK as f64 / t.elapsed().as_secs_f64() / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = echo_server().await;
    let proxy = LinkProxy::bind("bench", "127.0.0.1:0".parse().unwrap(), server)
        .await
        .unwrap();
    let relay = plain_relay(server).await;
    let threads = thread_relay(server);
    let mut thr = TcpStream::connect(threads).await.unwrap();
    thr.set_nodelay(true).unwrap();
    let mut direct = TcpStream::connect(server).await.unwrap();
    let mut via = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut plain = TcpStream::connect(relay).await.unwrap();
    for s in [&direct, &via, &plain] {
        s.set_nodelay(true).unwrap();
    }
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..1000 {
        round_trip(&mut direct, &msg, &mut back).await;
        round_trip(&mut via, &msg, &mut back).await;
        round_trip(&mut plain, &msg, &mut back).await;
        round_trip(&mut thr, &msg, &mut back).await;
    }
    let (mut d, mut p, mut r, mut t) = (
        Vec::with_capacity(ROUNDS),
        Vec::with_capacity(ROUNDS),
        Vec::with_capacity(ROUNDS),
        Vec::with_capacity(ROUNDS),
    );
    // Interleaved, so all three see the same machine noise.
    for _ in 0..ROUNDS {
        d.push(round_trip(&mut direct, &msg, &mut back).await);
        p.push(round_trip(&mut via, &msg, &mut back).await);
        r.push(round_trip(&mut plain, &msg, &mut back).await);
        t.push(round_trip(&mut thr, &msg, &mut back).await);
    }
    print_series(
        &format!("64-byte round trips, {ROUNDS} each, interleaved:"),
        vec![
            ("direct", d),
            ("link proxy", p),
            ("plain relay", r),
            ("thread relay", t),
        ],
    );
    // The same with blocking ends: the echo server and the client are threads of their own,
    // as nodes and a client in other processes would be, and only the relays run on the
    // runtime.
    let bserver = blocking_echo();
    let bproxy = LinkProxy::bind("bench-blocking", "127.0.0.1:0".parse().unwrap(), bserver)
        .await
        .unwrap();
    let brelay = plain_relay(bserver).await;
    let bthreads = thread_relay(bserver);
    let all = tokio::task::spawn_blocking(move || {
        blocking_round_trips(vec![bserver, bproxy.local_addr(), brelay, bthreads])
    })
    .await
    .unwrap();
    let mut all = all.into_iter();
    let mut next = || all.next().expect("four series");
    print_series(
        &format!(
            "64-byte round trips, blocking client and echo server, {ROUNDS} each, interleaved:"
        ),
        vec![
            ("direct", next()),
            ("link proxy", next()),
            ("plain relay", next()),
            ("thread relay", next()),
        ],
    );
    let bd = bulk(server).await;
    let bp = bulk(proxy.local_addr()).await;
    println!("bulk {} MiB one way:", BULK >> 20);
    println!("  direct  {bd:>8.0} MB/s");
    println!("  proxied {bp:>8.0} MB/s  ({:.2} of direct)", bp / bd);
}
