//! Where the data files the crate reads come from: spec chapters and vector
//! files, either on disk (a checkout, a user's `--vectors DIR`) or embedded
//! in the crate at build time (what an installed `iip` binary uses).

use std::io;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// A folder of data files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataDir {
    /// A folder on disk.
    Disk(PathBuf),
    /// A folder of the crate as embedded at build time, e.g. `spec` or
    /// `vectors/sessions`.
    Embedded(String),
}

impl DataDir {
    /// The embedded folder `path` (relative to the crate root).
    pub fn embedded(path: &str) -> DataDir {
        DataDir::Embedded(path.trim_end_matches('/').to_string())
    }

    /// A sub-folder.
    pub fn join(&self, sub: &str) -> DataDir {
        match self {
            DataDir::Disk(dir) => DataDir::Disk(dir.join(sub)),
            DataDir::Embedded(dir) => DataDir::Embedded(format!("{dir}/{sub}")),
        }
    }

    /// Every file directly in this folder whose name ends in `.ext`, with
    /// its bytes, sorted by path.
    pub fn files(&self, ext: &str) -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
        match self {
            DataDir::Disk(dir) => {
                files_with_extension(dir, ext)?.into_iter().map(|p| Ok((p.clone(), std::fs::read(&p)?))).collect()
            }
            DataDir::Embedded(dir) => {
                let prefix = format!("{dir}/");
                let files: Vec<(PathBuf, Vec<u8>)> = embedded::FILES
                    .iter()
                    .filter(|(path, _)| {
                        path.strip_prefix(&prefix)
                            .is_some_and(|name| !name.contains('/') && name.ends_with(&format!(".{ext}")))
                    })
                    .map(|(path, bytes)| (PathBuf::from(path), bytes.to_vec()))
                    .collect();
                if files.is_empty() && !embedded::FILES.iter().any(|(path, _)| path.starts_with(&prefix)) {
                    return Err(io::Error::new(io::ErrorKind::NotFound, format!("no embedded folder {dir}")));
                }
                Ok(files)
            }
        }
    }

    /// The bytes of one file of this folder.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        match self {
            DataDir::Disk(dir) => std::fs::read(dir.join(name)),
            DataDir::Embedded(dir) => {
                let path = format!("{dir}/{name}");
                embedded::FILES
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, bytes)| bytes.to_vec())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no embedded file {path}")))
            }
        }
    }
}

impl std::fmt::Display for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataDir::Disk(dir) => write!(f, "{}", dir.display()),
            DataDir::Embedded(dir) => write!(f, "{dir} (embedded)"),
        }
    }
}

impl From<&Path> for DataDir {
    fn from(dir: &Path) -> DataDir {
        DataDir::Disk(dir.to_path_buf())
    }
}

impl From<&PathBuf> for DataDir {
    fn from(dir: &PathBuf) -> DataDir {
        DataDir::Disk(dir.clone())
    }
}

impl From<PathBuf> for DataDir {
    fn from(dir: PathBuf) -> DataDir {
        DataDir::Disk(dir)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_are_the_files_on_disk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["spec", "vectors/sessions", "vectors/client-sessions", "vectors/frames"] {
            for ext in ["md", "toml", "bin"] {
                let disk = DataDir::Disk(root.join(dir)).files(ext).unwrap();
                let embedded = DataDir::embedded(dir).files(ext).unwrap();
                let names = |files: &[(PathBuf, Vec<u8>)]| {
                    files.iter().map(|(p, b)| (p.file_name().unwrap().to_owned(), b.clone())).collect::<Vec<_>>()
                };
                assert_eq!(names(&disk), names(&embedded), "{dir}/*.{ext}");
            }
        }
        assert!(DataDir::embedded("nowhere").files("md").is_err());
    }
}
