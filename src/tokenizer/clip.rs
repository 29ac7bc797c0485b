//! CLIP's word splitting and byte-level BPE, as in transformers' slow `CLIPTokenizer`.
//!
//! A word's UTF-8 bytes each start as one symbol (GPT-2's byte -> printable character
//! table), the last one carrying the `</w>` end-of-word marker; then the lowest-ranked
//! adjacent pair is merged, everywhere it occurs, until no pair has a rank.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

use regex::Regex;

const END_OF_WORD: &str = "</w>";
const NONE: usize = usize::MAX;

/// The CLIP pre-tokenizer pattern: the two special tokens, English contractions, letter
/// runs, single digits, and runs of anything else that is not whitespace.
///
/// The reference compiles it with the Python `regex` module's IGNORECASE. That makes the
/// literals match case variants (`<|ſtartoftext|>` is one word there too), but leaves the
/// classes alone with one exception: U+0345 (a combining mark whose case fold is the letter
/// ι) then matches no alternative at all, so it is dropped. The regex crate would fold the
/// classes as well, so only the literals are case-insensitive here and U+0345 is excluded.
pub(crate) fn words(cleaned: &str) -> impl Iterator<Item = &str> {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN
        .get_or_init(|| {
            Regex::new(concat!(
                r"(?i:<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d)",
                r"|\p{L}+|\p{N}|[^\s\p{L}\p{N}\x{345}]+"
            ))
            .expect("valid regex")
        })
        .find_iter(cleaned)
        .map(|m| m.as_str())
}

/// GPT-2/CLIP's reversible byte -> character table: printable Latin-1 bytes map to
/// themselves, the other 68 bytes to U+0100 and up, in byte order.
fn byte_char(b: u8) -> char {
    let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !matches!(x, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)).count();
    char::from_u32(0x100 + rank as u32).expect("in range")
}

struct Merge {
    rank: u32,
    merged: u32,
}

/// Merge table over interned symbols, with each symbol's final token id resolved up front.
pub(crate) struct Bpe {
    merges: HashMap<(u32, u32), Merge>,
    /// Symbol of each byte inside a word, and as the word's last byte (with `</w>`).
    byte_symbols: [u32; 256],
    final_byte_symbols: [u32; 256],
    symbol_ids: Vec<i64>,
    /// Ids of `<|startoftext|>` and `<|endoftext|>` when they turn up as words.
    literal_ids: [i64; 2],
}

impl Bpe {
    /// `merges` are (rank, left, right); a later duplicate pair overrides an earlier one, as
    /// in the Python dict. `token_id` maps a symbol string to its id (unknown -> unk id).
    pub(crate) fn new(merges: &[(usize, String, String)], token_id: impl Fn(&str) -> i64) -> Self {
        let mut interner = Interner::default();
        let mut byte_symbols = [0; 256];
        let mut final_byte_symbols = [0; 256];
        for b in 0..=255u8 {
            let c = byte_char(b).to_string();
            final_byte_symbols[b as usize] = interner.intern(&format!("{c}{END_OF_WORD}"));
            byte_symbols[b as usize] = interner.intern(&c);
        }
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, left, right) in merges {
            let pair = (interner.intern(left), interner.intern(right));
            let merged = interner.intern(&format!("{left}{right}"));
            let rank = u32::try_from(*rank).unwrap_or(u32::MAX);
            table.insert(pair, Merge { rank, merged });
        }
        let symbol_ids = interner.strings.iter().map(|s| token_id(s)).collect();
        let literal_ids = [token_id("<|startoftext|>"), token_id("<|endoftext|>")];
        Bpe { merges: table, byte_symbols, final_byte_symbols, symbol_ids, literal_ids }
    }

    /// Id of a special-token word: the reference's BPE cache returns these unsplit.
    pub(crate) fn literal_id(&self, word: &str) -> Option<i64> {
        match word {
            "<|startoftext|>" => Some(self.literal_ids[0]),
            "<|endoftext|>" => Some(self.literal_ids[1]),
            _ => None,
        }
    }

    /// Appends the token ids of one (non-empty) word.
    pub(crate) fn push_word_ids(&self, word: &str, out: &mut Vec<i64>) {
        let bytes = word.as_bytes();
        let Some((&last, init)) = bytes.split_last() else { return };
        let mut symbols: Vec<u32> = init.iter().map(|&b| self.byte_symbols[b as usize]).collect();
        symbols.push(self.final_byte_symbols[last as usize]);
        self.merge_all(&mut symbols);
        out.extend(symbols.iter().map(|&s| self.symbol_ids[s as usize]));
    }

    fn merge_of(&self, left: u32, right: u32) -> Option<&Merge> {
        self.merges.get(&(left, right))
    }

    /// The reference algorithm repeatedly takes the lowest-ranked pair and merges all its
    /// occurrences left to right. This does the same in O(n log n) with a heap of
    /// (rank, position): one rank is one round; pairs created during a round wait for the
    /// next round, exactly as the reference only looks for new pairs after a full pass.
    fn merge_all(&self, symbols: &mut Vec<u32>) {
        let n = symbols.len();
        if n < 2 {
            return;
        }
        let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NONE } else { i }).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some(m) = self.merge_of(symbols[i], symbols[i + 1]) {
                heap.push(Reverse((m.rank, i)));
            }
        }
        // Still the pair `rank` names, starting at `pos`?
        let valid = |symbols: &[u32], next: &[usize], alive: &[bool], rank: u32, pos: usize| {
            alive[pos]
                && next[pos] != NONE
                && self.merge_of(symbols[pos], symbols[next[pos]]).is_some_and(|m| m.rank == rank)
        };
        let mut round = Vec::new();
        let mut created = Vec::new();
        while let Some(Reverse((rank, pos))) = heap.pop() {
            round.clear();
            round.push(pos);
            while let Some(&Reverse((r, p))) = heap.peek() {
                if r != rank {
                    break;
                }
                heap.pop();
                round.push(p);
            }
            // `round` comes out of the heap in ascending position order.
            for &pos in &round {
                if !valid(symbols, &next, &alive, rank, pos) {
                    continue;
                }
                let right = next[pos];
                symbols[pos] = self.merge_of(symbols[pos], symbols[right]).map_or(0, |m| m.merged);
                alive[right] = false;
                next[pos] = next[right];
                if next[pos] != NONE {
                    prev[next[pos]] = pos;
                }
                for left in [prev[pos], pos] {
                    if left != NONE && next[left] != NONE {
                        if let Some(m) = self.merge_of(symbols[left], symbols[next[left]]) {
                            created.push(Reverse((m.rank, left)));
                        }
                    }
                }
            }
            heap.extend(created.drain(..));
        }
        let mut i = 0;
        let mut out = Vec::with_capacity(n);
        while i != NONE {
            out.push(symbols[i]);
            i = next[i];
        }
        *symbols = out;
    }
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.ids.insert(s.to_string(), id);
        self.strings.push(s.to_string());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected splits come from transformers' `CLIPTokenizer.bpe` run on the same merges.
    fn toy() -> Bpe {
        let merges: Vec<(usize, String, String)> =
            [("bb", "b"), ("a", "a"), ("b", "c</w>"), ("aa", "a"), ("aa", "bc</w>"), ("b", "b")]
                .iter()
                .enumerate()
                .map(|(i, (l, r))| (i, l.to_string(), r.to_string()))
                .collect();
        Bpe::new(&merges, fake_id)
    }

    /// A distinct made-up id per symbol string.
    fn fake_id(s: &str) -> i64 {
        s.bytes().fold(7i64, |h, b| h.wrapping_mul(131).wrapping_add(i64::from(b)))
    }

    fn split(bpe: &Bpe, word: &str) -> Vec<i64> {
        let mut out = Vec::new();
        bpe.push_word_ids(word, &mut out);
        out
    }

    fn ids(symbols: &[&str]) -> Vec<i64> {
        symbols.iter().map(|s| fake_id(s)).collect()
    }

    #[test]
    fn byte_table_matches_gpt2() {
        assert_eq!(byte_char(b'a'), 'a');
        assert_eq!(byte_char(b' '), '\u{120}');
        assert_eq!(byte_char(0), '\u{100}');
        assert_eq!(byte_char(0xAD), '\u{143}');
        let all: std::collections::HashSet<char> = (0..=255).map(byte_char).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn merges_like_the_reference() {
        let bpe = toy();
        assert_eq!(split(&bpe, "aaaa"), ids(&["aaa", "a</w>"]));
        assert_eq!(split(&bpe, "aaaaa"), ids(&["aa", "aa", "a</w>"]));
        assert_eq!(split(&bpe, "aaabc"), ids(&["aaa", "bc</w>"]));
        assert_eq!(split(&bpe, "aabc"), ids(&["aabc</w>"]));
        assert_eq!(split(&bpe, "a"), ids(&["a</w>"]));
        assert_eq!(split(&bpe, "zb"), ids(&["z", "b</w>"]));
        assert_eq!(split(&bpe, "bbbx"), ids(&["bbb", "x</w>"]));
    }

    #[test]
    fn pairs_made_during_a_round_wait_for_the_next() {
        // (b,b) merges at 0 and 2 in one round; the (bb,b) pair that the first merge
        // creates ranks lower but must not eat the second occurrence.
        assert_eq!(split(&toy(), "bbbbx"), ids(&["bb", "bb", "x</w>"]));
    }

    #[test]
    fn words_split_like_clip() {
        let w: Vec<&str> = words("a photo's 42 <|endoftext|>!! café 東京 <|ſtartoftext|>").collect();
        assert_eq!(w, ["a", "photo", "'s", "4", "2", "<|endoftext|>", "!!", "café", "東京", "<|ſtartoftext|>"]);
        // U+0345 matches nothing in the reference and disappears.
        let w: Vec<&str> = words("a\u{345}b \u{345}!").collect();
        assert_eq!(w, ["a", "b", "!"]);
    }
}
