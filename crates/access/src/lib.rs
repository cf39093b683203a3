//! Who may pull: access tokens (secrets stored only as hashes, known to each control plane as a
//! snapshot refreshed every few seconds, so revocations reach every node quickly and hits need no
//! database query), the registry JWTs of the docker token flow (which name a token by id, never
//! carry its secret, and reach only the repositories they were minted for), the credentials
//! clients present, which address a request comes from (and, from trusted proxies, which scheme),
//! the limit on failed logins per address and token, and how often denials are logged. Which group
//! needs what is the group's policy (`cache`).

mod authority;
mod client;
mod credentials;
mod denials;
mod jwt;
mod limiter;
mod scope;
mod secret;
mod tokens;

pub use authority::{Access, AccessSettings, AuthError, Grant, Identity, Reach, Refresh, format_rfc3339};
pub use client::{ForwardedProto, TrustedProxies, canonical, network_of, parse_forwarded_proto};
pub use credentials::Credentials;
pub use denials::DenialLog;
pub use jwt::{ISSUER, JwtError, JwtKeys, MAX_JWT_LENGTH, ResourceActions, SERVICE, TokenKind};
pub use limiter::FailureLimiter;
pub use scope::{MAX_SCOPES, Scope, TooManyScopes};
pub use secret::SECRET_PREFIX;
pub use tokens::{CreatedToken, TokenInfo, TokenRegistry, create_token, token_status, valid_token_name};
