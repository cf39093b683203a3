//! A group's access policy: whether pulling needs an access token granted for the group, and which
//! client networks may pull anonymously anyway.

use std::net::IpAddr;

use ipnet::IpNet;

/// What a group asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// Anyone who reaches the listener may pull.
    Anonymous,
    /// Pulling needs a token granted for this group (except from `anonymous_networks`).
    Token,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    pub mode: AccessMode,
    /// Client networks served anonymously even when the mode is `Token` (docker's
    /// `registry-mirrors` and containerd mirrors usually send no credentials).
    pub anonymous_networks: Vec<IpNet>,
}

impl AccessPolicy {
    pub fn anonymous() -> Self {
        AccessPolicy { mode: AccessMode::Anonymous, anonymous_networks: Vec::new() }
    }

    pub fn token() -> Self {
        AccessPolicy { mode: AccessMode::Token, anonymous_networks: Vec::new() }
    }

    /// Whether `client` may pull without credentials.
    pub fn allows_anonymous(&self, client: IpAddr) -> bool {
        self.mode == AccessMode::Anonymous
            || self.anonymous_networks.iter().any(|network| network.contains(&client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_networks_open_a_token_group_to_some_clients_only() {
        let policy =
            AccessPolicy { mode: AccessMode::Token, anonymous_networks: vec!["10.0.0.0/8".parse().unwrap()] };
        assert!(policy.allows_anonymous("10.1.2.3".parse().unwrap()));
        assert!(!policy.allows_anonymous("192.0.2.1".parse().unwrap()));
        assert!(!AccessPolicy::token().allows_anonymous("127.0.0.1".parse().unwrap()));
        assert!(AccessPolicy::anonymous().allows_anonymous("192.0.2.1".parse().unwrap()));
    }
}
