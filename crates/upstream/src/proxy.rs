//! `[egress] proxy` and `no_proxy`: the one forward proxy upstream traffic may go through. The
//! environment's `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are never read: through a proxy the
//! proxy resolves names, so a proxy nobody configured on purpose would bypass the egress rules.

/// The forward proxy, as the operator configured it.
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    /// `http://host:port` (or `https://`); no credentials, no path.
    pub url: url::Url,
    /// Hosts reached directly (`NO_PROXY` syntax: `host`, `.domain`, an address or a network).
    pub no_proxy: Vec<String>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EgressProxy({}, no_proxy: {:?})", self.url, self.no_proxy)
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BadProxy {
    #[error("proxy is not a URL")]
    NotAUrl,
    #[error("proxy must be http://host:port or https://host:port")]
    Scheme,
    #[error("proxy is a base URL: no user, password, path, query or fragment")]
    NotABase,
    #[error("no_proxy entry {0:?} is empty or has a space, comma or slash it should not have")]
    BadException(String),
}

impl EgressProxy {
    pub fn parse(text: &str, no_proxy: &[String]) -> Result<Self, BadProxy> {
        let url = url::Url::parse(text).map_err(|_| BadProxy::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(BadProxy::Scheme);
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(BadProxy::NotABase);
        }
        for entry in no_proxy {
            // A network (`10.0.0.0/8`) has one slash; nothing else may have any.
            let network = entry.parse::<ipnet::IpNet>().is_ok();
            if entry.is_empty() || entry.contains([' ', ',']) || (entry.contains('/') && !network) {
                return Err(BadProxy::BadException(entry.clone()));
            }
        }
        Ok(EgressProxy { url, no_proxy: no_proxy.to_vec() })
    }

    /// The proxy's host name, when it is a name (its addresses may be private: it is the
    /// operator's).
    pub(crate) fn host_name(&self) -> Option<String> {
        match self.url.host() {
            Some(url::Host::Domain(name)) => Some(name.to_owned()),
            _ => None,
        }
    }

    /// The `NO_PROXY`-style list.
    pub fn no_proxy_list(&self) -> String {
        self.no_proxy.join(",")
    }

    /// reqwest's form of it.
    pub(crate) fn to_reqwest(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        let proxy = reqwest::Proxy::all(self.url.as_str())?;
        Ok(proxy.no_proxy(reqwest::NoProxy::from_string(&self.no_proxy_list())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_a_plain_base_url() {
        let proxy =
            EgressProxy::parse("http://proxy.internal:3128", &["minio.internal".into(), "10.0.0.0/8".into()])
                .unwrap();
        assert_eq!(proxy.host_name().as_deref(), Some("proxy.internal"));
        assert_eq!(proxy.no_proxy_list(), "minio.internal,10.0.0.0/8");
        assert_eq!(EgressProxy::parse("http://10.0.0.1:3128/", &[]).unwrap().host_name(), None);
        assert_eq!(EgressProxy::parse("socks5://proxy:1080", &[]), Err(BadProxy::Scheme));
        assert_eq!(EgressProxy::parse("proxy:3128", &[]), Err(BadProxy::Scheme));
        assert_eq!(EgressProxy::parse("http://user:pw@proxy:3128", &[]), Err(BadProxy::NotABase));
        assert_eq!(EgressProxy::parse("http://proxy:3128/path", &[]), Err(BadProxy::NotABase));
        assert_eq!(
            EgressProxy::parse("http://proxy:3128", &["a,b".into()]),
            Err(BadProxy::BadException("a,b".into()))
        );
    }
}
