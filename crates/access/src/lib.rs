//! Who may pull: access tokens (secrets stored only as hashes, known to each control plane as a
//! snapshot refreshed every few seconds, so revocations reach every node quickly and hits need no
//! database query), the registry JWTs of the docker token flow (which name a token by id, never
//! carry its secret), the credentials clients present, which address a request comes from, and the
//! limit on failed logins per address. Which group needs what is the group's policy (`cache`).

mod authority;
mod client;
mod credentials;
mod jwt;
mod limiter;
mod scope;
mod secret;
mod tokens;

pub use authority::{Access, AccessSettings, AuthError, Grant, Identity, format_rfc3339};
pub use client::TrustedProxies;
pub use credentials::Credentials;
pub use jwt::{ISSUER, JwtError, JwtKeys, ResourceActions, SERVICE, TokenKind};
pub use limiter::FailureLimiter;
pub use scope::Scope;
pub use secret::SECRET_PREFIX;
pub use tokens::{CreatedToken, TokenInfo, TokenRegistry, create_token, token_status, valid_token_name};
