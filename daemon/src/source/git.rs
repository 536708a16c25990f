//! Reading a stack straight from a git object database with gix: no checkout, no worktree
//! changes, no network. Used by `plan --base/--head` (the pull-request flow).

use super::error::{SourceError, WithContext, invalid};
use planner::StackFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A repository and where the stack lives inside it.
pub struct StackRepo {
    repo: gix::Repository,
    /// The stack directory relative to the repository root, `/`-separated; empty for the root.
    pub stack_path: String,
    /// The texts of the blobs read so far: a base and a head share all but the changed files,
    /// and each is decompressed once.
    blob_texts: std::cell::RefCell<BlobTexts>,
}

/// File texts by blob id.
pub type BlobTexts = HashMap<gix::ObjectId, String>;

/// A stack's files at one commit.
pub struct StackAtRevision {
    pub commit: String,
    pub files: Vec<StackFile>,
    pub author: Option<String>,
    pub message: Option<String>,
}

impl StackRepo {
    /// Finds the repository containing `stack_dir`.
    pub fn discover(stack_dir: &Path) -> Result<StackRepo, SourceError> {
        let abs = std::fs::canonicalize(stack_dir)
            .context_with(|| format!("cannot open stack directory {}", stack_dir.display()))?;
        let repo = gix::discover(&abs).context_with(|| {
            format!(
                "{} is not inside a git repository (needed for --base/--head)",
                stack_dir.display()
            )
        })?;
        let workdir: PathBuf = repo.workdir().map(Path::to_path_buf).ok_or_else(|| {
            invalid!(
                "the repository at {} is bare; run from a checkout",
                repo.path().display()
            )
        })?;
        let workdir = std::fs::canonicalize(&workdir).unwrap_or(workdir);
        let rel = abs
            .strip_prefix(&workdir)
            .map_err(|_| invalid!("stack directory is outside the repository"))?;
        let stack_path = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        Ok(StackRepo {
            repo,
            stack_path,
            blob_texts: Default::default(),
        })
    }

    /// The stack's `*.kdl` files at `rev` (any revision git understands: `HEAD~1`, a branch,
    /// `origin/main`, a commit id), read from the object database.
    pub fn read(&self, rev: &str) -> Result<StackAtRevision, SourceError> {
        read_stack_at(
            &self.repo,
            rev,
            &self.stack_path,
            &mut self.blob_texts.borrow_mut(),
        )
    }
}

/// The stack below `stack_path` at revision `rev` of `repo` (bare or not), with the commit's
/// author and subject. Blobs found in `known` are not read again; those read are added to it.
pub fn read_stack_at(
    repo: &gix::Repository,
    rev: &str,
    stack_path: &str,
    known: &mut BlobTexts,
) -> Result<StackAtRevision, SourceError> {
    let id = repo
        .rev_parse_single(rev)
        .map_err(|e| invalid!("cannot resolve git revision `{rev}`: {e}"))?;
    let commit = id
        .object()
        .context_with(|| format!("cannot read object {id}"))?
        .peel_to_commit()
        .context_with(|| format!("`{rev}` does not point to a commit"))?;
    let commit_id = commit.id.to_string();
    let (author, message) = match commit.decode() {
        Ok(c) => (
            c.author().ok().map(|a| format!("{} <{}>", a.name, a.email)),
            Some(
                c.message
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
        ),
        Err(_) => (None, None),
    };
    let tree = commit
        .tree()
        .context_with(|| format!("cannot read the tree of {commit_id}"))?;
    let stack_tree = if stack_path.is_empty() {
        tree
    } else {
        let Some(entry) = tree
            .lookup_entry_by_path(stack_path)
            .context_with(|| format!("cannot look up {stack_path} at {rev}"))?
        else {
            // The stack did not exist at that revision: an empty prior state.
            return Ok(StackAtRevision {
                commit: commit_id,
                files: Vec::new(),
                author,
                message,
            });
        };
        if !entry.mode().is_tree() {
            return Err(invalid!("{stack_path} is not a directory at {rev}"));
        }
        entry
            .object()
            .context_with(|| format!("cannot read {stack_path} at {rev}"))?
            .into_tree()
    };
    let mut recorder = gix::traverse::tree::Recorder::default();
    stack_tree
        .traverse()
        .breadthfirst(&mut recorder)
        .context_with(|| format!("cannot walk the tree at {rev}"))?;
    let mut files = Vec::new();
    let mut unread = Vec::new();
    // The same limits as a working tree's (`docs/SECURITY.md`), checked on each blob's header
    // before it is decompressed: a small packed blob can inflate to any size.
    let budget = planner::load::SizeBudget::new();
    for entry in recorder.records {
        let path = String::from_utf8_lossy(&entry.filepath).into_owned();
        let hidden = path.split('/').any(|part| part.starts_with('.'));
        if hidden || !path.ends_with(".kdl") || !entry.mode.is_blob() {
            continue;
        }
        match known.get(&entry.oid) {
            Some(text) => {
                budget.take(&path, text.len() as u64)?;
                files.push(StackFile {
                    path,
                    text: text.clone(),
                })
            }
            None => {
                let header = repo
                    .find_header(entry.oid)
                    .context_with(|| format!("cannot read {path} at {rev}"))?;
                budget.take(&path, header.size())?;
                unread.push((path, entry.oid))
            }
        }
    }
    for (file, id) in read_blobs(repo, unread, rev)? {
        known.insert(id, file.text.clone());
        files.push(file);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(StackAtRevision {
        commit: commit_id,
        files,
        author,
        message,
    })
}

/// Reads and decompresses blobs as files, on two threads when there are many (a 10,000-resource
/// stack is 500 files, 13 ms on one).
fn read_blobs(
    repo: &gix::Repository,
    mut blobs: Vec<(String, gix::ObjectId)>,
    rev: &str,
) -> Result<Vec<(StackFile, gix::ObjectId)>, SourceError> {
    fn read(
        repo: &gix::Repository,
        blobs: Vec<(String, gix::ObjectId)>,
        rev: &str,
    ) -> Result<Vec<(StackFile, gix::ObjectId)>, SourceError> {
        blobs
            .into_iter()
            .map(|(path, id)| {
                let blob = repo
                    .find_object(id)
                    .context_with(|| format!("cannot read {path} at {rev}"))?;
                let text = String::from_utf8(blob.detach().data)
                    .map_err(|_| invalid!("{path} at {rev} is not valid UTF-8"))?;
                Ok((StackFile { path, text }, id))
            })
            .collect()
    }
    if blobs.len() < 64 {
        return read(repo, blobs, rev);
    }
    let second_half = blobs.split_off(blobs.len() / 2);
    // A repository handle is not `Send` (gix without its `parallel` feature): the other thread
    // opens its own.
    let git_dir = repo.git_dir().to_path_buf();
    std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            let repo = gix::open(&git_dir)
                .map_err(|e| invalid!("cannot open {}: {e}", git_dir.display()))?;
            read(&repo, second_half, rev)
        });
        let mut files = read(repo, blobs, rev)?;
        let rest = other
            .join()
            .map_err(|_| invalid!("a thread reading blobs at {rev} failed"))??;
        files.extend(rest);
        Ok(files)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::git::run as git;

    /// A base read after the head takes the blobs they share from the head's read, and finds
    /// the same stack as a read of its own (on two threads: the stack has over 64 files).
    #[test]
    fn a_second_revision_reads_only_the_blobs_it_does_not_share_and_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let stack = dir.path().join("stack");
        test_support::generate::write_stack(&stack, 2000, 7).unwrap();
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "base"]);
        let edited = stack.join("team-0/part-01.kdl");
        let text = std::fs::read_to_string(&edited).unwrap();
        std::fs::write(&edited, text.replacen("replicas 1", "replicas 5", 1)).unwrap();
        std::fs::remove_file(stack.join("team-1/part-02.kdl")).unwrap();
        std::fs::write(stack.join("team-1/added.kdl"), "// a new file\n").unwrap();
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "head"]);

        let repo = StackRepo::discover(&stack).unwrap();
        let head = repo.read("HEAD").unwrap();
        let on_disk = planner::load::read_dir(&stack).unwrap();
        assert!(head.files.len() > 64, "{} files", head.files.len());
        assert!(head.files == on_disk, "the head is the working tree");
        let blobs_of_head = repo.blob_texts.borrow().len();

        let base = repo.read("HEAD~1").unwrap();
        // Two blobs are the base's own: the edited file as it was, and the deleted one.
        assert_eq!(repo.blob_texts.borrow().len(), blobs_of_head + 2);
        let alone = StackRepo::discover(&stack).unwrap().read("HEAD~1").unwrap();
        assert!(
            base.files == alone.files,
            "the same files as a read of its own"
        );
        assert!(base.files != head.files);
        assert_eq!(base.commit, alone.commit);
    }
}
