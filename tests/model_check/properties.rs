//! The properties of chapter 15, each named by its requirement id, and the
//! states that show none of them holds vacuously.

use stateright::{Model, Property};

use crate::client::{Outcome, Stage as ClientStage};
use crate::model::{Iip, State};
use crate::server::{Ending, Stage as ServerStage};

/// The id a property checks: the start of its name.
pub fn requirement(name: &str) -> Option<&str> {
    name.split_once(' ').map(|(id, _)| id).filter(|id| id.starts_with("PROP-"))
}

/// No step is left to anyone.
pub fn terminal(model: &Iip, state: &State) -> bool {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions.is_empty()
}

/// Nothing in flight: both streams empty, nothing queued, no handler busy.
fn quiet(state: &State) -> bool {
    state.to_server.is_empty()
        && state.to_client.is_empty()
        && state.server.stage == ServerStage::Reading
        && state.server.owes_nothing()
        && state.client.unsent.values().all(|f| f.is_empty())
        && state.client.outstanding() == 0
}

fn agree(state: &State) -> bool {
    let server: Vec<u32> = state.server.channels.iter().filter(|(_, c)| !c.deleting).map(|(&id, _)| id).collect();
    let all: Vec<u32> = state.server.channels.keys().copied().collect();
    server == all && state.client.open.iter().copied().eq(server)
}

/// Every call has its outcome, and none failed whose request the server
/// received whole.
fn settled(state: &State) -> bool {
    state.client.outstanding() == 0
        && state.client.outcomes.iter().all(|(id, o)| *o != Outcome::Failed || !state.server.received.contains(id))
}

/// A close begun by either side has ended on both.
fn closed(state: &State) -> bool {
    let begun = matches!(state.client.stage, ClientStage::Closed | ClientStage::Gone)
        || state.server.stage != ServerStage::Reading;
    !begun || (state.server.stage == ServerStage::Done && state.client.stage == ClientStage::Gone)
}

/// The properties: [PROP-1] to [PROP-8] as `always`, each named by its id,
/// then the states the configurations must reach.
pub fn all() -> Vec<Property<Iip>> {
    vec![
        Property::always("PROP-1 every answer is its own request's, in each channel's order", |_: &Iip, s: &State| {
            !s.client.outcomes.values().any(|o| *o == Outcome::Wrong)
        }),
        Property::always("PROP-2 no response without a request", |_: &Iip, s: &State| !s.client.unexpected),
        Property::always("PROP-3 a frame that breaks a rule ends the connection citing it", |_: &Iip, s: &State| {
            // The model's server reads nothing after it stops; that the
            // cores act on nothing they are given then is the replay's check.
            !s.server.breach_missed
        }),
        Property::always(
            "PROP-4 channel ids are granted lowest first and never twice at once",
            |_: &Iip, s: &State| !s.server.misgranted && !s.client.double_grant,
        ),
        Property::always("PROP-5 the bytes held stay within the bound of chapter 13", |m: &Iip, s: &State| {
            s.server.held.total() <= m.held_bound()
        }),
        Property::always("PROP-6 once nothing is in flight both sides hold the same channels", |_: &Iip, s: &State| {
            !quiet(s) || agree(s)
        }),
        Property::always(
            "PROP-7 every request is answered unless the connection ends before it arrives",
            |m: &Iip, s: &State| !terminal(m, s) || settled(s),
        ),
        Property::always("PROP-8 a close begun by either side completes on both", |m: &Iip, s: &State| {
            !terminal(m, s) || closed(s)
        }),
        Property::sometimes("reach: two chunked requests in assembly at once", |_: &Iip, s: &State| {
            s.server.channels.values().filter(|c| c.inbound.is_some()).count() >= 2
        }),
        Property::sometimes("reach: an answer read in part", |_: &Iip, s: &State| {
            s.client.partial.values().any(|p| !p.is_empty())
        }),
        Property::sometimes("reach: a delete behind a request not yet answered", |_: &Iip, s: &State| {
            s.server.channels.values().any(|c| c.deleting && c.slots.len() > 1)
        }),
        Property::sometimes("reach: back-pressure engaged and released", |_: &Iip, s: &State| s.server.resumed),
        Property::sometimes("reach: a deleted id granted again", |_: &Iip, s: &State| s.server.reused_id),
        Property::sometimes("reach: a client told to go away has left", |_: &Iip, s: &State| {
            s.client.going_away && s.server.stage == ServerStage::Done && s.client.stage == ClientStage::Gone
        }),
        Property::sometimes("reach: a graceful shutdown has ended", |_: &Iip, s: &State| {
            !s.client.going_away && s.server.stage == ServerStage::Done && s.server.shutting_down
        }),
        Property::sometimes("reach: a broken rule closed the connection", |_: &Iip, s: &State| {
            matches!(s.server.stage, ServerStage::Stopped(Ending::Error(_))) && s.server.owes_nothing()
        }),
        Property::sometimes("reach: a refused channel", |_: &Iip, s: &State| {
            s.client.outcomes.values().any(|o| *o == Outcome::Refused(106))
        }),
    ]
}
