//! Tests of the demo generator: a reference linker measured against `ground_truth.csv`, and
//! determinism.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::channels::CHANNELS;
use super::writers::Format;
use super::*;

/// One parsed file: rows of `column -> value` (missing / null values are empty strings).
fn read_rows(path: &Path, format: Format, columns: &[&str]) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("demo file is readable UTF-8");
    let mut lines = text.lines();
    match format {
        Format::Csv => {
            let header = parse_csv_line(lines.next().expect("csv header"));
            assert_eq!(header, columns, "{}: header", path.display());
            lines
                .map(|l| {
                    let row = parse_csv_line(l);
                    assert_eq!(row.len(), columns.len(), "{}: {l}", path.display());
                    row
                })
                .collect()
        }
        Format::Ndjson => lines
            .map(|l| {
                let obj = parse_json_object(l);
                columns
                    .iter()
                    .map(|c| obj.get(*c).cloned().unwrap_or_default())
                    .collect()
            })
            .collect(),
    }
}

/// RFC 4180 fields of one line (the demo never writes embedded newlines).
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.is_empty() {
            quoted = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut field));
        } else {
            field.push(c);
        }
    }
    out.push(field);
    out
}

/// A flat JSON object of strings, numbers and nulls, values as text (null → empty).
fn parse_json_object(line: &str) -> HashMap<String, String> {
    fn string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
        assert_eq!(chars.next(), Some('"'));
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => return s,
                '\\' => match chars.next() {
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16).expect("\\u escape");
                        s.push(char::from_u32(code).expect("char"));
                    }
                    Some(e) => s.push(e),
                    None => break,
                },
                _ => s.push(c),
            }
        }
        panic!("unterminated string in {s}");
    }
    let mut map = HashMap::new();
    let mut chars = line.trim().chars().peekable();
    assert_eq!(chars.next(), Some('{'));
    loop {
        let key = string(&mut chars);
        assert_eq!(chars.next(), Some(':'));
        let value = if chars.peek() == Some(&'"') {
            string(&mut chars)
        } else {
            let mut raw = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                raw.push(c);
                chars.next();
            }
            if raw == "null" { String::new() } else { raw }
        };
        map.insert(key, value);
        match chars.next() {
            Some(',') => continue,
            Some('}') => return map,
            other => panic!("bad json {line}: {other:?}"),
        }
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The reference normalisation: digits-only last 11 digits for phones (compared through their
/// SHA-256 so hashed phones link), trimmed lower-case emails, other ids trimmed; junk removed.
fn link_key(id_type: &str, raw: &str) -> Option<String> {
    let v = raw.trim();
    let lower = v.to_ascii_lowercase();
    if v.is_empty()
        || [
            "null",
            "unknown",
            "n/a",
            "00000000-0000-0000-0000-000000000000",
        ]
        .contains(&lower.as_str())
    {
        return None;
    }
    let same_digit = |s: &str| {
        s.bytes().all(|b| b.is_ascii_digit()) && s.bytes().all(|b| Some(b) == s.bytes().next())
    };
    if same_digit(v) {
        return None;
    }
    match id_type {
        "phone" => {
            if v.contains('*') {
                return None;
            }
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            if digits.len() < 11 {
                return None;
            }
            let d = &digits[digits.len() - 11..];
            if !d.starts_with('1') || same_digit(d) {
                return None;
            }
            Some(format!("phone_sha256:{}", sha256_hex(&format!("+86{d}"))))
        }
        "phone_sha256" => Some(format!("phone_sha256:{lower}")),
        "email" => Some(format!("email:{lower}")),
        _ => Some(format!("{id_type}:{v}")),
    }
}

struct Measure {
    precision: f64,
    recall: f64,
    records: usize,
    identifier_rows: usize,
}

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Links the demo files with the reference linker and scores it against ground_truth.csv.
fn measure(dir: &Path) -> Measure {
    let mut record_index: HashMap<String, usize> = HashMap::new();
    let mut key_records: HashMap<String, HashSet<usize>> = HashMap::new();
    let mut raw_ids: HashSet<(usize, &'static str, String)> = HashSet::new();
    for spec in &CHANNELS {
        let rows = read_rows(&dir.join(spec.file), spec.format, spec.columns);
        let col = |name: &str| {
            spec.columns
                .iter()
                .position(|c| *c == name)
                .expect("id column exists")
        };
        let key_col = col(spec.record_key);
        for row in rows {
            assert!(!row[key_col].is_empty(), "{}: empty record key", spec.name);
            let rid = format!("{}:{}", spec.name, row[key_col]);
            let next = record_index.len();
            let r = *record_index.entry(rid).or_insert(next);
            for (id_type, column) in spec.ids {
                let raw = &row[col(column)];
                if !raw.trim().is_empty() {
                    raw_ids.insert((r, id_type, raw.clone()));
                }
                if let Some(k) = link_key(id_type, raw) {
                    key_records.entry(k).or_default().insert(r);
                }
            }
        }
    }

    let truth = read_rows(
        &dir.join(GROUND_TRUTH_FILE),
        Format::Csv,
        &["record_id", "person_id"],
    );
    let mut person_of = vec![u64::MAX; record_index.len()];
    for row in &truth {
        let r = *record_index
            .get(&row[0])
            .unwrap_or_else(|| panic!("ground truth record {} has no rows", row[0]));
        assert_eq!(person_of[r], u64::MAX, "{} twice in ground truth", row[0]);
        person_of[r] = row[1].parse().expect("person id");
    }
    assert!(
        person_of.iter().all(|&p| p != u64::MAX),
        "every record is in ground truth"
    );

    let mut parent: Vec<usize> = (0..record_index.len()).collect();
    for records in key_records.values() {
        if records.len() > 50 {
            continue;
        }
        let mut it = records.iter();
        if let Some(&first) = it.next() {
            for &other in it {
                let (a, b) = (find(&mut parent, first), find(&mut parent, other));
                parent[a] = b;
            }
        }
    }
    let mut clusters: HashMap<usize, usize> = HashMap::new();
    let mut people: HashMap<u64, usize> = HashMap::new();
    let mut both: HashMap<(usize, u64), usize> = HashMap::new();
    for (r, &person) in person_of.iter().enumerate() {
        let c = find(&mut parent, r);
        *clusters.entry(c).or_default() += 1;
        *people.entry(person).or_default() += 1;
        *both.entry((c, person)).or_default() += 1;
    }
    // DEMO_DEBUG=1 shows which channels' records stay apart and which people merge.
    if std::env::var_os("DEMO_DEBUG").is_some() {
        let names: Vec<(&String, &usize)> = record_index.iter().collect();
        let mut best: HashMap<u64, (usize, usize)> = HashMap::new();
        for (&(c, p), &n) in &both {
            let e = best.entry(p).or_insert((c, n));
            if n > e.1 || (n == e.1 && c < e.0) {
                *e = (c, n);
            }
        }
        let mut stray: HashMap<String, usize> = HashMap::new();
        for &(rid, &r) in &names {
            let p = person_of[r];
            if people[&p] > 1 && find(&mut parent, r) != best[&p].0 {
                let ch = rid.split(':').next().unwrap_or_default().to_string();
                *stray.entry(ch).or_default() += 1;
            }
        }
        eprintln!("records outside their person's main cluster: {stray:?}");
        let mut persons_in: HashMap<usize, Vec<(u64, usize)>> = HashMap::new();
        for (&(c, p), &n) in &both {
            persons_in.entry(c).or_default().push((p, n));
        }
        let mut merged: Vec<_> = persons_in
            .values()
            .filter(|v| v.len() > 1)
            .cloned()
            .collect();
        merged.sort();
        eprintln!("merged clusters ({}): {merged:?}", merged.len());
    }
    let predicted: u64 = clusters.values().map(|&n| pairs(n)).sum();
    let actual: u64 = people.values().map(|&n| pairs(n)).sum();
    let correct: u64 = both.values().map(|&n| pairs(n)).sum();
    Measure {
        precision: correct as f64 / predicted.max(1) as f64,
        recall: correct as f64 / actual.max(1) as f64,
        records: record_index.len(),
        identifier_rows: raw_ids.len(),
    }
}

fn run(dir: &Path, customers: usize, seed: u64) -> DemoSummary {
    generate(&DemoOptions {
        out: dir.to_path_buf(),
        customers,
        seed,
        progress: false,
    })
    .expect("demo generation")
}

#[test]
fn reference_linker_finds_the_true_people() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(dir.path(), 2_000, 42);
    let m = measure(dir.path());
    eprintln!(
        "2000 people: {} records, precision {:.4}, recall {:.4}",
        m.records, m.precision, m.recall
    );
    assert!(m.precision >= 0.995, "precision {}", m.precision);
    assert!(m.recall >= 0.985, "recall {}", m.recall);
    assert_eq!(summary.identifier_rows, m.identifier_rows);
    assert_eq!(summary.people, 2_000);
    assert_eq!(summary.channels.len(), CHANNELS.len());
    assert!(summary.channels.iter().all(|(_, rows)| *rows > 0));
}

/// `cargo test -- --ignored demo_at_20k --nocapture` prints the figures at the default size.
#[test]
#[ignore]
fn demo_at_20k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = run(dir.path(), 20_000, 42);
    let m = measure(dir.path());
    eprintln!("{summary:#?}");
    eprintln!(
        "20000 people: {} records, precision {:.5}, recall {:.5}",
        m.records, m.precision, m.recall
    );
    assert!(m.precision >= 0.995 && m.recall >= 0.985);
    assert_eq!(summary.identifier_rows, m.identifier_rows);
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = CHANNELS.iter().map(|c| c.file.to_string()).collect();
    names.push(GROUND_TRUTH_FILE.to_string());
    names.push(CONFIG_FILE.to_string());
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).expect("read demo file");
            (n, bytes)
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let sa = run(a.path(), 700, 7);
    let sb = run(b.path(), 700, 7);
    run(c.path(), 700, 8);
    assert_eq!(sa.channels, sb.channels);
    assert_eq!(sa.identifier_rows, sb.identifier_rows);
    let (fa, fb, fc) = (read_all(a.path()), read_all(b.path()), read_all(c.path()));
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{name} differs between two runs with the same seed");
    }
    for ((name, x), (_, z)) in fa.iter().zip(&fc) {
        if name != CONFIG_FILE {
            assert!(x != z, "{name} is the same for seeds 7 and 8");
        }
    }
}

#[test]
fn config_describes_every_channel() {
    let text = config_text(20_000, 42);
    assert!(text.starts_with("# userql demo data: 20000 people, seed 42\n"));
    assert_eq!(text.matches("[[channels]]").count(), CHANNELS.len());
    assert!(text.contains("ids        = { tmall_nick = \"buyer_nick\", phone = \"mobile\" }"));
    assert!(text.contains("[channels.orders]\nts     = \"paid_at\"\namount = \"payment\""));
}

#[test]
fn empty_and_oversized_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run(dir.path(), 0, 1);
    assert_eq!(s.identifier_rows, 0);
    assert!(s.channels.iter().all(|(_, rows)| *rows == 0));
    let err = generate(&DemoOptions {
        out: dir.path().to_path_buf(),
        customers: people::MAX_PEOPLE + 1,
        seed: 1,
        progress: false,
    });
    assert!(matches!(err, Err(DemoError::TooManyCustomers { .. })));
}

#[test]
fn junk_values_are_planted_and_shared_widely() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(dir.path(), 2_000, 42);
    let pos = read_rows(
        &dir.path().join(CHANNELS[channels::POS].file),
        Format::Csv,
        CHANNELS[channels::POS].columns,
    );
    let mut by_phone: HashMap<&str, HashSet<&str>> = HashMap::new();
    for row in &pos {
        by_phone.entry(&row[2]).or_default().insert(&row[1]);
    }
    assert!(by_phone.get("13800138000").is_some_and(|m| m.len() > 50));
    assert!(by_phone.get("00000000000").is_some_and(|m| m.len() > 50));
    let ads =
        std::fs::read_to_string(dir.path().join(CHANNELS[channels::ADS].file)).expect("ads file");
    assert!(ads.contains("00000000-0000-0000-0000-000000000000"));
    let tmall = std::fs::read_to_string(dir.path().join(CHANNELS[channels::TMALL].file))
        .expect("tmall file");
    assert!(tmall.contains("****"));
    assert!(tmall.contains(",+86 1"));
}
