//! Every `iip` command line that the README and the book show parses with
//! the command's own argument definitions, so that the documentation
//! cannot drift from the tool.

use std::path::{Path, PathBuf};

use clap::Parser;

use super::args::Cli;

/// The Markdown files a user reads commands in.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut dirs = vec![root.join("spec")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Where a command was written: a whole line of a fenced block, or an
/// inline code span, which may name a command without all it needs
/// (`iip bench --raw`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    Block,
    Span,
}

/// The `iip …` command lines of a Markdown text: lines of fenced blocks
/// (joined across a trailing `\`) and inline code spans that begin with
/// `iip ` and a subcommand or option, each with its line number.
fn command_lines(text: &str) -> Vec<(usize, String, Written)> {
    let mut found = Vec::new();
    let (mut fenced, mut pending): (bool, Option<(usize, String)>) = (false, None);
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            let joined = match pending.take() {
                Some((at, head)) => (at, format!("{head} {trimmed}")),
                None => (n + 1, trimmed.to_string()),
            };
            match joined.1.strip_suffix('\\') {
                Some(head) => pending = Some((joined.0, head.trim_end().to_string())),
                None if is_command(&joined.1) => found.push((joined.0, joined.1, Written::Block)),
                None => {}
            }
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && is_command(span) {
                found.push((n + 1, span.to_string(), Written::Span));
            }
        }
    }
    found
}

/// Whether `text` is an `iip` command: the word `iip`, then a subcommand
/// or an option.
fn is_command(text: &str) -> bool {
    text.strip_prefix("iip ").and_then(|rest| rest.chars().next()).is_some_and(|c| c.is_ascii_lowercase() || c == '-')
}

/// The words of a command line as a shell would pass them, without its
/// comment, a trailing `&`, optional parts in `[…]` and `…` elisions;
/// `None` for a line that is a pattern rather than a command (it names a
/// placeholder such as `ADDR` or `--flag X` in capitals, or elides).
fn words(line: &str) -> Option<Vec<String>> {
    let line = line.split(" #").next().unwrap_or(line).trim().trim_end_matches('&').trim();
    if line.contains('…') || line.contains("...") || line.contains('<') || line.contains('|') {
        return None;
    }
    let mut out = Vec::new();
    let (mut word, mut quote, mut depth) = (String::new(), None, 0usize);
    for c in line.chars() {
        match (quote, c) {
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ' ') => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    let placeholder = |w: &String| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == '-');
    (!out.iter().skip(1).any(placeholder)).then_some(out)
}

#[test]
fn every_documented_iip_command_parses() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (line, command, written) in command_lines(&text) {
            let Some(args) = words(&command) else { continue };
            checked += 1;
            if let Err(err) = Cli::try_parse_from(&args) {
                use clap::error::ErrorKind;
                let kind = err.kind();
                // `iip X --help` and `iip --version` are commands too; a
                // span may leave out what the command needs, not misname it.
                let fragment = written == Written::Span
                    && matches!(
                        kind,
                        ErrorKind::MissingRequiredArgument
                            | ErrorKind::InvalidValue
                            | ErrorKind::MissingSubcommand
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    );
                if !fragment && !matches!(kind, ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    let first = err.to_string().lines().next().unwrap_or_default().to_string();
                    wrong.push(format!("{}:{line}: `{command}`: {first}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "documented commands that `iip` refuses:\n{}", wrong.join("\n"));
    assert!(checked >= 40, "only {checked} documented commands found: is the extraction broken?");
}

#[test]
fn command_lines_are_found_in_blocks_and_spans() {
    let text = "Run `iip serve --listen 127.0.0.1:0` first.\n```sh\niip call 127.0.0.1:9090 /echo \\\n    hello --timeout 2\nnot a command\n```\n";
    let found = command_lines(text);
    assert_eq!(
        found,
        vec![
            (1, "iip serve --listen 127.0.0.1:0".to_string(), Written::Span),
            (3, "iip call 127.0.0.1:9090 /echo hello --timeout 2".to_string(), Written::Block)
        ]
    );
    assert!(!is_command("iip = { version = \"0.1\" }"));
    assert_eq!(
        words("iip serve --listen 0.0.0.0:9443 [--tls-client-ca ca.pem] &  # note"),
        Some(vec!["iip".into(), "serve".into(), "--listen".into(), "0.0.0.0:9443".into()])
    );
    assert_eq!(words("iip attack ADDR"), None);
    assert_eq!(words("iip attack --serve 127.0.0.1:0 --client-cmd 'myclient {addr}'").map(|w| w.len()), Some(6));
}
