//! Reading the normative text in `spec/`: requirement definitions and the
//! tables that tests check the implementation against.
//!
//! A requirement is defined by a line of the form `- **[CHAN-3]** text…`
//! (or a paragraph starting with `**[CHAN-3]**`); anything else that says
//! `[CHAN-3]` merely cites it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The strongest RFC 2119 keyword in a requirement's text (`[CONF-1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Level {
    /// MUST, MUST NOT, REQUIRED, SHALL.
    Must,
    /// SHOULD, SHOULD NOT, RECOMMENDED.
    Should,
    /// MAY, OPTIONAL.
    May,
    /// No keyword: the requirement says what the protocol is (a layout, a
    /// name, a meaning), and the requirements that rely on it bind it.
    Definition,
}

impl Level {
    /// The level as the requirements index writes it: `MUST`, `SHOULD`,
    /// `MAY` or `definition`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
            Level::Definition => "definition",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One requirement of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The id, e.g. `FRAME-3`.
    pub id: String,
    /// The text after the id, up to the end of its paragraph or list item.
    pub text: String,
    /// Its strongest keyword.
    pub level: Level,
    /// The chapter file it is defined in.
    pub chapter: PathBuf,
}

/// An error reading the spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The same id is defined twice.
    #[error("requirement {0} is defined more than once")]
    Duplicate(String),
    /// A table the caller asked for is missing or malformed.
    #[error("table {0}")]
    Table(String),
}

fn level_of(text: &str) -> Level {
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphabetic()).collect();
    if words.iter().any(|w| matches!(*w, "MUST" | "REQUIRED" | "SHALL")) {
        Level::Must
    } else if words.iter().any(|w| matches!(*w, "SHOULD" | "RECOMMENDED")) {
        Level::Should
    } else if words.iter().any(|w| matches!(*w, "MAY" | "OPTIONAL")) {
        Level::May
    } else {
        Level::Definition
    }
}

/// The id defined at the start of `line`, if any, and the text after it.
fn definition(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    let line = line.strip_prefix("- ").unwrap_or(line);
    let rest = line.strip_prefix("**[")?;
    let end = rest.find("]**")?;
    let id = &rest[..end];
    let valid = id.split_once('-').is_some_and(|(prefix, num)| {
        !prefix.is_empty()
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && !num.is_empty()
            && num.bytes().all(|b| b.is_ascii_digit())
    });
    valid.then(|| (id, rest[end + 3..].trim()))
}

/// Every markdown file under `dir`, sorted.
pub fn chapters(dir: &Path) -> Result<Vec<PathBuf>, SpecError> {
    crate::conformance::files::files_with_extension(dir, "md")
        .map_err(|source| SpecError::Io { path: dir.to_path_buf(), source })
}

/// Every requirement defined in the markdown files of `dir` (on disk or
/// embedded, see [`shipped_requirements`]), by id.
pub fn requirements(
    dir: impl Into<crate::conformance::files::DataDir>,
) -> Result<BTreeMap<String, Requirement>, SpecError> {
    let dir = dir.into();
    let mut found = BTreeMap::new();
    let files = dir.files("md").map_err(|source| SpecError::Io { path: PathBuf::from(dir.to_string()), source })?;
    for (chapter, bytes) in files {
        let text = String::from_utf8(bytes).map_err(|e| SpecError::Io {
            path: chapter.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((id, first)) = definition(line) else { continue };
            let mut body = first.to_string();
            for next in &lines[i + 1..] {
                let t = next.trim();
                if t.is_empty()
                    || t.starts_with("- ")
                    || t.starts_with('#')
                    || t.starts_with('|')
                    || definition(next).is_some()
                {
                    break;
                }
                body.push(' ');
                body.push_str(t);
            }
            let req = Requirement { id: id.to_string(), level: level_of(&body), text: body, chapter: chapter.clone() };
            if found.insert(id.to_string(), req).is_some() {
                return Err(SpecError::Duplicate(id.to_string()));
            }
        }
    }
    Ok(found)
}

/// The requirements of the specification embedded in this crate.
pub fn shipped_requirements() -> Result<BTreeMap<String, Requirement>, SpecError> {
    requirements(crate::conformance::files::DataDir::embedded("spec"))
}

/// The set of requirement ids defined in `dir`.
pub fn requirement_ids(dir: &Path) -> Result<std::collections::BTreeSet<String>, SpecError> {
    Ok(requirements(dir)?.into_keys().collect())
}

/// A markdown table: header cells and rows of cells, trimmed, with code
/// ticks removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The header row.
    pub header: Vec<String>,
    /// The body rows.
    pub rows: Vec<Vec<String>>,
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().trim_matches('`').to_string()).collect()
}

/// The first table after the line `<!-- table: NAME -->` in `markdown`.
pub fn table(markdown: &str, name: &str) -> Result<Table, SpecError> {
    let marker = format!("<!-- table: {name} -->");
    let mut lines = markdown.lines().skip_while(|l| l.trim() != marker).skip(1).skip_while(|l| l.trim().is_empty());
    let header = lines
        .next()
        .filter(|l| l.trim_start().starts_with('|'))
        .ok_or_else(|| SpecError::Table(format!("{name}: not found")))?;
    let rule = lines.next().unwrap_or_default();
    if !rule.contains("---") {
        return Err(SpecError::Table(format!("{name}: no header rule")));
    }
    let rows = lines.take_while(|l| l.trim_start().starts_with('|')).map(cells).collect();
    Ok(Table { header: cells(header), rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_levels() {
        assert_eq!(definition("- **[FRAME-3]** A receiver MUST x."), Some(("FRAME-3", "A receiver MUST x.")));
        assert_eq!(definition("see [FRAME-3]"), None);
        assert_eq!(definition("**[frame-3]** no"), None);
        assert_eq!(level_of("peers SHOULD do"), Level::Should);
        assert_eq!(level_of("MUST NOT"), Level::Must);
        assert_eq!(level_of("MUSTARD"), Level::Definition);
        assert_eq!(level_of("a peer MAY send"), Level::May);
    }

    #[test]
    fn tables_are_found_by_marker() {
        let md = "x\n<!-- table: t -->\n\n| a | b |\n|---|---|\n| `1` | 2 |\n\nafter";
        let t = table(md, "t").unwrap();
        assert_eq!(t.header, vec!["a", "b"]);
        assert_eq!(t.rows, vec![vec!["1".to_string(), "2".to_string()]]);
        assert!(table(md, "u").is_err());
    }
}
