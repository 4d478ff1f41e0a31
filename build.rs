//! Embeds the specification's chapters and every vector file into the
//! crate, so that an installed `iip` binary runs the conformance suite from
//! any folder (`iip conformance ADDR`), with no checkout beside it.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&root);
    let mut entries = String::new();
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    // Only the conformance suite reads the embedded files.
    if std::env::var_os("CARGO_FEATURE_CONFORMANCE").is_none() {
        std::fs::write(out, "pub static FILES: &[(&str, &[u8])] = &[];\n").expect("write embedded.rs");
        return;
    }
    for dir in ["spec", "vectors/sessions", "vectors/client-sessions", "vectors/frames"] {
        println!("cargo:rerun-if-changed={dir}");
        let Ok(listing) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut names: Vec<String> = listing
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let path = root.join(dir).join(&name);
            let _ = writeln!(
                entries,
                "    ({:?}, include_bytes!({:?})),",
                format!("{dir}/{name}"),
                path.display().to_string()
            );
        }
    }
    let code = format!(
        "/// Every embedded file: its path inside the crate and its bytes.\npub static FILES: &[(&str, &[u8])] = &[\n{entries}];\n"
    );
    std::fs::write(out, code).expect("write embedded.rs");
}
