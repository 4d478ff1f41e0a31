//! What a connection counts: frames and bytes per channel and for the
//! connection (`/sys/connection_statis`, `[SYS-8]`).

use bytes::Bytes;

use super::super::stats::Counts;

/// Applies `update` to the counts of `channel` and of the connection;
/// `highest` is the highest channel id given out so far.
pub(super) fn count_in(
    channels: &mut ChannelCounts,
    connection: &mut Counts,
    (channel, highest): (u32, u32),
    update: impl Fn(&mut Counts),
) {
    if let Some(counts) = channels.get_mut(channel, highest) {
        update(counts);
    }
    update(connection);
}

/// The counts of each channel of a connection (`/sys/connection_statis`),
/// indexed by channel id. The server gives out the lowest free id first
/// (`[CHAN-4]`), so the table grows only as far as the most channels the
/// client held open at once; a frame on a channel never given out, which
/// closes the connection, is counted for the connection alone.
#[derive(Debug, Default)]
pub(super) struct ChannelCounts {
    pub(super) counts: Vec<Counts>,
}

impl ChannelCounts {
    /// The counts of `channel`, zero for a channel not seen yet.
    pub(super) fn get(&self, channel: u32) -> Counts {
        self.counts.get(channel as usize).copied().unwrap_or_default()
    }

    /// The counts of `channel` to update, if it was ever given out (it is
    /// at most `highest`, the highest id given out so far).
    pub(super) fn get_mut(&mut self, channel: u32, highest: u32) -> Option<&mut Counts> {
        if channel > highest {
            return None;
        }
        let at = channel as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, Counts::default());
        }
        self.counts.get_mut(at)
    }
}

/// Frames and whole-frame bytes of an answer of `answer.len()` bytes whose
/// frames carry the path `route` (`[SYS-8]`): each frame has a 10-byte
/// header (status, NUL, channel, length) besides its path and data.
pub(super) fn answer_size(frame_limit: u32, route_len: usize, answer: &Bytes) -> (u64, u64) {
    // An empty answer travels as `{}` ([MSG-9]).
    let len = if answer.is_empty() { 2 } else { answer.len() };
    // Most answers fit one frame: no division for them.
    let frames = if len <= frame_limit as usize { 1 } else { len.div_ceil(frame_limit.max(1) as usize) as u64 };
    (frames, len as u64 + frames * (route_len + crate::wire::frame::FIXED_OVERHEAD) as u64)
}

/// One channel in `/sys/connection_statis`, members in the deployed order.
#[derive(serde::Serialize)]
pub(super) struct ChannelStatis {
    #[serde(rename = "ReceiveQueue")]
    pub(super) receive_queue: u64,
    #[serde(rename = "Count")]
    pub(super) count: Counts,
}

/// One connection in `/sys/connection_statis`, members in the deployed order.
#[derive(serde::Serialize)]
pub(super) struct ConnectionStatis {
    #[serde(rename = "Channels")]
    pub(super) channels: std::collections::BTreeMap<String, ChannelStatis>,
    #[serde(rename = "WriteQueue")]
    pub(super) write_queue: u64,
    #[serde(rename = "Count")]
    pub(super) count: Counts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_counts_grow_only_to_channels_given_out() {
        let mut channels = ChannelCounts::default();
        let mut connection = Counts::default();
        let received = |c: &mut Counts| c.frame_received(10);
        // Channel 0 exists from the start; channel 5 was never given out.
        count_in(&mut channels, &mut connection, (0, 0), received);
        count_in(&mut channels, &mut connection, (5, 0), received);
        count_in(&mut channels, &mut connection, (u32::MAX, 0), received);
        assert_eq!(channels.counts.len(), 1, "no room is made for a channel never given out");
        assert_eq!(connection.packets_received, 3, "the connection counts all");
        assert_eq!(channels.get(0).packets_received, 1);
        assert_eq!(channels.get(5), Counts::default());
        // Channel 5 given out.
        count_in(&mut channels, &mut connection, (5, 5), received);
        assert_eq!((channels.counts.len(), channels.get(5).bytes_received), (6, 10));
    }
}
