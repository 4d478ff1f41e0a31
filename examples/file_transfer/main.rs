//! File download and upload with resume, over one IIP channel (the Go
//! project's file examples, in Rust). See `transfer.rs` for the routes.
//!
//! ```sh
//! cargo run --example file_transfer -- serve 127.0.0.1:9191 /srv/files
//! cargo run --example file_transfer -- download 127.0.0.1:9191 big.iso ./big.iso
//! cargo run --example file_transfer -- upload 127.0.0.1:9191 ./photo.jpg photo.jpg
//! ```
//!
//! Interrupt a download or an upload and run the same command again: it
//! resumes where it stopped, and checks the file's SHA-256 at the end.

mod transfer;

use std::path::Path;

use iip::client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["serve", addr, root] => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            println!("serving {root} on {}", listener.local_addr()?);
            let server = transfer::file_server(root).build()?;
            server
                .serve_with_shutdown(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        ["download", addr, name, dest] => {
            let channel = Client::connect(addr).await?.open_channel().await?;
            let done = transfer::download(&channel, name, Path::new(dest)).await?;
            println!(
                "{name}: {} bytes, {} moved, resumed from {}; SHA-256 checked",
                done.size, done.moved, done.resumed_from
            );
        }
        ["upload", addr, source, name] => {
            let channel = Client::connect(addr).await?.open_channel().await?;
            let done = transfer::upload(&channel, Path::new(source), name).await?;
            println!(
                "{name}: {} bytes, {} moved, resumed from {}; SHA-256 checked",
                done.size, done.moved, done.resumed_from
            );
        }
        _ => {
            eprintln!("usage: file_transfer serve ADDR DIR | download ADDR NAME DEST | upload ADDR SOURCE NAME");
            std::process::exit(2);
        }
    }
    Ok(())
}
