//! PostgreSQL's array literal syntax, `{a,"b c",NULL,{1,2}}`, split into element texts.
//!
//! The rules are `array_in`'s: elements are separated by commas; an element is either
//! double-quoted (backslash escapes any character inside) or unquoted (surrounding
//! whitespace dropped, backslash escapes one character, the bare word `NULL` in any case
//! is a null); a nested `{...}` is kept as text for the element type's own parser, so
//! arrays of arrays parse level by level. An optional dimension prefix (`[1:3]=`) is
//! accepted and its length checked. Anything else is an error: a literal that cannot be
//! read is never stored as a string.

use crate::error::{UserqlError, sqlstate};

/// One element of an array literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    /// `NULL` (unquoted).
    Null,
    /// The element's text, unescaped; a nested array keeps its braces.
    Text(String),
}

fn malformed(input: &str, detail: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("malformed array literal: \"{input}\""),
    )
    .with_hint(detail.to_string())
}

/// Split an array literal into its top-level elements.
pub fn parse(input: &str) -> Result<Vec<Element>, UserqlError> {
    let trimmed = input.trim_matches(is_pg_space);
    let (body, declared_len) = strip_dimensions(trimmed, input)?;
    let bytes = body.as_bytes();
    if bytes.first() != Some(&b'{') {
        return Err(malformed(
            input,
            "Array value must start with \"{\" or dimension information.",
        ));
    }
    let mut elements = Vec::new();
    let mut i = 1;
    let mut expect_element = true;
    loop {
        while i < bytes.len() && is_pg_space(bytes[i] as char) {
            i += 1;
        }
        let Some(&c) = bytes.get(i) else {
            return Err(malformed(input, "Unexpected end of input."));
        };
        match c {
            b'}' => {
                if expect_element && !elements.is_empty() {
                    return Err(malformed(input, "Unexpected \"}\" character."));
                }
                i += 1;
                break;
            }
            b',' => {
                if expect_element {
                    return Err(malformed(input, "Unexpected \",\" character."));
                }
                expect_element = true;
                i += 1;
            }
            _ if !expect_element => {
                return Err(malformed(input, "Expected \",\" or \"}\"."));
            }
            b'"' => {
                let (text, next) = quoted(body, i + 1).ok_or_else(|| {
                    malformed(input, "Unexpected end of input in a quoted element.")
                })?;
                elements.push(Element::Text(text));
                i = next;
                expect_element = false;
            }
            b'{' => {
                let end = nested_end(body, i)
                    .ok_or_else(|| malformed(input, "Unmatched \"{\" in a nested array."))?;
                elements.push(Element::Text(body[i..end].to_string()));
                i = end;
                expect_element = false;
            }
            _ => {
                let (element, next) = unquoted(body, i)
                    .ok_or_else(|| malformed(input, "Unexpected end of input."))?;
                elements.push(element);
                i = next;
                expect_element = false;
            }
        }
    }
    if body[i..].chars().any(|c| !is_pg_space(c)) {
        return Err(malformed(input, "Junk after closing right brace."));
    }
    if let Some(n) = declared_len
        && n != elements.len()
    {
        return Err(malformed(
            input,
            "Specified array dimensions do not match array contents.",
        ));
    }
    Ok(elements)
}

/// `[1:3]={...}` → (`{...}`, Some(3)); anything else unchanged.
fn strip_dimensions<'a>(
    text: &'a str,
    input: &str,
) -> Result<(&'a str, Option<usize>), UserqlError> {
    if !text.starts_with('[') {
        return Ok((text, None));
    }
    let bad = || malformed(input, "Invalid array dimension decoration.");
    let close = text.find(']').ok_or_else(bad)?;
    let dims = &text[1..close];
    let (lower, upper) = match dims.split_once(':') {
        Some((l, u)) => (l.trim().parse::<i64>(), u.trim().parse::<i64>()),
        None => (Ok(1), dims.trim().parse::<i64>()),
    };
    let (lower, upper) = (lower.map_err(|_| bad())?, upper.map_err(|_| bad())?);
    if upper < lower - 1 {
        return Err(bad());
    }
    let rest = text[close + 1..].trim_start_matches(is_pg_space);
    if rest.starts_with('[') {
        return Err(UserqlError::unsupported(
            "multi-dimensional array literals are not supported: use an array of arrays",
        ));
    }
    let rest = rest.strip_prefix('=').ok_or_else(bad)?;
    Ok((
        rest.trim_start_matches(is_pg_space),
        Some((upper - lower + 1) as usize),
    ))
}

/// A quoted element starting after its opening quote: its text and the index after the
/// closing quote.
fn quoted(body: &str, start: usize) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut chars = body[start..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some((text, start + off + 1)),
            other => text.push(other),
        }
    }
    None
}

/// An unquoted element: up to the next unescaped `,` or `}`, surrounding whitespace
/// dropped (escaped whitespace is kept).
fn unquoted(body: &str, start: usize) -> Option<(Element, usize)> {
    let mut text = String::new();
    // Length of `text` up to its last character that must be kept (escaped or not space).
    let mut kept = 0;
    let mut escaped_any = false;
    let mut chars = body[start..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            ',' | '}' => {
                text.truncate(kept);
                let element = if !escaped_any && text.eq_ignore_ascii_case("null") {
                    Element::Null
                } else {
                    Element::Text(text)
                };
                return Some((element, start + off));
            }
            '\\' => {
                text.push(chars.next()?.1);
                kept = text.len();
                escaped_any = true;
            }
            '"' | '{' => return None,
            c => {
                text.push(c);
                if !is_pg_space(c) {
                    kept = text.len();
                }
            }
        }
    }
    None
}

/// The index just after the `}` closing the nested array that opens at `start`.
fn nested_end(body: &str, start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_quotes = false;
    let mut chars = body[start..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '"' => in_quotes = !in_quotes,
            '{' if !in_quotes => depth += 1,
            '}' if !in_quotes => {
                depth -= 1;
                if depth == 0 {
                    return Some(start + off + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The whitespace `array_in` skips (`scanner_isspace`).
fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Write one element of an array value in PostgreSQL's output form: quoted when it is
/// empty, `NULL`-like, or holds a delimiter, brace, quote, backslash or whitespace.
pub fn write_element(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value.eq_ignore_ascii_case("null")
        && !value
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || is_pg_space(c));
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Vec<Option<String>> {
        parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .into_iter()
            .map(|e| match e {
                Element::Null => None,
                Element::Text(t) => Some(t),
            })
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn elements_follow_array_in() {
        assert_eq!(texts("{}"), Vec::<Option<String>>::new());
        assert_eq!(texts(" { } "), Vec::<Option<String>>::new());
        assert_eq!(texts("{a,b}"), vec![s("a"), s("b")]);
        assert_eq!(texts("{p,\"q r\"}"), vec![s("p"), s("q r")]);
        assert_eq!(texts("{a,\"b c\",NULL}"), vec![s("a"), s("b c"), None]);
        assert_eq!(texts("{null,\"NULL\",Null}"), vec![None, s("NULL"), None]);
        assert_eq!(texts("{  x  , y z }"), vec![s("x"), s("y z")]);
        assert_eq!(texts("{\"\"}"), vec![s("")]);
        assert_eq!(texts(r#"{"a\"b","c\\d"}"#), vec![s("a\"b"), s("c\\d")]);
        assert_eq!(texts(r"{a\,b,c\ }"), vec![s("a,b"), s("c ")]);
        assert_eq!(texts(r"{\NULL}"), vec![s("NULL")]);
        assert_eq!(texts("{{1,2},{3,4}}"), vec![s("{1,2}"), s("{3,4}")]);
        assert_eq!(texts("{{\"}\"},{}}"), vec![s("{\"}\"}"), s("{}")]);
        assert_eq!(texts("[1:2]={a,b}"), vec![s("a"), s("b")]);
        assert_eq!(texts("{中文,é}"), vec![s("中文"), s("é")]);
    }

    #[test]
    fn malformed_literals_are_errors() {
        for bad in [
            "",
            "a,b",
            "{a,b",
            "{a,,b}",
            "{,}",
            "{a,}",
            "{a}x",
            "{\"a}",
            "{a\"b\"}",
            "[1:3]={a}",
            "{a b\"}",
            "{{1,2}",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(
                e.code == sqlstate::INVALID_TEXT_REPRESENTATION,
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn output_quotes_what_input_would_misread() {
        let mut out = String::new();
        for v in ["a", "b c", "", "NULL", "x,y", "q\"", "s\\", "{", "中文"] {
            out.clear();
            out.push('{');
            write_element(&mut out, v);
            out.push('}');
            assert_eq!(texts(&out), vec![s(v)], "{out}");
        }
    }
}
