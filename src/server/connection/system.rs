//! A connection's answers to the `/sys/` routes it answers itself
//! (`[SYS-1]`, `[SYS-4]`, `[SYS-13]`).

use super::*;

impl<W: AsyncWrite + Unpin> Connection<W> {
    /// The answer to a `/sys/` route other than new/delete channel (`[SYS-1]`, `[SYS-4]`).
    pub(super) fn system_answer(&self, route: &[u8], body: &[u8]) -> Bytes {
        let stats = &self.shared.stats;
        // The body names a route byte for byte (`[SYS-10]`); an unknown one
        // fails as the deployed implementation fails it (`[SYS-11]`).
        let unknown_route = || {
            let failure = format!("path [{}] not support", String::from_utf8_lossy(route));
            ErrorAnswer::handler_failed(failure).to_body()
        };
        let text = match route {
            b"/sys/server_count" => stats.count().to_json(),
            b"/sys/server_measure" => stats.measure().to_json(),
            b"/sys/path_count" => match stats.route(body) {
                Some(r) => r.count.to_json(),
                None => return unknown_route(),
            },
            b"/sys/path_measure" => match stats.route(body) {
                Some(r) => r.measure.to_json(),
                None => return unknown_route(),
            },
            b"/sys/connection_statis" => self.connection_json(),
            // Answered at once with the request's body where ping is in
            // force ([EXT-6]); elsewhere it is no route of the connection.
            PING if self.ping => {
                return Bytes::copy_from_slice(body);
            }
            b"/sys/statis" => {
                let unit = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("time_unit").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                stats.summary(&unit)
            }
            _ => return ErrorAnswer::no_handler().to_body(),
        };
        Bytes::from(text)
    }

    /// The connection object of `/sys/connection_statis` (`[SYS-13]`):
    /// members in the deployed order, the peer named `ip:port` (`[v6]:port`).
    pub(super) fn connection_json(&self) -> String {
        let channels: std::collections::BTreeMap<String, ChannelStatis> = self
            .core
            .channel_ids()
            .into_iter()
            .map(|id| {
                let queue = self.core.unanswered_on(id).unwrap_or(0);
                let count = self.channel_counts.get(id);
                (id.to_string(), ChannelStatis { receive_queue: queue as u64, count })
            })
            .collect();
        let write_queue = self.writer.queued_frames() + self.core.queued_frames() as u64;
        let connection = ConnectionStatis { channels, write_queue, count: self.connection_count };
        serde_json::to_string(&std::collections::BTreeMap::from([(self.peer.to_string(), connection)]))
            .unwrap_or_default()
    }
}
