use super::*;

#[test]
fn count_members_in_the_deployed_order() {
    let counts = Counts {
        packets_sent: 1,
        packets_received: 2,
        whole_sent: 3,
        whole_received: 4,
        bytes_sent: 5,
        bytes_received: 6,
    };
    assert_eq!(
        counts.to_json(),
        r#"{"PacketsSent":1,"PacketReceived":2,"WholePacketSent":3,"WholePacketReceived":4,"BytesSent":5,"BytesReceived":6}"#
    );
}

#[test]
fn measure_has_the_deployed_shape_and_sums() {
    let m = Measure::default();
    m.record(Duration::from_micros(500)); // 0 ms: range 1
    m.record(Duration::from_millis(150)); // range 2
    m.record(Duration::from_secs(2)); // over 1500 ms: other
    let text = m.to_json();
    assert!(text.starts_with(r#"{"five_minute_requests":[3,0,"#), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let order = [
        "five_minute_requests",
        "five_minute_duration",
        "all_requests",
        "all_duration",
        "five_minute_timecount",
        "all_timecount",
    ];
    let positions: Vec<usize> = order.iter().map(|k| text.find(&format!("\"{k}\"")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "members out of order: {text}");
    assert_eq!(v["five_minute_requests"].as_array().map(Vec::len), Some(WINDOW_SECONDS));
    assert_eq!(v["five_minute_timecount"].as_array().map(Vec::len), Some(WINDOW_SECONDS));
    assert_eq!(v["all_requests"], 3);
    let ranges = &v["all_timecount"]["range_count"];
    assert_eq!(ranges.as_array().map(Vec::len), Some(8));
    assert_eq!(
        (ranges[0]["Count"].as_u64(), ranges[1]["Count"].as_u64(), ranges[7]["Count"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    // Duration is the summed handler time of the range's requests.
    assert_eq!(ranges[1]["Duration"].as_u64(), Some(150_000_000));
    assert_eq!(v["five_minute_timecount"][0]["range_count"][7]["Duration"].as_u64(), Some(2_000_000_000));
    // The bucket after the cursor is the next to be reused: always 0.
    assert_eq!(v["five_minute_requests"][1], 0);
}

/// A duration falls in the range its whole units give, at every bound.
#[test]
fn ranges_follow_whole_units() {
    for unit in [Duration::from_micros(1), Duration::from_millis(1), Duration::from_nanos(7)] {
        let m = Measure::with_unit(unit);
        let unit_ns = unit.as_nanos() as u64;
        for bound in RANGE_BOUNDS {
            for ns in [bound * unit_ns - 1, bound * unit_ns, (bound + 1) * unit_ns - 1, (bound + 1) * unit_ns] {
                let by_units = RANGE_BOUNDS.iter().position(|&b| ns / unit_ns <= b).unwrap_or(7);
                assert_eq!(m.range_of(ns), by_units, "{ns} ns in units of {unit:?}");
            }
        }
        assert_eq!(m.range_of(u64::MAX), 7);
    }
}

/// [SYS-5]: the server's Measure is the requests of its application
/// routes and of the statistics paths added up, in milliseconds,
/// whichever threads recorded them.
#[test]
fn server_measure_adds_up_routes_and_threads() {
    let stats = ServerStats::new([Bytes::from_static(b"/a"), Bytes::from_static(b"/b")]);
    let a = stats.route(b"/a").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..(2 * MEASURE_PARTS) {
            scope.spawn(|| a.measure.record(Duration::from_millis(150)));
        }
    });
    stats.route(b"/b").unwrap().measure.record(Duration::from_micros(10));
    // A statistics path: in its own measure in microseconds, in the
    // server's in milliseconds.
    stats.route(b"/sys/server_count").unwrap().measure.record(Duration::from_micros(150));
    stats.record_system(Duration::from_micros(150));
    assert_eq!(a.measure.totals().0, 2 * MEASURE_PARTS as u64);
    let server = stats.measure();
    let (requests, total_ns, ranges) = server.totals();
    assert_eq!(requests, 2 * MEASURE_PARTS as u64 + 2);
    assert_eq!(total_ns, 2 * MEASURE_PARTS as u64 * 150_000_000 + 10_000 + 150_000);
    assert_eq!((ranges.range_count[0].count, ranges.range_count[1].count), (2, 2 * MEASURE_PARTS as u64));
    let v: serde_json::Value = serde_json::from_str(&server.to_json()).unwrap();
    assert_eq!(v["five_minute_requests"].as_array().unwrap().iter().filter_map(|n| n.as_u64()).sum::<u64>(), requests);
    assert!(stats.summary("").starts_with(&format!("total count: {}", stats.count().to_json())));
}

/// [SYS-12]: an unknown or missing time unit reads as microseconds.
#[test]
fn statistics_paths_measure_in_microseconds() {
    let stats = ServerStats::new([Bytes::from_static(b"/echo")]);
    let sys = stats.route(b"/sys/server_count").unwrap();
    sys.measure.record(Duration::from_micros(150));
    assert_eq!(sys.measure.totals().2.range_count[1].count, 1);
    let app = stats.route(b"/echo").unwrap();
    app.measure.record(Duration::from_micros(150));
    assert_eq!(app.measure.totals().2.range_count[0].count, 1);
    assert!(stats.summary("fortnight").contains("microsecond"));
}
