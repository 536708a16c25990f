//! Reading a stack: the files of a directory (or handed in from a git tree), parsed and decoded
//! in parallel, merged in sorted path order so results never depend on scheduling.

use crate::decode::{self, Decoded};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, SourceFile, Sources};
use crate::syntax::Node;
use crate::template::{self, Templates};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Syntax trees of files already parsed, keyed by their content, so each distinct file is
/// parsed once: planning a base revision against a head that shares most files, or re-planning
/// after a one-file edit. A hit compares the full text, so a hash collision cannot return the
/// wrong tree. Only files that parse cleanly are kept.
/// A file's text and its syntax tree.
type CachedTree = (Arc<str>, Arc<Vec<Node>>);

#[derive(Default)]
pub struct ParseCache {
    entries: Mutex<HashMap<u64, Vec<CachedTree>>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl ParseCache {
    pub fn new() -> ParseCache {
        ParseCache::default()
    }

    fn key(text: &str) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    }

    fn get(&self, text: &str) -> Option<Arc<Vec<Node>>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries
            .get(&Self::key(text))?
            .iter()
            .find(|(t, _)| &**t == text)
            .map(|(_, n)| n.clone());
        drop(entries);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn put(&self, text: &str, nodes: Arc<Vec<Node>>) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .entry(Self::key(text))
            .or_default()
            .push((Arc::from(text), nodes));
    }

    /// Files held.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (usize, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Drops every entry whose text is not among `keep` (bounded memory for long-running use).
    pub fn retain_texts<'t>(&self, keep: impl IntoIterator<Item = &'t str>) {
        let keep: std::collections::HashSet<&str> = keep.into_iter().collect();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for list in entries.values_mut() {
            list.retain(|(t, _)| keep.contains(&**t));
        }
        entries.retain(|_, list| !list.is_empty());
    }
}

/// One stack file: its path relative to the stack root (`/`-separated) and its contents.
#[derive(Debug, Clone)]
pub struct StackFile {
    pub path: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read stack directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid UTF-8")]
    NotUtf8 { path: String },
}

/// Every `*.kdl` file below `root`, recursively, skipping hidden directories and files, sorted
/// by path.
pub fn read_dir(root: &Path) -> Result<Vec<StackFile>, LoadError> {
    let mut files = Vec::new();
    walk(root, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<StackFile>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry.file_type().map_err(io)?;
        let path = entry.path();
        // Follow symlinks to files and directories alike, as git checkouts may contain them.
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            walk(&path, &rel, out)?;
        } else if name.ends_with(".kdl") {
            let bytes = std::fs::read(&path).map_err(|source| LoadError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let text =
                String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: rel.clone() })?;
            out.push(StackFile { path: rel, text });
        }
    }
    Ok(())
}

/// Parses and decodes files; returns the sources, the merged decode result, and diagnostics.
/// `syntax_errors` tells later stages that some declarations may be missing.
pub struct Parsed {
    pub sources: Sources,
    pub decoded: Decoded,
    pub diagnostics: Vec<Diagnostic>,
    pub syntax_errors: bool,
    /// The stack's templates and the uses expanded from them.
    pub templates: Templates,
}

pub fn parse_files(files: Vec<StackFile>) -> Parsed {
    parse_files_cached(files, None)
}

/// Runs `work` on every index below `n`, over the machine's cores, and returns the results in
/// index order (so results never depend on scheduling).
fn in_parallel<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(n.max(1));
    if workers <= 1 || n < 2 {
        return (0..n).map(work).collect();
    }
    // Interleaved assignment balances files of similar size across workers.
    let share = |w: usize, work: &(dyn Fn(usize) -> T + Sync)| -> Vec<(usize, T)> {
        (w..n).step_by(workers).map(|i| (i, work(i))).collect()
    };
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                // Parsing and decoding recurse per block level (bounded by
                // `syntax::MAX_NESTING`); a generous stack keeps debug builds safe too.
                std::thread::Builder::new()
                    .stack_size(16 << 20)
                    .spawn_scoped(scope, move || share(w, work))
            })
            .collect();
        let mut all: Vec<(usize, T)> = Vec::with_capacity(n);
        for (w, handle) in handles.into_iter().enumerate() {
            match handle {
                Ok(h) => match h.join() {
                    Ok(results) => all.extend(results),
                    // A worker that panicked is a bug; its panic is the caller's.
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                // No thread to be had: this share is done here instead.
                Err(_) => all.extend(share(w, work)),
            }
        }
        all.sort_by_key(|r| r.0);
        all.into_iter().map(|(_, t)| t).collect()
    })
}

/// What the first pass made of one file.
enum FirstPass {
    /// Decoded at once: the file has no template and no use (the usual case; its syntax tree
    /// is dropped right away, which keeps peak memory at one tree per worker).
    Decoded(Decoded, Vec<Diagnostic>),
    /// Holds templates or uses: decoded after expansion, which needs every such file.
    Templated(Arc<Vec<Node>>),
    SyntaxErrors(Vec<Diagnostic>),
}

/// [`parse_files`], reusing and filling `cache`.
pub fn parse_files_cached(files: Vec<StackFile>, cache: Option<&ParseCache>) -> Parsed {
    let mut sources = Sources::new();
    for f in files {
        sources.add(SourceFile::new(f.path, f.text));
    }
    let n = sources.len();
    let first = in_parallel(n, |i| match parse_one(&sources, i, cache) {
        Err(errors) => FirstPass::SyntaxErrors(errors),
        Ok(tree) if template::mentions_templates(&tree) => FirstPass::Templated(tree),
        Ok(tree) => {
            let (decoded, diags) = decode_one(&tree);
            FirstPass::Decoded(decoded, diags)
        }
    });
    let mut diagnostics = Vec::new();
    let mut syntax_errors = false;
    // Templates and uses may be in any file: expansion sees all of those files at once.
    let templated: Vec<usize> = (0..n)
        .filter(|i| matches!(first[*i], FirstPass::Templated(_)))
        .collect();
    let mut trees: Vec<Vec<Node>> = templated
        .iter()
        .map(|i| match &first[*i] {
            FirstPass::Templated(tree) => (**tree).clone(),
            _ => Vec::new(),
        })
        .collect();
    let templates = template::expand(&mut trees, &mut diagnostics);
    let mut expanded = in_parallel(trees.len(), |k| Some(decode_one(&trees[k])));
    let mut merged = Decoded::default();
    let mut next_templated = 0;
    for pass in first {
        let (d, diags) = match pass {
            FirstPass::Decoded(d, diags) => (d, diags),
            FirstPass::Templated(_) => {
                next_templated += 1;
                expanded[next_templated - 1]
                    .take()
                    .unwrap_or_else(|| (Decoded::default(), Vec::new()))
            }
            FirstPass::SyntaxErrors(errors) => {
                syntax_errors = true;
                (Decoded::default(), errors)
            }
        };
        merged.merge(d);
        diagnostics.extend(diags);
    }
    Parsed {
        sources,
        decoded: merged,
        diagnostics,
        syntax_errors,
        templates,
    }
}

fn decode_one(nodes: &[Node]) -> (Decoded, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let decoded = decode::decode_nodes(nodes, &mut diags);
    (decoded, diags)
}

/// One file's syntax tree, its spans pointing into that file, or its syntax errors.
fn parse_one(
    sources: &Sources,
    i: usize,
    cache: Option<&ParseCache>,
) -> Result<Arc<Vec<Node>>, Vec<Diagnostic>> {
    let id = FileId(i as u32);
    let text = &sources.get(id).text;
    let nodes = match cache.and_then(|c| c.get(text)) {
        Some(nodes) => nodes,
        None => {
            let nodes = Arc::new(crate::syntax::parse(id, text)?);
            if let Some(c) = cache {
                c.put(text, nodes.clone());
            }
            nodes
        }
    };
    // Cached trees may carry another file's id: spans are re-pointed.
    if nodes.first().is_some_and(|n| n.name.span.file != id) {
        return Ok(Arc::new(nodes.iter().map(|n| n.with_file(id)).collect()));
    }
    Ok(nodes)
}
