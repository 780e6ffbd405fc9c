//! Streaming row writers for the demo files: CSV (header row, RFC 4180 quoting) and NDJSON (one
//! flat JSON object per line), with hand-rolled number and timestamp formatting because the
//! benchmark run writes tens of millions of rows.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::DemoError;

/// Days covered by the demo data: 2024-01-01 through 2025-12-31 (2024 is a leap year).
pub(crate) const DAYS: u32 = 731;
/// Seconds covered by the demo data; every timestamp is `2024-01-01 00:00:00` plus less than this.
pub(crate) const SPAN: u32 = DAYS * 86_400;
/// 2024-01-01 as days since 1970-01-01.
const EPOCH_DAY: i64 = 19_723;

/// The file format of one demo channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// The name used for `format = "..."` in `userql.toml`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// One output file, written a row at a time: `field` calls in column order, then `end_row`.
pub(crate) struct Sink {
    path: PathBuf,
    out: BufWriter<File>,
    format: Format,
    columns: &'static [&'static str],
    line: Vec<u8>,
    col: usize,
    rows: usize,
    /// A `begin_text` field is open (NDJSON needs its closing quote).
    open_text: bool,
}

impl Sink {
    /// Creates (truncates) `path` and, for CSV, writes the header row.
    pub(crate) fn create(
        path: &Path,
        format: Format,
        columns: &'static [&'static str],
    ) -> Result<Self, DemoError> {
        let file = File::create(path).map_err(|e| DemoError::io(path, e))?;
        let mut sink = Sink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            format,
            columns,
            line: Vec::with_capacity(512),
            col: 0,
            rows: 0,
            open_text: false,
        };
        if format == Format::Csv {
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    sink.line.push(b',');
                }
                sink.line.extend_from_slice(c.as_bytes());
            }
            sink.line.push(b'\n');
            sink.flush_line()?;
        }
        Ok(sink)
    }

    fn begin_field(&mut self) {
        self.close_text();
        match self.format {
            Format::Csv => {
                if self.col > 0 {
                    self.line.push(b',');
                }
            }
            Format::Ndjson => {
                self.line.push(if self.col == 0 { b'{' } else { b',' });
                self.line.push(b'"');
                // Column names are plain ASCII identifiers: no escaping needed.
                let name = self.columns.get(self.col).copied().unwrap_or("extra");
                self.line.extend_from_slice(name.as_bytes());
                self.line.extend_from_slice(b"\":");
            }
        }
        self.col += 1;
    }

    /// A text value. Empty text is an empty CSV field or a JSON `null`.
    pub(crate) fn text(&mut self, value: &str) {
        self.begin_field();
        let v = value.as_bytes();
        match self.format {
            Format::Csv => {
                if v.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
                    self.line.push(b'"');
                    for &b in v {
                        if b == b'"' {
                            self.line.push(b'"');
                        }
                        self.line.push(b);
                    }
                    self.line.push(b'"');
                } else {
                    self.line.extend_from_slice(v);
                }
            }
            Format::Ndjson => {
                if v.is_empty() {
                    self.line.extend_from_slice(b"null");
                } else {
                    push_json_string(&mut self.line, v);
                }
            }
        }
    }

    /// Starts a text field to be assembled from plain pieces with [`Sink::push_text`]. The
    /// pieces must need no CSV quoting or JSON escaping (identifiers, codes).
    pub(crate) fn begin_text(&mut self) {
        self.begin_field();
        if self.format == Format::Ndjson {
            self.line.push(b'"');
        }
        self.open_text = true;
    }

    /// Appends a piece of the text field started by [`Sink::begin_text`].
    pub(crate) fn push_text(&mut self, piece: &[u8]) {
        self.line.extend_from_slice(piece);
    }

    fn close_text(&mut self) {
        if self.open_text {
            if self.format == Format::Ndjson {
                self.line.push(b'"');
            }
            self.open_text = false;
        }
    }

    /// An integer value (a JSON number in NDJSON).
    pub(crate) fn int(&mut self, value: u64) {
        self.begin_field();
        push_u64(&mut self.line, value);
    }

    /// An amount of money in cents, written with two decimals (`123.40`).
    pub(crate) fn money(&mut self, cents: u64) {
        self.begin_field();
        push_u64(&mut self.line, cents / 100);
        self.line.push(b'.');
        push_padded(&mut self.line, cents % 100, 2);
    }

    /// A timestamp (seconds after 2024-01-01 00:00:00) as `2025-03-01 14:03:59`, a string in JSON.
    pub(crate) fn ts(&mut self, secs: u32) {
        self.begin_field();
        let json = self.format == Format::Ndjson;
        if json {
            self.line.push(b'"');
        }
        push_timestamp(&mut self.line, secs);
        if json {
            self.line.push(b'"');
        }
    }

    /// Ends the current row.
    pub(crate) fn end_row(&mut self) -> Result<(), DemoError> {
        self.close_text();
        if self.format == Format::Ndjson {
            self.line.push(b'}');
        }
        self.line.push(b'\n');
        self.col = 0;
        self.rows += 1;
        self.flush_line()
    }

    fn flush_line(&mut self) -> Result<(), DemoError> {
        let r = self.out.write_all(&self.line);
        self.line.clear();
        r.map_err(|e| DemoError::io(&self.path, e))
    }

    /// Flushes the file and returns the number of data rows written.
    pub(crate) fn finish(mut self) -> Result<usize, DemoError> {
        self.out.flush().map_err(|e| DemoError::io(&self.path, e))?;
        Ok(self.rows)
    }
}

fn push_json_string(out: &mut Vec<u8>, v: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends the decimal digits of `v`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `v` zero-padded to `width` digits (more digits if `v` needs them).
pub(crate) fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend_from_slice(&buf[start..]);
}

/// The civil date (year, month, day) of a day index counted from 2024-01-01.
pub(crate) fn civil(day: u32) -> (u32, u32, u32) {
    // Howard Hinnant's days_from_civil inverse.
    let z = EPOCH_DAY + i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as u32, m as u32, d as u32)
}

/// The day index (from 2024-01-01) of a civil date in 2024 or 2025.
pub(crate) const fn day_of(year: u32, month: u32, day: u32) -> u32 {
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = (year == 2024 && month > 2) as u32;
    (year - 2024) * 366 + CUM[(month - 1) as usize] + leap + day - 1
}

/// Appends `yyyy-mm-dd hh:mm:ss`.
pub(crate) fn push_timestamp(out: &mut Vec<u8>, secs: u32) {
    let (y, m, d) = civil(secs / 86_400);
    let s = secs % 86_400;
    push_u64(out, u64::from(y));
    out.push(b'-');
    push_padded(out, u64::from(m), 2);
    out.push(b'-');
    push_padded(out, u64::from(d), 2);
    out.push(b' ');
    push_padded(out, u64::from(s / 3600), 2);
    out.push(b':');
    push_padded(out, u64::from(s / 60 % 60), 2);
    out.push(b':');
    push_padded(out, u64::from(s % 60), 2);
}

/// Appends `yymmdd` of a timestamp (used inside order numbers).
pub(crate) fn push_yymmdd(out: &mut Vec<u8>, secs: u32) {
    let (y, m, d) = civil(secs / 86_400);
    push_padded(out, u64::from(y % 100), 2);
    push_padded(out, u64::from(m), 2);
    push_padded(out, u64::from(d), 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_the_two_years() {
        assert_eq!(civil(0), (2024, 1, 1));
        assert_eq!(civil(59), (2024, 2, 29));
        assert_eq!(civil(366), (2025, 1, 1));
        assert_eq!(civil(DAYS - 1), (2025, 12, 31));
        assert_eq!(day_of(2025, 11, 11), 366 + 314);
        assert_eq!(civil(day_of(2024, 6, 18)), (2024, 6, 18));
        let mut s = Vec::new();
        push_timestamp(&mut s, SPAN - 1);
        assert_eq!(s, b"2025-12-31 23:59:59");
    }

    #[test]
    fn csv_quotes_and_json_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        for format in [Format::Csv, Format::Ndjson] {
            let path = dir.path().join(format.name());
            let mut sink =
                Sink::create(&path, format, &["id", "note", "amount", "at", "n"]).expect("create");
            sink.begin_text();
            sink.push_text(b"pos:");
            sink.push_text(b"0012");
            sink.text("a, \"b\"");
            sink.money(12_340);
            sink.ts(86_400 + 3_661);
            sink.text("");
            sink.end_row().expect("row");
            assert_eq!(sink.finish().expect("finish"), 1);
            let text = std::fs::read_to_string(&path).expect("read");
            let expected = match format {
                Format::Csv => {
                    "id,note,amount,at,n\npos:0012,\"a, \"\"b\"\"\",123.40,2024-01-02 01:01:01,\n"
                }
                Format::Ndjson => {
                    "{\"id\":\"pos:0012\",\"note\":\"a, \\\"b\\\"\",\"amount\":123.40,\"at\":\"2024-01-02 01:01:01\",\"n\":null}\n"
                }
            };
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn numbers_format() {
        let mut s = Vec::new();
        push_u64(&mut s, 0);
        s.push(b' ');
        push_padded(&mut s, 7, 2);
        s.push(b' ');
        push_padded(&mut s, 12345, 8);
        s.push(b' ');
        push_padded(&mut s, 123, 2);
        assert_eq!(s, b"0 07 00012345 123");
    }
}
