//! userql's answers for `funnel_vs_clickhouse.py`: reads cases on stdin, one per
//! line, and prints one answer per line.
//!
//! This file is not part of the userql crate. The script copies it as `main.rs`
//! into a throwaway crate, next to copies of
//! `src/functions/behavior/{funnel,retention}.rs`, and builds it there.
//!
//! Input lines:
//! - `F <n> <window_seconds> <mode or -> <ts_ns>:<mask> ...` → the funnel level;
//! - `R <n> <mask> ...` → the retention array as `1,0,1`.
//!
//! Each funnel case is cut into up to four partial states (the cut points and
//! the order of the pieces depend on the line number). The pieces are merged in
//! reverse through their serialized vectors, as the SQL layer merges partial
//! aggregates. So a wrong merge would show up as a mismatch with ClickHouse.

// The oracle uses only part of each module's API.
#[allow(dead_code)]
mod funnel;
#[allow(dead_code)]
mod retention;

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use funnel::{FunnelMode, FunnelState};
use retention::RetentionState;

fn main() -> ExitCode {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for (number, line) in stdin.lock().lines().enumerate() {
        let answer = line
            .map_err(|e| e.to_string())
            .and_then(|line| answer(number as u64, &line));
        let written = match answer {
            Ok(text) => writeln!(out, "{text}"),
            Err(e) => {
                eprintln!("line {}: {e}", number + 1);
                return ExitCode::FAILURE;
            }
        };
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn answer(number: u64, line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("F") => {
            let n: usize = parse(words.next(), "n")?;
            let window_seconds: i64 = parse(words.next(), "window")?;
            let mode_text = words.next().ok_or("missing mode")?;
            let mode_text = if mode_text == "-" { "" } else { mode_text };
            let mode = FunnelMode::parse(mode_text).map_err(|e| e.to_string())?;
            let window = funnel::window_from_seconds(window_seconds, 1_000_000_000)
                .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for word in words {
                let (ts, mask) = word.split_once(':').ok_or("event without ':'")?;
                rows.push((
                    parse::<i64>(Some(ts), "ts")?,
                    parse::<u32>(Some(mask), "mask")?,
                ));
            }
            Ok(funnel_in_pieces(number, &rows, window, mode, n).to_string())
        }
        Some("R") => {
            let n: usize = parse(words.next(), "n")?;
            let mut state = RetentionState::new();
            for word in words {
                state.push(parse(Some(word), "mask")?);
            }
            let values: Vec<String> = state.evaluate(n).iter().map(|v| v.to_string()).collect();
            Ok(values.join(","))
        }
        _ => Err(format!("unknown case kind in {line:?}")),
    }
}

fn parse<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    word.ok_or(format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

/// Evaluates `rows` after cutting them into partial states and merging those.
fn funnel_in_pieces(
    number: u64,
    rows: &[(i64, u32)],
    window: i64,
    mode: FunnelMode,
    n: usize,
) -> u32 {
    let mut x = number.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let pieces = 1 + (next() % 4) as usize;
    let mut cuts: Vec<usize> = (1..pieces)
        .map(|_| (next() % (rows.len() as u64 + 1)) as usize)
        .collect();
    cuts.push(0);
    cuts.push(rows.len());
    cuts.sort_unstable();
    let mut merged = FunnelState::new();
    for bounds in cuts.windows(2).rev() {
        let mut piece = FunnelState::new();
        for &(ts, mask) in &rows[bounds[0]..bounds[1]] {
            piece.push(ts, mask, mode);
        }
        if next() % 2 == 0 {
            piece.sort();
        }
        let (timestamps, masks) = piece.to_parts();
        if merged.merge_parts(&timestamps, &masks).is_err() {
            // Cannot happen: `to_parts` gives equal lengths.
            return u32::MAX;
        }
    }
    merged.evaluate(window, mode, n)
}
