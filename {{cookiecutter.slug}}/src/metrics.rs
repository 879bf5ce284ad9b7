//! Prometheus metrics: requests by method, matched route template and status, with
//! a latency histogram, plus process metrics read from `/proc` at scrape time.
//!
//! Each worker thread records into its own shard (an uncontended lock); a scrape
//! merges the shards.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::{Method, StatusCode};

/// Upper bounds in seconds: fine below 10 ms, where this service answers.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route (a 404).
pub const UNMATCHED: &str = "unmatched";
/// The route label of a request answered before routing (413) or lost in a panic.
pub const UNKNOWN: &str = "unknown";

type Key = (&'static str, String, u16);

#[derive(Clone, Default)]
struct Series {
    /// Per bucket (not cumulative); the last one counts what exceeds every bound.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Series {
    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// One worker's counters.
#[derive(Default)]
pub struct Shard {
    series: HashMap<Key, Series>,
}

impl Shard {
    /// Records one answered request; `route` is the matched template, never the path.
    pub fn record(&mut self, method: &Method, route: String, status: StatusCode, took: Duration) {
        let seconds = took.as_secs_f64();
        let series = self
            .series
            .entry((method_label(method), route, status.as_u16()))
            .or_default();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        series.buckets[bucket] += 1;
        series.sum += seconds;
        series.count += 1;
    }
}

/// Every shard, shared by the workers and the `/metrics` handler.
pub struct Metrics {
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    /// Seconds since the Unix epoch when the server was built: close to the start.
    started: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay usable after a panic elsewhere: they are never half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            shards: Mutex::new(Vec::new()),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|since| since.as_secs()),
        }
    }

    /// A new shard for one worker.
    pub fn shard(&self) -> Arc<Mutex<Shard>> {
        let shard = Arc::new(Mutex::new(Shard::default()));
        lock(&self.shards).push(Arc::clone(&shard));
        shard
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut merged: BTreeMap<Key, Series> = BTreeMap::new();
        for shard in lock(&self.shards).iter() {
            for (key, series) in &lock(shard).series {
                merged.entry(key.clone()).or_default().merge(series);
            }
        }
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP http_requests_total Requests answered, by method, route template and status.\n\
             # TYPE http_requests_total counter\n",
        );
        for ((method, route, status), series) in &merged {
            let labels = labels(method, route, *status, None);
            let _ = writeln!(out, "http_requests_total{labels} {}", series.count);
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time from request head to response head.\n\
             # TYPE http_request_duration_seconds histogram\n",
        );
        for ((method, route, status), series) in &merged {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(series.buckets) {
                cumulative += count;
                let labels = labels(method, route, *status, Some(&bound.to_string()));
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{labels} {cumulative}"
                );
            }
            let all = labels(method, route, *status, Some("+Inf"));
            let labels = labels(method, route, *status, None);
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{all} {}\n\
                 http_request_duration_seconds_sum{labels} {}\n\
                 http_request_duration_seconds_count{labels} {}",
                series.count, series.sum, series.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP log_lines_dropped_total Log lines dropped because stdout did not keep up.\n\
             # TYPE log_lines_dropped_total counter\n\
             log_lines_dropped_total {}",
            crate::telemetry::DROPPED_LINES.load(Ordering::Relaxed)
        );
        process_metrics(&mut out, self.started);
        out
    }
}

/// Methods outside the standard set share one label, bounding the series count.
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ]
    .iter()
    .zip([
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ])
    .find_map(|(known, label)| (known == method).then_some(label))
    .unwrap_or("OTHER")
}

/// `{method="GET",route="/{name}",status="200"}`, plus `le` for a histogram bucket.
fn labels(method: &str, route: &str, status: u16, le: Option<&str>) -> String {
    let route = route
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let mut text = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
    if let Some(le) = le {
        let _ = write!(text, ",le=\"{le}\"");
    }
    // Braces added here, not in format strings, where they would need doubling.
    let mut labels = String::with_capacity(text.len() + 2);
    labels.push('{');
    labels.push_str(&text);
    labels.push('}');
    labels
}

/// The standard `process_*` metrics that cost one read of `/proc` per scrape.
#[cfg(target_os = "linux")]
fn process_metrics(out: &mut String, started: Option<u64>) {
    // Linux reports CPU time in USER_HZ, which is 100 on every architecture it runs.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name, which may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |index: usize| fields.get(index).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of proc(5); `fields` starts at field 3.
    if let (Some(user), Some(system)) = (field(11), field(12)) {
        let seconds = (user + system) / TICKS_PER_SECOND;
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {seconds}"
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kilobytes = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().trim_end_matches(" kB").parse::<u64>().ok()
        })
    };
    for (metric, field, help) in [
        (
            "process_resident_memory_bytes",
            "VmRSS",
            "Resident memory size",
        ),
        (
            "process_virtual_memory_bytes",
            "VmSize",
            "Virtual memory size",
        ),
    ] {
        if let Some(kb) = kilobytes(field) {
            let _ = writeln!(
                out,
                "# HELP {metric} {help} in bytes.\n# TYPE {metric} gauge\n{metric} {}",
                kb * 1024
            );
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Open file descriptors.\n\
             # TYPE process_open_fds gauge\nprocess_open_fds {}",
            entries.count()
        );
    }
    if let Some(started) = started {
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time since the Unix epoch.\n\
             # TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {started}"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn process_metrics(_out: &mut String, _started: Option<u64>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_one_series_per_label_set() {
        let metrics = Metrics::new();
        let (first, second) = (metrics.shard(), metrics.shard());
        let ms = Duration::from_millis;
        lock(&first).record(&Method::GET, "/{name}".into(), StatusCode::OK, ms(2));
        lock(&second).record(&Method::GET, "/{name}".into(), StatusCode::OK, ms(20));
        lock(&second).record(
            &Method::from_bytes(b"BREW").unwrap(),
            UNMATCHED.into(),
            StatusCode::NOT_FOUND,
            ms(0),
        );
        let text = metrics.render();
        let series = labels("GET", "/{name}", 200, None);
        let bucket = |le| labels("GET", "/{name}", 200, Some(le));
        let has = |line: String| assert!(text.contains(&line), "{line} not in {text}");
        has(format!("http_requests_total{series} 2\n"));
        has(format!("_bucket{} 1\n", bucket("0.005")));
        has(format!("_bucket{} 2\n", bucket("0.025")));
        has(format!("_bucket{} 2\n", bucket("+Inf")));
        assert!(
            text.contains(
                r#"http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#
            )
        );
    }
}
