//! The key hash of `Strategy::Hash` is the book's: the vectors of the
//! *Load balancing* chapter, read from its table, are what
//! `rendezvous_score` gives, and the winners the chapter names win.

use std::path::PathBuf;

use iip::client::rendezvous_score;
use iip::conformance::spec::table;

fn vectors() -> Vec<(String, String, u64)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/guide/load-balancing.md");
    let t = table(&std::fs::read_to_string(path).unwrap(), "rendezvous-vectors").unwrap();
    assert_eq!(t.header, ["key", "address", "score"]);
    t.rows
        .iter()
        .map(|row| (row[0].clone(), row[1].clone(), u64::from_str_radix(&row[2], 16).expect("a hex score")))
        .collect()
}

#[test]
fn the_books_vectors_are_the_functions_scores() {
    let vectors = vectors();
    assert!(vectors.len() >= 6);
    for (key, address, score) in vectors {
        assert_eq!(rendezvous_score(key.as_bytes(), &address), score, "{key} at {address}");
    }
}

fn winner<'a>(key: &str, servers: &[&'a str]) -> &'a str {
    servers.iter().rev().max_by_key(|s| rendezvous_score(key.as_bytes(), s)).copied().unwrap()
}

#[test]
fn the_winners_the_book_names_win_and_only_a_lost_servers_keys_move() {
    let all = ["10.0.0.1:9090", "10.0.0.2:9090", "10.0.0.3:9090"];
    assert_eq!(winner("user-42", &all), "10.0.0.1:9090");
    assert_eq!(winner("session-1", &all), "10.0.0.3:9090");
    let without_first = &all[1..];
    assert_eq!(winner("user-42", without_first), "10.0.0.2:9090");
    assert_eq!(winner("session-1", without_first), "10.0.0.3:9090");
    // Of 1,000 keys, only those the lost server served move.
    for i in 0..1000 {
        let key = format!("key-{i}");
        let before = winner(&key, &all);
        if before != all[0] {
            assert_eq!(winner(&key, without_first), before, "{key} moved");
        }
    }
}
