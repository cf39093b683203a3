//! The last errors and denials of this process, in memory, for the admin API's `GET /events`: a
//! tracing layer keeps every warning, error and audit denial. Errors (and warnings) and denials
//! are kept in rings of their own, so a flood of denials — a client guessing passwords — cannot
//! push the errors out; and a repeat (same kind, message, group, image, client and details, the
//! denial's reason aside) within a minute of the last one is counted on its row instead of
//! taking a row of its own: "12 × failed login from 10.0.0.7 within 41s".

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::wording::HumanDuration;

/// How many rows each ring (errors and warnings; denials) keeps.
pub const CAPACITY: usize = 500;

/// A repeat this soon after the last occurrence of its row is counted on that row.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// The target of audit events (grants, denials).
pub const AUDIT_TARGET: &str = "depproxy::audit";

/// The target of a denial held back from the log (one line per client address and minute is
/// written, with a count of those held back since): it still reaches the events ring, where
/// repeats are counted on one row, but no log writer prints it (see [`printed_in_logs`]).
pub const AUDIT_HELD_BACK_TARGET: &str = "depproxy::audit_held_back";

/// Whether a log writer prints events of this target: not the denials held back from the log.
pub fn printed_in_logs(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() != AUDIT_HELD_BACK_TARGET
}

/// One error or denial, or a run of repeats of one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedEvent {
    /// Unix milliseconds of the latest occurrence.
    pub at: u64,
    /// Unix milliseconds of the first occurrence counted on this row.
    pub first_at: u64,
    /// Occurrences counted on this row (1 for a one-off).
    pub count: u64,
    /// `denied` for audit denials, else the level: `error` or `warning`.
    pub kind: String,
    pub group: Option<String>,
    pub image: Option<String>,
    /// The client address the event names, if any.
    pub client: Option<String>,
    /// The latest occurrence's message with its other fields (`key=value`).
    pub message: String,
    /// The row in one line: the message of a one-off, `12 × failed login from 10.0.0.7 within
    /// 41s` for repeats.
    pub summary: String,
}

/// Which ring an event is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// Errors and warnings.
    Problems,
    /// Audit denials.
    Denials,
}

impl EventClass {
    /// The class of a `kind` (`error`, `warning`, `denied`).
    pub fn of_kind(kind: &str) -> Option<EventClass> {
        match kind {
            "error" | "warning" => Some(EventClass::Problems),
            "denied" => Some(EventClass::Denials),
            _ => None,
        }
    }
}

/// One occurrence, as the layer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub at: u64,
    pub kind: String,
    /// The message without the fields (what happened): `failed login`.
    pub what: String,
    pub group: Option<String>,
    pub image: Option<String>,
    pub client: Option<String>,
    /// The message with its other fields.
    pub message: String,
    /// What makes two occurrences repeats of each other (besides kind, what, group, image and
    /// client): the fields, a denial's reason aside (a client's guesses are refused first as
    /// wrong, then as too many: one run of failed logins).
    pub details: String,
}

struct Row {
    event: RecordedEvent,
    what: String,
    details: String,
}

impl Row {
    fn repeats(&self, occurrence: &Occurrence) -> bool {
        let event = &self.event;
        event.kind == occurrence.kind
            && self.what == occurrence.what
            && self.details == occurrence.details
            && event.group == occurrence.group
            && event.image == occurrence.image
            && event.client == occurrence.client
    }

    fn summary(&self) -> String {
        let event = &self.event;
        if event.count <= 1 {
            return event.message.clone();
        }
        let what = if self.what.is_empty() { &event.message } else { &self.what };
        let mut text = format!("{} × {what}", event.count);
        if let Some(client) = &event.client {
            let _ = write!(text, " from {client}");
        }
        let span = Duration::from_millis(event.at.saturating_sub(event.first_at));
        if span < Duration::from_secs(1) {
            text.push_str(" within a second");
        } else {
            let _ = write!(text, " within {}", HumanDuration(span));
        }
        text
    }
}

/// One ring: rows ordered by their latest occurrence, oldest first.
struct Ring {
    rows: VecDeque<Row>,
    capacity: usize,
}

impl Ring {
    fn record(&mut self, occurrence: Occurrence) {
        let window = u64::try_from(REPEAT_WINDOW.as_millis()).unwrap_or(u64::MAX);
        // Rows are ordered by their latest occurrence: only the last minute's are looked at.
        let repeated = self
            .rows
            .iter()
            .rev()
            .take_while(|row| occurrence.at.saturating_sub(row.event.at) <= window)
            .position(|row| row.repeats(&occurrence))
            .map(|from_back| self.rows.len() - 1 - from_back);
        let mut row = match repeated.and_then(|index| self.rows.remove(index)) {
            Some(mut row) => {
                row.event.count += 1;
                row.event.at = row.event.at.max(occurrence.at);
                row.event.message = occurrence.message;
                row
            }
            None => {
                if self.rows.len() == self.capacity {
                    self.rows.pop_front();
                }
                let event = RecordedEvent {
                    at: occurrence.at,
                    first_at: occurrence.at,
                    count: 1,
                    kind: occurrence.kind,
                    group: occurrence.group,
                    image: occurrence.image,
                    client: occurrence.client,
                    message: occurrence.message,
                    summary: String::new(),
                };
                Row { event, what: occurrence.what, details: occurrence.details }
            }
        };
        row.event.summary = row.summary();
        self.rows.push_back(row);
    }
}

/// The rings.
pub struct RecentEvents {
    problems: Mutex<Ring>,
    denials: Mutex<Ring>,
}

impl RecentEvents {
    /// Rings of `capacity` rows each.
    pub fn new(capacity: usize) -> Self {
        let ring = || Mutex::new(Ring { rows: VecDeque::with_capacity(capacity), capacity });
        RecentEvents { problems: ring(), denials: ring() }
    }

    fn ring(&self, class: EventClass) -> &Mutex<Ring> {
        match class {
            EventClass::Problems => &self.problems,
            EventClass::Denials => &self.denials,
        }
    }

    /// Keeps `occurrence` in the ring of its kind (an unknown kind is kept with the problems).
    pub fn record(&self, occurrence: Occurrence) {
        let class = EventClass::of_kind(&occurrence.kind).unwrap_or(EventClass::Problems);
        self.ring(class).lock().unwrap_or_else(PoisonError::into_inner).record(occurrence);
    }

    /// The newest `limit` rows of the classes asked for, newest first.
    pub fn latest(&self, limit: usize, classes: &[EventClass]) -> Vec<RecordedEvent> {
        let mut rows: Vec<RecordedEvent> = Vec::new();
        for class in [EventClass::Problems, EventClass::Denials] {
            if classes.contains(&class) {
                let ring = self.ring(class).lock().unwrap_or_else(PoisonError::into_inner);
                rows.extend(ring.rows.iter().rev().take(limit).map(|row| row.event.clone()));
            }
        }
        rows.sort_by_key(|event| std::cmp::Reverse(event.at));
        rows.truncate(limit);
        rows
    }
}

/// The process's rings, which [`EventsLayer`] fills.
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
    /// `rest` but a `reason`.
    rest_but_reason: String,
    event: Option<String>,
    group: Option<String>,
    image: Option<String>,
    client: Option<String>,
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
                if name == "client" {
                    self.client = Some(value.clone());
                }
                // What changes between repeats of one refusal: its reason (a client's guesses are
                // refused first as wrong, then as too many) and the log's count of lines held back.
                if name != "reason" && name != "held_back" {
                    let _ = write!(self.rest_but_reason, " {name}={value}");
                }
                let separator = if self.rest.is_empty() { "" } else { " " };
                let _ = write!(self.rest, "{separator}{name}={value}");
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for EventsLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        if *metadata.level() > Level::WARN {
            // Grants and other audit lines at INFO are the log's, not the events'.
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Every audit warning is a refusal (a login, a pull, a form); the `event` field names it.
        let kind = if metadata.target() == AUDIT_TARGET || metadata.target() == AUDIT_HELD_BACK_TARGET {
            "denied"
        } else if *metadata.level() == Level::ERROR {
            "error"
        } else {
            "warning"
        };
        let fields_compared = if kind == "denied" { &fields.rest_but_reason } else { &fields.rest };
        let details = format!("{}:{fields_compared}", fields.event.as_deref().unwrap_or(""));
        let message = match (fields.message.is_empty(), fields.rest.is_empty()) {
            (_, true) => fields.message.clone(),
            (true, false) => fields.rest,
            (false, false) => format!("{}: {}", fields.message, fields.rest),
        };
        let what = match (&fields.event, fields.message.is_empty()) {
            (Some(event), true) => event.replace('_', " "),
            _ => fields.message,
        };
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        recent_events().record(Occurrence {
            at,
            kind: kind.to_owned(),
            what,
            group: fields.group,
            image: fields.image,
            client: fields.client,
            message,
            details,
        });
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    const ALL: [EventClass; 2] = [EventClass::Problems, EventClass::Denials];

    fn occurrence(at: u64, kind: &str, client: &str, reason: &str) -> Occurrence {
        Occurrence {
            at,
            kind: kind.into(),
            what: "failed login".into(),
            group: None,
            image: None,
            client: Some(client.into()),
            message: format!("failed login: client={client} reason={reason}"),
            details: format!("login_refused client={client}"),
        }
    }

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
        let latest = recent_events().latest(2, &ALL);
        assert_eq!(latest[0].kind, "error");
        assert_eq!(latest[0].message, "fill failed: error=disk full");
        assert_eq!(latest[0].summary, latest[0].message, "a one-off reads as its message");
        assert_eq!(latest[1].kind, "denied");
        assert_eq!(latest[1].group.as_deref(), Some("acme"));
        assert_eq!(latest[1].image.as_deref(), Some("app"));
        assert!(latest[1].message.contains("token not granted"));
        assert_eq!(recent_events().latest(5, &[EventClass::Denials]).len(), 1);

        let ring = RecentEvents::new(3);
        for n in 0..5 {
            // A minute and more apart: never repeats of each other.
            ring.record(occurrence(n * 100_000, "warning", &n.to_string(), "x"));
        }
        let kept: Vec<u64> = ring.latest(10, &ALL).iter().map(|event| event.at).collect();
        assert_eq!(kept, vec![400_000, 300_000, 200_000]);
    }

    #[test]
    fn repeats_within_a_minute_share_a_row_that_counts_them() {
        let ring = RecentEvents::new(20);
        let start = 1_800_000_000_000;
        for n in 0..10 {
            ring.record(occurrence(start + n * 4_000, "denied", "10.0.0.7", "credentials not accepted"));
        }
        // Past the limit the reason changes: still the same run of failed logins.
        for n in 10..12 {
            let reason = "too many failed logins from this address; retry in 1s";
            ring.record(occurrence(start + n * 4_000, "denied", "10.0.0.7", reason));
        }
        ring.record(occurrence(start + 44_500, "denied", "10.0.0.8", "credentials not accepted"));
        let rows = ring.latest(20, &[EventClass::Denials]);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!(rows[0].client.as_deref(), Some("10.0.0.8"));
        assert_eq!(rows[0].count, 1);
        let run = &rows[1];
        assert_eq!((run.count, run.first_at, run.at), (12, start, start + 44_000));
        assert_eq!(run.summary, "12 × failed login from 10.0.0.7 within 44s");
        assert!(run.message.ends_with("retry in 1s"), "the latest occurrence's message: {}", run.message);

        // A repeat more than a minute after the last one starts a row of its own.
        ring.record(occurrence(start + 44_000 + 61_000, "denied", "10.0.0.7", "credentials not accepted"));
        let rows = ring.latest(20, &[EventClass::Denials]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].count, 1);
        // Three quick ones read "within a second".
        let quick = RecentEvents::new(5);
        for at in [0, 10, 20] {
            quick.record(occurrence(start + at, "denied", "10.0.0.9", "credentials not accepted"));
        }
        assert_eq!(quick.latest(1, &ALL)[0].summary, "3 × failed login from 10.0.0.9 within a second");
    }

    #[test]
    fn a_flood_of_denials_does_not_push_errors_out() {
        let ring = RecentEvents::new(3);
        ring.record(Occurrence {
            at: 1,
            kind: "error".into(),
            what: "fill failed".into(),
            group: None,
            image: None,
            client: None,
            message: "fill failed: error=disk full".into(),
            details: "error=disk full".into(),
        });
        for n in 0..100u64 {
            // Each from another address: no two are repeats.
            ring.record(occurrence(2 + n, "denied", &format!("10.0.{}.{}", n / 256, n % 256), "x"));
        }
        let problems = ring.latest(10, &[EventClass::Problems]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "fill failed: error=disk full");
        assert_eq!(ring.latest(10, &[EventClass::Denials]).len(), 3);
        let both = ring.latest(10, &ALL);
        assert_eq!(both.len(), 4);
        assert_eq!(both[0].at, 101, "newest first across both rings");
        assert_eq!(both[3].kind, "error");
    }

    #[test]
    fn different_errors_keep_rows_of_their_own_and_identical_ones_are_counted() {
        let subscriber = tracing_subscriber::registry().with(EventsLayer);
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::warn!(
                    url = "http://a.example.com/x",
                    error = "upstream answered 500",
                    "fill failed"
                );
            }
            tracing::warn!(url = "http://b.example.com/y", error = "upstream answered 500", "fill failed");
            for reason in ["credentials not accepted", "too many failed logins; retry in 1s"] {
                tracing::warn!(target: "depproxy::audit", event = "login_refused", client = "10.9.9.9",
                    reason, "failed login");
            }
        });
        let problems = recent_events().latest(10, &[EventClass::Problems]);
        let fill = |host: &str| {
            problems
                .iter()
                .find(|event| event.message.contains(host))
                .unwrap_or_else(|| panic!("{problems:#?}"))
        };
        assert_eq!(fill("a.example.com").count, 3);
        assert!(fill("a.example.com").summary.starts_with("3 × fill failed within"), "{problems:#?}");
        assert_eq!(fill("b.example.com").count, 1);
        let denials = recent_events().latest(10, &[EventClass::Denials]);
        let logins: Vec<_> =
            denials.iter().filter(|event| event.client.as_deref() == Some("10.9.9.9")).collect();
        assert_eq!(logins.len(), 1, "{denials:#?}");
        assert_eq!(logins[0].count, 2);
        assert!(logins[0].summary.starts_with("2 × failed login from 10.9.9.9 within"), "{:?}", logins[0]);
    }
}
