//! Where the daemon gets revisions from: a git remote followed with gix (bare clone in the state
//! directory, fetched on each poll), or a plain directory watched with notify.

mod error;
pub mod git;
pub mod verify;

pub(crate) use error::invalid;
pub use error::{SourceError, WithContext};
use git::read_stack_at;
use planner::StackFile;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One revision of the stack.
#[derive(Debug, Clone)]
pub struct Revision {
    /// A commit id, or `content-<hash>` for a directory.
    pub id: String,
    pub files: Vec<StackFile>,
    pub author: Option<String>,
    pub message: Option<String>,
    /// Why commit verification refused this revision (it is recorded, never applied).
    pub rejected: Option<String>,
    /// Who signed it, when commits are verified.
    pub signed_by: Option<String>,
}

pub enum Source {
    Git(GitSource),
    Dir(DirSource),
}

/// A content id for a stack read from a directory: stable across runs and machines.
pub fn content_revision(files: &[StackFile]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in files {
        // Lengths first, so (path, text) boundaries are unambiguous.
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update((f.text.len() as u64).to_le_bytes());
        h.update(f.text.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("content-{hex}")
}

impl Source {
    /// A local path is a watched directory; anything else is a git remote URL.
    pub fn new(
        repo: &str,
        branch: &str,
        path: &str,
        state_dir: &Path,
    ) -> Result<Source, SourceError> {
        let local = Path::new(repo);
        if !repo.contains("://") && !repo.contains('@') {
            if !local.is_dir() {
                return Err(invalid!(
                    "--repo {repo} is neither a directory nor a git URL (file://, https://, ssh://, git://)"
                ));
            }
            // Absolute, so file events (absolute paths) compare against it.
            let dir = std::fs::canonicalize(local.join(path))
                .context_with(|| format!("cannot open {}", local.join(path).display()))?;
            return Ok(Source::Dir(DirSource {
                dir,
                reader: Arc::new(planner::load::DirReader::new()),
                changes: Arc::new(AtomicU64::new(0)),
            }));
        }
        Ok(Source::Git(GitSource::new(repo, branch, path, state_dir)))
    }

    /// What revisions of this source are recorded as (`git`, `directory`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Git(_) => "git",
            Source::Dir(_) => "directory",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Git(g) => format!("{} ({}, path `{}`)", redact_url(&g.url), g.branch, g.path),
            Source::Dir(d) => format!("directory {}", d.dir.display()),
        }
    }
}

/// A URL with any password or token removed, for logs, the store and the API. A password is
/// masked (`user:***@`); over http(s) a user name alone may be a token and is masked too
/// (`***@`); an ssh user such as `git@` is not a secret and stays.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None if matches!(scheme, "http" | "https") => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

#[derive(Clone)]
pub struct GitSource {
    pub url: String,
    pub branch: String,
    pub path: String,
    repo_dir: PathBuf,
    /// Commit signature verification, when configured.
    pub verifier: Option<std::sync::Arc<verify::Verifier>>,
}

impl GitSource {
    pub fn new(url: &str, branch: &str, path: &str, state_dir: &Path) -> GitSource {
        GitSource {
            url: url.to_string(),
            branch: branch.to_string(),
            path: path.trim_matches('/').to_string(),
            repo_dir: state_dir.join("repo.git"),
            verifier: None,
        }
    }

    /// The URL to connect with: an https token from `PLATFORMD_GIT_TOKEN` is added here, and
    /// only here, so it is never stored or logged.
    fn connect_url(&self) -> String {
        match (
            std::env::var("PLATFORMD_GIT_TOKEN"),
            self.url.strip_prefix("https://"),
        ) {
            (Ok(token), Some(rest)) if !token.is_empty() && !rest.contains('@') => {
                format!("https://x-access-token:{token}@{rest}")
            }
            _ => self.url.clone(),
        }
    }

    fn open_or_init(&self) -> Result<gix::Repository, SourceError> {
        if self.repo_dir.join("HEAD").exists() {
            return gix::open(&self.repo_dir)
                .context_with(|| format!("cannot open {}", self.repo_dir.display()));
        }
        std::fs::create_dir_all(&self.repo_dir)
            .context_with(|| format!("cannot create {}", self.repo_dir.display()))?;
        gix::init_bare(&self.repo_dir)
            .context_with(|| format!("cannot create {}", self.repo_dir.display()))
    }

    /// A fetch error in words: a branch missing on the remote is said plainly (gix reports it as
    /// "None of the refspec(s) … matched any of the N refs on the remote").
    fn fetch_error(&self, what: &str, e: &dyn std::fmt::Display) -> SourceError {
        let text = e.to_string();
        if text.contains("matched any of") {
            invalid!(
                "branch `{}` does not exist on {}",
                self.branch,
                redact_url(&self.url)
            )
        } else {
            invalid!("{what} {}: {text}", redact_url(&self.url))
        }
    }

    /// Fetches the branch (force-pushes are followed) and reads the stack at its tip. Blocking.
    /// With commit verification, a tip that does not descend from `applied` is refused unless
    /// the operator allows history rewrites.
    pub fn fetch(&self, applied: Option<&str>) -> Result<Revision, SourceError> {
        let repo = self.open_or_init()?;
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        let refspec = format!("+refs/heads/{}:{tracking}", self.branch);
        let mut refspecs = vec![refspec.as_str()];
        // Tag mode verifies signed tags: fetch them too.
        if self
            .verifier
            .as_ref()
            .is_some_and(|v| v.mode == verify::VerifyMode::Tag)
        {
            refspecs.push("+refs/tags/*:refs/tags/*");
        }
        let remote = repo
            .remote_at(self.connect_url().as_str())
            .map_err(|e| invalid!("invalid git URL {}: {e}", redact_url(&self.url)))?
            .with_refspecs(refspecs.iter().copied(), gix::remote::Direction::Fetch)
            .map_err(|e| invalid!("invalid refspec {refspec}: {e}"))?;
        let interrupt = AtomicBool::new(false);
        let outcome = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| invalid!("cannot reach {}: {e}", redact_url(&self.url)))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.fetch_error("cannot list refs of", &e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| self.fetch_error("cannot fetch from", &e))?;
        if outcome.ref_map.mappings.is_empty() {
            return Err(invalid!(
                "branch `{}` does not exist on {}",
                self.branch,
                redact_url(&self.url)
            ));
        }
        let at = read_stack_at(&repo, &tracking, &self.path, &mut Default::default())?;
        let (mut rejected, mut signed_by) = (None, None);
        if let Some(verifier) = &self.verifier {
            let id = gix::ObjectId::from_hex(at.commit.as_bytes())
                .map_err(|e| invalid!("cannot read commit id {}: {e}", at.commit))?;
            match verifier.check(&repo, id) {
                Ok(signer) => signed_by = Some(signer),
                Err(why) => rejected = Some(why.to_string()),
            }
            if rejected.is_none()
                && !verifier.allow_history_rewrite
                && let Some(applied) = applied.filter(|a| *a != at.commit)
                && let Some(why) = rewrite_of(&repo, id, applied)
            {
                rejected = Some(why);
            }
        }
        Ok(Revision {
            id: at.commit,
            files: at.files,
            author: at.author,
            message: at.message,
            rejected,
            signed_by,
        })
    }
}

/// Why `tip` may not follow `applied`: it does not descend from it (the branch was reset or
/// force-pushed to an older or unrelated commit, signed or not). `None` when it does, or when
/// `applied` is not a commit of this repository (nothing to compare with).
fn rewrite_of(repo: &gix::Repository, tip: gix::ObjectId, applied: &str) -> Option<String> {
    let applied_id = gix::ObjectId::from_hex(applied.as_bytes()).ok()?;
    repo.find_object(applied_id).ok()?;
    let descends = repo
        .rev_walk([tip])
        .all()
        .ok()
        .is_some_and(|walk| walk.map_while(Result::ok).any(|info| info.id == applied_id));
    (!descends).then(|| {
        format!(
            "{} does not descend from the applied revision {}: the branch was reset or force-pushed; it is applied only if the operator allows history rewrites (--allow-history-rewrite)",
            &tip.to_string()[..12],
            &applied[..applied.len().min(12)]
        )
    })
}

/// A watched directory. Clones share the reader and the change count, so a read can run on
/// another thread.
#[derive(Clone)]
pub struct DirSource {
    pub dir: PathBuf,
    /// Keeps the texts of files read before: a watch-mode edit re-reads only what changed.
    reader: Arc<planner::load::DirReader>,
    /// File events seen in the directory, counted by the watcher before it wakes the loop: a
    /// read made while this count stayed the same saw the directory as it still is.
    changes: Arc<AtomicU64>,
}

impl DirSource {
    /// Counts a file event in the directory (the watcher calls it for every event).
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// How many file events the directory has seen.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// The directory's current content as a revision (content hash as its id).
    pub fn read(&self) -> Result<Revision, SourceError> {
        let files = self.reader.read(&self.dir)?;
        Ok(Revision {
            id: content_revision(&files),
            files,
            author: None,
            message: None,
            rejected: None,
            signed_by: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("https://bot:s3cret@github.com/acme/state.git"),
            "https://bot:***@github.com/acme/state.git"
        );
        assert_eq!(redact_url("file:///srv/state.git"), "file:///srv/state.git");
    }

    #[test]
    fn an_ssh_user_is_not_a_secret_but_an_https_token_is() {
        assert_eq!(
            redact_url("ssh://git@github.com/acme/state.git"),
            "ssh://git@github.com/acme/state.git"
        );
        assert_eq!(
            redact_url("https://ghp_abcdef123456@github.com/acme/state.git"),
            "https://***@github.com/acme/state.git"
        );
        assert_eq!(
            redact_url("https://github.com/acme/state@v2.git"),
            "https://github.com/acme/state@v2.git"
        );
    }
}
