//! The running-fill report: one shape from the gateway that runs a fill to whoever shows it — the
//! report a gateway in split mode POSTs to [`crate::FILLS_REPORT_PATH`], the admin API's
//! `GET /api/v1/fills`, the status page and `depproxy admin fills`.

use serde::{Deserialize, Serialize};

/// One running fill, as operators see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FillReport {
    /// The configured upstream's name.
    pub upstream: String,
    /// What kind of object it fetches (`manifest` or `blob`).
    pub kind: String,
    /// What it fetches as the upstream names it, e.g. `library/alpine:3.20` or
    /// `library/alpine@sha256:…` (never with a query: presigned parts).
    pub object: String,
    /// `connecting`, `streaming`, `verdict` (a held fill's bytes are in; its group's admission
    /// hook decides) or `finishing` (verified, being made durable and recorded).
    pub phase: String,
    pub bytes_done: u64,
    /// As upstream announced it; `None` for a chunked answer.
    pub bytes_total: Option<u64>,
    /// Bytes per second, on average since the start.
    pub rate: u64,
    /// Clients attached.
    pub clients: usize,
    /// Unix milliseconds.
    pub started_at: u64,
    /// The node running it (filled in by whoever gathers the reports of several nodes).
    #[serde(default)]
    pub node: String,
}

/// A gateway's list of its live fills, as it sends it to the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillsReport {
    pub node: String,
    pub fills: Vec<FillReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_is_flat_and_a_node_may_be_left_out() {
        let fill = FillReport {
            upstream: "lab".into(),
            kind: "blob".into(),
            object: "app@sha256:00".into(),
            phase: "streaming".into(),
            bytes_done: 1,
            bytes_total: None,
            rate: 1,
            clients: 1,
            started_at: 1,
            node: String::new(),
        };
        let report = FillsReport { node: "gateway-1".into(), fills: vec![fill.clone()] };
        let text = serde_json::to_value(&report).unwrap();
        assert_eq!(
            text,
            serde_json::json!({"node": "gateway-1", "fills": [{"upstream": "lab", "kind": "blob",
                "object": "app@sha256:00", "phase": "streaming", "bytes_done": 1, "bytes_total": null,
                "rate": 1, "clients": 1, "started_at": 1, "node": ""}]})
        );
        let without_node = serde_json::json!({"upstream": "lab", "kind": "blob", "object": "app@sha256:00",
            "phase": "streaming", "bytes_done": 1, "bytes_total": null, "rate": 1, "clients": 1, "started_at": 1});
        assert_eq!(serde_json::from_value::<FillReport>(without_node).unwrap(), fill);
    }
}
