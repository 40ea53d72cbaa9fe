//! Session tokens: short-lived JWTs signed with the server's own Ed25519 key
//! (EdDSA), kept in the data directory with mode 0600.
//!
//! Validation pins the algorithm, requires every claim below, checks `nbf`
//! and allows 5 s of clock leeway. A valid signature is not enough: the
//! session it names must also be live (see `sessions`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

use crate::files::{self, KeyError};

/// The file that holds the token-signing key (PKCS#8).
pub const KEY_FILE: &str = "keys/token-ed25519.pk8";
/// Clock leeway allowed when checking `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 5;

/// The claims of a session token. Every one is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: `curbside:` and the server's id.
    pub iss: String,
    /// Audience: `curbside-api:` and the server's id.
    pub aud: String,
    /// The user.
    pub sub: String,
    /// The device.
    pub did: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Expires (Unix seconds).
    pub exp: u64,
    /// The session's id.
    pub jti: String,
}

/// Tokens whose signature was checked, remembered by SHA-256 of the whole
/// token, at most.
const VERIFIED_TOKENS: usize = 65_536;

/// Signs and checks session tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    /// The claims of tokens already verified, by the token's digest: an
    /// Ed25519 check costs more than the rest of a small request, and a
    /// client sends the same token with every request. A hit is only
    /// trusted within the token's validity (the same leeway); anything
    /// else takes the full check.
    verified: Mutex<HashMap<[u8; 32], Claims>>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A token that is not valid, for whatever reason (the reason is not told
/// to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid session token")]
pub struct InvalidToken;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Signed by this server, but past its expiry; its claims, which are
    /// genuine, name whose it was.
    Expired(Box<Claims>),
    /// Not a token of this server, or malformed.
    Invalid,
}

impl TokenIssuer {
    /// Loads the signing key from `data_dir`, generating it on first start.
    pub fn load_or_generate(data_dir: &Path, server_id: &str) -> Result<Self, KeyError> {
        let (pair, pkcs8) = files::ed25519_key(&data_dir.join(KEY_FILE))?;
        Ok(Self::from_key(
            &pkcs8,
            pair.public_key().as_ref(),
            server_id,
        ))
    }

    fn from_key(pkcs8: &[u8], public_key: &[u8], server_id: &str) -> Self {
        let issuer = format!("curbside:{server_id}");
        let audience = format!("curbside-api:{server_id}");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_audience(&[audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_ed_der(pkcs8),
            decoding: DecodingKey::from_ed_der(public_key),
            validation,
            issuer,
            audience,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a token for this session, valid from `now` for `lifetime_s`.
    pub fn issue(
        &self,
        session_id: &str,
        user_id: &str,
        device_id: &str,
        now_s: u64,
        lifetime_s: u64,
    ) -> Result<String, InvalidToken> {
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            did: device_id.to_owned(),
            iat: now_s,
            nbf: now_s,
            exp: now_s + lifetime_s,
            jti: session_id.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|_| InvalidToken)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Claims>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks a token's signature, algorithm and claims.
    pub fn verify(&self, token: &str) -> Result<Claims, Rejected> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Rejected::Invalid)?;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        if let Some(claims) = self.remembered().get(&digest)
            && now_s <= claims.exp.saturating_add(LEEWAY_SECONDS)
            && claims.nbf <= now_s.saturating_add(LEEWAY_SECONDS)
        {
            return Ok(claims.clone());
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                let mut remembered = self.remembered();
                if remembered.len() >= VERIFIED_TOKENS {
                    remembered.clear();
                }
                remembered.insert(digest, data.claims.clone());
                Ok(data.claims)
            }
            Err(error) if *error.kind() == ErrorKind::ExpiredSignature => {
                // Genuine but expired: say whose it was, for the audit log.
                let mut expired = self.validation.clone();
                expired.validate_exp = false;
                jsonwebtoken::decode::<Claims>(token, &self.decoding, &expired)
                    .map_or(Err(Rejected::Invalid), |data| {
                        Err(Rejected::Expired(Box::new(data.claims)))
                    })
            }
            Err(_) => Err(Rejected::Invalid),
        }
    }
}
