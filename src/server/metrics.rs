//! The server's counters and latencies through the [`metrics`] facade
//! (feature `metrics`), so that any exporter (Prometheus, StatsD, …) can
//! publish them. `iip serve --metrics ADDR` installs a Prometheus exporter.
//!
//! Install the exporter (the global recorder) **before**
//! [`ServerBuilder::build`](super::ServerBuilder::build): the server takes
//! its metric handles when it is built, so that recording costs no lookup
//! per request. Without a recorder every handle does nothing.
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `iip_server_connections` | gauge | | connections open now |
//! | `iip_server_connections_total` | counter | | connections accepted |
//! | `iip_server_frames_received_total`, `…_sent_total` | counter | | frames |
//! | `iip_server_messages_received_total`, `…_sent_total` | counter | | whole messages |
//! | `iip_server_bytes_received_total`, `…_sent_total` | counter | | frame bytes, headers included |
//! | `iip_server_held_bytes` | gauge | | bytes held by all connections (`[RES-4]`) |
//! | `iip_server_requests_total` | counter | `route` | requests given to a handler |
//! | `iip_server_request_errors_total` | counter | `route`, `code` | error answers of handlers |
//! | `iip_server_request_duration_seconds` | histogram | `route` | handler latency |
//!
//! Without the feature the same calls compile to nothing.

#[cfg(feature = "metrics")]
pub use enabled::*;

#[cfg(not(feature = "metrics"))]
pub use disabled::*;

#[cfg(feature = "metrics")]
mod enabled {
    use std::time::Duration;

    use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
    use metrics::{Counter, Gauge, Histogram};

    use super::super::stats::Counts;

    /// The server-wide metric handles.
    #[derive(Debug)]
    pub struct ServerMetrics {
        connections: Gauge,
        connections_total: Counter,
        frames_received: Counter,
        frames_sent: Counter,
        messages_received: Counter,
        messages_sent: Counter,
        bytes_received: Counter,
        bytes_sent: Counter,
        held_bytes: Gauge,
    }

    impl Default for ServerMetrics {
        fn default() -> Self {
            describe_gauge!("iip_server_connections", "IIP connections open now");
            describe_counter!("iip_server_connections_total", "IIP connections accepted");
            describe_counter!("iip_server_frames_received_total", "frames received");
            describe_counter!("iip_server_frames_sent_total", "frames sent");
            describe_counter!("iip_server_messages_received_total", "whole messages received");
            describe_counter!("iip_server_messages_sent_total", "whole messages sent");
            describe_counter!("iip_server_bytes_received_total", Unit::Bytes, "frame bytes received");
            describe_counter!("iip_server_bytes_sent_total", Unit::Bytes, "frame bytes sent");
            describe_gauge!("iip_server_held_bytes", Unit::Bytes, "bytes held by all connections");
            describe_counter!("iip_server_requests_total", "requests given to a handler");
            describe_counter!("iip_server_request_errors_total", "error answers of handlers, by code");
            describe_histogram!("iip_server_request_duration_seconds", Unit::Seconds, "handler latency");
            ServerMetrics {
                connections: gauge!("iip_server_connections"),
                connections_total: counter!("iip_server_connections_total"),
                frames_received: counter!("iip_server_frames_received_total"),
                frames_sent: counter!("iip_server_frames_sent_total"),
                messages_received: counter!("iip_server_messages_received_total"),
                messages_sent: counter!("iip_server_messages_sent_total"),
                bytes_received: counter!("iip_server_bytes_received_total"),
                bytes_sent: counter!("iip_server_bytes_sent_total"),
                held_bytes: gauge!("iip_server_held_bytes"),
            }
        }
    }

    impl ServerMetrics {
        /// Counts a connection opened; the guard counts it closed when dropped.
        pub(crate) fn connection_opened(&self) -> ConnectionGuard {
            self.connections_total.increment(1);
            self.connections.increment(1.0);
            ConnectionGuard(self.connections.clone())
        }

        /// Adds counts a connection reports, and the bytes the server holds now.
        pub(crate) fn add(&self, counts: &Counts, held_bytes: usize) {
            self.frames_received.increment(counts.packets_received);
            self.frames_sent.increment(counts.packets_sent);
            self.messages_received.increment(counts.whole_received);
            self.messages_sent.increment(counts.whole_sent);
            self.bytes_received.increment(counts.bytes_received);
            self.bytes_sent.increment(counts.bytes_sent);
            self.held_bytes.set(held_bytes as f64);
        }
    }

    /// Counts its connection closed when dropped.
    #[derive(Debug)]
    pub(crate) struct ConnectionGuard(Gauge);

    impl Drop for ConnectionGuard {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }

    /// The metric handles of one route.
    #[derive(Debug)]
    pub struct RouteMetrics {
        route: String,
        requests: Counter,
        duration: Histogram,
    }

    impl RouteMetrics {
        /// The handles of `route`.
        pub(crate) fn new(route: &[u8]) -> RouteMetrics {
            let route = String::from_utf8_lossy(route).into_owned();
            RouteMetrics {
                requests: counter!("iip_server_requests_total", "route" => route.clone()),
                duration: histogram!("iip_server_request_duration_seconds", "route" => route.clone()),
                route,
            }
        }

        /// Records one handled request: its latency and, for an error
        /// answer, its code (`0` for a good answer).
        #[inline(always)]
        pub(crate) fn answered(&self, code: i64, latency: Duration) {
            self.requests.increment(1);
            // In seconds, converted only when a recorder is installed.
            self.duration.record(latency);
            if code != 0 {
                self.failed(code);
            }
        }

        /// Counts an error answer. Error answers are rare: their handle is
        /// looked up each time.
        #[cold]
        #[inline(never)]
        fn failed(&self, code: i64) {
            counter!("iip_server_request_errors_total", "route" => self.route.clone(), "code" => code.to_string())
                .increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use std::time::Duration;

    use super::super::stats::Counts;

    /// Without the `metrics` feature: records nothing.
    #[derive(Debug, Default)]
    pub struct ServerMetrics;

    impl ServerMetrics {
        pub(crate) fn connection_opened(&self) {}

        pub(crate) fn add(&self, _counts: &Counts, _held_bytes: usize) {}
    }

    /// Without the `metrics` feature: records nothing.
    #[derive(Debug)]
    pub struct RouteMetrics;

    impl RouteMetrics {
        pub(crate) fn new(_route: &[u8]) -> RouteMetrics {
            RouteMetrics
        }

        pub(crate) fn answered(&self, _code: i64, _latency: Duration) {}
    }
}
