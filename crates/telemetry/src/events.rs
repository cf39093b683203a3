//! The last errors and denials of this process, in memory, for the admin API's `GET /events`: a
//! tracing layer keeps every warning, error and audit denial in a ring of fixed size.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How many events the ring keeps.
pub const CAPACITY: usize = 500;

/// The target of audit events (grants, denials).
pub const AUDIT_TARGET: &str = "depproxy::audit";

/// One error or denial.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedEvent {
    /// Unix milliseconds.
    pub at: u64,
    /// `denied` for audit denials, else the level: `error` or `warning`.
    pub kind: String,
    pub group: Option<String>,
    pub image: Option<String>,
    /// The message with the event's other fields (`key=value`).
    pub message: String,
}

/// The ring.
pub struct RecentEvents {
    ring: Mutex<VecDeque<RecordedEvent>>,
    capacity: usize,
}

impl RecentEvents {
    pub fn new(capacity: usize) -> Self {
        RecentEvents { ring: Mutex::new(VecDeque::with_capacity(capacity)), capacity }
    }

    pub fn record(&self, event: RecordedEvent) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// The newest `limit` events, newest first.
    pub fn latest(&self, limit: usize) -> Vec<RecordedEvent> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().rev().take(limit).cloned().collect()
    }
}

/// The process's ring, which [`EventsLayer`] fills.
pub fn recent_events() -> &'static RecentEvents {
    static EVENTS: OnceLock<RecentEvents> = OnceLock::new();
    EVENTS.get_or_init(|| RecentEvents::new(CAPACITY))
}

/// Records warnings, errors and audit denials into [`recent_events`].
pub struct EventsLayer;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    event: Option<String>,
    group: Option<String>,
    image: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "event" => self.event = Some(value),
            "group" => self.group = Some(value),
            "image" => self.image = Some(value),
            name => {
                let separator = if self.rest.is_empty() { "" } else { " " };
                let _ = write!(self.rest, "{separator}{name}={value}");
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for EventsLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        let audit = metadata.target() == AUDIT_TARGET;
        if !audit && *metadata.level() > Level::WARN {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let kind = match (audit, fields.event.as_deref()) {
            (true, Some("denied")) => "denied".to_owned(),
            (true, _) if *metadata.level() > Level::WARN => return,
            _ if *metadata.level() == Level::ERROR => "error".to_owned(),
            _ => "warning".to_owned(),
        };
        let message = match (fields.message.is_empty(), fields.rest.is_empty()) {
            (_, true) => fields.message,
            (true, false) => fields.rest,
            (false, false) => format!("{}: {}", fields.message, fields.rest),
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        recent_events().record(RecordedEvent { at, kind, group: fields.group, image: fields.image, message });
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn warnings_errors_and_denials_are_kept_newest_first_and_the_ring_is_bounded() {
        let subscriber = tracing_subscriber::registry().with(EventsLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::info!(target: "depproxy::audit", event = "granted", token = "ci", "not kept either");
            tracing::warn!(target: "depproxy::audit", event = "denied", group = "acme", image = "app",
                reason = "token not granted this group");
            tracing::error!(error = "disk full", "fill failed");
        });
        let latest = recent_events().latest(2);
        assert_eq!(latest[0].kind, "error");
        assert_eq!(latest[0].message, "fill failed: error=disk full");
        assert_eq!(latest[1].kind, "denied");
        assert_eq!(latest[1].group.as_deref(), Some("acme"));
        assert_eq!(latest[1].image.as_deref(), Some("app"));
        assert!(latest[1].message.contains("token not granted"));

        let ring = RecentEvents::new(3);
        for n in 0..5 {
            ring.record(RecordedEvent {
                at: n,
                kind: "warning".into(),
                group: None,
                image: None,
                message: n.to_string(),
            });
        }
        let kept: Vec<u64> = ring.latest(10).iter().map(|event| event.at).collect();
        assert_eq!(kept, vec![4, 3, 2]);
    }
}
