//! [`Access`]: checks what clients present and issues registry tokens.
//!
//! Failed logins are limited per address and token ([`FailureLimiter`]), but only what is ours and
//! wrong counts — a `dpp_` secret that does not match, a registry token we signed for a token that
//! is no longer active. Credentials that are not ours (no `dpp_` prefix: docker sends its Docker
//! Hub login to our token realm; a JWT we did not sign) are refused and never counted: they cannot
//! be a guess at ours. Valid credentials are served even from an address past its quota, since
//! checking them is cheap (a snapshot lookup and a hash, or a cached registry token); only what
//! does not check out gets 429 there.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use metadata::MetadataError;
use oci::{GroupPath, ImageAddress};
use secrecy::ExposeSecret as _;
use sha2::Digest as _;

use crate::credentials::Credentials;
use crate::denials::DenialLog;
use crate::jwt::{JwtError, JwtKeys, MAX_JWT_LENGTH, ResourceActions, TokenKind};
use crate::limiter::FailureLimiter;
use crate::secret::{SECRET_PREFIX, id_of_secret};
use crate::tokens::{TokenInfo, TokenRegistry};

/// How long a registry token of scheduled warming is good for: each request gets a new one.
const WARMING_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Memory for verified registry tokens, weighed by size.
const VERIFIED_JWT_BUDGET: u64 = 32 << 20;

/// How tokens are issued and failures limited.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Lifetime of a registry JWT.
    pub token_ttl: Duration,
    /// Lifetime of a refresh token (offline token), capped by the access token's own expiry.
    pub refresh_token_ttl: Duration,
    /// Failed authentications allowed per client address, token and minute.
    pub failed_logins_per_minute: u32,
}

/// Which repositories credentials reach, within what their access token's groups allow.
#[derive(Debug, Clone)]
pub enum Reach {
    /// An access token's secret, or a refresh token: every repository of the token's groups.
    Groups,
    /// A registry token: the repositories it was minted for, named as the client named them
    /// (group form, mirror form, path prefix: each is its own name, as on Docker Hub).
    Repositories(Arc<[Box<str>]>),
}

impl Reach {
    /// Whether a request for `image`, named as the client wrote it, is within reach.
    pub fn includes(&self, image: &ImageAddress) -> bool {
        match self {
            Reach::Groups => true,
            Reach::Repositories(names) => names.iter().any(|name| names_image(name, image)),
        }
    }

    /// Whether the repository `name` (as a scope names it) is within reach.
    pub fn includes_name(&self, name: &str) -> bool {
        match self {
            Reach::Groups => true,
            Reach::Repositories(names) => names.iter().any(|granted| granted.as_ref() == name),
        }
    }
}

/// Whether `name` is how `image` was written, without building the written name (the hit path).
fn names_image(name: &str, image: &ImageAddress) -> bool {
    match image {
        ImageAddress::Root { image } => name == image.as_str(),
        ImageAddress::Group { group, image } => {
            name.strip_prefix(group.as_str()).and_then(|rest| rest.strip_prefix(oci::path::GROUP_MARKER))
                == Some(image.as_str())
        }
    }
}

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No credentials of ours (or an anonymous registry token).
    Anonymous,
    Token {
        token: Arc<TokenInfo>,
        reach: Reach,
    },
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::Token { token, .. } => &token.name,
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Ours, but wrong, revoked or expired: a failed login (counted).
    #[error("credentials not accepted")]
    Rejected,
    /// Not issued by us (no `dpp_` prefix, a JWT we did not sign, a bearer value too long to be
    /// ours): refused, never counted.
    #[error("credentials not issued by this proxy")]
    NotOurs,
    /// A registry token of ours past its lifetime: the client fetches a new one (not a failure).
    #[error("registry token expired")]
    Expired,
    /// Too many failed logins from this address for these credentials.
    #[error("too many failed logins from this address; retry in {}", telemetry::retry_wait(*.0))]
    RateLimited(Duration),
    #[error("metadata: {0}")]
    Metadata(#[from] MetadataError),
}

/// A token endpoint's answer.
#[derive(Debug, Clone)]
pub struct Grant {
    pub token: String,
    pub expires_in: u64,
    /// RFC 3339.
    pub issued_at: String,
    pub refresh_token: Option<String>,
}

/// What a refresh token stands for, and when it ends: what it is exchanged for ends no later.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub identity: Identity,
    /// Unix seconds.
    pub expires_at: u64,
}

pub struct Access {
    tokens: TokenRegistry,
    keys: JwtKeys,
    /// Registry logins (the public listener).
    limiter: FailureLimiter,
    /// The admin listener's logins: a limit of its own, so neither locks out the other.
    admin_limiter: FailureLimiter,
    denials: DenialLog,
    settings: AccessSettings,
    /// Registry tokens of access tokens already verified, by the SHA-256 of their text: a client
    /// sends the same JWT on every request of a pull, and checking its signature and claims each
    /// time cost a fifth of a hit. Revocation is still checked on every use (by token id); the
    /// lifetime by its `exp`. Weighed by bytes within [`VERIFIED_JWT_BUDGET`]; anonymous tokens
    /// (anyone can have those) are never kept.
    verified: moka::sync::Cache<[u8; 32], VerifiedJwt, foldhash::fast::RandomState>,
}

/// What a verified registry token says.
#[derive(Clone)]
struct VerifiedJwt {
    token_id: Arc<str>,
    expires_at: u64,
    repositories: Arc<[Box<str>]>,
}

impl VerifiedJwt {
    /// Roughly the bytes an entry holds: key, value and the cache's bookkeeping, then its text.
    fn weight(&self) -> u32 {
        const ENTRY: usize = 160;
        let names: usize = self.repositories.iter().map(|name| name.len() + size_of::<Box<str>>()).sum();
        u32::try_from(ENTRY + self.token_id.len() + names).unwrap_or(u32::MAX)
    }
}

/// The repositories a token's `access` claim lets it pull.
fn pull_repositories(access: &[ResourceActions]) -> Arc<[Box<str>]> {
    access
        .iter()
        .filter(|granted| {
            granted.resource_type == "repository" && granted.actions.iter().any(|action| action == "pull")
        })
        .map(|granted| Box::from(granted.name.as_str()))
        .collect()
}

/// A registry or refresh token that did not verify: ours but expired, or not ours.
fn unverified(error: JwtError) -> AuthError {
    match error {
        JwtError::Expired => AuthError::Expired,
        JwtError::Invalid(_) | JwtError::Signing(_) | JwtError::TooLong(_) => AuthError::NotOurs,
    }
}

/// Counts a failure of credentials of ours: 429 while blocked or past the quota, else 401.
fn fail(limiter: &FailureLimiter, client: IpAddr, token_id: Option<&str>) -> AuthError {
    if let Some(wait) = limiter.blocked_for(client, token_id) {
        return AuthError::RateLimited(wait);
    }
    match limiter.failed(client, token_id) {
        Some(wait) => AuthError::RateLimited(wait),
        None => AuthError::Rejected,
    }
}

impl Access {
    pub fn new(tokens: TokenRegistry, keys: JwtKeys, settings: AccessSettings) -> Self {
        let verified = moka::sync::Cache::builder()
            .max_capacity(VERIFIED_JWT_BUDGET)
            .weigher(|_key: &[u8; 32], value: &VerifiedJwt| value.weight())
            .time_to_live(settings.token_ttl.max(Duration::from_secs(1)))
            .build_with_hasher(foldhash::fast::RandomState::default());
        Access {
            tokens,
            keys,
            limiter: FailureLimiter::new(settings.failed_logins_per_minute),
            admin_limiter: FailureLimiter::new(settings.failed_logins_per_minute),
            denials: DenialLog::default(),
            settings,
            verified,
        }
    }

    pub fn tokens(&self) -> &TokenRegistry {
        &self.tokens
    }

    /// Whether a denial of `client` is logged now (see [`DenialLog::admit`]).
    pub fn log_denial(&self, client: IpAddr) -> Option<u64> {
        self.denials.admit(client)
    }

    /// Forgets failure counts that have refilled (called periodically: the maps would grow).
    pub fn forget_idle(&self) {
        self.limiter.forget_idle();
        self.admin_limiter.forget_idle();
    }

    /// Checks credentials from `client` (see the module's rules).
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
        client: IpAddr,
    ) -> Result<Identity, AuthError> {
        let identity = match credentials {
            Credentials::Basic { password, .. } => {
                let token = self.check_secret(password.expose_secret(), client, &self.limiter).await?;
                Identity::Token { token, reach: Reach::Groups }
            }
            // Package clients send the access token itself as a bearer (npm's `_authToken`).
            Credentials::Bearer(secret) if secret.expose_secret().starts_with(SECRET_PREFIX) => {
                let token = self.check_secret(secret.expose_secret(), client, &self.limiter).await?;
                Identity::Token { token, reach: Reach::Groups }
            }
            Credentials::Bearer(jwt) => self.check_registry_token(jwt.expose_secret(), client).await?,
        };
        if let Identity::Token { token, .. } = &identity
            && !token.is_warming()
        {
            self.tokens.note_use_of(token);
        }
        Ok(identity)
    }

    /// A registry token with which the control plane's scheduled warming pulls from `group`
    /// through a gateway (in this process or another): good for a few minutes, verified by every
    /// control plane that shares the signing key, reaching the whole group and nothing else.
    pub fn warming_token(&self, group: &GroupPath) -> Result<String, JwtError> {
        self.keys.sign_warming(group.as_str(), WARMING_TOKEN_LIFETIME)
    }

    /// The admin listener's check: the active token whose secret this is (whether it may
    /// administer is the caller's business), under the admin listener's own failure limit.
    pub async fn authenticate_admin(
        &self,
        secret: &str,
        client: IpAddr,
    ) -> Result<Arc<TokenInfo>, AuthError> {
        let token = self.check_secret(secret, client, &self.admin_limiter).await?;
        self.tokens.note_use_of(&token);
        Ok(token)
    }

    /// The active token whose secret this is.
    async fn check_secret(
        &self,
        secret: &str,
        client: IpAddr,
        limiter: &FailureLimiter,
    ) -> Result<Arc<TokenInfo>, AuthError> {
        if !secret.starts_with(SECRET_PREFIX) {
            return Err(AuthError::NotOurs);
        }
        let Some(id) = id_of_secret(secret) else { return Err(fail(limiter, client, None)) };
        let token = match self.tokens.in_snapshot(id) {
            Some(token) => Some(token),
            None => {
                // Newer than the snapshot, or made up: the database is asked only while the
                // address's unknown-token count is within its quota.
                if let Some(wait) = limiter.blocked_for(client, None) {
                    return Err(AuthError::RateLimited(wait));
                }
                self.tokens.by_id(id).await?
            }
        };
        match token {
            Some(token) if self.tokens.opens(&token, secret) => Ok(token),
            Some(token) => Err(fail(limiter, client, Some(&token.id))),
            None => Err(fail(limiter, client, None)),
        }
    }

    /// The identity a registry token stands for, with the repositories it was minted for.
    async fn check_registry_token(&self, jwt: &str, client: IpAddr) -> Result<Identity, AuthError> {
        if jwt.len() > MAX_JWT_LENGTH {
            return Err(AuthError::NotOurs);
        }
        let key: [u8; 32] = sha2::Sha256::digest(jwt.as_bytes()).into();
        let verified = match self.verified.get(&key) {
            Some(verified) => verified,
            None => {
                let claims = self.keys.verify(jwt, TokenKind::Access).map_err(unverified)?;
                let Some(token_id) = claims.tid else {
                    return match claims.warm {
                        Some(group) => {
                            let group = GroupPath::parse(&group).map_err(|_| AuthError::NotOurs)?;
                            let token = Arc::new(TokenInfo::for_warming(group));
                            Ok(Identity::Token { token, reach: Reach::Groups })
                        }
                        None => Ok(Identity::Anonymous),
                    };
                };
                let verified = VerifiedJwt {
                    token_id: Arc::from(token_id),
                    expires_at: claims.exp,
                    repositories: pull_repositories(&claims.access),
                };
                self.verified.insert(key, verified.clone());
                verified
            }
        };
        if crate::jwt::unix_now() >= verified.expires_at {
            return Err(AuthError::Expired);
        }
        match self.tokens.active(&verified.token_id).await? {
            Some(token) => Ok(Identity::Token { token, reach: Reach::Repositories(verified.repositories) }),
            None => Err(fail(&self.limiter, client, Some(&verified.token_id))),
        }
    }

    /// What a refresh token stands for: its access token, which must still be active.
    pub async fn authenticate_refresh(
        &self,
        refresh_token: &str,
        client: IpAddr,
    ) -> Result<Refresh, AuthError> {
        if refresh_token.len() > MAX_JWT_LENGTH {
            return Err(AuthError::NotOurs);
        }
        let claims = self.keys.verify(refresh_token, TokenKind::Refresh).map_err(unverified)?;
        // Refresh tokens are only ever issued for access tokens.
        let Some(token_id) = claims.tid else { return Err(AuthError::NotOurs) };
        match self.tokens.active(&token_id).await? {
            Some(token) => {
                self.tokens.note_use_of(&token);
                Ok(Refresh {
                    identity: Identity::Token { token, reach: Reach::Groups },
                    expires_at: claims.exp,
                })
            }
            None => Err(fail(&self.limiter, client, Some(&token_id))),
        }
    }

    /// A registry token for `identity` with the scopes it was granted; with a refresh token when
    /// asked for (`offline`) and the identity is an access token's secret or a refresh token (a
    /// registry token's reach is narrower than the refresh token's would be). A refresh token
    /// ends no later than the access token, nor than `refresh_until` (the refresh token this
    /// grant exchanges, unix seconds). A registry token longer than [`MAX_JWT_LENGTH`] is not
    /// issued.
    pub fn issue(
        &self,
        identity: &Identity,
        access: Vec<ResourceActions>,
        offline: bool,
        refresh_until: Option<u64>,
    ) -> Result<Grant, JwtError> {
        let token_id = match identity {
            Identity::Anonymous => None,
            // Scheduled warming's token is never exchanged for another: what it would get is
            // anonymous.
            Identity::Token { token, .. } if token.is_warming() => None,
            Identity::Token { token, .. } => Some(token.id.as_str()),
        };
        let (token, issued) = self.keys.sign(
            TokenKind::Access,
            identity.name(),
            token_id,
            access,
            self.settings.token_ttl,
            None,
        )?;
        if token.len() > MAX_JWT_LENGTH {
            return Err(JwtError::TooLong(token.len()));
        }
        let refresh_token = match (identity, offline) {
            (Identity::Token { token: info, reach: Reach::Groups }, true) if !info.is_warming() => {
                let token_end = info.expires_at.map(|ms| u64::try_from(ms.max(0) / 1000).unwrap_or(0));
                let not_after = match (token_end, refresh_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (end, until) => end.or(until),
                };
                match not_after {
                    Some(end) if end <= issued => None,
                    not_after => Some(
                        self.keys
                            .sign(
                                TokenKind::Refresh,
                                &info.name,
                                token_id,
                                Vec::new(),
                                self.settings.refresh_token_ttl,
                                not_after,
                            )?
                            .0,
                    ),
                }
            }
            _ => None,
        };
        Ok(Grant {
            token,
            expires_in: self.settings.token_ttl.as_secs(),
            issued_at: format_rfc3339(issued),
            refresh_token,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds.
pub fn format_rfc3339(unix: u64) -> String {
    let (year, month, day) = telemetry::text_log::civil_from_days(unix / 86_400);
    let seconds = unix % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use metadata::{Clock, DatabaseUrl, Metadata};
    use oci::GroupPath;
    use secrecy::SecretString;

    use super::*;

    struct World {
        access: Access,
        keys: JwtKeys,
        secret: String,
        token_id: String,
        _dir: tempfile::TempDir,
    }

    async fn world(per_minute: u32) -> World {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::new(format!("sqlite:{}", dir.path().join("db").display()));
        let metadata = Metadata::connect(&url).await.unwrap();
        let clock = Clock::system();
        let groups = vec![GroupPath::parse("default").unwrap()];
        let created = crate::create_token(&metadata, &clock, "ci", groups, false, None).await.unwrap();
        let tokens = TokenRegistry::new(metadata, clock);
        tokens.reload().await.unwrap();
        let keys = JwtKeys::new(&injector::Secret::from_bytes([5; 32]));
        let settings = AccessSettings {
            token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            failed_logins_per_minute: per_minute,
        };
        World {
            access: Access::new(tokens, keys.clone(), settings),
            keys,
            token_id: created.record.id,
            secret: created.secret,
            _dir: dir,
        }
    }

    fn basic(password: &str) -> Credentials {
        Credentials::Basic { username: "x".into(), password: SecretString::from(password.to_owned()) }
    }

    fn bearer(jwt: &str) -> Credentials {
        Credentials::Bearer(SecretString::from(jwt.to_owned()))
    }

    fn pulls(names: &[&str]) -> Vec<ResourceActions> {
        names
            .iter()
            .map(|name| ResourceActions {
                resource_type: "repository".into(),
                name: (*name).into(),
                actions: vec!["pull".into()],
            })
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    impl World {
        fn verified_bytes(&self) -> u64 {
            self.access.verified.run_pending_tasks();
            self.access.verified.weighted_size()
        }

        fn token(&self) -> Identity {
            let token = self.access.tokens.in_snapshot(&self.token_id).unwrap();
            Identity::Token { token, reach: Reach::Groups }
        }
    }

    #[tokio::test]
    async fn a_warming_token_pulls_from_its_group_only_and_is_never_exchanged() {
        let world = world(3).await;
        let group = GroupPath::parse("acme/platform").unwrap();
        let jwt = world.access.warming_token(&group).unwrap();
        let identity = world.access.authenticate(&bearer(&jwt), ip("127.0.0.1")).await.unwrap();
        let Identity::Token { token, reach } = &identity else { panic!("{identity:?}") };
        assert!(token.is_warming() && token.may_pull(&group), "{token:?}");
        assert!(!token.may_pull(&GroupPath::parse("default").unwrap()));
        assert!(matches!(reach, Reach::Groups));
        assert!(!token.admin);
        assert_eq!(identity.name(), crate::jwt::WARMING_SUBJECT);
        // At the token endpoint it buys nothing: an anonymous token, no refresh token.
        let grant = world.access.issue(&identity, pulls(&["img"]), true, None).unwrap();
        assert!(grant.refresh_token.is_none());
        let exchanged = world.access.authenticate(&bearer(&grant.token), ip("127.0.0.1")).await.unwrap();
        assert!(matches!(exchanged, Identity::Anonymous), "{exchanged:?}");
        // Minted with another key: not ours.
        let other = JwtKeys::new(&injector::Secret::from_bytes([6; 32]));
        let forged = other.sign_warming("acme/platform", Duration::from_secs(60)).unwrap();
        assert!(matches!(
            world.access.authenticate(&bearer(&forged), ip("127.0.0.1")).await,
            Err(AuthError::NotOurs)
        ));
    }

    #[tokio::test]
    async fn valid_credentials_pass_an_address_past_its_quota_and_foreign_ones_never_count() {
        let world = world(3).await;
        let nat = ip("198.51.100.7");
        for attempt in 0..10 {
            let guess = basic(&format!("dpp_0123456789abcdef_guess{attempt}"));
            let _ = world.access.authenticate(&guess, nat).await;
        }
        let guess = basic("dpp_0123456789abcdef_again");
        assert!(matches!(world.access.authenticate(&guess, nat).await, Err(AuthError::RateLimited(_))));
        let right = world.access.authenticate(&basic(&world.secret), nat).await;
        assert!(matches!(right, Ok(Identity::Token { .. })), "{right:?}");
        let grant = world.access.issue(&world.token(), pulls(&["img"]), false, None).unwrap();
        let jwt = world.access.authenticate(&bearer(&grant.token), nat).await;
        assert!(matches!(jwt, Ok(Identity::Token { .. })), "{jwt:?}");
        // Wrong secrets naming our token count under that token, not under the address's others.
        let wrong_for_ci = format!("dpp_{}_wrong", world.token_id);
        for _ in 0..3 {
            assert!(matches!(
                world.access.authenticate(&basic(&wrong_for_ci), nat).await,
                Err(AuthError::Rejected)
            ));
        }
        assert!(matches!(
            world.access.authenticate(&basic(&wrong_for_ci), nat).await,
            Err(AuthError::RateLimited(_))
        ));
        assert!(world.access.authenticate(&basic(&world.secret), nat).await.is_ok());
        // Not ours: never counted, whatever their number.
        let hub = ip("198.51.100.9");
        let other_key = JwtKeys::new(&injector::Secret::from_bytes([6; 32]));
        let (foreign_jwt, _) = other_key
            .sign(TokenKind::Access, "ci", Some(&world.token_id), Vec::new(), Duration::from_secs(60), None)
            .unwrap();
        for attempt in 0..20 {
            let hub_login = basic(&format!("docker-hub-password{attempt}"));
            assert!(matches!(world.access.authenticate(&hub_login, hub).await, Err(AuthError::NotOurs)));
            assert!(matches!(
                world.access.authenticate(&bearer(&foreign_jwt), hub).await,
                Err(AuthError::NotOurs)
            ));
        }
        let first_guess = basic("dpp_0123456789abcdef_first");
        assert!(matches!(world.access.authenticate(&first_guess, hub).await, Err(AuthError::Rejected)));
        // The admin listener counts apart.
        assert!(matches!(
            world.access.authenticate_admin("dpp_0123456789abcdef_x", nat).await,
            Err(AuthError::Rejected)
        ));
    }

    #[tokio::test]
    async fn anonymous_registry_tokens_are_not_cached_and_cached_ones_are_weighed_in_bytes() {
        let world = world(10).await;
        let client = ip("192.0.2.1");
        let many: Vec<String> = (0..20).map(|i| format!("open/dependency_proxy/containers/img{i}")).collect();
        let names: Vec<&str> = many.iter().map(String::as_str).collect();
        let anonymous = world.access.issue(&Identity::Anonymous, pulls(&names), false, None).unwrap();
        assert!(matches!(
            world.access.authenticate(&bearer(&anonymous.token), client).await,
            Ok(Identity::Anonymous)
        ));
        assert_eq!(world.verified_bytes(), 0, "an anonymous token was kept");
        let small = world.access.issue(&world.token(), pulls(&["img"]), false, None).unwrap();
        world.access.authenticate(&bearer(&small.token), client).await.unwrap();
        let one = world.verified_bytes();
        assert!(one > 0 && one < 512, "{one}");
        let large = world.access.issue(&world.token(), pulls(&names), false, None).unwrap();
        world.access.authenticate(&bearer(&large.token), client).await.unwrap();
        let both = world.verified_bytes();
        assert!(both - one > 20 * 40, "a token of 20 scopes weighs more than one of 1: {one} then {both}");
        // Bounded by bytes, not entries: 40,000 tokens of 20 scopes are more than the budget.
        let entry = both - one;
        let entries = VERIFIED_JWT_BUDGET / entry;
        assert!(entries < 100_000, "{entries} large tokens fit the budget");
    }

    #[tokio::test]
    async fn registry_tokens_reach_their_scopes_and_are_at_most_8_kib() {
        let world = world(10).await;
        let client = ip("192.0.2.1");
        let grant = world
            .access
            .issue(&world.token(), pulls(&["acme/dependency_proxy/containers/app"]), false, None)
            .unwrap();
        let Ok(Identity::Token { reach, .. }) =
            world.access.authenticate(&bearer(&grant.token), client).await
        else {
            panic!("the token did not verify");
        };
        assert!(reach.includes(&ImageAddress::parse("acme/dependency_proxy/containers/app").unwrap()));
        assert!(!reach.includes(&ImageAddress::parse("acme/dependency_proxy/containers/other").unwrap()));
        assert!(!reach.includes(&ImageAddress::parse("app").unwrap()), "another name of the same image");
        assert!(!reach.includes(&ImageAddress::parse("acme/dependency_proxy/containers/app2").unwrap()));
        assert!(reach.includes_name("acme/dependency_proxy/containers/app") && !reach.includes_name("app"));
        // A token that would be longer than 8 KiB is not issued …
        let long: Vec<String> = (0..32).map(|i| format!("{}{i:02}", "x".repeat(200))).collect();
        let names: Vec<&str> = long.iter().map(String::as_str).collect();
        assert!(matches!(
            world.access.issue(&world.token(), pulls(&names), false, None),
            Err(JwtError::TooLong(_))
        ));
        // … and one we did sign that long is refused unread.
        let (huge, _) = world
            .keys
            .sign(
                TokenKind::Access,
                "ci",
                Some(&world.token_id),
                pulls(&names),
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        assert!(huge.len() > MAX_JWT_LENGTH);
        assert!(matches!(world.access.authenticate(&bearer(&huge), client).await, Err(AuthError::NotOurs)));
        // A registry token's identity gets no refresh token: it would reach more than the JWT.
        let Ok(identity) = world.access.authenticate(&bearer(&grant.token), client).await else { panic!() };
        assert!(world.access.issue(&identity, Vec::new(), true, None).unwrap().refresh_token.is_none());
    }

    #[tokio::test]
    async fn a_refresh_exchange_ends_no_later_than_the_refresh_token_it_exchanges() {
        let world = world(10).await;
        let client = ip("192.0.2.1");
        let (refresh, _) = world
            .keys
            .sign(TokenKind::Refresh, "ci", Some(&world.token_id), Vec::new(), Duration::from_secs(60), None)
            .unwrap();
        let exchanged = world.access.authenticate_refresh(&refresh, client).await.unwrap();
        let grant =
            world.access.issue(&exchanged.identity, Vec::new(), true, Some(exchanged.expires_at)).unwrap();
        let next = world.keys.verify(&grant.refresh_token.unwrap(), TokenKind::Refresh).unwrap();
        assert!(next.exp <= exchanged.expires_at, "{} > {}", next.exp, exchanged.expires_at);
        // Revoked with its access token.
        world.access.tokens.revoke("ci").await.unwrap();
        assert!(matches!(
            world.access.authenticate_refresh(&refresh, client).await,
            Err(AuthError::Rejected)
        ));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
