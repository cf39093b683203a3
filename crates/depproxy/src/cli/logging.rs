//! The process's logs: text or JSON lines on stderr, written by a thread of their own, and the
//! ring of recent warnings, errors and denials the admin API shows.

use super::args::LogFormat;

/// Logs go to stderr (stdout is for what a command prints: a token's secret, a table), as text
/// or JSON lines; warnings, errors and denials are also kept for the admin API's `/events`.
/// Lines are written by a thread of their own: a request's access line costs the runtime a
/// queue push, not a `write(2)` on a worker thread; if the reader of stderr stalls and the queue
/// (32 768 lines) fills, lines are dropped rather than stalling the proxy.
pub fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(32_768)
        .lossy(true)
        .finish(std::io::stderr());
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(telemetry::text_log::TextLine)
            .fmt_fields(telemetry::text_log::PlainFields)
            .with_ansi(false)
            .with_writer(writer.clone())
            .with_filter(tracing_subscriber::filter::filter_fn(telemetry::events::printed_in_logs))
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .with_filter(tracing_subscriber::filter::filter_fn(telemetry::events::printed_in_logs))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(telemetry::events::EventsLayer)
        .init();
    guard
}
