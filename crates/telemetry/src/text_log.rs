//! The text log line: `<RFC 3339 UTC time> <LEVEL> <target>: <message> name=value …`, written
//! without the `fmt` machinery per field that tracing-subscriber's default format uses. Every
//! request writes an access line, and with the default format that line cost a fifth of a cached
//! manifest hit's CPU (per-field `Debug` formatting, a calendar computation per line, colour
//! codes written even when colour is off). depproxy opens no spans, so none are printed.
//!
//! Values: strings are written as they are when they hold no space, quote, `=` or control
//! character (logfmt's bare values), quoted and escaped otherwise; integers and booleans as
//! numbers and words; anything else through its `Debug`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the text log (`--log-format text`).
pub struct TextLine;

/// The field format of the text log.
pub struct PlainFields;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_timestamp(&mut writer, SystemTime::now())?;
        let metadata = event.metadata();
        writer.write_char(' ')?;
        // Padded to five, as tracing-subscriber does, so columns line up.
        writer.write_str(match *metadata.level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => " WARN",
            tracing::Level::INFO => " INFO",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::TRACE => "TRACE",
        })?;
        writer.write_char(' ')?;
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        context.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor { writer, result: Ok(()), separator: false };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    /// Whether something was written before the next field.
    separator: bool,
}

impl PlainVisitor<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if std::mem::replace(&mut self.separator, true) {
                self.writer.write_char(' ')?;
            }
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            value(&mut self.writer)
        })();
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        self.field(field, |writer| {
            if message || is_bare(value) { writer.write_str(value) } else { write!(writer, "{value:?}") }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |writer| write!(writer, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |writer| write!(writer, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |writer| writer.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |writer| write!(writer, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |writer| write!(writer, "{value:?}"));
    }
}

/// Whether `value` can be written without quotes (logfmt's bare value).
fn is_bare(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b > b' ' && b != b'"' && b != b'=' && b != 0x7f)
}

/// `2026-11-30T13:05:33.123456Z`. The part down to the second is computed once a second per
/// thread.
fn write_timestamp(writer: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != seconds {
            cached.1.clear();
            let (year, month, day) = civil_from_days(seconds / 86_400);
            let of_day = seconds % 86_400;
            let _ = write!(
                cached.1,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
            cached.0 = seconds;
        }
        writer.write_str(&cached.1)
    })?;
    write!(writer, ".{:06}Z", since_epoch.subsec_micros())
}

/// The proleptic Gregorian date (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut text = String::new();
        let at = UNIX_EPOCH + std::time::Duration::new(1_796_043_933, 123_456_789);
        write_timestamp(&mut Writer::new(&mut text), at).unwrap();
        assert_eq!(text, "2026-11-30T13:05:33.123456Z");
        let mut later = String::new();
        write_timestamp(&mut Writer::new(&mut later), at + std::time::Duration::from_secs(61)).unwrap();
        assert_eq!(later, "2026-11-30T13:06:34.123456Z", "the cached second is replaced");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_level_target_message_and_logfmt_fields() {
        let captured = Captured::default();
        let sink = captured.clone();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(TextLine)
            .fmt_fields(PlainFields)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "depproxy::access", client = %std::net::Ipv4Addr::LOCALHOST, image = "lab/app",
                decision = "hit", status = 200u64, complete = true, duration_ms = 0.25, note = "two words");
            tracing::warn!(retries = 3i64, "upstream slow");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let (time, rest) = lines[0].split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.len() == 27, "{time}");
        assert_eq!(
            rest,
            " INFO depproxy::access: client=127.0.0.1 image=lab/app decision=hit status=200 complete=true \
             duration_ms=0.25 note=\"two words\""
        );
        assert!(
            lines[1].ends_with(" WARN telemetry::text_log::tests: upstream slow retries=3"),
            "{}",
            lines[1]
        );
    }
}
