//! Named API tokens, stored as SHA-256 hashes (`platformd token`, `docs/RUNNING.md`).

use super::sql::args;
use super::{Result, Store, StoreError, now};
use sha2::Digest;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// The read endpoints only.
    Read,
    /// Everything: sync, approve, rollback, resume, wake.
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub name: String,
    pub scope: TokenScope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The hash a token is stored and looked up by.
pub fn token_hash(token: &str) -> String {
    sha2::Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token: `pdt_` and 40 hex digits from the OS's random source.
pub fn new_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!(
        "pdt_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

impl Store {
    /// Stores a token's hash under `name`; refused when the name is taken.
    pub fn create_token(&self, name: &str, scope: TokenScope, token: &str) -> Result<()> {
        let inserted = self.conn().execute(
            "INSERT INTO api_tokens (name, scope, hash, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            args![name, scope.as_str(), token_hash(token), now()],
        )?;
        if inserted == 0 {
            return Err(StoreError::TokenExists(name.to_string()));
        }
        Ok(())
    }

    pub fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows: Vec<(String, String, i64, Option<i64>)> = self.conn().query_map(
            "SELECT name, scope, created_at, last_used_at FROM api_tokens ORDER BY name",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(name, scope, created_at, last_used_at)| {
                Ok(ApiToken {
                    scope: TokenScope::parse(&scope)
                        .ok_or_else(|| StoreError::Corrupt(format!("token scope `{scope}`")))?,
                    name,
                    created_at,
                    last_used_at,
                })
            })
            .collect()
    }

    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM api_tokens WHERE name = ?1", args![name])?
            > 0)
    }

    /// The token presented, if it is one of ours (and when it was last used is noted).
    pub fn authenticate(&self, token: &str) -> Result<Option<(String, TokenScope)>> {
        let conn = self.conn();
        let found: Option<(String, String)> = conn.query_row_opt(
            "SELECT name, scope FROM api_tokens WHERE hash = ?1",
            args![token_hash(token)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let Some((name, scope)) = found else {
            return Ok(None);
        };
        conn.execute(
            "UPDATE api_tokens SET last_used_at = ?1 WHERE name = ?2",
            args![now(), name],
        )?;
        let scope = TokenScope::parse(&scope)
            .ok_or_else(|| StoreError::Corrupt(format!("token scope `{scope}`")))?;
        Ok(Some((name, scope)))
    }
}
