//! AUTOMATIC1111's prompt emphasis syntax, parsed as its `parse_prompt_attention` does:
//!
//! * `(text)` multiplies the weight of `text` by 1.1, `[text]` divides it by 1.1; they nest;
//! * `(text:1.3)` multiplies it by 1.3 (spaces around the number are allowed);
//! * `\(`, `\)`, `\[`, `\]` and `\\` are the literal characters;
//! * unbalanced brackets apply to the end of the prompt;
//! * `BREAK` (a whole word, in capitals) ends the current 75-token chunk.
//!
//! The result is a list of text fragments with their weights; runs of equal weight are merged.
//! Weights are computed in f64 in the same order as the reference, so they are bit-identical.

use std::sync::OnceLock;

use regex::Regex;

use crate::error::{Error, Result};

/// A run of prompt text with its attention weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Fragment {
    /// The text, brackets and escapes removed.
    pub text: String,
    /// Product of the enclosing brackets' multipliers (1 outside any; -1 marks a `BREAK`).
    pub weight: f64,
}

/// A1111 marks `BREAK` as this fragment. Brackets around a BREAK scale its weight too, which
/// turns it back into the plain word "BREAK"; sdrt keeps that quirk.
const BREAK_TEXT: &str = "BREAK";
const BREAK_WEIGHT: f64 = -1.0;

impl Fragment {
    /// Whether this fragment ends the current chunk.
    pub fn is_break(&self) -> bool {
        self.text == BREAK_TEXT && self.weight == BREAK_WEIGHT
    }
}

const ROUND_MULTIPLIER: f64 = 1.1;
const SQUARE_MULTIPLIER: f64 = 1.0 / 1.1;

/// The tokens of the syntax, tried in this order at each position (leftmost-first, as Python's
/// `re`): escapes, a lone backslash (dropped), openers, a weighted closer `:1.3)`, closers,
/// plain text, and a colon that is not part of a weight.
fn token_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
            .expect("valid regex")
    })
}

fn break_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| Regex::new(r"(?s)\s*\bBREAK\b\s*").expect("valid regex"))
}

/// Splits `text` into weighted fragments. A weight that is not a number (`(a:1.2.3)`) is an
/// error, as it is in A1111.
pub fn parse(text: &str) -> Result<Vec<Fragment>> {
    let mut fragments: Vec<Fragment> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    let multiply_from = |fragments: &mut Vec<Fragment>, start: usize, factor: f64| {
        fragments[start..].iter_mut().for_each(|f| f.weight *= factor);
    };
    let plain = |text: &str| Fragment { text: text.to_string(), weight: 1.0 };

    for m in token_pattern().captures_iter(text) {
        let token = m.get(0).map_or("", |t| t.as_str());
        let weight = m.get(1).map(|w| w.as_str());
        if let Some(escaped) = token.strip_prefix('\\') {
            fragments.push(plain(escaped));
        } else if token == "(" {
            round.push(fragments.len());
        } else if token == "[" {
            square.push(fragments.len());
        } else if let (Some(weight), Some(start)) = (weight, round.last().copied()) {
            let weight: f64 = weight
                .parse()
                .map_err(|_| Error::InvalidArgument(format!("prompt weight {weight:?} is not a number")))?;
            round.pop();
            multiply_from(&mut fragments, start, weight);
        } else if let (")", Some(start)) = (token, round.last().copied()) {
            round.pop();
            multiply_from(&mut fragments, start, ROUND_MULTIPLIER);
        } else if let ("]", Some(start)) = (token, square.last().copied()) {
            square.pop();
            multiply_from(&mut fragments, start, SQUARE_MULTIPLIER);
        } else {
            for (i, part) in break_pattern().split(token).enumerate() {
                if i > 0 {
                    fragments.push(Fragment { text: BREAK_TEXT.into(), weight: BREAK_WEIGHT });
                }
                fragments.push(plain(part));
            }
        }
    }
    // Unclosed brackets apply to the end, innermost last (the reference's order).
    for start in round {
        multiply_from(&mut fragments, start, ROUND_MULTIPLIER);
    }
    for start in square {
        multiply_from(&mut fragments, start, SQUARE_MULTIPLIER);
    }
    if fragments.is_empty() {
        fragments.push(plain(""));
    }
    // Weights scale float32 embeddings: one beyond float32 (`(a:1e39)`, nested weights that
    // multiply past it, `(a:nan)`) would only surface as a NaN image much later.
    if let Some(bad) = fragments.iter().find(|f| !(f.weight as f32).is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "the prompt weight of {:?} comes to {}: weights must stay finite numbers within float32's range",
            bad.text, bad.weight
        )));
    }
    // Merge runs of identical weights (BREAK markers included, as the reference does).
    let mut merged: Vec<Fragment> = Vec::with_capacity(fragments.len());
    for fragment in fragments {
        match merged.last_mut() {
            Some(last) if last.weight == fragment.weight => last.text.push_str(&fragment.text),
            _ => merged.push(fragment),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_beyond_float32_are_refused() {
        let huge = format!("1{}", "0".repeat(39));
        let large = format!("1{}", "0".repeat(20));
        for prompt in [format!("(a:{huge})"), format!("((a:{large}):{large})"), format!("(a:-{huge})")] {
            let message = parse(&prompt).unwrap_err().to_string();
            assert!(message.contains("prompt weight of \"a\""), "{prompt}: {message}");
        }
        assert_eq!(parsed(&format!("(a:{large})")), vec![("a".to_string(), 1e20)]);
    }

    fn parsed(text: &str) -> Vec<(String, f64)> {
        parse(text).unwrap().into_iter().map(|f| (f.text, f.weight)).collect()
    }

    fn pairs(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    /// The examples in A1111's docstring, weights to the bit.
    #[test]
    fn reference_examples() {
        assert_eq!(parsed("normal text"), pairs(&[("normal text", 1.0)]));
        assert_eq!(parsed("an (important) word"), pairs(&[("an ", 1.0), ("important", 1.1), (" word", 1.0)]));
        assert_eq!(parsed("(unbalanced"), pairs(&[("unbalanced", 1.1)]));
        assert_eq!(parsed(r"\(literal\]"), pairs(&[("(literal]", 1.0)]));
        assert_eq!(parsed("(unnecessary)(parens)"), pairs(&[("unnecessaryparens", 1.1)]));
        assert_eq!(
            parsed("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            pairs(&[
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ])
        );
    }

    #[test]
    fn breaks_and_edge_cases() {
        let a_break_b = parse("a BREAK b").unwrap();
        assert_eq!(a_break_b.len(), 3);
        assert!(a_break_b[1].is_break());
        assert_eq!((a_break_b[0].text.as_str(), a_break_b[2].text.as_str()), ("a", "b"));
        // Not a whole word: plain text.
        assert_eq!(parsed("aBREAKb"), pairs(&[("aBREAKb", 1.0)]));
        assert_eq!(parsed(""), pairs(&[("", 1.0)]));
        assert_eq!(parsed("time: 12:30"), pairs(&[("time: 12:30", 1.0)]));
        assert_eq!(parsed("close) [open"), pairs(&[("close) ", 1.0), ("open", 1.0 / 1.1)]));
        assert!(matches!(parse("(a:1.2.3)"), Err(Error::InvalidArgument(_))));
        assert_eq!(parsed("(a: 1.5 )"), pairs(&[("a", 1.5)]));
        assert_eq!(parsed("(a:1.5 b)"), pairs(&[("a:1.5 b", 1.1)]));
    }
}
