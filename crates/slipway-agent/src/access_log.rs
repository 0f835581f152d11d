//! The JSON access log: one line per request on stdout (time, app, release,
//! slot, method, path, status, duration, bytes, client). Lines are buffered
//! and flushed by a background task every 100 ms (or when a buffer is
//! large), so a busy proxy makes one write per batch, not per request.
//!
//! This runs once per request, so it is written for cost: each proxy thread
//! appends to its own buffer (no lock shared between threads), lines are
//! formatted by hand straight into it (no serializer, no temporary strings),
//! and the RFC 3339 timestamp's date and time of day are formatted once per
//! second per thread; only the fraction is formatted per line.

use std::cell::Cell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// Flush early once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;

/// Buffers; a thread uses the one its index picks, so proxy threads (one per
/// core) never share one unless there are more threads than buffers.
const SHARDS: usize = 16;

pub struct Entry<'a> {
    pub time: SystemTime,
    pub app: &'a str,
    pub release: &'a str,
    pub slot: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// Written as `duration_ms` with microsecond precision.
    pub duration: Duration,
    pub bytes: u64,
    pub client: IpAddr,
    /// Set when the response ended abnormally (upstream error, drain cut).
    pub error: Option<&'a str>,
}

/// One thread's buffer, on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Vec<u8>>);

pub struct AccessLog {
    shards: Box<[Shard]>,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl AccessLog {
    pub fn write(&self, entry: &Entry<'_>) {
        let shard = &self.shards[thread_index() % SHARDS];
        let full = {
            let mut buf = shard.0.lock().unwrap_or_else(|e| e.into_inner());
            if buf.capacity() == 0 {
                buf.reserve(FLUSH_AT + 4096);
            }
            format_line(&mut buf, entry);
            (buf.len() >= FLUSH_AT)
                .then(|| std::mem::replace(&mut *buf, Vec::with_capacity(FLUSH_AT + 4096)))
        };
        if let Some(bytes) = full {
            emit(&[&bytes]);
        }
    }

    pub fn flush(&self) {
        let taken: Vec<Vec<u8>> = self
            .shards
            .iter()
            .filter_map(|s| {
                let mut buf = s.0.lock().unwrap_or_else(|e| e.into_inner());
                (!buf.is_empty()).then(|| {
                    let cap = buf.capacity();
                    std::mem::replace(&mut *buf, Vec::with_capacity(cap))
                })
            })
            .collect();
        if !taken.is_empty() {
            let parts: Vec<&[u8]> = taken.iter().map(Vec::as_slice).collect();
            emit(&parts);
        }
    }

    /// Flush every 100 ms until the process ends.
    pub async fn flush_every_100ms(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}

fn emit(parts: &[&[u8]]) {
    // A closed stdout must not take the proxy down; the lines are lost.
    let mut out = std::io::stdout().lock();
    for p in parts {
        if out.write_all(p).is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// A small per-thread number, handed out in order of first use.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Append one JSON line (with its newline) for `e` to `out`.
pub fn format_line(out: &mut Vec<u8>, e: &Entry<'_>) {
    // Room for the whole line up front (strings at their longest escaped),
    // so no append below reallocates.
    let strings = e.app.len() + e.release.len() + e.slot.len() + e.method.len() + e.path.len();
    out.reserve(256 + 6 * (strings + e.error.map_or(0, str::len)));
    out.extend_from_slice(b"{\"time\":\"");
    push_time(out, e.time);
    out.extend_from_slice(b"\",\"app\":");
    push_str(out, e.app);
    out.extend_from_slice(b",\"release\":");
    push_str(out, e.release);
    out.extend_from_slice(b",\"slot\":");
    push_str(out, e.slot);
    out.extend_from_slice(b",\"method\":");
    push_str(out, e.method);
    out.extend_from_slice(b",\"path\":");
    push_str(out, e.path);
    out.extend_from_slice(b",\"status\":");
    push_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"duration_ms\":");
    let micros = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX);
    push_u64(out, micros / 1000);
    out.push(b'.');
    push_padded(out, micros % 1000, 3);
    out.extend_from_slice(b",\"bytes\":");
    push_u64(out, e.bytes);
    out.extend_from_slice(b",\"client\":\"");
    push_ip(out, e.client);
    out.push(b'"');
    if let Some(err) = e.error {
        out.extend_from_slice(b",\"error\":");
        push_str(out, err);
    }
    out.extend_from_slice(b"}\n");
}

/// A JSON string literal, escaped as serde_json does.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// `n` with leading zeros to `width` digits (`n` < 10^width).
fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    for i in (0..width).rev() {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&tmp[..width]);
}

fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `time` as RFC 3339 in UTC, as the `time` crate writes it: seconds, then
/// the fraction without trailing zeros (none when zero), then `Z`.
fn push_time(out: &mut Vec<u8>, time: SystemTime) {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    thread_local! {
        /// The last second formatted: (unix second, `YYYY-MM-DDTHH:MM:SS`).
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let prefix = SECOND.with(|c| {
        let (cached, text) = c.get();
        if cached == secs {
            return text;
        }
        let text = format_second(secs);
        c.set((secs, text));
        text
    });
    out.extend_from_slice(&prefix);
    let mut nanos = since.subsec_nanos();
    if nanos != 0 {
        let mut width = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            width -= 1;
        }
        out.push(b'.');
        push_padded(out, u64::from(nanos), width);
    }
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a unix second.
fn format_second(secs: u64) -> [u8; 19] {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = Vec::with_capacity(19);
    push_padded(&mut out, y.clamp(0, 9999) as u64, 4);
    out.push(b'-');
    push_padded(&mut out, u64::from(m), 2);
    out.push(b'-');
    push_padded(&mut out, u64::from(d), 2);
    out.push(b'T');
    push_padded(&mut out, rem / 3600, 2);
    out.push(b':');
    push_padded(&mut out, rem / 60 % 60, 2);
    out.push(b':');
    push_padded(&mut out, rem % 60, 2);
    let mut text = [0u8; 19];
    text.copy_from_slice(&out);
    text
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time: SystemTime, path: &str, error: Option<&'static str>) -> Vec<u8> {
        let mut out = Vec::new();
        format_line(
            &mut out,
            &Entry {
                time,
                app: "web",
                release: "r1",
                slot: "blue",
                method: "GET",
                path,
                status: 200,
                duration: Duration::from_micros(1_234_567),
                bytes: 12,
                client: "10.0.0.7".parse().expect("ip"),
                error,
            },
        );
        out
    }

    #[test]
    fn line_is_the_json_it_was_with_serde() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_764_444_000, 120_000_000);
        let line = entry(t, "/a?b=\"c\"\\\n\u{1}", Some("upstream"));
        let text = std::str::from_utf8(&line).expect("utf8");
        assert!(text.ends_with('\n'));
        assert_eq!(
            text.trim_end(),
            r#"{"time":"2025-11-29T19:20:00.12Z","app":"web","release":"r1","slot":"blue","method":"GET","path":"/a?b=\"c\"\\\n\u0001","status":200,"duration_ms":1234.567,"bytes":12,"client":"10.0.0.7","error":"upstream"}"#
        );
        let v: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(v["path"], "/a?b=\"c\"\\\n\u{1}");
        assert_eq!(v["duration_ms"], 1234.567);
        let whole = entry(SystemTime::UNIX_EPOCH, "/", None);
        assert!(
            std::str::from_utf8(&whole)
                .expect("utf8")
                .starts_with(r#"{"time":"1970-01-01T00:00:00Z","#)
        );
    }

    #[test]
    fn timestamps_match_the_time_crate() {
        let fmt = &time::format_description::well_known::Rfc3339;
        let mut secs: u64 = 0;
        // Every ~3.7 days over 300 years, with odd fractions.
        while secs < 300 * 365 * 86_400 {
            let nanos = (secs % 1_000_000_007) as u32 % 1_000_000_000;
            for n in [0, nanos, 500_000_000, 1] {
                let t = SystemTime::UNIX_EPOCH + Duration::new(secs, n);
                let mut ours = Vec::new();
                push_time(&mut ours, t);
                let theirs = time::OffsetDateTime::from(t).format(fmt).expect("format");
                assert_eq!(std::str::from_utf8(&ours).expect("utf8"), theirs);
            }
            secs += 319_993;
        }
    }

    #[test]
    fn ipv6_clients_are_written_as_display_does() {
        let mut out = Vec::new();
        push_ip(&mut out, "::1".parse().expect("ip"));
        assert_eq!(out, b"::1");
    }
}
