//! tracing subscriber: text for people, JSON for log pipelines.

use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: container runtimes and log files get plain text.
    let ansi = std::io::stderr().is_terminal();
    let text = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let output = match format {
        LogFormat::Text => text.boxed(),
        LogFormat::Json => text.json().with_current_span(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output.with_filter(filter_fn(|m| !connection_error(m))))
        .with(ConnectionErrorsAsWarnings)
        .init();
}

/// actix-http's own report of a connection it answered and closed because of what the client sent
/// (a malformed request line, an over-long URL, a reset mid-response): logged at ERROR there.
fn connection_error(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::ERROR && metadata.target().starts_with("actix_http::h1")
}

/// Logs actix-http's connection errors at WARN: a client cannot write ERROR lines into the log.
struct ConnectionErrorsAsWarnings;

impl<S: Subscriber> Layer<S> for ConnectionErrorsAsWarnings {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if connection_error(event.metadata()) {
            let mut message = Message(String::new());
            event.record(&mut message);
            tracing::warn!(target: "sightline_server::http", "connection closed: {}", message.0);
        }
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
