//! Source files of a stack and byte spans into them.
//!
//! Every value decoded from KDL keeps a [`Span`], so any later stage (validation, graph, policy)
//! can point a diagnostic at the exact token that caused it.

use serde::{Deserialize, Serialize};

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
    /// Which `use` of a template produced the text (`crate::template`): 0 for text written
    /// where it stands, else the expansion's number. Two uses of one template thereby make
    /// distinct spans over the same template text, and a diagnostic in an expansion is traced
    /// back to its use site.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expansion: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
            expansion: 0,
        }
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// One file of a stack: its path relative to the stack root (always `/`-separated) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
    /// Where each line starts, found when a position is first asked for: most analyses
    /// report nothing, and a large stack's files are megabytes.
    line_starts: std::sync::OnceLock<Vec<usize>>,
}

/// A 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
            line_starts: std::sync::OnceLock::new(),
        }
    }

    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            // A line ends at `\n`, `\r\n` or a lone `\r`, as in KDL and in editors.
            let bytes = self.text.as_bytes();
            let mut starts = vec![0];
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                    starts.push(i + 1);
                }
            }
            starts
        })
    }

    /// Line and column of a byte offset; offsets past the end clamp to the end.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts().binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts()[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        LineCol {
            line: line + 1,
            column,
        }
    }

    /// The text of a 1-based line without its line ending.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts().get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self.line_starts().get(line).map_or(self.text.len(), |&e| e);
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// Byte offset where a 1-based line starts.
    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts()
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(self.text.len())
    }

    pub fn line_count(&self) -> usize {
        self.line_starts().len()
    }

    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }
}

/// All files of a stack, addressed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
    /// Prefix for displayed paths (the stack directory as the user named it), so locations in
    /// diagnostics open from where the command ran.
    display_root: String,
}

impl Sources {
    pub fn new() -> Sources {
        Sources::default()
    }

    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn total_bytes(&self) -> usize {
        self.files.iter().map(|f| f.text.len()).sum()
    }

    pub fn set_display_root(&mut self, root: &str) {
        self.display_root = root.trim_end_matches('/').to_string();
    }

    /// The path shown to users: the display root joined with the file's stack-relative path.
    pub fn display_path(&self, id: FileId) -> String {
        let path = &self.get(id).path;
        if self.display_root.is_empty() {
            path.clone()
        } else {
            format!("{}/{path}", self.display_root)
        }
    }

    /// `path:line:column` of a span's start.
    pub fn location(&self, span: Span) -> String {
        let lc = self.get(span.file).line_col(span.start as usize);
        format!("{}:{}:{}", self.display_path(span.file), lc.line, lc.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let f = SourceFile::new("a.kdl", "é x\nsecond\n");
        assert_eq!(f.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(f.line_col(3), LineCol { line: 1, column: 3 });
        assert_eq!(f.line_col(5), LineCol { line: 2, column: 1 });
        assert_eq!(f.line_text(2), "second");
        assert_eq!(f.line_col(10_000), LineCol { line: 3, column: 1 });
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line_and_crlf_ends_one() {
        let f = SourceFile::new("a.kdl", "a\rb\r\nc\nd");
        assert_eq!(f.line_count(), 4);
        assert_eq!(f.line_col(2), LineCol { line: 2, column: 1 });
        assert_eq!(f.line_text(2), "b");
        assert_eq!(f.line_col(5), LineCol { line: 3, column: 1 });
        assert_eq!(f.line_text(3), "c");
        assert_eq!(f.line_text(4), "d");
    }
}
