//! How depproxy's S3 clients reach the bucket: straight, or through `[egress] proxy` — never
//! through a proxy the environment names (`HTTP_PROXY` and friends), which would see every
//! object and credential.

use std::time::Duration;

/// Connect timeout of the bucket's client (the credential services ask for less).
pub(crate) const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest silence while reading an answer.
pub(crate) const S3_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A forward proxy for S3 traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Proxy {
    /// `http://host:port`
    pub url: String,
    /// Hosts reached directly, `NO_PROXY` style (comma-separated).
    pub no_proxy: String,
}

/// Builds the bucket's HTTP clients (object_store asks for one per purpose: the bucket, and the
/// instance-metadata and STS credential services) the way object_store's own connector would,
/// except for the proxy: reqwest would otherwise take `HTTP_PROXY` and friends from the
/// environment, and with them every object and credential.
#[derive(Debug)]
pub(crate) struct S3Connector {
    pub(crate) proxy: Option<S3Proxy>,
}

impl object_store::client::HttpConnector for S3Connector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let setting = |key| options.get_config_value(&key);
        let allow_http =
            setting(object_store::ClientConfigKey::AllowHttp).is_some_and(|value| value == "true");
        // The credential services are asked with a shorter connect timeout than the bucket.
        let connect_timeout = match setting(object_store::ClientConfigKey::ConnectTimeout) {
            Some(text) => humantime::parse_duration(&text).unwrap_or(S3_CONNECT_TIMEOUT),
            None => S3_CONNECT_TIMEOUT,
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("depproxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .read_timeout(S3_READ_TIMEOUT)
            .https_only(!allow_http);
        // object_store's default: HTTP/2 is slower for this traffic.
        if setting(object_store::ClientConfigKey::Http1Only).is_none_or(|value| value == "true") {
            builder = builder.http1_only();
        }
        let client = with_proxy(builder, self.proxy.as_ref())
            .and_then(reqwest::ClientBuilder::build)
            .map_err(|error| connector_error(error.into()))?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

fn connector_error(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
    object_store::Error::Generic { store: "S3", source }
}

/// `builder` reaching its destination directly, or through `proxy`.
pub(crate) fn with_proxy(
    builder: reqwest::ClientBuilder,
    proxy: Option<&S3Proxy>,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    Ok(match proxy {
        None => builder.no_proxy(),
        Some(proxy) => {
            let configured = reqwest::Proxy::all(&proxy.url)?;
            builder.proxy(configured.no_proxy(reqwest::NoProxy::from_string(&proxy.no_proxy)))
        }
    })
}
