//! Commit signature verification, in process (no `gpg` or `ssh-keygen` on the host): SSH
//! signatures against trusted keys in git's `allowed_signers` form, OpenPGP signatures against
//! trusted armored public keys. Mode `head` checks the tracked commit's own signature; mode
//! `tag` requires a signed annotated tag on the tracked commit. A revision that fails is
//! rejected with the reason and the last good revision stays in force.
//!
//! Validity is judged at the time the object says it was made (the committer's or tagger's
//! time), as git does (`ssh-keygen -Y verify -Overify-time`): an `allowed_signers` line's
//! `valid-after` and `valid-before` and its `namespaces`, and an OpenPGP key's expiry and
//! revocation. A revoked OpenPGP key (primary or signing subkey) is not trusted for any
//! signature; an expired one only for signatures made before it expired.

use pgp::composed::{Deserializable, SignedPublicKey, StandaloneSignature};
use pgp::types::{KeyDetails, PublicKeyTrait};

/// Why a key file cannot be used, or why a signature or commit is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(String);

impl From<String> for VerifyError {
    fn from(message: String) -> VerifyError {
        VerifyError(message)
    }
}

impl From<&str> for VerifyError {
    fn from(message: &str) -> VerifyError {
        VerifyError(message.to_string())
    }
}

/// What must be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The tracked commit itself.
    Head,
    /// An annotated tag pointing at the tracked commit.
    Tag,
}

impl VerifyMode {
    pub fn parse(s: &str) -> Result<VerifyMode, VerifyError> {
        match s {
            "head" => Ok(VerifyMode::Head),
            "tag" => Ok(VerifyMode::Tag),
            other => Err(VerifyError::from(format!(
                "--verify-commits is `head` or `tag`, not `{other}`"
            ))),
        }
    }
}

/// One line of an `allowed_signers` file.
struct AllowedSigner {
    principals: String,
    key: ssh_key::PublicKey,
    /// Signature namespaces this key may sign in (`namespaces="git"`); empty: any.
    namespaces: Vec<String>,
    /// Unix seconds: signatures made before `valid-after` or from `valid-before` on are refused.
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// `YYYYMMDD[HHMM[SS]][Z]` of `valid-after`/`valid-before` as Unix seconds (read as UTC, with
/// or without the `Z`: a daemon's local zone is not the signer's).
fn signers_time(text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z').unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let part = |from: usize, to: usize| digits.get(from..to).and_then(|d| d.parse::<i8>().ok());
    let year: i16 = digits[..4].parse().ok()?;
    let (month, day) = (part(4, 6)?, part(6, 8)?);
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (part(8, 10)?, part(10, 12)?, 0),
        _ => (part(8, 10)?, part(10, 12)?, part(12, 14)?),
    };
    let civil = jiff::civil::DateTime::new(year, month, day, hour, minute, second, 0).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// The options of an `allowed_signers` line (`opt1,opt2="v,w"`), split on commas outside
/// quotes, as `(name, value)`.
fn signer_options(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars().chain(std::iter::once(',')) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let option = std::mem::take(&mut current);
                if option.is_empty() {
                    continue;
                }
                match option.split_once('=') {
                    Some((name, value)) => {
                        out.push((name.to_ascii_lowercase(), Some(value.to_string())))
                    }
                    None => out.push((option.to_ascii_lowercase(), None)),
                }
            }
            c => current.push(c),
        }
    }
    out
}

fn format_unix(seconds: i64) -> String {
    crate::store::format_time(seconds)
}

/// The trusted keys.
pub struct Verifier {
    pub mode: VerifyMode,
    /// Apply a signed tip that does not descend from the applied revision (the branch was
    /// reset or force-pushed): the operator's `--allow-history-rewrite`. Off, such a tip is
    /// refused, so a branch reset to an older signed commit cannot roll the platform back.
    pub allow_history_rewrite: bool,
    /// The trusted SSH keys, from an `allowed_signers` file.
    ssh: Vec<AllowedSigner>,
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
    ) -> Result<Verifier, VerifyError> {
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
                return Err(VerifyError::from(format!(
                    "allowed signers line {}: no key type",
                    n + 1
                )));
            };
            let Some(b64) = words.get(at + 1) else {
                return Err(VerifyError::from(format!(
                    "allowed signers line {}: no key",
                    n + 1
                )));
            };
            let key = ssh_key::PublicKey::from_openssh(&format!("{} {b64}", words[at]))
                .map_err(|e| format!("allowed signers line {}: {e}", n + 1))?;
            let mut signer = AllowedSigner {
                principals: words[0].to_string(),
                key,
                namespaces: Vec::new(),
                valid_after: None,
                valid_before: None,
            };
            for (name, value) in signer_options(&words[1..at].join(" ")) {
                let value = value.unwrap_or_default();
                let time = |what: &str| {
                    signers_time(&value).ok_or_else(|| {
                        format!(
                            "allowed signers line {}: {what}=\"{value}\" is not YYYYMMDD[HHMM[SS]][Z]",
                            n + 1
                        )
                    })
                };
                match name.as_str() {
                    "namespaces" => {
                        signer.namespaces = value.split(',').map(str::to_string).collect()
                    }
                    "valid-after" => signer.valid_after = Some(time("valid-after")?),
                    "valid-before" => signer.valid_before = Some(time("valid-before")?),
                    // Certificates are not read: refusing is safer than trusting a CA key as a
                    // signing key.
                    "cert-authority" => {
                        return Err(VerifyError::from(format!(
                            "allowed signers line {}: cert-authority is not supported; list the signing keys themselves",
                            n + 1
                        )));
                    }
                    other => {
                        return Err(VerifyError::from(format!(
                            "allowed signers line {}: unknown option `{other}` (namespaces, valid-after and valid-before are known)",
                            n + 1
                        )));
                    }
                }
            }
            ssh.push(signer);
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
            return Err(VerifyError::from(
                "commit verification needs trusted keys: --allowed-signers FILE or --trusted-keys FILE",
            ));
        }
        Ok(Verifier {
            mode,
            allow_history_rewrite: false,
            ssh,
            pgp,
        })
    }

    /// Who signed `data` with `signature` (an armored SSH or OpenPGP signature), made at
    /// `signed_at` (Unix seconds: the commit's or tag's own time), or why it is not trusted.
    pub fn verify(
        &self,
        signature: &[u8],
        data: &[u8],
        signed_at: i64,
    ) -> Result<String, VerifyError> {
        let text = String::from_utf8_lossy(signature);
        if text.contains("-----BEGIN SSH SIGNATURE-----") {
            let sig = ssh_key::SshSig::from_pem(signature)
                .map_err(|e| format!("the SSH signature does not parse: {e}"))?;
            let signer = self
                .ssh
                .iter()
                .find(|s| s.key.key_data() == sig.public_key())
                .ok_or_else(|| {
                    "signed by an SSH key that is not in the allowed signers".to_string()
                })?;
            if !signer.namespaces.is_empty() && !signer.namespaces.iter().any(|n| n == "git") {
                return Err(VerifyError::from(format!(
                    "the SSH key of {} may not sign git objects (namespaces=\"{}\")",
                    signer.principals,
                    signer.namespaces.join(",")
                )));
            }
            if let Some(after) = signer.valid_after
                && signed_at < after
            {
                return Err(VerifyError::from(format!(
                    "the SSH key of {} is valid only after {}; this was signed at {}",
                    signer.principals,
                    format_unix(after),
                    format_unix(signed_at)
                )));
            }
            if let Some(before) = signer.valid_before
                && signed_at >= before
            {
                return Err(VerifyError::from(format!(
                    "the SSH key of {} was valid only before {}; this was signed at {}",
                    signer.principals,
                    format_unix(before),
                    format_unix(signed_at)
                )));
            }
            signer.key.verify("git", data, &sig).map_err(|_| {
                format!("the SSH signature of {} does not verify", signer.principals)
            })?;
            return Ok(signer.principals.clone());
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
                let made = sig.signature.created().map_or(signed_at, |t| t.timestamp());
                if sig.verify(key, data).is_ok() {
                    pgp_key_valid(
                        &user,
                        !key.details.revocation_signatures.is_empty(),
                        key.expires_at().map(|t| t.timestamp()),
                        made,
                    )?;
                    return Ok(user);
                }
                if let Some(sub) = key
                    .public_subkeys
                    .iter()
                    .find(|sub| sig.verify(sub, data).is_ok())
                {
                    let revoked = !key.details.revocation_signatures.is_empty()
                        || sub
                            .signatures
                            .iter()
                            .any(|s| s.typ() == Some(pgp::packet::SignatureType::SubkeyRevocation));
                    // A subkey expires by its binding signature, and never after its primary.
                    let own = sub
                        .signatures
                        .iter()
                        .filter(|s| s.typ() == Some(pgp::packet::SignatureType::SubkeyBinding))
                        .filter_map(|s| s.key_expiration_time())
                        .max()
                        .map(|d| sub.key.created_at().timestamp() + d.num_seconds());
                    let primary = key.expires_at().map(|t| t.timestamp());
                    let expires = match (own, primary) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    pgp_key_valid(&user, revoked, expires, made)?;
                    return Ok(user);
                }
            }
            return Err(VerifyError::from(
                "signed by an OpenPGP key that is not trusted",
            ));
        }
        Err(VerifyError::from(
            "the signature is neither SSH nor OpenPGP",
        ))
    }

    /// Verifies the commit `commit` of `repo` as the mode asks: `Ok(signer)` or the reason.
    pub fn check(
        &self,
        repo: &gix::Repository,
        commit: gix::ObjectId,
    ) -> Result<String, VerifyError> {
        match self.mode {
            VerifyMode::Head => {
                let commit = repo
                    .find_commit(commit)
                    .map_err(|e| format!("cannot read commit {commit}: {e}"))?;
                let signed_at = commit
                    .committer()
                    .map_err(|e| format!("cannot read the committer of {}: {e}", commit.id))?
                    .seconds();
                let Some((signature, data)) = commit
                    .signature()
                    .map_err(|e| format!("cannot read the signature of {}: {e}", commit.id))?
                else {
                    return Err(VerifyError::from(format!(
                        "commit {} is not signed",
                        commit.id
                    )));
                };
                self.verify(signature.as_ref(), data.to_bstring().as_ref(), signed_at)
                    .map_err(|why| VerifyError(format!("commit {}: {why}", commit.id)))
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
                    let Some(signed_at) =
                        gix::objs::TagRefIter::from_bytes(&object.data, commit.kind())
                            .tagger()
                            .ok()
                            .flatten()
                            .map(|t| t.seconds())
                    else {
                        reasons.push(format!("tag {name} has no tagger"));
                        continue;
                    };
                    match gix::objs::TagRefIter::signature(&object.data) {
                        Some((signature, data)) => {
                            match self.verify(
                                signature.data.as_ref(),
                                data.to_bstring().as_ref(),
                                signed_at,
                            ) {
                                Ok(signer) => return Ok(format!("{signer} (tag {name})")),
                                Err(why) => reasons.push(format!("tag {name}: {why}")),
                            }
                        }
                        None => reasons.push(format!("tag {name} is not signed")),
                    }
                }
                if reasons.is_empty() {
                    Err(VerifyError::from(format!(
                        "commit {commit} has no annotated tag"
                    )))
                } else {
                    Err(VerifyError::from(format!(
                        "commit {commit}: {}",
                        reasons.join("; ")
                    )))
                }
            }
        }
    }
}

/// Whether an OpenPGP key may vouch for a signature made at `made` (Unix seconds).
fn pgp_key_valid(
    user: &str,
    revoked: bool,
    expires: Option<i64>,
    made: i64,
) -> Result<(), VerifyError> {
    if revoked {
        return Err(VerifyError::from(format!(
            "the OpenPGP key of {user} is revoked"
        )));
    }
    if let Some(expires) = expires
        && made >= expires
    {
        return Err(VerifyError::from(format!(
            "the OpenPGP key of {user} expired at {}; this was signed at {}",
            format_unix(expires),
            format_unix(made)
        )));
    }
    Ok(())
}
