//! An echo client: opens channels on one connection and pipelines calls on
//! each, all channels at once, then checks every answer and prints the rate.
//!
//! ```sh
//! cargo run --example echo_client -- 127.0.0.1:9090 [CHANNELS] [CALLS_PER_CHANNEL]
//! ```

use std::time::Instant;

use iip::client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9090".into());
    let channels: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(8);
    let calls: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);

    let client = Client::connect(addr.as_str()).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..channels {
        let channel = client.open_channel().await?;
        tasks.push(tokio::spawn(async move {
            // Calls on one channel are pipelined: all are sent before the
            // first answer comes, and the answers come back in order.
            let pending: Vec<_> = (0..calls).map(|i| channel.call("/echo", format!("channel {c} call {i}"))).collect();
            for (i, answer) in futures::future::join_all(pending).await.into_iter().enumerate() {
                assert_eq!(answer?, format!("channel {c} call {i}").as_bytes());
            }
            Ok::<_, iip::client::ClientError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let total = channels * calls;
    println!(
        "{total} calls on {channels} channels in {elapsed:.2?}: {:.0} calls/s",
        total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
