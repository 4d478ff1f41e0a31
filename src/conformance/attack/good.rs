//! The well-behaved IIP client of the attack suite, which calls `/echo`
//! beside every attack and judges it, and the check that a server serves
//! a new client once an attack is over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use super::GoodClient;
use crate::client::{Client, ClientConfig, Endpoint};

/// How a good client's calls went, as they go: served calls with their
/// latencies, failed ones, and when the first answer came.
pub(super) struct Record {
    good: GoodClient,
    histogram: Histogram<u64>,
    started: Instant,
}

impl Record {
    /// A record of an attack that began at `started`.
    pub(super) fn new(started: Instant) -> Record {
        Record { good: GoodClient::default(), histogram: new_histogram(), started }
    }

    /// A call sent at `sent` was answered with what it sent.
    pub(super) fn served(&mut self, sent: Instant) {
        self.good.served += 1;
        let _ = self.histogram.record((sent.elapsed().as_micros() as u64).clamp(1, 60_000_000));
        self.good.first_answer_ms.get_or_insert(self.started.elapsed().as_millis() as u64);
    }

    /// A call failed, or no connection could be had.
    pub(super) fn failed(&mut self) {
        self.good.failed += 1;
    }

    /// The outcome, with the 99th percentile of the served calls.
    pub(super) fn finish(mut self) -> GoodClient {
        self.good.p99_us = (self.good.served > 0).then(|| self.histogram.value_at_quantile(0.99));
        self.good
    }
}

/// Calls `/echo` with 64 bytes, one call at a time with a 10 ms pause,
/// reconnecting whenever its connection fails, until `stop`.
pub(super) async fn good_client(endpoint: Endpoint, started: Instant, stop: Arc<AtomicBool>) -> GoodClient {
    let payload = Bytes::from(vec![b'g'; 64]);
    let config = ClientConfig { timeout: Duration::from_secs(2), ..ClientConfig::default() };
    let mut record = Record::new(started);
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        if client.as_ref().is_none_or(|c| !c.is_connected()) {
            client =
                tokio::time::timeout(Duration::from_secs(2), endpoint.connect(config)).await.ok().and_then(Result::ok);
        }
        let Some(c) = &client else {
            record.failed();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sent = Instant::now();
        match c.call("/echo", payload.clone()).await {
            Ok(body) if body == payload => record.served(sent),
            _ => {
                record.failed();
                client = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    record.finish()
}

/// Whether a new client of `endpoint` is served within `limit`.
pub async fn served_within(endpoint: &Endpoint, limit: Duration) -> bool {
    let config = ClientConfig { timeout: Duration::from_secs(2), ..ClientConfig::default() };
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), endpoint.connect(config)).await {
            if client.call("/echo", "alive").await.is_ok_and(|b| b == "alive") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A latency histogram of 1 µs to 60 s at 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid")))
}
