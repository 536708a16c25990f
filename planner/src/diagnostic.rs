//! Diagnostics: problems found in a stack, each pointing at source, and their rendering in the
//! style of rustc (`error[code]: message`, `--> file:line:col`, source line, `^^^` label, help).

use crate::source::{Sources, Span};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a message printed under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The primary label carries the `-->` location; secondary labels add context.
    pub primary: bool,
    /// The labelled text is masked when the source line is shown (a literal secret must not be
    /// copied into CI logs by the diagnostic that complains about it).
    pub redact: bool,
}

/// One problem in a stack. `code` is a stable kebab-case identifier (see `docs/LANGUAGE.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        let primary = self.labels.is_empty();
        self.labels.push(Label {
            span,
            message: message.into(),
            primary,
            redact: false,
        });
        self
    }

    pub fn with_redacted_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        let primary = self.labels.is_empty();
        self.labels.push(Label {
            span,
            message: message.into(),
            primary,
            redact: true,
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span)
    }
}

/// Sorts diagnostics by file, position and code so output is deterministic regardless of the
/// order in which parallel stages produced them.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| d.primary_span().map(|s| (s.file, s.start));
        key(a)
            .cmp(&key(b))
            .then_with(|| a.code.cmp(b.code))
            .then_with(|| a.message.cmp(&b.message))
    });
}

/// Whether rendered output uses ANSI colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Never,
    Always,
}

struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Renders diagnostics for a terminal or a log, followed by a one-line tally.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, colour: Colour) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&render_one(d, sources, colour));
        out.push('\n');
    }
    out
}

/// `N errors, M warnings` (empty when there is nothing).
pub fn tally(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("1 {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    match (errors, warnings) {
        (0, 0) => String::new(),
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

pub fn render_one(d: &Diagnostic, sources: &Sources, colour: Colour) -> String {
    let style = Style {
        colour: colour == Colour::Always,
    };
    let (word, code) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{} {}",
        style.paint(code, &format!("{word}[{}]", d.code)),
        style.paint("1", ":"),
        style.paint("1", &d.message)
    );

    // Group labels by file, files in order of first appearance; the primary label's file first.
    let mut labels: Vec<&Label> = d.labels.iter().collect();
    labels.sort_by_key(|l| (!l.primary, l.span.file, l.span.start));
    let mut files: Vec<_> = Vec::new();
    for l in &labels {
        if !files.contains(&l.span.file) {
            files.push(l.span.file);
        }
    }
    let gutter_width = labels
        .iter()
        .map(|l| {
            sources
                .get(l.span.file)
                .line_col(l.span.start as usize)
                .line
                .to_string()
                .len()
        })
        .max()
        .unwrap_or(1);
    let pad = " ".repeat(gutter_width);
    let bar = style.paint("1;34", "|");

    for (i, file_id) in files.iter().enumerate() {
        let file = sources.get(*file_id);
        let mut in_file: Vec<&&Label> = labels.iter().filter(|l| l.span.file == *file_id).collect();
        in_file.sort_by_key(|l| l.span.start);
        let first = in_file.iter().find(|l| l.primary).unwrap_or(&in_file[0]);
        let lc = file.line_col(first.span.start as usize);
        let arrow = if i == 0 { "-->" } else { ":::" };
        let _ = writeln!(
            out,
            "{pad}{} {}:{}:{}",
            style.paint("1;34", arrow),
            sources.display_path(*file_id),
            lc.line,
            lc.column
        );
        let _ = writeln!(out, "{pad} {bar}");
        let mut last_line = 0;
        for l in in_file {
            let start = file.line_col(l.span.start as usize);
            // Multi-line spans are underlined on their first line only.
            let line_text = file.line_text(start.line);
            let line_start = file.line_start(start.line);
            let line_end = line_start + line_text.len();
            // A span may start past its line's text: at a line end that is a lone `\r`, which
            // ends a line in KDL but not in `line_starts`.
            let start_byte = (l.span.start as usize).clamp(line_start, line_end);
            let end_byte = (l.span.end as usize).clamp(start_byte, line_end);
            let shown = if l.redact {
                redact_line(line_text, start_byte - line_start, end_byte - line_start)
            } else {
                line_text.to_string()
            };
            // Any credential on the line stays hidden, whichever diagnostic shows the line.
            let shown = mask_secrets(&shown);
            if start.line != last_line {
                if last_line != 0 && start.line > last_line + 1 {
                    let _ = writeln!(out, "{}", style.paint("1;34", "..."));
                }
                let _ = writeln!(
                    out,
                    "{} {bar} {}",
                    style.paint("1;34", &format!("{:>gutter_width$}", start.line)),
                    shown.replace('\t', " ")
                );
                last_line = start.line;
            }
            let prefix_chars = line_text
                .get(
                    ..(l.span.start as usize)
                        .saturating_sub(line_start)
                        .min(line_text.len()),
                )
                .map_or(0, |s| s.chars().count());
            let width = file
                .text
                .get(start_byte..end_byte)
                .map_or(1, |s| {
                    let secret =
                        crate::decode::secrets::literal_looks_secret(s.trim_matches('"')).is_some();
                    if l.redact || secret {
                        4
                    } else {
                        s.chars().count()
                    }
                })
                .max(1);
            let (mark, mark_style) = if l.primary {
                ("^", code)
            } else {
                ("-", "1;34")
            };
            let _ = writeln!(
                out,
                "{pad} {bar} {}{} {}",
                " ".repeat(prefix_chars),
                style.paint(mark_style, &mark.repeat(width)),
                style.paint(mark_style, &l.message)
            );
        }
    }
    if !d.labels.is_empty() && (d.help.is_some() || !d.notes.is_empty()) {
        let _ = writeln!(out, "{pad} {bar}");
    }
    let eq_pad = if d.labels.is_empty() {
        String::new()
    } else {
        format!("{pad} ")
    };
    for note in &d.notes {
        let _ = writeln!(out, "{eq_pad}{} {note}", style.paint("1", "= note:"));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{eq_pad}{} {help}", style.paint("1", "= help:"));
    }
    out
}

/// The line with every quoted string that looks like a credential replaced by `****`.
fn mask_secrets(line: &str) -> String {
    line.split('"')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && crate::decode::secrets::literal_looks_secret(part).is_some() {
                "****"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

fn redact_line(line: &str, start: usize, end: usize) -> String {
    let start = start.min(line.len());
    let end = end.clamp(start, line.len());
    match (line.get(..start), line.get(end..)) {
        (Some(a), Some(b)) => format!("{a}****{b}"),
        _ => "****".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    #[test]
    fn renders_rustc_style_with_label_and_help() {
        let mut sources = Sources::new();
        let f = sources.add(SourceFile::new(
            "platform.kdl",
            "service \"a\" {\n    replica 3\n}\n",
        ));
        let d = Diagnostic::error("unknown-field", "unknown field `replica` in service")
            .with_label(Span::new(f, 18, 25), "unknown field")
            .with_help("did you mean `replicas`?");
        let text = render_one(&d, &sources, Colour::Never);
        assert_eq!(
            text,
            "error[unknown-field]: unknown field `replica` in service\n --> platform.kdl:2:5\n  |\n2 |     replica 3\n  |     ^^^^^^^ unknown field\n  |\n  = help: did you mean `replicas`?\n"
        );
    }

    #[test]
    fn redacted_label_hides_the_secret_text() {
        let mut sources = Sources::new();
        let f = sources.add(SourceFile::new("a.kdl", "env \"K\" \"sk_live_abc\"\n"));
        let d = Diagnostic::error("secret-literal", "x")
            .with_redacted_label(Span::new(f, 8, 21), "here");
        let text = render_one(&d, &sources, Colour::Never);
        assert!(!text.contains("sk_live_abc"), "{text}");
        assert!(text.contains("env \"K\" ****"), "{text}");
    }
}
