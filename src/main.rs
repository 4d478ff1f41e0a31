//! The `iip` command: serve, call, bench and check IIP/1 servers.

fn main() {
    println!("iip {}", env!("CARGO_PKG_VERSION"));
}
