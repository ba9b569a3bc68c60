//! Bearer tokens and the two roles of the API (`docs/api.md`).

use axum::http::{HeaderMap, header::AUTHORIZATION};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Crm,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "crm" => Some(Self::Crm),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// The configured tokens, kept as SHA-256 digests: a presented token is
/// digested and compared with every one in constant time, so neither its
/// length nor which token it resembles shows in the answer's timing. Empty
/// means the API is open (loopback only).
#[derive(Clone, Default)]
pub struct Tokens(Vec<(Role, Digest)>);

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Why a token list (`crm:TOKEN,admin:TOKEN`) did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenSpecError {
    #[error("token entry without `role:`: expected crm:TOKEN or admin:TOKEN")]
    NoRole,
    #[error("unknown role `{0}` (crm or admin)")]
    UnknownRole(String),
    #[error("empty token for role {0:?}")]
    EmptyToken(Role),
}

impl Tokens {
    pub fn new(tokens: Vec<(Role, String)>) -> Self {
        Self(tokens.iter().map(|(role, t)| (*role, digest(t))).collect())
    }

    /// Parses `crm:TOKEN1,admin:TOKEN2`.
    pub fn parse(spec: &str) -> Result<Self, TokenSpecError> {
        let mut tokens = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (role, token) = item.split_once(':').ok_or(TokenSpecError::NoRole)?;
            let role =
                Role::parse(role).ok_or_else(|| TokenSpecError::UnknownRole(role.to_owned()))?;
            if token.is_empty() {
                return Err(TokenSpecError::EmptyToken(role));
            }
            tokens.push((role, token.to_owned()));
        }
        Ok(Self::new(tokens))
    }

    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the request's bearer token grants at least `needed`.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<(), ApiError> {
        if self.is_open() {
            return Ok(());
        }
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let presented = digest(presented);
        // Every token is compared, none skipped once one matches.
        let role = self
            .0
            .iter()
            .fold(None, |found, (role, token)| {
                if constant_time_eq(token, &presented) {
                    found.max(Some(*role))
                } else {
                    found
                }
            })
            .ok_or(ApiError::Unauthorized)?;
        if role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn constant_time_eq(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[test]
    fn roles_are_enforced() {
        let tokens = Tokens::parse("crm:c1,admin:a1").expect("parse");
        assert!(tokens.authorize(&bearer("c1"), Role::Crm).is_ok());
        assert!(matches!(
            tokens.authorize(&bearer("c1"), Role::Admin),
            Err(ApiError::Forbidden)
        ));
        assert!(tokens.authorize(&bearer("a1"), Role::Crm).is_ok());
        assert!(matches!(
            tokens.authorize(&bearer("zz"), Role::Crm),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            tokens.authorize(&HeaderMap::new(), Role::Crm),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn only_a_whole_token_matches_among_several() {
        let tokens = Tokens::parse("crm:abc,crm:abd,admin:xyz").expect("parse");
        assert!(tokens.authorize(&bearer("abd"), Role::Crm).is_ok());
        assert!(tokens.authorize(&bearer("xyz"), Role::Admin).is_ok());
        for near in ["ab", "abcd", "ABC", "abc ", ""] {
            assert!(
                matches!(
                    tokens.authorize(&bearer(near), Role::Crm),
                    Err(ApiError::Unauthorized)
                ),
                "{near:?}"
            );
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Tokens::parse("root:x").is_err());
        assert!(Tokens::parse("crm").is_err());
        assert!(Tokens::parse("crm:").is_err());
    }
}
