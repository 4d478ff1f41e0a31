//! Listing the data files the crate reads: spec chapters and vector files.

use std::path::{Path, PathBuf};

/// Every file directly in `dir` whose name ends in `.ext`, sorted by path.
pub(crate) fn files_with_extension(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
