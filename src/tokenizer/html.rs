//! ftfy 6.3's `unescape_html`, which CLIP's cleanup runs on every prompt.
//!
//! ftfy is deliberately narrower than a browser or Python's `html.unescape`: it only decodes
//! references that end in `;` (so "this&not that" stays as typed), and it also decodes an
//! all-caps spelling of a lowercase entity (`&EACUTE;` -> `É`) when that spelling means
//! nothing to `html.unescape`. The named table is the WHATWG one, shared with `html-escape`.

use html_escape::NAMED_ENTITIES;

/// Upper-case names that `html.unescape` also accepts without a `;`. An all-caps spelling
/// that starts with one of these already means something to `html.unescape` (`&AMPX;` ->
/// `&X;`), so ftfy does not treat it as an upper-cased entity.
const UPPER_LEGACY_NAMES: [&str; 8] = ["AMP", "COPY", "ETH", "GT", "LT", "QUOT", "REG", "THORN"];

/// Windows-1252 meanings of bytes 0x80..=0x9F; the five bytes it leaves undefined map to
/// themselves (ftfy's "sloppy" codec and the HTML numeric-reference rules agree on this).
pub(crate) const CP1252_C1: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2C6}', '\u{2030}',
    '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}',
    '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}',
    '\u{17E}', '\u{178}',
];

/// Replaces every `&name;` / `&#digits;` / `&#xhex;` (1 to 24 ASCII alphanumerics) that
/// ftfy would decode. Anything else is left exactly as it was.
pub(crate) fn unescape_html(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // text[..copied] is already in `out`
    let mut pos = 0;
    while let Some(off) = text[pos..].find('&') {
        let amp = pos + off;
        pos = amp + 1;
        let Some(end) = reference_end(bytes, amp) else { continue };
        let body = &text[amp + 1..end - 1]; // without '&' and ';'
        let Some(decoded) = decode_reference(body) else { continue };
        out.push_str(&text[copied..amp]);
        out.push_str(&decoded);
        copied = end;
        pos = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// End (exclusive) of ftfy's `&#?[0-9A-Za-z]{1,24};` when it matches at `amp`.
fn reference_end(bytes: &[u8], amp: usize) -> Option<usize> {
    let mut i = amp + 1;
    if bytes.get(i) == Some(&b'#') {
        i += 1;
    }
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_alphanumeric() && i - start < 24 {
        i += 1;
    }
    (i > start && bytes.get(i) == Some(&b';')).then_some(i + 1)
}

/// The text a reference decodes to, or `None` to keep it as written.
fn decode_reference(body: &str) -> Option<String> {
    if let Some(number) = body.strip_prefix('#') {
        // ftfy runs `html.unescape` and keeps the result only when the `;` was consumed,
        // i.e. when every character was a digit; a result of ";" itself (&#59;) is kept as
        // written too.
        let value = match number.strip_prefix(['x', 'X']) {
            Some(hex) => parse_all(hex, 16)?,
            None => parse_all(number, 10)?,
        };
        let decoded = numeric_reference(value);
        return (!decoded.contains(';')).then_some(decoded);
    }
    if let Some(value) = named_entity(body) {
        return Some(value.to_string());
    }
    // All-caps spelling of an all-lowercase entity, as ftfy's table adds them.
    let lower = body.to_ascii_lowercase();
    if body != lower.to_ascii_uppercase() || unescape_knows_upper(body) {
        return None;
    }
    named_entity(&lower).map(str::to_uppercase)
}

/// Whether `html.unescape("&" + name + ";")` would change it: `name` is a known entity, or
/// one of its prefixes (2 characters or more) is a legacy name that needs no `;`.
fn unescape_knows_upper(name: &str) -> bool {
    named_entity(name).is_some() || (2..=name.len()).any(|n| UPPER_LEGACY_NAMES.contains(&&name[..n]))
}

fn named_entity(name: &str) -> Option<&'static str> {
    NAMED_ENTITIES.binary_search_by(|(n, _)| (*n).cmp(name.as_bytes())).ok().map(|i| NAMED_ENTITIES[i].1)
}

/// Parses a non-empty all-digit string, saturating (anything past U+10FFFF decodes the same).
fn parse_all(digits: &str, radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u64, |acc, c| {
        let d = c.to_digit(radix)?;
        Some(acc.saturating_mul(u64::from(radix)).saturating_add(u64::from(d)))
    })
}

/// Python `html.unescape`'s rules for a numeric reference (after the HTML5 spec).
fn numeric_reference(value: u64) -> String {
    match value {
        0 => "\u{FFFD}".into(),
        0x0D => "\r".into(),
        0x80..=0x9F => CP1252_C1[(value - 0x80) as usize].to_string(),
        0xD800..=0xDFFF => "\u{FFFD}".into(),
        v if v > 0x10FFFF => "\u{FFFD}".into(),
        // Code points the spec calls invalid decode to nothing at all.
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        v if v & 0xFFFE == 0xFFFE => String::new(),
        v => char::from_u32(v as u32).map(String::from).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_html as u;

    #[test]
    fn named_and_numeric() {
        assert_eq!(u("Tom &amp; Jerry"), "Tom & Jerry");
        assert_eq!(u("&lt;3 &eacute; &#233; &#xE9; &#XE9;"), "<3 é é é é");
        assert_eq!(u("&Jscr;ohn &HilbertSpace;ancock &checkmark;"), "𝒥ohn ℋancock ✓");
    }

    #[test]
    fn ftfy_only_decodes_terminated_references() {
        assert_eq!(u("this&not that &amp &ampx; &#233 &#; &;"), "this&not that &amp &ampx; &#233 &#; &;");
        // 25 alphanumerics is one too many for ftfy's pattern.
        assert_eq!(u("&aaaaaaaaaaaaaaaaaaaaaaaaa;"), "&aaaaaaaaaaaaaaaaaaaaaaaaa;");
        assert_eq!(u("&&amp;;"), "&&;");
    }

    #[test]
    fn upper_case_entities() {
        assert_eq!(u("P&EACUTE;REZ"), "PÉREZ");
        assert_eq!(u("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
        assert_eq!(u("&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "ñ Ñ Ñ &nTILDE;");
        // `&LTIMES;` starts with the legacy `&LT`, so ftfy leaves it alone.
        assert_eq!(u("&LTIMES; &ltimes;"), "&LTIMES; ⋉");
        assert_eq!(u("&AMP; &DD;"), "& ⅅ");
    }

    #[test]
    fn numeric_edge_cases() {
        assert_eq!(u("a&#1;b"), "ab");
        assert_eq!(u("&#0;&#128;&#x81;&#13;"), "\u{FFFD}€\u{81}\r");
        assert_eq!(u("&#59; &#x3b;"), "&#59; &#x3b;");
        assert_eq!(u("&#12x; &#xZZ; &#x;"), "&#12x; &#xZZ; &#x;");
        assert_eq!(u("&#55296; &#99999999999999999999999;"), "\u{FFFD} \u{FFFD}");
        assert_eq!(u("&#xFFFE; &#x10FFFF; &#x1F600;"), "  😀");
    }
}
