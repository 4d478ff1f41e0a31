//! The IIP/1 conformance suite (`cargo test --test conformance`).

fn main() {}
