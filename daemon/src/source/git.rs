//! Reading a stack straight from a git object database with gix: no checkout, no worktree
//! changes, no network. Used by `plan --base/--head` (the pull-request flow).

use super::error::{SourceError, WithContext, invalid};
use planner::StackFile;
use std::path::{Path, PathBuf};

/// A repository and where the stack lives inside it.
pub struct StackRepo {
    repo: gix::Repository,
    /// The stack directory relative to the repository root, `/`-separated; empty for the root.
    pub stack_path: String,
}

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
        Ok(StackRepo { repo, stack_path })
    }

    /// The stack's `*.kdl` files at `rev` (any revision git understands: `HEAD~1`, a branch,
    /// `origin/main`, a commit id), read from the object database.
    pub fn read(&self, rev: &str) -> Result<StackAtRevision, SourceError> {
        read_stack_at(&self.repo, rev, &self.stack_path)
    }
}

/// The stack below `stack_path` at revision `rev` of `repo` (bare or not), with the commit's
/// author and subject.
pub fn read_stack_at(
    repo: &gix::Repository,
    rev: &str,
    stack_path: &str,
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
    for entry in recorder.records {
        let path = String::from_utf8_lossy(&entry.filepath).into_owned();
        let hidden = path.split('/').any(|part| part.starts_with('.'));
        if hidden || !path.ends_with(".kdl") || !entry.mode.is_blob() {
            continue;
        }
        let blob = repo
            .find_object(entry.oid)
            .context_with(|| format!("cannot read {path} at {rev}"))?;
        let text = String::from_utf8(blob.data.clone())
            .map_err(|_| invalid!("{path} at {rev} is not valid UTF-8"))?;
        files.push(StackFile { path, text });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(StackAtRevision {
        commit: commit_id,
        files,
        author,
        message,
    })
}
