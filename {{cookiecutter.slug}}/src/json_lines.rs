//! JSON lines for `tracing`, written straight into one reused buffer per thread: the
//! event's fields and those of its spans (the request id) at the top level, a UTC
//! timestamp, the level and the target. tracing-subscriber's own JSON formatter
//! re-parses each span's fields for every line, which costs more than the request.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::telemetry::NonBlocking;

/// Writes one JSON object per event.
pub struct JsonLines {
    writer: NonBlocking,
}

impl JsonLines {
    pub fn new(writer: NonBlocking) -> Self {
        Self { writer }
    }
}

/// A span's fields, already written as `,"name":value` members.
struct SpanFields(String);

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = String::new();
        attributes.record(&mut Members(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut Members(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
        }
        // Records from the `log` crate (actix-server's) carry their real target here.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return; // an event raised while formatting one on this thread
            };
            line.clear();
            line.push_str("{\"timestamp\":\"");
            write_timestamp(&mut line, SystemTime::now());
            line.push_str("\",\"level\":\"");
            line.push_str(metadata.level().as_str());
            line.push_str("\",\"target\":");
            write_string(&mut line, metadata.target());
            event.record(&mut Members(&mut line));
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(fields) = span.extensions().get::<SpanFields>() {
                        line.push_str(&fields.0);
                    }
                }
            }
            line.push_str("}\n");
            let _ = (&self.writer).write_all(line.as_bytes());
        });
    }
}

/// Appends each field as a `,"name":value` member.
struct Members<'a>(&'a mut String);

impl Members<'_> {
    fn key(&mut self, field: &Field) -> bool {
        // tracing-log's copies of a `log` record's metadata, already in the line.
        if field.name().starts_with("log.") {
            return false;
        }
        self.0.push(',');
        write_string(self.0, field.name());
        self.0.push(':');
        true
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            write_string(self.0, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.0, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.0, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.0.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                let _ = write!(self.0, "{value}");
            } else {
                self.0.push_str("null");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.0.push('"');
            let _ = write!(Escaped(self.0), "{value:?}");
            self.0.push('"');
        }
    }
}

fn write_string(out: &mut String, value: &str) {
    out.push('"');
    let _ = Escaped(out).write_str(value);
    out.push('"');
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            self.0.push_str(&rest[..at]);
            let c = rest[at..].chars().next().unwrap_or(' ');
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                _ => {
                    let _ = write!(self.0, "\\u{:04x}", u32::from(c));
                }
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.push_str(rest);
        Ok(())
    }
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-01-31T12:00:00.000001Z`.
fn write_timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since.subsec_micros()
    );
}

/// (year, month, day) of a day counted from 1970-01-01, after Howard Hinnant's
/// `civil_from_days`, for dates from 1970 on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_709_208_000_000_042); // a leap day
        write_timestamp(&mut out, at);
        assert_eq!(out, "2024-02-29T12:00:00.000042Z");
        out.clear();
        write_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(951_868_801));
        assert_eq!(out, "2000-03-01T00:00:01.000000Z");
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        write_string(&mut out, "say \"hi\"\\\n\u{1}é");
        assert_eq!(out, r#""say \"hi\"\\\n\u0001é""#);
    }
}
