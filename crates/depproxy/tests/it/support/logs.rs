//! Log events captured in process: a test sees what the proxy it runs logged (warnings, access
//! lines) with their fields.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt as _;

/// One logged event: its level, target and fields (the message under `message`).
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: tracing::Level,
    pub target: String,
    pub fields: BTreeMap<String, String>,
}

/// Every event logged on this test's thread (a `#[tokio::test]` runs the proxy's tasks there).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Logged>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let metadata = event.metadata();
        let logged = Logged { level: *metadata.level(), target: metadata.target().to_owned(), fields };
        self.0.lock().unwrap().push(logged);
    }
}

impl Captured {
    /// Captures this thread's events until the guard drops.
    pub fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
        (captured, guard)
    }

    pub fn take(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Warnings among `events`, as `target: fields`.
pub fn warnings(events: &[Logged]) -> Vec<String> {
    events
        .iter()
        .filter(|event| event.level == tracing::Level::WARN)
        .map(|event| format!("{}: {:?}", event.target, event.fields))
        .collect()
}
