//! A quick end-to-end check of the tokio adapter: 64 MiB over loopback.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utp_tokio::IntoTokio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_64mib() {
    let server = utp_tokio::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = utp_tokio::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let len = 64 << 20;
    let data: Vec<u8> = (0..len).map(|i: usize| (i * 7 + i / 1000) as u8).collect();
    let expect = data.clone();
    let rx = tokio::spawn(async move {
        let mut s = server.accept().await.unwrap().into_tokio();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.into_inner().close().await.unwrap();
        got
    });
    let t = std::time::Instant::now();
    let mut s = client.connect(addr).await.unwrap().into_tokio();
    s.write_all(&data).await.unwrap();
    s.shutdown().await.unwrap();
    let got = rx.await.unwrap();
    eprintln!("{:.1} MB/s", len as f64 / t.elapsed().as_secs_f64() / 1e6);
    assert!(got == expect);
}
