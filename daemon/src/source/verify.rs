//! Commit signature verification, in process (no `gpg` or `ssh-keygen` on the host): SSH
//! signatures against trusted keys in git's `allowed_signers` form, OpenPGP signatures against
//! trusted armored public keys. Mode `head` checks the tracked commit's own signature; mode
//! `tag` requires a signed annotated tag on the tracked commit. A revision that fails is
//! rejected with the reason and the last good revision stays in force.

use pgp::composed::{Deserializable, SignedPublicKey, StandaloneSignature};
use pgp::types::KeyDetails;

/// What must be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The tracked commit itself.
    Head,
    /// An annotated tag pointing at the tracked commit.
    Tag,
}

impl VerifyMode {
    pub fn parse(s: &str) -> Result<VerifyMode, String> {
        match s {
            "head" => Ok(VerifyMode::Head),
            "tag" => Ok(VerifyMode::Tag),
            other => Err(format!(
                "--verify-commits is `head` or `tag`, not `{other}`"
            )),
        }
    }
}

/// The trusted keys.
pub struct Verifier {
    pub mode: VerifyMode,
    /// Apply a signed tip that does not descend from the applied revision (the branch was
    /// reset or force-pushed): the operator's `--allow-history-rewrite`. Off, such a tip is
    /// refused, so a branch reset to an older signed commit cannot roll the platform back.
    pub allow_history_rewrite: bool,
    /// (principals, key) from an `allowed_signers` file.
    ssh: Vec<(String, ssh_key::PublicKey)>,
    pgp: Vec<SignedPublicKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Verifier({:?}, {} ssh, {} openpgp)",
            self.mode,
            self.ssh.len(),
            self.pgp.len()
        )
    }
}

impl Verifier {
    /// `allowed_signers`: git's format, `principals [options] key-type base64 [comment]` per
    /// line; `pgp_keys`: armored public key blocks. At least one key is needed.
    pub fn new(
        mode: VerifyMode,
        allowed_signers: Option<&str>,
        pgp_keys: Option<&str>,
    ) -> Result<Verifier, String> {
        let mut ssh = Vec::new();
        for (n, line) in allowed_signers.unwrap_or("").lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            // The key starts at its type; options (`namespaces="git"`, …) come before it.
            let Some(at) = words
                .iter()
                .skip(1)
                .position(|w| {
                    w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-")
                })
                .map(|p| p + 1)
            else {
                return Err(format!("allowed signers line {}: no key type", n + 1));
            };
            let Some(b64) = words.get(at + 1) else {
                return Err(format!("allowed signers line {}: no key", n + 1));
            };
            let key = ssh_key::PublicKey::from_openssh(&format!("{} {b64}", words[at]))
                .map_err(|e| format!("allowed signers line {}: {e}", n + 1))?;
            ssh.push((words[0].to_string(), key));
        }
        let mut pgp = Vec::new();
        let text = pgp_keys.unwrap_or("");
        const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
        for block in text.split(BEGIN).skip(1) {
            let armored = format!("{BEGIN}{block}");
            let (keys, _) = SignedPublicKey::from_string_many(&armored)
                .map_err(|e| format!("trusted OpenPGP keys: {e}"))?;
            for key in keys {
                pgp.push(key.map_err(|e| format!("trusted OpenPGP keys: {e}"))?);
            }
        }
        if ssh.is_empty() && pgp.is_empty() {
            return Err(
                "commit verification needs trusted keys: --allowed-signers FILE or --trusted-keys FILE"
                    .into(),
            );
        }
        Ok(Verifier {
            mode,
            allow_history_rewrite: false,
            ssh,
            pgp,
        })
    }

    /// Who signed `data` with `signature` (an armored SSH or OpenPGP signature), or why it is
    /// not trusted.
    pub fn verify(&self, signature: &[u8], data: &[u8]) -> Result<String, String> {
        let text = String::from_utf8_lossy(signature);
        if text.contains("-----BEGIN SSH SIGNATURE-----") {
            let sig = ssh_key::SshSig::from_pem(signature)
                .map_err(|e| format!("the SSH signature does not parse: {e}"))?;
            let signer = self
                .ssh
                .iter()
                .find(|(_, key)| key.key_data() == sig.public_key())
                .ok_or_else(|| {
                    "signed by an SSH key that is not in the allowed signers".to_string()
                })?;
            signer
                .1
                .verify("git", data, &sig)
                .map_err(|_| format!("the SSH signature of {} does not verify", signer.0))?;
            return Ok(signer.0.clone());
        }
        if text.contains("-----BEGIN PGP SIGNATURE-----") {
            let (sig, _) = StandaloneSignature::from_string(&text)
                .map_err(|e| format!("the OpenPGP signature does not parse: {e}"))?;
            for key in &self.pgp {
                let user = key
                    .details
                    .users
                    .first()
                    .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                    .unwrap_or_else(|| format!("{:?}", key.fingerprint()));
                if sig.verify(key, data).is_ok()
                    || key
                        .public_subkeys
                        .iter()
                        .any(|sub| sig.verify(sub, data).is_ok())
                {
                    return Ok(user);
                }
            }
            return Err("signed by an OpenPGP key that is not trusted".into());
        }
        Err("the signature is neither SSH nor OpenPGP".into())
    }

    /// Verifies the commit `commit` of `repo` as the mode asks: `Ok(signer)` or the reason.
    pub fn check(&self, repo: &gix::Repository, commit: gix::ObjectId) -> Result<String, String> {
        match self.mode {
            VerifyMode::Head => {
                let commit = repo
                    .find_commit(commit)
                    .map_err(|e| format!("cannot read commit {commit}: {e}"))?;
                let Some((signature, data)) = commit
                    .signature()
                    .map_err(|e| format!("cannot read the signature of {}: {e}", commit.id))?
                else {
                    return Err(format!("commit {} is not signed", commit.id));
                };
                self.verify(signature.as_ref(), data.to_bstring().as_ref())
                    .map_err(|why| format!("commit {}: {why}", commit.id))
            }
            VerifyMode::Tag => {
                let mut reasons = Vec::new();
                let refs = repo
                    .references()
                    .map_err(|e| format!("cannot list tags: {e}"))?;
                let tags = refs.tags().map_err(|e| format!("cannot list tags: {e}"))?;
                for tag in tags.flatten() {
                    let Ok(object) = repo.find_object(tag.id()) else {
                        continue;
                    };
                    if object.kind != gix::object::Kind::Tag {
                        continue;
                    }
                    let Ok(decoded) =
                        gix::objs::TagRefIter::from_bytes(&object.data, commit.kind()).target_id()
                    else {
                        continue;
                    };
                    if decoded != commit {
                        continue;
                    }
                    let name = tag.name().shorten().to_string();
                    match gix::objs::TagRefIter::signature(&object.data) {
                        Some((signature, data)) => {
                            match self.verify(signature.data.as_ref(), data.to_bstring().as_ref()) {
                                Ok(signer) => return Ok(format!("{signer} (tag {name})")),
                                Err(why) => reasons.push(format!("tag {name}: {why}")),
                            }
                        }
                        None => reasons.push(format!("tag {name} is not signed")),
                    }
                }
                if reasons.is_empty() {
                    Err(format!("commit {commit} has no annotated tag"))
                } else {
                    Err(format!("commit {commit}: {}", reasons.join("; ")))
                }
            }
        }
    }
}
