//! CLIP's prompt cleanup: `whitespace_clean(ftfy.fix_text(text)).lower()`, as transformers'
//! slow `CLIPTokenizer` does when ftfy is installed (the reference every SD pipeline used).
//!
//! `fix_text` here is ftfy 6.3 with its default settings, minus `fix_encoding`: mojibake
//! repair, which re-decodes text like "cafÃ©" or "donâ€™t" through guessed legacy codecs,
//! driven by a large statistical "badness" heuristic. It only fires on text that looks like
//! such mojibake, which typed prompts are not, so it is left out deliberately (a prompt
//! that does hold mojibake is tokenized as written). `fix_surrogates` has nothing to do: a
//! Rust `&str` cannot hold surrogates.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::html::{unescape_html, CP1252_C1};

/// ftfy fixes text in segments of at most this many characters, each ending at a `\n`.
const MAX_SEGMENT_CHARS: usize = 1_000_000;

/// ftfy repeats its fixers until the text stops changing. Real text settles in two or three
/// rounds; the cap only bounds crafted input such as `&amp;amp;amp;...` nested thousands deep.
const MAX_ROUNDS: usize = 64;

/// The full CLIP cleanup of one piece of prompt text (between special tokens).
pub fn clip_clean(text: &str) -> String {
    whitespace_clean(&fix_text(text)).to_lowercase()
}

/// ftfy's `fix_text` (see the module comment for what is left out).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // ftfy stops unescaping HTML at the first segment that holds a literal '<' (the text is
    // probably real HTML then), and keeps it off for the rest of the text.
    let mut unescape = true;
    let mut rest = text;
    while !rest.is_empty() {
        let end = segment_end(rest);
        let (segment, tail) = rest.split_at(end);
        if segment.contains('<') {
            unescape = false;
        }
        out.push_str(&fix_segment(segment, unescape));
        rest = tail;
    }
    out
}

/// Length in bytes of the next segment: through the next '\n', or `MAX_SEGMENT_CHARS` chars.
fn segment_end(text: &str) -> usize {
    let line = text.find('\n').map_or(text.len(), |i| i + 1);
    match text[..line].char_indices().nth(MAX_SEGMENT_CHARS) {
        Some((i, _)) => i,
        None => line,
    }
}

fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_string();
    for _ in 0..MAX_ROUNDS {
        let mut fixed = if unescape { unescape_html(&text) } else { text.clone() };
        // ftfy's order: c1 controls, ligatures, width, quotes, line breaks, (surrogates),
        // terminal escapes, control characters, then NFC.
        let mut chars = String::with_capacity(fixed.len());
        fixed.chars().for_each(|c| push_fixed_char(c, &mut chars));
        fixed = fix_line_breaks(&chars);
        fixed = remove_terminal_escapes(&fixed).into_owned();
        fixed.retain(|c| !is_removed_control(c));
        fixed = fixed.nfc().collect();
        if fixed == text {
            break;
        }
        text = fixed;
    }
    text
}

/// The per-character fixers, in ftfy's order: C1 controls read as Windows-1252, Latin
/// ligatures, full/halfwidth forms, then curly quotes.
fn push_fixed_char(c: char, out: &mut String) {
    let c = match c {
        '\u{80}'..='\u{9F}' => CP1252_C1[c as usize - 0x80],
        _ => c,
    };
    if let Some(s) = latin_ligature(c) {
        out.extend(s.chars().map(uncurl_quote));
    } else if let Some(s) = width_fixed(c) {
        out.extend(s.chars().map(uncurl_quote));
    } else {
        out.push(uncurl_quote(c));
    }
}

/// ftfy's LIGATURES table: Latin typographic ligatures and legacy digraphs (not æ/œ,
/// which are written on purpose).
fn latin_ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "\u{2BC}n",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "D\u{17D}",
        'ǅ' => "D\u{17E}",
        'ǆ' => "d\u{17E}",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "\u{17F}t",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// ftfy's WIDTH_MAP: U+3000 becomes a space, and each character of the Halfwidth and
/// Fullwidth Forms block (U+FF01..U+FFEF) becomes its NFKC form.
fn width_fixed(c: char) -> Option<String> {
    match c {
        '\u{3000}' => Some(" ".into()),
        '\u{FF01}'..='\u{FFEF}' => {
            let n: String = std::iter::once(c).nfkc().collect();
            (n.chars().ne(std::iter::once(c))).then_some(n)
        }
        _ => None,
    }
}

/// ftfy's uncurl_quotes: U+02BC and U+2018..U+201B become `'`, U+201C..U+201F become `"`.
fn uncurl_quote(c: char) -> char {
    match c {
        '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
        '\u{201C}'..='\u{201F}' => '"',
        _ => c,
    }
}

/// CRLF, CR, U+2028, U+2029 and U+0085 all become `\n`.
fn fix_line_breaks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    out
}

/// Strips ANSI escapes `ESC [ (digits|;)* letter`; ftfy's `\d` is any Unicode decimal digit,
/// and so is the regex crate's.
fn remove_terminal_escapes(text: &str) -> Cow<'_, str> {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let re = ANSI.get_or_init(|| Regex::new(r"\x1b\[[\d;]*[a-zA-Z]").expect("valid regex"));
    re.replace_all(text, "")
}

/// ftfy's remove_control_chars: C0 controls other than \t \n \f \r, DEL, the deprecated
/// Arabic format controls, the BOM and the interlinear annotation / object replacement marks.
fn is_removed_control(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{E}'..='\u{1F}' | '\u{7F}'
        | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}')
}

/// transformers' `whitespace_clean`: runs of whitespace become one space, then trim.
/// Python's `regex` `\s` and Rust's `char::is_whitespace` are both Unicode White_Space.
pub fn whitespace_clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Python's `str.isspace`: Unicode White_Space plus the four C0 separators 0x1C..=0x1F.
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftfy_docstring_examples() {
        assert_eq!(fix_text("Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"), "Broken text… it's flubberific!");
        assert_eq!(fix_text("ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
        assert_eq!(fix_text("Ｕﾀｰﾝ"), "Uターン");
        assert_eq!(fix_text("ﬂuﬃeﬆ"), "fluffiest");
        assert_eq!(fix_text("\u{201C}here\u{2019}s a test\u{201D}"), "\"here's a test\"");
        assert_eq!(fix_text("\x1b[36;44mI'm blue\x1b[0m"), "I'm blue");
    }

    #[test]
    fn html_is_kept_from_the_first_line_with_a_tag_on() {
        assert_eq!(fix_text("a &amp; b <i>c</i> &amp; d"), "a &amp; b <i>c</i> &amp; d");
        assert_eq!(fix_text("&amp;\n<b> &amp;\n&amp;"), "&\n<b> &amp;\n&amp;");
        // Decoding repeats until nothing changes, and a decoded '<' does not stop it.
        assert_eq!(fix_text("&amp;lt;3 &amp;amp;"), "<3 &");
    }

    #[test]
    fn line_breaks_and_controls() {
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d\u{2029}e"), "a\nb\nc\nd\ne");
        assert_eq!(fix_text("a\u{0}b\u{7}c\u{7F}d\u{FEFF}e\u{FFFC}f\tg\u{C}h"), "abcdef\tg\u{C}h");
        // U+0085 is a C1 control first: Windows-1252 reads it as an ellipsis.
        assert_eq!(fix_text("a\u{85}b\u{80}c\u{81}"), "a…b€c\u{81}");
    }

    #[test]
    fn nfc_and_ligature_quotes() {
        assert_eq!(fix_text("cafe\u{301}"), "café");
        assert_eq!(fix_text("ŉ"), "'n");
        assert_eq!(fix_text("ｶﾞ"), "ガ");
    }

    #[test]
    fn whitespace_and_case() {
        assert_eq!(whitespace_clean("  a \t\n b\u{3000}c\u{A0} "), "a b c");
        assert_eq!(clip_clean(" A  Photo\tOF\nＣＡＴＳ "), "a photo of cats");
        assert_eq!(clip_clean(""), "");
        assert_eq!(clip_clean(" \u{1F} \t"), "");
    }
}
