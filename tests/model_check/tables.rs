//! The spec's tables the model is built from: status values and their
//! roles (chapter 3), the message transitions (chapter 7) and the channel
//! life cycle (chapter 6). Nothing of them is retyped here.

use std::collections::HashMap;
use std::path::PathBuf;

use iip::conformance::spec::{table, Table};

/// The kind of frame a status value carries, as the status table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Request,
    Response,
    Close,
}

pub use iip::Position;

/// The position the status table names `name`.
fn position_named(name: &str) -> Option<Position> {
    Some(match name {
        "first-more" => Position::FirstMore,
        "whole" => Position::Whole,
        "continue-more" => Position::ContinueMore,
        "last" => Position::Last,
        _ => return None,
    })
}

/// What a message transition does (the `result` column of chapter 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Started,
    Continues,
    Complete,
}

/// What a channel life-cycle row tells the server to do (its `action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifeAction {
    /// Queue this answer body; `N` stands for the channel id.
    Answer(String),
    /// Queue the error answer of this code.
    ErrorAnswer(i64),
    /// Assemble the request and queue it in order.
    Assemble,
    /// The id is free to be granted again.
    Free,
    /// A protocol error: close the connection.
    ProtocolError,
    /// Drop queued work.
    Drop,
}

/// The tables, read once.
#[derive(Debug, Clone)]
pub struct Tables {
    statuses: HashMap<(Kind, Option<Position>), u8>,
    positions: HashMap<u8, (Kind, Option<Position>)>,
    messages: HashMap<(bool, Position), (bool, Step)>,
    lifecycle: HashMap<(String, String), (String, LifeAction)>,
    error_names: HashMap<i64, String>,
}

fn chapter(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spec_table(file: &str, name: &str) -> Table {
    table(&chapter(file), name).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn life_action(cell: &str) -> LifeAction {
    let text = &cell.replace('`', "");
    if text.contains("protocol error") {
        LifeAction::ProtocolError
    } else if let Some(rest) = text.split("error answer of code ").nth(1) {
        LifeAction::ErrorAnswer(rest.trim().parse().expect("an error code in the life-cycle table"))
    } else if let Some(rest) = text.split("the answer ").nth(1) {
        let end = rest.rfind('}').expect("an answer body in the life-cycle table");
        LifeAction::Answer(rest[..=end].to_string())
    } else if text.contains("assemble") {
        LifeAction::Assemble
    } else if text.contains("free") {
        LifeAction::Free
    } else if text.contains("drop") {
        LifeAction::Drop
    } else {
        panic!("life-cycle action not understood: {text}")
    }
}

impl Tables {
    /// Reads the three tables from `spec/`.
    pub fn read() -> Tables {
        let mut statuses = HashMap::new();
        let mut positions = HashMap::new();
        for row in spec_table("03-status.md", "status").rows {
            let value: u8 = row[0].parse().expect("a status value");
            let kind = match row[2].as_str() {
                "request" => Kind::Request,
                "response" => Kind::Response,
                "close" => Kind::Close,
                other => panic!("status kind {other}"),
            };
            let position = position_named(&row[3]);
            statuses.insert((kind, position), value);
            positions.insert(value, (kind, position));
        }
        let mut messages = HashMap::new();
        for row in spec_table("07-messages.md", "message-transitions").rows {
            let open = |s: &str| match s {
                "idle" => false,
                "open" => true,
                other => panic!("message state {other}"),
            };
            let position = position_named(&row[1]).expect("a position");
            let step = match row[3].as_str() {
                "message started" => Step::Started,
                "message continues" => Step::Continues,
                "message complete" => Step::Complete,
                other => panic!("message result {other}"),
            };
            messages.insert((open(&row[0]), position), (open(&row[2]), step));
        }
        let mut lifecycle = HashMap::new();
        for row in spec_table("06-channels.md", "channel-lifecycle").rows {
            lifecycle.insert((row[0].clone(), row[1].clone()), (row[2].clone(), life_action(&row[3])));
        }
        let error_names = spec_table("10-error-answers.md", "error-codes")
            .rows
            .into_iter()
            .map(|row| (row[0].parse().expect("an error code"), row[1].clone()))
            .collect();
        Tables { statuses, positions, messages, lifecycle, error_names }
    }

    /// The status byte of a frame of `kind` at `position`.
    pub fn status(&self, kind: Kind, position: Option<Position>) -> u8 {
        self.statuses[&(kind, position)]
    }

    /// What a status byte is, if the table defines it.
    pub fn meaning(&self, status: u8) -> Option<(Kind, Option<Position>)> {
        self.positions.get(&status).copied()
    }

    /// The message transition from `open` (a message in progress) at
    /// `position`: the state after and what it does, or `None` when the
    /// table has no row (a protocol error).
    pub fn message(&self, open: bool, position: Position) -> Option<(bool, Step)> {
        self.messages.get(&(open, position)).copied()
    }

    /// The channel life-cycle row for `state` and `event`.
    pub fn life(&self, state: &str, event: &str) -> Option<(&str, &LifeAction)> {
        self.lifecycle.get(&(state.to_string(), event.to_string())).map(|(next, action)| (next.as_str(), action))
    }

    /// The body of the error answer of `code` whose message is the code's
    /// name ([ANSWER-1], [ANSWER-10]).
    pub fn error_body(&self, code: i64) -> Vec<u8> {
        format!("{{\"code\":{code},\"message\":\"{}\"}}", self.error_names[&code]).into_bytes()
    }
}
