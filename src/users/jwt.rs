//! `org.matrix.login.jwt`: log in with a JSON Web Token whose `sub` claim is the localpart
//! (the login type Synapse documents as "JWT login").

use std::collections::HashSet;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{ConfigError, JwtSection};
use crate::error::{Error, Result};

pub const LOGIN_TYPE: &str = "org.matrix.login.jwt";

pub fn algorithm(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

/// Key and validation rules, prepared once at start-up from `[jwt]`.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    pub create_users: bool,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl JwtVerifier {
    pub fn from_config(c: &JwtSection) -> Result<Option<JwtVerifier>, ConfigError> {
        if !c.enabled {
            return Ok(None);
        }
        let bad = |key: &str, why: String| ConfigError(format!("invalid value for key \"{key}\": {why}"));
        let alg = algorithm(&c.algorithm).ok_or_else(|| bad("jwt.algorithm", "unknown algorithm".into()))?;
        let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        let key = if hmac {
            let secret = c.secret.as_deref().ok_or_else(|| bad("jwt.secret", format!("{alg:?} needs jwt.secret")))?;
            DecodingKey::from_secret(secret.as_bytes())
        } else {
            let spec =
                c.public_key.as_deref().ok_or_else(|| bad("jwt.public_key", format!("{alg:?} needs a public key")))?;
            let pem = if spec.trim_start().starts_with("-----BEGIN") {
                spec.as_bytes().to_vec()
            } else {
                std::fs::read(spec).map_err(|e| bad("jwt.public_key", format!("reading {spec}: {e}")))?
            };
            let parsed = match alg {
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                _ => DecodingKey::from_rsa_pem(&pem),
            };
            parsed.map_err(|e| bad("jwt.public_key", e.to_string()))?
        };
        let mut validation = Validation::new(alg);
        validation.required_spec_claims = HashSet::from(["sub".to_owned()]);
        validation.validate_aud = !c.audiences.is_empty();
        if !c.audiences.is_empty() {
            validation.set_audience(&c.audiences);
        }
        if let Some(iss) = &c.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Some(JwtVerifier { key, validation, create_users: c.create_users }))
    }

    /// The localpart the token vouches for; `M_FORBIDDEN` for any invalid token.
    pub fn verify(&self, token: &str) -> Result<String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| Error::forbidden(format!("JWT validation failed: {e}")))?;
        Ok(data.claims.sub)
    }
}
