//! The file transfer example end to end: a download and an upload are cut
//! midway by a proxy that drops the connection, then run again and resume
//! from the bytes already received; the result matches by SHA-256.

#[path = "../examples/file_transfer/transfer.rs"]
#[allow(dead_code)]
mod transfer;

use std::net::SocketAddr;
use std::path::PathBuf;

use iip::client::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which way the proxy counts bytes before it cuts the connection.
#[derive(Clone, Copy)]
enum Cut {
    /// After this many bytes from the server to the client.
    Answers(usize),
    /// After this many bytes from the client to the server.
    Requests(usize),
}

/// A proxy for one connection that forwards both ways and drops both
/// sockets once `cut` is reached.
async fn cutting_proxy(server: SocketAddr, cut: Cut) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect(server).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        let (answers_limit, requests_limit) = match cut {
            Cut::Answers(n) => (n, usize::MAX),
            Cut::Requests(n) => (usize::MAX, n),
        };
        // Whichever direction stops first ends the connection both ways.
        tokio::select! {
            _ = forward(&mut server_read, &mut client_write, answers_limit) => {}
            _ = forward(&mut client_read, &mut server_write, requests_limit) => {}
        }
    });
    addr
}

/// Copies from `from` to `to` until either closes or `limit` bytes passed.
async fn forward(from: &mut (impl AsyncReadExt + Unpin), to: &mut (impl AsyncWriteExt + Unpin), limit: usize) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut moved = 0usize;
    while moved < limit {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n.min(limit - moved),
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        moved += n;
    }
}

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iip-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 3 MiB that no two parts share.
fn content() -> Vec<u8> {
    (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_and_matches() {
    let (served, local) = (folder("served"), folder("downloaded"));
    let bytes = content();
    std::fs::write(served.join("big.bin"), &bytes).unwrap();
    let server = transfer::file_server(&served).build().unwrap();
    let handle = server.spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let dest = local.join("big.bin");

    let proxy = cutting_proxy(handle.local_addr(), Cut::Answers(1_300_000)).await;
    let channel = Client::connect(proxy).await.unwrap().open_channel().await.unwrap();
    let cut = transfer::download(&channel, "big.bin", &dest).await;
    assert!(matches!(cut, Err(transfer::TransferError::Call(_))), "{cut:?}");
    let kept = std::fs::metadata(&dest).unwrap().len();
    assert!(kept > 0 && kept < bytes.len() as u64 && kept % transfer::PART as u64 == 0, "kept {kept}");

    let channel = Client::connect(handle.local_addr()).await.unwrap().open_channel().await.unwrap();
    let done = transfer::download(&channel, "big.bin", &dest).await.unwrap();
    assert_eq!(
        done,
        transfer::Transfer { resumed_from: kept, moved: bytes.len() as u64 - kept, size: bytes.len() as u64 }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_and_matches() {
    let (received, local) = (folder("received"), folder("uploading"));
    let bytes = content();
    let source = local.join("photo.bin");
    std::fs::write(&source, &bytes).unwrap();
    let server = transfer::file_server(&received).build().unwrap();
    let handle = server.spawn(TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();

    let proxy = cutting_proxy(handle.local_addr(), Cut::Requests(1_700_000)).await;
    let channel = Client::connect(proxy).await.unwrap().open_channel().await.unwrap();
    let cut = transfer::upload(&channel, &source, "photo.bin").await;
    assert!(matches!(cut, Err(transfer::TransferError::Call(_))), "{cut:?}");
    assert!(!received.join("photo.bin").exists(), "an unfinished upload must not appear under its name");

    let channel = Client::connect(handle.local_addr()).await.unwrap().open_channel().await.unwrap();
    let done = transfer::upload(&channel, &source, "photo.bin").await.unwrap();
    assert!(done.resumed_from > 0 && done.resumed_from < done.size, "{done:?}");
    assert_eq!(done.moved, bytes.len() as u64 - done.resumed_from);
    assert_eq!(std::fs::read(received.join("photo.bin")).unwrap(), bytes);

    // A name that leaves the folder is refused with a clear error.
    let escape = channel.call("/file/stat?name=../etc/passwd", "").await;
    assert!(format!("{escape:?}").contains("not a plain file name"), "{escape:?}");
    handle.shutdown().await.unwrap();
}
