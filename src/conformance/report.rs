//! Results of a conformance run, as text for people (grouped by chapter,
//! closing with `N passed, N failed`), JSON, and JUnit XML for CI systems.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::conformance::spec::Requirement;

use super::run::Failure;
use super::session::NamedCase;

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The server did what the case expects.
    Passed,
    /// It did not.
    Failed(Failure),
    /// It did not, in a way the declared peer's Appendix A entries
    /// document: reported, but not a failure of the run.
    Deviation {
        /// The entries that excuse it.
        compat: Vec<String>,
        /// What happened.
        failure: Failure,
    },
    /// The case was not run, for this reason.
    Skipped(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: NamedCase,
    /// Its verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
}

/// The text that explains a failure: each requirement with its text, then
/// the step that broke.
pub fn explain(case: &NamedCase, failure: &Failure, requirements: &BTreeMap<String, Requirement>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({}): {}", case.id, case.case.level.name(), case.case.description);
    for id in &case.case.requirements {
        match requirements.get(id) {
            Some(req) => {
                let _ = writeln!(out, "  [{id}] {}", req.text);
            }
            None => {
                let _ = writeln!(out, "  [{id}] (not in the spec)");
            }
        }
    }
    let _ = write!(out, "  {}", failure.to_string().replace('\n', "\n  "));
    out
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Cases passed.
    pub passed: usize,
    /// Cases failed.
    pub failed: usize,
    /// Cases failed in a way the declared peer's Appendix A entries excuse.
    pub deviations: usize,
    /// Cases skipped.
    pub skipped: usize,
}

impl std::fmt::Display for Totals {
    /// `N passed, N failed, N deviations, N skipped`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} deviations, {} skipped",
            self.passed, self.failed, self.deviations, self.skipped
        )
    }
}

/// Counts the verdicts.
pub fn totals(results: &[CaseResult]) -> Totals {
    let mut t = Totals::default();
    for r in results {
        match r.verdict {
            Verdict::Passed => t.passed += 1,
            Verdict::Failed(_) => t.failed += 1,
            Verdict::Deviation { .. } => t.deviations += 1,
            Verdict::Skipped(_) => t.skipped += 1,
        }
    }
    t
}

/// Terminal colours for the human report; [`Style::plain`] for files and pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// No escape codes.
    pub fn plain() -> Style {
        Style { colour: false }
    }

    /// ANSI colours.
    pub fn coloured() -> Style {
        Style { colour: true }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The mark, and the explanation lines, of one result.
fn describe(r: &CaseResult, requirements: &BTreeMap<String, Requirement>, style: Style) -> (String, Option<String>) {
    match &r.verdict {
        Verdict::Passed => (style.paint("32", "  ok  "), None),
        Verdict::Failed(f) => {
            (style.paint("1;31", "  FAIL"), Some(format!("{}\n{}", explain(&r.case, f, requirements), f.transcript())))
        }
        Verdict::Deviation { compat, failure } => (
            style.paint("33", "  dev "),
            Some(format!(
                "deviation ({}), excused for the declared peer:\n{}",
                compat.join(", "),
                explain(&r.case, failure, requirements)
            )),
        ),
        Verdict::Skipped(why) => (style.paint("2", "  skip"), Some(format!("skipped: {why}"))),
    }
}

/// The human report: results grouped by chapter, failures listed again at
/// the end with the bytes sent and received, then the totals.
pub fn text_report(results: &[CaseResult], requirements: &BTreeMap<String, Requirement>, style: Style) -> String {
    let mut out = String::new();
    let mut chapter = "";
    for r in results {
        if r.case.chapter != chapter {
            chapter = &r.case.chapter;
            let _ = writeln!(out, "\n{}", style.paint("1", chapter));
        }
        let (mark, more) = describe(r, requirements, style);
        let _ = writeln!(
            out,
            "{mark} {} [{}] ({})",
            r.case.id,
            r.case.case.requirements.join(", "),
            r.case.case.level.name()
        );
        if let Some(more) = more.filter(|_| !matches!(r.verdict, Verdict::Failed(_))) {
            let _ = writeln!(out, "      {}", more.trim_end().replace('\n', "\n      "));
        }
    }
    let failed: Vec<&CaseResult> = results.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_))).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\n{}", style.paint("1;31", &format!("{} failure(s):", failed.len())));
        for r in failed {
            let (_, more) = describe(r, requirements, style);
            let _ = writeln!(out, "\n{}", more.unwrap_or_default().trim_end());
        }
    }
    let _ = writeln!(out, "\n{}", totals(results));
    out
}

#[derive(Serialize)]
struct JsonCase<'a> {
    id: &'a str,
    chapter: &'a str,
    level: &'a str,
    requirements: &'a [String],
    verdict: &'a str,
    excused_by: Option<&'a [String]>,
    step: Option<usize>,
    expected: Option<&'a str>,
    actual: Option<&'a str>,
    transcript: Option<String>,
    skipped: Option<&'a str>,
    elapsed_ms: u128,
}

/// The machine-readable report.
pub fn json_report(results: &[CaseResult]) -> String {
    let cases: Vec<JsonCase> = results
        .iter()
        .map(|r| {
            let (verdict, failure, skipped, excused) = match &r.verdict {
                Verdict::Passed => ("passed", None, None, None),
                Verdict::Failed(f) => ("failed", Some(f), None, None),
                Verdict::Deviation { compat, failure } => ("deviation", Some(failure), None, Some(compat.as_slice())),
                Verdict::Skipped(why) => ("skipped", None, Some(why.as_str()), None),
            };
            JsonCase {
                id: &r.case.id,
                chapter: &r.case.chapter,
                level: r.case.case.level.name(),
                requirements: &r.case.case.requirements,
                verdict,
                excused_by: excused,
                step: failure.map(|f| f.step),
                expected: failure.map(|f| f.expected.as_str()),
                actual: failure.map(|f| f.actual.as_str()),
                transcript: failure.map(Failure::transcript).filter(|t| !t.is_empty()),
                skipped,
                elapsed_ms: r.elapsed.as_millis(),
            }
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "totals": totals(results), "cases": cases })).unwrap_or_default()
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => format!("&#x{:x};", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// The JUnit XML report: one test suite per chapter.
pub fn junit_report(results: &[CaseResult], requirements: &BTreeMap<String, Requirement>) -> String {
    let mut by_chapter: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        by_chapter.entry(&r.case.chapter).or_default().push(r);
    }
    let t = totals(results);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"iip-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        results.len(),
        t.failed,
        t.skipped + t.deviations
    );
    for (chapter, cases) in by_chapter {
        let failures = cases.iter().filter(|r| matches!(r.verdict, Verdict::Failed(_))).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            xml_escape(chapter),
            cases.len()
        );
        for r in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(chapter),
                xml_escape(&r.case.id),
                r.elapsed.as_secs_f64()
            );
            match &r.verdict {
                Verdict::Passed => out.push_str("/>\n"),
                Verdict::Skipped(why) => {
                    let _ = writeln!(out, "><skipped message=\"{}\"/></testcase>", xml_escape(why));
                }
                Verdict::Deviation { compat, .. } => {
                    let why = format!("deviation ({}), excused for the declared peer", compat.join(", "));
                    let _ = writeln!(out, "><skipped message=\"{}\"/></testcase>", xml_escape(&why));
                }
                Verdict::Failed(f) => {
                    let _ = writeln!(
                        out,
                        "><failure message=\"{}\">{}</failure></testcase>",
                        xml_escape(&format!("[{}] step {}", r.case.case.requirements.join(", "), f.step)),
                        xml_escape(&format!("{}\n{}", explain(&r.case, f, requirements), f.transcript()))
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
