//! The one renderer of a metrics registry, for every `/metrics` endpoint: a gateway's public or
//! own listener, and a control plane's metrics listener.

use prometheus_client::registry::Registry;

/// What `prometheus_client`'s text encoder writes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry in the OpenMetrics text format; `None` renders an empty exposition.
pub fn render_registry(registry: Option<&Registry>) -> http::Response<String> {
    let mut text = String::new();
    if let Some(registry) = registry
        && prometheus_client::encoding::text::encode(&mut text, registry).is_err()
    {
        text.clear();
    }
    let mut response = http::Response::new(text);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_renders_as_openmetrics_text_and_none_as_an_empty_exposition() {
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        registry.register("depproxy_example", "An example", counter.clone());
        counter.inc();
        let rendered = render_registry(Some(&registry));
        assert_eq!(rendered.headers()[http::header::CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
        assert!(rendered.body().contains("depproxy_example_total 1\n"), "{}", rendered.body());
        assert_eq!(render_registry(None).body(), "");
    }
}
