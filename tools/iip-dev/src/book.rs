//! The book's generated parts: links from every `[ID]` to the requirement
//! it names, annotated hex examples (an mdBook preprocessor, `iip-dev
//! book-preprocess`), and the figures drawn from the spec's own tables and
//! vectors (`spec/figures/*.svg`, checked for staleness by `tests/book.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use iip::conformance::session::{Case, CloseExpect, ExpectFrame, Step};
use iip::conformance::spec::Table;
use iip::conformance::vector::{parse_hex, Blob};
use iip::wire::decode::FrameDecoder;
use iip::wire::frame::FrameLimits;

/// Whether `text` starts with a requirement id (`CHAN-6`); its length.
fn id_at(text: &str) -> Option<usize> {
    let letters = text.bytes().take_while(u8::is_ascii_uppercase).count();
    let rest = text.as_bytes().get(letters..)?;
    if letters == 0 || rest.first() != Some(&b'-') {
        return None;
    }
    let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then_some(letters + 1 + digits)
}

/// The requirement ids defined (`**[ID]**`) in `content`.
pub fn defined_ids(content: &str) -> Vec<String> {
    content
        .match_indices("**[")
        .filter_map(|(at, _)| {
            let rest = &content[at + 3..];
            let len = id_at(rest)?;
            rest[len..].starts_with("]**").then(|| rest[..len].to_string())
        })
        .collect()
}

/// The path from the folder of chapter `from` to chapter `to` (both
/// relative to the book's source folder).
fn relative(from: &Path, to: &Path) -> String {
    let depth = from.parent().map_or(0, |p| p.components().filter(|c| matches!(c, Component::Normal(_))).count());
    let mut path = PathBuf::new();
    for _ in 0..depth {
        path.push("..");
    }
    path.push(to);
    path.to_string_lossy().replace('\\', "/")
}

/// `content` of chapter `chapter` with every requirement definition made
/// an anchor and every `[ID]` reference a link to it (`where` maps each id
/// to the chapter defining it); code spans and blocks are left alone. Also
/// returns the ids referred to that no chapter defines.
pub fn link_requirements(content: &str, chapter: &Path, defined: &BTreeMap<String, PathBuf>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(content.len() + content.len() / 4);
    let mut unknown = Vec::new();
    let mut fenced = false;
    for line in content.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || line.trim_start().starts_with("```") {
            out.push_str(line);
            continue;
        }
        let mut in_code = false;
        let mut i = 0;
        while i < line.len() {
            let rest = &line[i..];
            if rest.starts_with('`') {
                in_code = !in_code;
            }
            let definition =
                rest.starts_with("**[") && id_at(&rest[3..]).is_some_and(|n| rest[3 + n..].starts_with("]**"));
            if !in_code && definition {
                let id = &rest[3..3 + id_at(&rest[3..]).unwrap_or(0)];
                let _ = write!(out, "<a id=\"{id}\"></a>");
                out.push_str("**[");
                i += 3;
                continue;
            }
            let after_star = out.ends_with("**[") || out.ends_with("<a id=\"");
            if !in_code && rest.starts_with('[') && !after_star && !out.ends_with('\\') {
                if let Some(n) = id_at(&rest[1..]) {
                    let id = &rest[1..1 + n];
                    let tail = &rest[1 + n..];
                    let definition_line = tail[1..].starts_with(':') && line[..i].trim().is_empty();
                    if tail.starts_with(']') && !tail[1..].starts_with('(') && !definition_line {
                        match defined.get(id) {
                            Some(target) if target == chapter => {
                                let _ = write!(out, "[\\[{id}\\]](#{id})");
                            }
                            Some(target) => {
                                let _ = write!(out, "[\\[{id}\\]]({}#{id})", relative(chapter, target));
                            }
                            None => {
                                unknown.push(id.to_string());
                                out.push_str(&rest[..n + 2]);
                            }
                        }
                        i += n + 2;
                        continue;
                    }
                }
            }
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    (out, unknown)
}

/// A field-by-field table of the frames in `hex` (the bytes of a vector),
/// or `None` when they are not whole frames.
pub fn annotate_hex(hex: &str) -> Option<String> {
    let bytes = parse_hex(hex).ok()?;
    let mut decoder = FrameDecoder::new(FrameLimits::default());
    let mut buffer = bytes::BytesMut::from(&bytes[..]);
    let mut out = String::from("\n| bytes | field | value |\n|---|---|---|\n");
    let mut offset = 0usize;
    let hex_of = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ");
    let shorten = |text: String| {
        if text.chars().count() > 40 {
            format!("{}… ({} bytes)", text.chars().take(32).collect::<String>(), text.len())
        } else {
            text
        }
    };
    while !buffer.is_empty() {
        let frame = decoder.decode(&mut buffer).ok()??;
        let path_end = offset + 1 + frame.path.len();
        let spans = [
            (offset, offset + 1, "status", format!("{} ({:?})", frame.status.byte(), frame.status)),
            (offset + 1, path_end, "path", format!("`{}`", String::from_utf8_lossy(&frame.path))),
            (path_end, path_end + 1, "NUL", "end of path".to_string()),
            (path_end + 1, path_end + 5, "channel", frame.channel.to_string()),
            (path_end + 5, path_end + 9, "data length", frame.data.len().to_string()),
            (
                path_end + 9,
                path_end + 9 + frame.data.len(),
                "data",
                format!("`{}`", String::from_utf8_lossy(&frame.data)),
            ),
        ];
        for (from, to, field, value) in spans {
            if from == to {
                continue;
            }
            let _ = writeln!(out, "| `{}` | {field} | {} |", shorten(hex_of(&bytes[from..to])), shorten(value));
        }
        offset = path_end + 9 + frame.data.len();
    }
    Some(out)
}

/// Runs the mdBook preprocessor protocol on `input` (`[context, book]` as
/// JSON): links requirement ids and annotates the hex examples of every
/// chapter. Returns the book as JSON.
pub fn preprocess(input: &str) -> Result<String, String> {
    let parsed: serde_json::Value = serde_json::from_str(input).map_err(|e| format!("not mdBook's input: {e}"))?;
    let mut book = parsed.get(1).cloned().ok_or("no book in mdBook's input")?;
    let mut defined = BTreeMap::new();
    visit_chapters(&mut book, &mut |path, content| {
        for id in defined_ids(content) {
            defined.insert(id, path.to_path_buf());
        }
    });
    visit_chapters(&mut book, &mut |path, content| {
        let (linked, _) = link_requirements(content, path, &defined);
        let mut annotated = annotate_hex_blocks(&linked);
        if let Some(footer) = identifier_footer(content) {
            annotated.push_str(&footer);
        }
        *content = annotated;
    });
    serde_json::to_string(&book).map_err(|e| e.to_string())
}

/// The identifiers that appear only inside longer code spans of `content`
/// (`delete_channel` in `` `/sys/delete_channel` ``), as a footer line, so
/// that the book's search, which cuts words at white space alone, finds
/// them; `None` when there are none.
pub fn identifier_footer(content: &str) -> Option<String> {
    let mut found = std::collections::BTreeSet::new();
    for (i, span) in content.split('`').enumerate() {
        if i % 2 == 0 || span.contains('\n') {
            continue;
        }
        let parts: Vec<&str> = span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
        for part in parts {
            let identifier = part.contains('_')
                && part != span
                && part.starts_with(|c: char| c.is_ascii_lowercase())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if identifier {
                found.insert(part.to_string());
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    let list: Vec<String> = found.into_iter().map(|id| format!("`{id}`")).collect();
    Some(format!("\n\n---\n\n*Identifiers on this page:* {}\n", list.join(", ")))
}

/// Adds a field table after each ```` ```hex ```` block.
fn annotate_hex_blocks(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut hex: Option<String> = None;
    for line in content.split_inclusive('\n') {
        out.push_str(line);
        match (&mut hex, line.trim()) {
            (None, "```hex") => hex = Some(String::new()),
            (Some(block), "```") => {
                if let Some(table) = annotate_hex(block) {
                    out.push_str(&table);
                }
                hex = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push(' ');
            }
            _ => {}
        }
    }
    out
}

fn visit_chapters(node: &mut serde_json::Value, visit: &mut dyn FnMut(&Path, &mut String)) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(chapter) = map.get_mut("Chapter") {
                let path = chapter.get("path").and_then(|p| p.as_str()).map(PathBuf::from);
                if let (Some(path), Some(serde_json::Value::String(content))) = (path, chapter.get_mut("content")) {
                    visit(&path, content);
                }
            }
            for value in map.values_mut() {
                visit_chapters(value, visit);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| visit_chapters(item, visit)),
        _ => {}
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const SVG_STYLE: &str = "<style>text{font-family:sans-serif;font-size:13px;fill:#222}\
.box{fill:#eef4ff;stroke:#3367d6;stroke-width:1.5}.edge{fill:none;stroke:#555;stroke-width:1.3}\
.label{font-size:12px;fill:#333}.mono{font-family:monospace;font-size:12px}</style>\
<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>";

/// A state diagram of the transitions of `table`: the states named in its
/// `from` and `to` columns, an arrow per row labelled by its `event`
/// column. States are laid out in order of first appearance.
pub fn state_diagram(title: &str, table: &Table, from: usize, event: usize, to: usize) -> String {
    let clean = |s: &str| s.trim_matches('`').to_string();
    let mut states: Vec<String> = Vec::new();
    for row in &table.rows {
        for state in [clean(&row[from]), clean(&row[to])] {
            if !states.contains(&state) {
                states.push(state);
            }
        }
    }
    let x = |i: usize| 90 + i as i64 * 300;
    let (box_w, box_h, base_y) = (120i64, 40i64, 200i64);
    let width = x(states.len().saturating_sub(1)) + 150;
    let mut svg = String::new();
    let mut drawn: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    // The highest and lowest points drawn, to size the figure.
    let (mut lo, mut hi) = (base_y - box_h, base_y + box_h);
    for row in &table.rows {
        let (a, b) = (
            states.iter().position(|s| *s == clean(&row[from])).unwrap_or(0),
            states.iter().position(|s| *s == clean(&row[to])).unwrap_or(0),
        );
        let label = escape(&clean(&row[event]));
        let nth = drawn.entry((a, b)).or_insert(0);
        *nth += 1;
        let lift = 34 * *nth;
        if a == b {
            let cx = x(a);
            // Loops stack above their state.
            let y1 = base_y - box_h / 2;
            let y2 = y1 - 8 - lift;
            lo = lo.min(y2 - 16);
            let _ = write!(
                svg,
                "<path class=\"edge\" marker-end=\"url(#arrow)\" d=\"M{} {y1} C{} {y2} {} {y2} {} {y1}\"/>\
                 <text class=\"label\" x=\"{cx}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                cx - 30,
                cx - 60,
                cx + 60,
                cx + 30,
                y2 - 2,
            );
        } else {
            let above = b > a;
            let (x1, x2) = if above {
                (x(a) + box_w / 2, x(b) - box_w / 2)
            } else {
                (x(a) - box_w / 2 + 20, x(b) + box_w / 2 - 20)
            };
            // Forward arcs above, backward ones below; longer spans bend further.
            let span = a.abs_diff(b) as i64;
            let (y, bend) =
                if above { (base_y - 8, base_y - 40 - lift) } else { (base_y + 8, base_y - 58 + 60 * span + 2 * lift) };
            let mid = (x1 + x2) / 2;
            let label_y = if above { (y + bend) / 2 - 4 } else { (y + bend) / 2 + 14 };
            lo = lo.min(label_y - 14);
            hi = hi.max(label_y + 6);
            let _ = write!(
                svg,
                "<path class=\"edge\" marker-end=\"url(#arrow)\" d=\"M{x1} {y} Q{mid} {bend} {x2} {y}\"/>\
                 <text class=\"label\" x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                label_y,
            );
        }
    }
    for (i, state) in states.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect class=\"box\" x=\"{}\" y=\"{}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"12\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
            x(i) - box_w / 2,
            base_y - box_h / 2,
            x(i),
            base_y + 5,
            escape(state)
        );
    }
    let (top, height) = (lo - 36, hi - lo + 46);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 {top} {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">{SVG_STYLE}\
         <text x=\"10\" y=\"{}\" font-weight=\"bold\">{}</text>{svg}</svg>\n",
        escape(title),
        top + 20,
        escape(title)
    )
}

fn blob_text(blob: &Blob) -> String {
    match blob {
        Blob::Text(text) if text.chars().count() > 24 => format!("\"{}…\"", text.chars().take(20).collect::<String>()),
        Blob::Text(text) => format!("\"{text}\""),
        Blob::Fill { count, .. } => format!("{count} bytes"),
        other => format!("{} bytes", other.to_bytes().map(|b| b.len()).unwrap_or(0)),
    }
}

fn expect_text(frame: &ExpectFrame) -> String {
    let mut parts = vec![format!("status {}", frame.status.map_or("?".into(), |s| s.to_string()))];
    if let Some(channel) = frame.channel {
        parts.push(format!("ch {channel}"));
    }
    if let Some(path) = &frame.path {
        parts.push(blob_text(path).trim_matches('"').to_string());
    }
    if let Some(data) = &frame.data {
        parts.push(blob_text(data));
    }
    if let Some(json) = &frame.json {
        parts.push(json.to_string().replace('\n', ", ").trim_end_matches(", ").to_string());
    }
    if let Some(code) = frame.code {
        parts.push(format!("code {code}"));
    }
    if let Some(id) = &frame.cites {
        parts.push(format!("[{id}]"));
    }
    parts.join(" · ")
}

/// A sequence diagram of a conformance case: the client's frames to the
/// server and what the server answers, one arrow a step.
pub fn sequence_diagram(title: &str, case: &Case) -> String {
    let arrows: Vec<(bool, String)> = case
        .steps
        .iter()
        .filter_map(|step: &Step| {
            let times = step.repeat.map(|n| format!(" ×{n}")).unwrap_or_default();
            if let Some(frame) = &step.send {
                let mut text = format!(
                    "status {} · ch {} · {}",
                    frame.status,
                    frame.channel,
                    blob_text(&frame.path).trim_matches('"')
                );
                if !matches!(&frame.data, Blob::Text(t) if t.is_empty()) {
                    text.push_str(&format!(" · {}", blob_text(&frame.data)));
                }
                return Some((true, text + &times));
            }
            if step.send_raw.is_some() {
                return Some((true, "raw bytes".into()));
            }
            if let Some(frame) = &step.expect {
                return Some((false, expect_text(frame) + &times));
            }
            if let Some(message) = &step.expect_message {
                return Some((
                    false,
                    format!("whole message on ch {} · {}", message.channel, blob_text(&message.body)),
                ));
            }
            step.expect_close.map(|how| {
                let text = match how {
                    CloseExpect::WithFrame => "close frame, then the connection closes",
                    _ => "the connection closes",
                };
                (false, text.to_string())
            })
        })
        .collect();
    let (left, right, top, step_h) = (110i64, 610i64, 70i64, 44i64);
    let height = top + step_h * arrows.len() as i64 + 30;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 720 {height}\" width=\"720\" height=\"{height}\" role=\"img\" aria-label=\"{}\">{SVG_STYLE}\
         <text x=\"10\" y=\"22\" font-weight=\"bold\">{}</text>\
         <rect class=\"box\" x=\"{}\" y=\"32\" width=\"100\" height=\"26\" rx=\"6\"/><text x=\"{left}\" y=\"50\" text-anchor=\"middle\">client</text>\
         <rect class=\"box\" x=\"{}\" y=\"32\" width=\"100\" height=\"26\" rx=\"6\"/><text x=\"{right}\" y=\"50\" text-anchor=\"middle\">server</text>\
         <line x1=\"{left}\" y1=\"58\" x2=\"{left}\" y2=\"{}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>\
         <line x1=\"{right}\" y1=\"58\" x2=\"{right}\" y2=\"{}\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>",
        escape(title),
        escape(title),
        left - 50,
        right - 50,
        height - 10,
        height - 10,
    );
    for (i, (to_server, text)) in arrows.iter().enumerate() {
        let y = top + 26 + step_h * i as i64;
        let (x1, x2) = if *to_server { (left, right) } else { (right, left) };
        let _ = write!(
            svg,
            "<line class=\"edge\" marker-end=\"url(#arrow)\" x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>\
             <text class=\"mono\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            (left + right) / 2,
            y - 6,
            escape(text)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Every generated figure: its file name under `spec/figures/` and its SVG.
/// `tables` gives the spec's chapters by file name, `case` finds a shipped
/// conformance case by `chapter::name`.
pub fn figures(
    chapter: &dyn Fn(&str) -> Option<String>,
    case: &dyn Fn(&str) -> Option<Case>,
) -> Result<Vec<(String, String)>, String> {
    let table = |file: &str, name: &str| -> Result<Table, String> {
        let text = chapter(file).ok_or(format!("no chapter {file}"))?;
        iip::conformance::spec::table(&text, name).map_err(|e| e.to_string())
    };
    let mut out = vec![
        (
            "channel-lifecycle.svg".to_string(),
            state_diagram(
                "Channel life cycle (server side), from §6.1",
                &table("06-channels.md", "channel-lifecycle")?,
                0,
                1,
                2,
            ),
        ),
        (
            "message-states.svg".to_string(),
            state_diagram(
                "Message states of one channel and direction, from §7.1",
                &table("07-messages.md", "message-transitions")?,
                0,
                1,
                2,
            ),
        ),
    ];
    for (file, id, title) in SEQUENCES {
        let found = case(id).ok_or(format!("no case {id}"))?;
        out.push((file.to_string(), sequence_diagram(title, &found)));
    }
    Ok(out)
}

/// The sequence diagrams of the book: figure file, case, title.
pub const SEQUENCES: [(&str, &str, &str); 5] = [
    ("sequence-open.svg", "06-channels::use-granted-channel", "Opening a channel and using it"),
    ("sequence-pipelined.svg", "08-ordering::pipelined-mixed-answers-in-order", "Pipelined requests on one channel"),
    ("sequence-chunked.svg", "07-messages::chunked-request-two-frames", "A chunked request"),
    ("sequence-delete.svg", "06-channels::delete-after-pipelined-answers", "Deleting a channel"),
    ("sequence-close.svg", "11-close::request-before-close-answered", "Closing by the client"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_anchors_and_links() {
        let defined = BTreeMap::from([
            ("CHAN-6".to_string(), PathBuf::from("06-channels.md")),
            ("CLOSE-4".to_string(), PathBuf::from("11-close.md")),
        ]);
        let text = "- **[CHAN-6]** closes ([CLOSE-4]); see `[CHAN-6]` and [CHAN-99].\n```\n[CHAN-6]\n```\n";
        let (out, unknown) = link_requirements(text, Path::new("06-channels.md"), &defined);
        assert_eq!(
            out,
            "- <a id=\"CHAN-6\"></a>**[CHAN-6]** closes ([\\[CLOSE-4\\]](11-close.md#CLOSE-4)); see `[CHAN-6]` and [CHAN-99].\n```\n[CHAN-6]\n```\n"
        );
        assert_eq!(unknown, vec!["CHAN-99".to_string()]);
        let (out, _) = link_requirements("see [CHAN-6]", Path::new("guide/handlers.md"), &defined);
        assert_eq!(out, "see [\\[CHAN-6\\]](../06-channels.md#CHAN-6)");
    }

    #[test]
    fn long_text_is_shortened_on_character_boundaries() {
        let data: String = "é".repeat(50);
        let hex: String = format!(
            "01 2f 00 00000000 {:08x} {}",
            data.len(),
            data.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let table = annotate_hex(&hex).unwrap();
        assert!(table.contains("ééé… (102 bytes)"), "{table}");
        assert!(blob_text(&Blob::Text("ü".repeat(30))).ends_with("…\""));
    }

    #[test]
    fn identifiers_inside_paths_are_listed_for_search() {
        let footer = identifier_footer("send `/sys/delete_channel` and `time_unit`, or `{\"channel_id\":1}`").unwrap();
        assert!(footer.contains("`delete_channel`") && footer.contains("`channel_id`"), "{footer}");
        assert!(!footer.contains("`time_unit`"), "a whole code span is searchable already: {footer}");
        assert_eq!(identifier_footer("nothing `here`"), None);
    }

    #[test]
    fn hex_examples_are_annotated_field_by_field() {
        let table = annotate_hex("01 2f 65 00 00000002 00000001 78").unwrap();
        assert!(table.contains("| `01` | status | 1 (RequestWhole) |"), "{table}");
        assert!(table.contains("| `00 00 00 02` | channel | 2 |"), "{table}");
        assert!(table.contains("| `78` | data | `x` |"), "{table}");
    }
}
