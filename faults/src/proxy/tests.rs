//! Tests of the link proxy on real sockets: relaying, cuts, resets, delays and bandwidth.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

/// A proxy in front of a one-connection upstream; returns (proxy, dialer side, upstream
/// side).
async fn pair() -> (LinkProxy, TcpStream, TcpStream) {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = LinkProxy::bind(
        "t",
        "127.0.0.1:0".parse().unwrap(),
        up.local_addr().unwrap(),
    )
    .await
    .unwrap();
    let dialer = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (upstream, _) = tokio::time::timeout(T, up.accept()).await.unwrap().unwrap();
    (proxy, dialer, upstream)
}

async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    tokio::time::timeout(T, s.read_exact(&mut v))
        .await
        .expect("bytes in time")
        .unwrap();
    v
}

#[tokio::test]
async fn passes_bytes_both_ways_intact() {
    let (_p, mut a, mut b) = pair().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d2 = data.clone();
    let w = tokio::spawn(async move {
        a.write_all(&d2).await.unwrap();
        a
    });
    assert_eq!(read_n(&mut b, data.len()).await, data);
    let mut a = w.await.unwrap();
    b.write_all(b"pong").await.unwrap();
    assert_eq!(read_n(&mut a, 4).await, b"pong");
}

#[tokio::test]
async fn blackhole_is_one_way_and_holds_bytes_until_healed() {
    let (p, mut a, mut b) = pair().await;
    a.write_all(b"before").await.unwrap();
    assert_eq!(read_n(&mut b, 6).await, b"before");
    p.set(Direction::Forward, LinkFault::blackhole());
    a.write_all(b"held").await.unwrap();
    let mut one = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(200), b.read(&mut one)).await;
    assert!(r.is_err(), "nothing may arrive through a blackhole");
    // The other way still flows.
    b.write_all(b"back").await.unwrap();
    assert_eq!(read_n(&mut a, 4).await, b"back");
    p.heal();
    assert_eq!(read_n(&mut b, 4).await, b"held");
}

#[tokio::test]
async fn reset_closes_live_and_new_connections() {
    let (p, mut a, mut b) = pair().await;
    p.set(Direction::Backward, LinkFault::reset());
    let mut buf = [0u8; 8];
    let ra = tokio::time::timeout(T, a.read(&mut buf)).await.unwrap();
    assert!(matches!(ra, Ok(0) | Err(_)), "dialer side closed: {ra:?}");
    let rb = tokio::time::timeout(T, b.read(&mut buf)).await.unwrap();
    assert!(matches!(rb, Ok(0) | Err(_)), "upstream side closed: {rb:?}");
    let mut c = TcpStream::connect(p.local_addr()).await.unwrap();
    let rc = tokio::time::timeout(T, c.read(&mut buf)).await.unwrap();
    assert!(matches!(rc, Ok(0) | Err(_)), "new connection reset: {rc:?}");
    assert!(p.stats().resets >= 2);
    p.heal();
    assert!(p.get(Direction::Backward).is_clear());
}

/// Idle connections (both pumps waiting in a bare read) follow fault changes: a delay set
/// on an idle connection delays its next chunk, and a `reset_after` deadline tears it down
/// with nothing sent (the connection's watcher wakes the pumps).
#[tokio::test]
async fn idle_connections_follow_fault_changes() {
    let (p, mut a, mut b) = pair().await;
    a.write_all(b"x").await.unwrap();
    assert_eq!(read_n(&mut b, 1).await, b"x");
    p.set(
        Direction::Forward,
        LinkFault {
            delay: Duration::from_millis(150),
            ..LinkFault::default()
        },
    );
    let sent = Instant::now();
    a.write_all(b"y").await.unwrap();
    assert_eq!(read_n(&mut b, 1).await, b"y");
    assert!(
        sent.elapsed() >= Duration::from_millis(150),
        "{:?}",
        sent.elapsed()
    );
    p.set(
        Direction::Forward,
        LinkFault {
            reset_after: Some(Duration::from_millis(100)),
            ..LinkFault::default()
        },
    );
    let mut buf = [0u8; 8];
    let ra = tokio::time::timeout(T, a.read(&mut buf)).await.unwrap();
    assert!(matches!(ra, Ok(0) | Err(_)), "dialer side reset: {ra:?}");
    let rb = tokio::time::timeout(T, b.read(&mut buf)).await.unwrap();
    assert!(matches!(rb, Ok(0) | Err(_)), "upstream side reset: {rb:?}");
    assert!(p.stats().resets >= 1, "{:?}", p.stats());
}

#[tokio::test]
async fn delay_and_jitter_keep_order() {
    let (p, mut a, mut b) = pair().await;
    p.set(
        Direction::Forward,
        LinkFault {
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(20),
            ..LinkFault::default()
        },
    );
    let start = Instant::now();
    for i in 0..50u8 {
        a.write_all(&[i]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = read_n(&mut b, 50).await;
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(got, (0..50u8).collect::<Vec<_>>(), "order kept");
}

#[tokio::test]
async fn bandwidth_paces_bulk_data() {
    let (p, mut a, mut b) = pair().await;
    p.set(
        Direction::Forward,
        LinkFault {
            bandwidth: Some(1_000_000),
            ..LinkFault::default()
        },
    );
    let data = vec![9u8; 200_000];
    let start = Instant::now();
    let w = tokio::spawn(async move { a.write_all(&data).await.map(|_| a) });
    let got = read_n(&mut b, 200_000).await;
    assert!(got.iter().all(|&x| x == 9));
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "200 KB at 1 MB/s took {:?}",
        start.elapsed()
    );
    let _ = w.await;
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let (p, mut a, mut b) = pair().await;
    p.set(
        Direction::Forward,
        LinkFault {
            limit_data: Some(1000),
            ..LinkFault::default()
        },
    );
    let _ = a.write_all(&[1u8; 5000]).await;
    let mut got = Vec::new();
    let r = tokio::time::timeout(T, b.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(r.is_ok() || !got.is_empty());
    assert_eq!(got.len(), 1000);
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let (p, mut a, _b) = pair().await;
    let addr = p.local_addr();
    drop(p);
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(T, a.read(&mut buf)).await.unwrap();
    assert!(matches!(r, Ok(0) | Err(_)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    match TcpStream::connect(addr).await {
        Err(_) => {}
        Ok(mut c) => {
            let r = tokio::time::timeout(T, c.read(&mut buf)).await.unwrap();
            assert!(matches!(r, Ok(0) | Err(_)));
        }
    }
}
