//! The configurations checked, the large one, and the planted defects.

use crate::model::{Defect, Setup};

/// A configuration and the reachability properties it must reach.
pub struct Config {
    pub name: &'static str,
    pub setup: Setup,
    pub reaches: &'static [&'static str],
}

/// A server with a defect, and the property that must catch it.
pub struct Planted {
    pub setup: Setup,
    pub breaks: &'static str,
}

/// Nothing allowed: each configuration turns on what it explores.
const NONE: Setup = Setup {
    requests: 0,
    chunked: false,
    opens: 0,
    deletes: 0,
    hello: false,
    close: false,
    close_early: false,
    shutdown: false,
    hostile: false,
    max_channels: 3,
    budget: 64 * 1024,
    defect: None,
};

/// Two waiting requests reach it: a third is read only once one is answered.
const TIGHT: usize = 2 * iip::proto::server::WAITING_REQUEST_COST;

/// What CI checks.
pub const CONFIGS: [Config; 5] = [
    Config {
        name: "pipelining",
        setup: Setup { requests: 3, chunked: true, opens: 1, max_channels: 2, budget: TIGHT, ..NONE },
        reaches: &[
            "reach: two chunked requests in assembly at once",
            "reach: an answer read in part",
            "reach: back-pressure engaged and released",
        ],
    },
    Config {
        name: "channels",
        setup: Setup { requests: 2, opens: 2, deletes: 1, max_channels: 2, ..NONE },
        reaches: &[
            "reach: a delete behind a request not yet answered",
            "reach: a deleted id granted again",
            "reach: a refused channel",
        ],
    },
    Config {
        name: "endings",
        setup: Setup { requests: 2, opens: 1, hello: true, close: true, close_early: true, shutdown: true, ..NONE },
        reaches: &["reach: a client told to go away has left", "reach: a graceful shutdown has ended"],
    },
    Config {
        name: "combined",
        setup: Setup {
            requests: 2,
            chunked: true,
            opens: 1,
            deletes: 1,
            hello: true,
            close: true,
            close_early: true,
            shutdown: true,
            max_channels: 2,
            budget: TIGHT,
            ..NONE
        },
        reaches: &[
            "reach: two chunked requests in assembly at once",
            "reach: a delete behind a request not yet answered",
            "reach: back-pressure engaged and released",
            "reach: a client told to go away has left",
            "reach: a graceful shutdown has ended",
        ],
    },
    Config {
        name: "hostile",
        setup: Setup { requests: 1, opens: 1, deletes: 1, hostile: true, ..NONE },
        reaches: &["reach: a broken rule closed the connection"],
    },
];

/// Run with `--large`; its figures are in chapter 15.
pub const LARGE: Config = Config {
    name: "large",
    setup: Setup {
        requests: 3,
        chunked: true,
        opens: 2,
        deletes: 1,
        close: true,
        close_early: true,
        max_channels: 3,
        budget: TIGHT,
        ..NONE
    },
    reaches: &[
        "reach: two chunked requests in assembly at once",
        "reach: an answer read in part",
        "reach: a delete behind a request not yet answered",
        "reach: back-pressure engaged and released",
        "reach: a deleted id granted again",
    ],
};

/// Each planted defect, in the smallest configuration that shows it.
pub const DEFECTS: [Planted; 5] = [
    Planted {
        setup: Setup { requests: 2, defect: Some(Defect::AnswersOutOfOrder), ..NONE },
        breaks: "PROP-1 every answer is its own request's, in each channel's order",
    },
    Planted {
        setup: Setup { opens: 2, defect: Some(Defect::HighestFreeId), ..NONE },
        breaks: "PROP-4 channel ids are granted lowest first and never twice at once",
    },
    Planted {
        setup: Setup {
            requests: 1,
            chunked: true,
            opens: 1,
            // A channel and a chunk fill it exactly.
            budget: iip::proto::server::CHANNEL_COST + crate::model::MAX_DATA as usize,
            defect: Some(Defect::PausesOnAllHeld),
            ..NONE
        },
        breaks: "PROP-7 every request is answered unless the connection ends before it arrives",
    },
    Planted {
        setup: Setup { requests: 1, close: true, close_early: true, defect: Some(Defect::CloseDropsAnswers), ..NONE },
        breaks: "PROP-7 every request is answered unless the connection ends before it arrives",
    },
    Planted {
        setup: Setup {
            requests: 1,
            opens: 1,
            deletes: 1,
            hostile: true,
            defect: Some(Defect::AcceptsOnDeleted),
            ..NONE
        },
        breaks: "PROP-3 a frame that breaks a rule ends the connection citing it",
    },
];
