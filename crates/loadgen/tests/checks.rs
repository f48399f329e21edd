//! Body checks against a real origin whose body arrives in pieces (issue 14,
//! item 16): the text is found across chunk boundaries, in a body far
//! larger than anything the check keeps.

use std::time::Duration;

use atlas_loadgen::{Executor, LoadConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request with a chunked body of `chunks`.
async fn chunked_origin(chunks: Vec<Vec<u8>>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                loop {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    head.clear();
                    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    for c in &chunks {
                        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        out.extend_from_slice(c);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_checks_find_text_across_chunks_of_a_large_body() {
    // 4 MiB of filler, the needle cut in three pieces across chunk borders
    let mut chunks: Vec<Vec<u8>> = (0..64).map(|_| vec![b'.'; 64 * 1024]).collect();
    chunks.push(b"...wel".to_vec());
    chunks.push(b"co".to_vec());
    chunks.push(b"me home...".to_vec());
    let addr = chunked_origin(chunks).await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 20.0,
        duration: Duration::from_secs(1),
        max_vus: 10,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(format!("http://{addr}/"));
    cfg.checks = vec![
        "body~welcome home".into(),
        "body!~goodbye".into(),
        "body~not there".into(),
    ];
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        cfg.build().unwrap().run().await.unwrap()
    })
    .await
    .expect("the run ends");
    assert_eq!(r.metrics.requests, 20);
    let passes: Vec<u64> = r.metrics.checks.iter().map(|c| c.passes).collect();
    assert_eq!(passes, vec![20, 20, 0], "{:?}", r.metrics.checks);
}
