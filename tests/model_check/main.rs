//! The model checker of IIP/1 (chapter 15): every interleaving of a client
//! and a server within each configuration below, checked against the
//! properties `PROP-*`; every path explored replayed into the crate's
//! sans-IO cores, which must agree with the model frame by frame; and the
//! planted defects, each of which the checker must catch.
//!
//!     cargo test --test model_check                 the CI configurations
//!     cargo test --test model_check -- --large      and the large one
//!     cargo test --test model_check -- --explore [ADDR] [NAME]
//!                                                   browse a configuration
//!                                                   (default 127.0.0.1:3000)

mod client;
mod configs;
mod model;
mod properties;
mod replay;
mod server;
mod tables;
mod wire;

use std::collections::BTreeSet;
use std::time::Instant;

use stateright::{Checker, Model};

use crate::configs::{Config, CONFIGS, DEFECTS, LARGE};
use crate::model::Iip;

/// Peak resident memory of this process so far, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Prints how far a long check has come, every ten seconds.
struct Progress(&'static str);

impl stateright::report::Reporter<Iip> for Progress {
    fn report_checking(&mut self, data: stateright::report::ReportData) {
        if !data.done {
            eprintln!(
                "model {}: {} states, {} unique, depth {} after {:.0} s",
                self.0,
                data.total_states,
                data.unique_states,
                data.max_depth,
                data.duration.as_secs_f64()
            );
        }
    }

    fn report_discoveries(
        &mut self,
        _: &Iip,
        _: std::collections::BTreeMap<&'static str, stateright::report::ReportDiscovery<Iip>>,
    ) {
    }

    fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }
}

/// Checks one configuration; returns what failed.
fn check(config: &Config) -> Vec<String> {
    let model = Iip::new(config.setup);
    let replay = replay::Replayer::new(config.setup);
    let started = Instant::now();
    let visitor = replay.visitor();
    let checker = model.checker().threads(2).visitor(visitor).spawn_bfs();
    // A long check reports its progress; a short one would wait out the
    // reporter's first delay.
    let checker =
        if config.name == LARGE.name { checker.join_and_report(&mut Progress(config.name)) } else { checker.join() };
    let mut failures = Vec::new();
    let discoveries = checker.discoveries();
    for property in checker.model().properties() {
        let sometimes = property.name.starts_with("reach:");
        let found = discoveries.get(property.name);
        if sometimes {
            if config.reaches.contains(&property.name) && found.is_none() {
                failures.push(format!("{}: never reached: {}", config.name, property.name));
            }
        } else if let Some(path) = found {
            failures.push(format!("{}: {} fails:\n{}", config.name, property.name, replay::describe(path)));
        }
    }
    failures.extend(replay.differences());
    println!(
        "model {:<12} {:>9} states {:>8} unique  depth {:>2}  {:>6.1} s  peak {:>6.0} MiB  {} paths replayed",
        config.name,
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed().as_secs_f64(),
        peak_mib(),
        replay.replayed(),
    );
    failures
}

/// Checks that a planted defect breaks the property it should.
fn catch(defect: &configs::Planted) -> Option<String> {
    let model = Iip::new(defect.setup);
    let checker = model.checker().threads(2).spawn_bfs().join();
    match checker.discovery(defect.breaks) {
        Some(path) => {
            println!(
                "defect {:?} caught by {} in {} steps",
                defect.setup.defect,
                defect.breaks,
                path.into_actions().len()
            );
            None
        }
        None => Some(format!("defect {:?} was not caught by {}", defect.setup.defect, defect.breaks)),
    }
}

/// The properties of the model are the requirements of chapter 15.
fn spec_ties() -> Vec<String> {
    let spec = iip::conformance::spec::requirements(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/spec")))
        .expect("spec readable");
    let in_spec: BTreeSet<String> = spec.keys().filter(|id| id.starts_with("PROP-")).cloned().collect();
    let in_model: BTreeSet<String> = Iip::new(CONFIGS[0].setup)
        .properties()
        .iter()
        .filter_map(|p| properties::requirement(p.name).map(str::to_string))
        .collect();
    let mut failures = Vec::new();
    let chapter =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spec/15-properties.md")).unwrap_or_default();
    match iip::conformance::spec::table(&chapter, "model-configurations") {
        Ok(table) => {
            let listed: BTreeSet<&str> = table.rows.iter().map(|r| r[0].as_str()).collect();
            let checked: BTreeSet<&str> = CONFIGS.iter().chain([&LARGE]).map(|c| c.name).collect();
            if listed != checked {
                failures.push(format!("chapter 15 lists the configurations {listed:?}, the checker has {checked:?}"));
            }
        }
        Err(e) => failures.push(format!("chapter 15: {e}")),
    }
    match iip::conformance::spec::table(&chapter, "planted-defects") {
        Ok(table) => {
            let listed: Vec<&str> = table.rows.iter().filter_map(|r| r[1].split_whitespace().next()).collect();
            let planted: Vec<&str> = DEFECTS.iter().filter_map(|d| properties::requirement(d.breaks)).collect();
            if listed.iter().map(|id| id.trim_matches('`')).ne(planted.iter().copied()) {
                failures.push(format!("chapter 15 lists defects caught by {listed:?}, the checker plants {planted:?}"));
            }
        }
        Err(e) => failures.push(format!("chapter 15: {e}")),
    }
    for id in in_spec.difference(&in_model) {
        failures.push(format!("{id} is in chapter 15 but no property of the model checks it"));
    }
    for id in in_model.difference(&in_spec) {
        failures.push(format!("the model checks {id}, which chapter 15 does not define"));
    }
    failures
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--explore") {
        let address = args.get(at + 1).cloned().unwrap_or_else(|| "127.0.0.1:3000".to_string());
        let name = args.get(at + 2).cloned().unwrap_or_else(|| CONFIGS[0].name.to_string());
        let config = CONFIGS.iter().chain([&LARGE]).find(|c| c.name == name).expect("a configuration of that name");
        println!("exploring {} at http://{address}/", config.name);
        Iip::new(config.setup).checker().threads(2).serve(address);
        return;
    }
    let mut failures = spec_ties();
    let large = args.iter().any(|a| a == "--large");
    for config in CONFIGS.iter().chain(large.then_some(&LARGE)) {
        failures.extend(check(config));
    }
    failures.extend(DEFECTS.iter().filter_map(catch));
    if failures.is_empty() {
        println!("model_check: every property holds, every path replays, every planted defect is caught");
        return;
    }
    for failure in &failures {
        eprintln!("FAILED {failure}\n");
    }
    std::process::exit(1);
}
