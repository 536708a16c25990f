//! Reading a stack: the files of a directory (or handed in from a git tree), parsed and decoded
//! in parallel, merged in sorted path order so results never depend on scheduling.

use crate::decode::{self, Decoded};
use crate::diagnostic::Diagnostic;
use crate::parallel::in_parallel;
use crate::source::{FileId, SourceFile, Sources};
use crate::syntax::Node;
use crate::template::{self, Templates};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What was made of files already read, keyed by their content, so an unchanged file is
/// neither parsed nor decoded again: planning a base revision against a head that shares most
/// files, or re-planning after a one-file edit (`docs/PERFORMANCE.md`, "Incremental analysis").
///
/// A file with no template keeps its decoded resources and diagnostics, which name the file by
/// its position in the stack: they are reused only at the same position (a file added or
/// removed before it is a miss, and the file is read again). A file that declares or uses a
/// template keeps its syntax tree, which expansion needs with every such file. A hit compares
/// the full text, so a hash collision cannot return another file's result. Only files that
/// parse cleanly are kept. Everything after decoding (cross-file checks, the graph, costs, the
/// snapshot) depends on the whole stack and is always done again; the property test
/// `incremental_analysis_equals_full_analysis` checks the result equals a fresh analysis.
#[derive(Default)]
pub struct ParseCache {
    entries: Mutex<HashMap<u64, Vec<CacheEntry>>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

struct CacheEntry {
    text: Arc<str>,
    made: Made,
}

#[derive(Clone)]
enum Made {
    Tree(Arc<Vec<Node<'static>>>),
    Decoded(FileId, Arc<(Decoded, Vec<Diagnostic>)>),
}

impl ParseCache {
    pub fn new() -> ParseCache {
        ParseCache::default()
    }

    /// A quick hash of the whole text, eight bytes at a step: every file of the stack is
    /// looked up on every analysis, and a collision costs only a text comparison (the entries
    /// hold the full text), so it needs speed, not resistance to chosen inputs.
    fn key(text: &str) -> u64 {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(SEED);
        let bytes = text.as_bytes();
        let mut words = bytes.chunks_exact(8);
        let mut h = mix(0, bytes.len() as u64);
        for w in &mut words {
            h = mix(
                h,
                u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            );
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        mix(h, u64::from_le_bytes(tail))
    }

    fn get(&self, text: &str, file: FileId) -> Option<Made> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries
            .get(&Self::key(text))?
            .iter()
            .filter(|e| &*e.text == text)
            .find(|e| match &e.made {
                Made::Tree(_) => true,
                Made::Decoded(at, _) => *at == file,
            })
            .map(|e| e.made.clone());
        drop(entries);
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn put(&self, text: &str, made: Made) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let list = entries.entry(Self::key(text)).or_default();
        // A file decoded at a new position replaces the one at the old position.
        list.retain(|e| &*e.text != text);
        list.push(CacheEntry {
            text: Arc::from(text),
            made,
        });
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
            list.retain(|e| keep.contains(&*e.text));
        }
        entries.retain(|_, list| !list.is_empty());
    }
}

/// One stack file: its path relative to the stack root (`/`-separated) and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    #[error(
        "{path} is {size} bytes, above the limit of {limit} bytes for one stack file; split it into smaller files (docs/SECURITY.md)"
    )]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error(
        "the stack's files add up to more than {limit} bytes (reached at {path}); a stack this large is refused so that reading it cannot exhaust the daemon's memory (docs/SECURITY.md)"
    )]
    StackTooLarge { path: String, limit: u64 },
}

/// The largest stack file read, in bytes. Stack content is untrusted (`docs/SECURITY.md`):
/// a file is refused before it is read whole, so one file cannot take the daemon's memory.
/// A file of the 10,000-resource benchmark stack is about 8 KB.
pub const MAX_FILE_BYTES: u64 = 2 << 20;

/// The most a stack's files may add up to, in bytes (the 10,000-resource benchmark stack is
/// about 4 MB; analysing a stack takes roughly ten times its size in memory).
pub const MAX_STACK_BYTES: u64 = 48 << 20;

/// Counts the bytes of a stack's files as they are read and refuses a file or a stack over the
/// limits. Shared by the directory reader and the git reader, so both refuse the same.
#[derive(Debug, Default)]
pub struct SizeBudget {
    used: AtomicU64,
}

impl SizeBudget {
    pub fn new() -> SizeBudget {
        SizeBudget::default()
    }

    /// Takes `size` bytes for the file at `path` (relative to the stack root).
    pub fn take(&self, path: &str, size: u64) -> Result<(), LoadError> {
        self.grown(path, 0, size)
    }

    /// Takes what the file at `path` has grown by, from `taken` bytes (already taken) to
    /// `size`: the file and the stack are checked against their limits at the new size.
    fn grown(&self, path: &str, taken: u64, size: u64) -> Result<(), LoadError> {
        if size > MAX_FILE_BYTES {
            return Err(LoadError::FileTooLarge {
                path: path.to_string(),
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        let more = size.saturating_sub(taken);
        let before = self.used.fetch_add(more, Ordering::Relaxed);
        if before + more > MAX_STACK_BYTES {
            return Err(LoadError::StackTooLarge {
                path: path.to_string(),
                limit: MAX_STACK_BYTES,
            });
        }
        Ok(())
    }
}

/// Every `*.kdl` file below `root`, recursively, skipping hidden directories and files and
/// symbolic links (as the git reader does), sorted by path. Files over the size limits are
/// refused ([`SizeBudget`]).
pub fn read_dir(root: &Path) -> Result<Vec<StackFile>, LoadError> {
    let mut found = Vec::new();
    walk(root, "", &mut found)?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let budget = SizeBudget::new();
    // Read on every core: opening and reading each of a large stack's files, one after the
    // other, was a twentieth of a cold plan.
    let texts = in_parallel(found.len(), |i| {
        read_text(&found[i].1, &found[i].0, &budget)
    });
    found
        .into_iter()
        .zip(texts)
        .map(|((path, _), text)| Ok(StackFile { path, text: text? }))
        .collect()
}

/// `read_dir` for a directory read again and again (the daemon's watch mode): a file whose
/// size, modification time and inode are those it had when it was last read, and which had
/// not been modified shortly before that read, is taken from memory instead of being read.
/// Stat-ing a file is a fraction of reading it (`docs/PERFORMANCE.md`).
///
/// The "shortly before" rule is git's answer to racy timestamps: a file written again within
/// the file system's timestamp granularity of an earlier read may keep its old modification
/// time, so a file modified less than [`DirReader::RACY`] before it was read is always read
/// again.
#[derive(Default)]
pub struct DirReader {
    known: Mutex<HashMap<String, KnownFile>>,
    files_read: AtomicUsize,
}

struct KnownFile {
    stamp: FileStamp,
    read_at: std::time::SystemTime,
    text: String,
}

/// What a file looked like on disk.
#[derive(PartialEq, Eq, Clone, Copy)]
struct FileStamp {
    len: u64,
    modified: std::time::SystemTime,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Option<FileStamp> {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok()?,
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl DirReader {
    /// Modified less than this before it was read: read again next time, whatever its stamp.
    pub const RACY: std::time::Duration = std::time::Duration::from_secs(2);

    pub fn new() -> DirReader {
        DirReader::default()
    }

    /// Files read from disk so far (the others were known).
    pub fn files_read(&self) -> usize {
        self.files_read.load(Ordering::Relaxed)
    }

    /// The files below `root`, as [`read_dir`] gives them.
    pub fn read(&self, root: &Path) -> Result<Vec<StackFile>, LoadError> {
        let mut found = Vec::new();
        walk(root, "", &mut found)?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut files = Vec::with_capacity(found.len());
        let budget = SizeBudget::new();
        for (rel, path) in found {
            let text = self.read_known(&mut known, &path, &rel, &budget)?;
            files.push(StackFile { path: rel, text });
        }
        // Files gone from the directory are forgotten.
        if known.len() > files.len() {
            let seen: std::collections::HashSet<&str> =
                files.iter().map(|f| f.path.as_str()).collect();
            known.retain(|path, _| seen.contains(path.as_str()));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The text of the file at `path`: from `known` when its stamp is unchanged and not racy,
    /// else read (and counted) and kept.
    fn read_known(
        &self,
        known: &mut HashMap<String, KnownFile>,
        path: &Path,
        rel: &str,
        budget: &SizeBudget,
    ) -> Result<String, LoadError> {
        let io = |source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        // Not followed: a file replaced by a link since the walk is not known, and is then
        // refused by `read_text`.
        let stamp = FileStamp::of(&std::fs::symlink_metadata(path).map_err(io)?);
        if let (Some(stamp), Some(k)) = (stamp, known.get(rel))
            && k.stamp == stamp
            && stamp
                .modified
                .checked_add(DirReader::RACY)
                .is_some_and(|settled| settled <= k.read_at)
        {
            budget.take(rel, k.text.len() as u64)?;
            return Ok(k.text.clone());
        }
        let read_at = std::time::SystemTime::now();
        let text = read_text(path, rel, budget)?;
        self.files_read.fetch_add(1, Ordering::Relaxed);
        if let Some(stamp) = stamp {
            known.insert(
                rel.to_string(),
                KnownFile {
                    stamp,
                    read_at,
                    text: text.clone(),
                },
            );
        }
        Ok(text)
    }
}

/// Reads one stack file. Stack content is untrusted (`docs/SECURITY.md`): the file is opened
/// without following a symbolic link (one swapped in since the walk fails to open), must be a
/// regular file (a FIFO would block the reader for ever) and is measured before it is read.
fn read_text(path: &Path, rel: &str, budget: &SizeBudget) -> Result<String, LoadError> {
    use std::io::Read;
    let io = |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    budget.take(rel, meta.len())?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte past the size measured: a file growing while it is read is refused too.
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    budget.grown(rel, meta.len(), bytes.len() as u64)?;
    String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 {
        path: rel.to_string(),
    })
}

/// The `*.kdl` files below `dir`: each one's path relative to the stack root, and where it is.
/// Hidden entries are skipped, and so are symbolic links, to files and directories alike: the
/// git reader skips them, and a link in a working tree could name any file of the host
/// (`leak.kdl -> /proc/self/environ`; `docs/SECURITY.md`).
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), LoadError> {
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
        // The entry's own type: a symbolic link is not followed.
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if file_type.is_file() && name.ends_with(".kdl") {
            out.push((rel, entry.path()));
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

/// What the first pass made of one file.
// `Decoded` is the usual variant: boxing it would allocate once per file to save the rare
// others some bytes.
#[allow(clippy::large_enum_variant)]
enum FirstPass {
    /// Decoded at once: the file has no template and no use (the usual case; its syntax tree
    /// is dropped right away, which keeps peak memory at one tree per worker).
    Decoded(Decoded, Vec<Diagnostic>),
    /// Holds templates or uses: decoded after expansion, which needs every such file.
    /// Its tree is owned (`Node::to_static`): it is kept beyond its text, in the cache and in
    /// the templates' bodies.
    Templated(Arc<Vec<Node<'static>>>),
    SyntaxErrors(Vec<Diagnostic>),
}

/// [`parse_files`], reusing and filling `cache`.
pub fn parse_files_cached(files: Vec<StackFile>, cache: Option<&ParseCache>) -> Parsed {
    let mut sources = Sources::new();
    for f in files {
        sources.add(SourceFile::new(f.path, f.text));
    }
    let n = sources.len();
    let first = in_parallel(n, |i| first_pass(&sources, i, cache));
    let mut diagnostics = Vec::new();
    let mut syntax_errors = false;
    // Templates and uses may be in any file: expansion sees all of those files at once.
    let templated: Vec<usize> = (0..n)
        .filter(|i| matches!(first[*i], FirstPass::Templated(_)))
        .collect();
    let mut trees: Vec<Vec<Node<'static>>> = templated
        .iter()
        .map(|i| match &first[*i] {
            FirstPass::Templated(tree) => (**tree).clone(),
            _ => Vec::new(),
        })
        .collect();
    let templates = template::expand(&mut trees, &mut diagnostics);
    let mut expanded = in_parallel(trees.len(), |k| Some(decode_one(&trees[k])));
    let mut parts = Vec::with_capacity(n);
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
        parts.push(d);
        diagnostics.extend(diags);
    }
    Parsed {
        sources,
        decoded: Decoded::merge_all(parts),
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

/// One file read on its own: from the cache when its text was seen, else parsed and (when it
/// has no template) decoded, and kept.
fn first_pass(sources: &Sources, i: usize, cache: Option<&ParseCache>) -> FirstPass {
    let id = FileId(i as u32);
    let text = &sources.get(id).text;
    match cache.and_then(|c| c.get(text, id)) {
        Some(Made::Decoded(_, made)) => FirstPass::Decoded(made.0.clone(), made.1.clone()),
        // Cached trees may carry another file's id: spans are re-pointed.
        Some(Made::Tree(tree)) if tree.first().is_some_and(|n| n.name.span.file != id) => {
            FirstPass::Templated(Arc::new(tree.iter().map(|n| n.with_file(id)).collect()))
        }
        Some(Made::Tree(tree)) => FirstPass::Templated(tree),
        None => match crate::syntax::parse(id, text) {
            Err(errors) => FirstPass::SyntaxErrors(errors),
            Ok(tree) if template::mentions_templates(&tree) => {
                let tree: Arc<Vec<Node<'static>>> =
                    Arc::new(tree.iter().map(Node::to_static).collect());
                if let Some(c) = cache {
                    c.put(text, Made::Tree(tree.clone()));
                }
                FirstPass::Templated(tree)
            }
            Ok(tree) => {
                let (mut decoded, diags) = decode_one(&tree);
                drop(tree);
                match cache {
                    Some(c) => {
                        for r in &mut decoded.resources {
                            r.spec_memo = crate::kept::KeptCell::kept();
                        }
                        let made = Arc::new((decoded, diags));
                        c.put(text, Made::Decoded(id, made.clone()));
                        FirstPass::Decoded(made.0.clone(), made.1.clone())
                    }
                    None => FirstPass::Decoded(decoded, diags),
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("platformd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("team")).unwrap();
        dir
    }

    /// Written, then dated an hour back: settled, so the reader may keep it.
    fn write_settled(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }

    fn texts(files: &[StackFile]) -> Vec<(&str, &str)> {
        files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect()
    }

    /// A file measured under the limit that has grown past it by the time it is read is
    /// refused as too large, not counted only by what it grew.
    #[test]
    fn a_file_that_grows_past_the_limit_while_read_is_refused() {
        let budget = SizeBudget::new();
        budget.take("a.kdl", MAX_FILE_BYTES - 10).unwrap();
        let grown = budget.grown("a.kdl", MAX_FILE_BYTES - 10, MAX_FILE_BYTES + 1);
        assert!(
            matches!(grown, Err(LoadError::FileTooLarge { size, .. }) if size == MAX_FILE_BYTES + 1),
            "{grown:?}"
        );
        budget.grown("b.kdl", 10, 20).unwrap();
    }

    #[test]
    fn a_dir_reader_reads_only_what_changed_and_sees_every_change() {
        let dir = scratch("dir-reader");
        write_settled(&dir.join("a.kdl"), "service \"a\" {}\n");
        write_settled(&dir.join("team/b.kdl"), "service \"b\" {}\n");
        let reader = DirReader::new();
        let first = reader.read(&dir).unwrap();
        assert_eq!(texts(&first), texts(&read_dir(&dir).unwrap()));
        assert_eq!(reader.files_read(), 2);

        // Nothing changed: nothing read.
        assert_eq!(texts(&reader.read(&dir).unwrap()), texts(&first));
        assert_eq!(reader.files_read(), 2);

        // Same length, modification time put back: the inode's change time still gives the
        // rewrite away.
        let b = dir.join("team/b.kdl");
        let modified = std::fs::metadata(&b).unwrap().modified().unwrap();
        std::fs::write(&b, "service \"c\" {}\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&b)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        let after = reader.read(&dir).unwrap();
        assert_eq!(texts(&after), texts(&read_dir(&dir).unwrap()));
        assert_eq!(after[1].text, "service \"c\" {}\n");
        assert_eq!(reader.files_read(), 3);

        // A file just written is racy: read again every time until it settles.
        std::fs::write(dir.join("a.kdl"), "service \"d\" {}\n").unwrap();
        assert_eq!(reader.read(&dir).unwrap()[0].text, "service \"d\" {}\n");
        reader.read(&dir).unwrap();
        assert_eq!(reader.files_read(), 5);

        // Added and removed files.
        std::fs::remove_file(&b).unwrap();
        write_settled(&dir.join("team/e.kdl"), "service \"e\" {}\n");
        let last = reader.read(&dir).unwrap();
        assert_eq!(texts(&last), texts(&read_dir(&dir).unwrap()));
        assert_eq!(
            last.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["a.kdl", "team/e.kdl"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
