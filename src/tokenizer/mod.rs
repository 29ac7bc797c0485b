//! CLIP tokenization, matching transformers' slow `CLIPTokenizer` (with ftfy installed)
//! token for token: the tokenizer every Stable Diffusion pipeline was trained and tested with.
//!
//! Per prompt: added/special tokens are cut out of the raw text first; every other piece is
//! cleaned (`cleanup`: ftfy, whitespace, lower case), split into words and byte-level BPE
//! encoded (`clip`); then BOS + ids (truncated) + EOS, padded to `max_length`.
//!
//! Where the reference's Unicode tables are older than Rust's (Python 3.11 has Unicode 14),
//! characters assigned since then may split differently, as they do between Python
//! versions; every character assigned in Unicode 14 tokenizes exactly as the reference.

mod chunks;
pub mod cleanup;
mod clip;
pub mod emphasis;
mod files;
mod html;

pub use chunks::{PromptChunk, PromptSyntax, MAX_CHUNKS, MAX_PROMPT_BYTES};
pub use files::TokenizerFiles;

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::error::{Error, Result};
use clip::Bpe;

/// A CLIP BPE tokenizer loaded from a model's `tokenizer/` directory. Immutable after
/// loading, so one instance can serve any number of threads.
pub struct ClipTokenizer {
    bpe: Bpe,
    /// Matches any added token, longest first; `None` when there are none.
    added_pattern: Option<Regex>,
    /// Added tokens (special ones included) and their ids.
    added: HashMap<String, i64>,
    /// Words that stand for several ids (textual-inversion embeddings), matched like added
    /// tokens.
    words: HashMap<String, Vec<i64>>,
    bos: i64,
    eos: i64,
    pad: i64,
    max_length: usize,
}

/// A piece of the raw prompt: an added token's or word's ids, or text between them.
enum Piece<'a> {
    Ids(&'a [i64]),
    Text(&'a str),
}

impl ClipTokenizer {
    /// Load from a model's `tokenizer/` directory: `vocab.json` + `merges.txt`, or else
    /// `tokenizer.json` (its `model.vocab` and `model.merges`). Pad token and max length come
    /// from `tokenizer_config.json` / `special_tokens_map.json` when present; defaults: max
    /// length 77, pad `<|endoftext|>`. Added tokens (`added_tokens_decoder`,
    /// `added_tokens.json`, tokenizer.json's `added_tokens`) are honoured as transformers does.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::invalid_model(dir, "expected a tokenizer directory"));
        }
        Self::from_files(&dir.to_path_buf())
    }

    /// Load from any store of the same files (see [`TokenizerFiles`]).
    pub fn from_files(source: &dyn TokenizerFiles) -> Result<Self> {
        let files = files::read_files(source)?;
        let mut added: HashMap<String, i64> = files.added.iter().map(|(id, content)| (content.clone(), *id)).collect();
        let vocab = &files.vocab;
        let config = files::config_path(source);
        // Special tokens become added tokens too (with their vocabulary id) unless they
        // already are one.
        let mut special = |content: &str| -> Result<i64> {
            if let Some(&id) = added.get(content) {
                return Ok(id);
            }
            let id = *vocab.get(content).ok_or_else(|| {
                Error::invalid_model(&config, format!("special token {content:?} is not in the vocabulary"))
            })?;
            added.insert(content.to_string(), id);
            Ok(id)
        };
        let bos = special(&files.bos)?;
        let eos = special(&files.eos)?;
        special(&files.unk)?;
        let pad = special(&files.pad)?;
        for content in &files.additional_special {
            special(content)?;
        }
        // Unknown BPE symbols become the unk token's *vocabulary* id, as in the reference.
        let unk = *vocab.get(&files.unk).ok_or_else(|| {
            Error::invalid_model(&config, format!("unk token {:?} is not in the vocabulary", files.unk))
        })?;
        let bpe =
            Bpe::new(&files.merges, |symbol| added.get(symbol).or_else(|| vocab.get(symbol)).copied().unwrap_or(unk));
        Ok(ClipTokenizer {
            bpe,
            added_pattern: added_pattern(added.keys())
                .map_err(|e| Error::invalid_model(&config, format!("added tokens: {e}")))?,
            added,
            words: HashMap::new(),
            bos,
            eos,
            pad,
            max_length: files.max_length,
        })
    }

    /// Adds words that stand for given ids (textual-inversion embeddings: `word` becomes the
    /// ids of its vectors, as diffusers' `load_textual_inversion` makes the tokenizer do).
    /// Matched in the raw prompt like added tokens, longest first.
    pub fn add_words(&mut self, words: &[(String, Vec<i64>)]) -> Result<()> {
        if words.is_empty() {
            return Ok(());
        }
        self.words.extend(words.iter().cloned());
        self.added_pattern = added_pattern(self.added.keys().chain(self.words.keys()))
            .map_err(|e| Error::InvalidArgument(format!("embedding words: {e}")))?;
        Ok(())
    }

    /// BOS + BPE ids (truncated so the total is `max_length`) + EOS, then padded to
    /// `max_length` with the pad id. Equal to transformers' `CLIPTokenizer(text,
    /// padding="max_length", max_length=77, truncation=True).input_ids`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos);
        self.push_ids(text, self.max_length - 2, &mut ids);
        ids.push(self.eos);
        ids.resize(self.max_length, self.pad);
        ids
    }

    /// All token ids of `text`, without BOS/EOS, truncation or padding (for long-prompt
    /// chunking). The whole text is tokenized, so its cost grows with the text.
    pub fn token_ids(&self, text: &str) -> Vec<i64> {
        let mut ids = Vec::new();
        self.push_ids(text, usize::MAX, &mut ids);
        ids
    }

    /// Length of an encoded prompt, BOS and EOS included (77 for Stable Diffusion).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id of the beginning-of-text token.
    pub fn bos_id(&self) -> i64 {
        self.bos
    }

    /// Id of the end-of-text token.
    pub fn eos_id(&self) -> i64 {
        self.eos
    }

    /// Id that pads encoded prompts to `max_length`: `<|endoftext|>`'s unless the tokenizer
    /// config names another pad token (SD 2.x: `!`).
    pub fn pad_id(&self) -> i64 {
        self.pad
    }

    /// Appends ids of `text` to `out` until `limit` ids have been added; it stops early so
    /// that a huge prompt is not BPE-encoded beyond what is kept.
    fn push_ids(&self, text: &str, limit: usize, out: &mut Vec<i64>) {
        let end = out.len().saturating_add(limit);
        for piece in self.split_added(text) {
            match piece {
                Piece::Ids(ids) => out.extend_from_slice(ids),
                Piece::Text(text) => {
                    let cleaned = cleanup::clip_clean(text);
                    for word in clip::words(&cleaned) {
                        if out.len() >= end {
                            break;
                        }
                        match self.bpe.literal_id(word) {
                            Some(id) => out.push(id),
                            None => self.bpe.push_word_ids(word, out),
                        }
                    }
                }
            }
            if out.len() >= end {
                out.truncate(end);
                return;
            }
        }
    }

    /// transformers' `tokenize()` before `_tokenize`: cut added tokens out of the raw text
    /// (leftmost, longest first). Each text piece is cleaned on its own afterwards.
    fn split_added<'a>(&'a self, text: &'a str) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        let mut last = 0;
        for m in self.added_pattern.iter().flat_map(|re| re.find_iter(text)) {
            let ids = match self.words.get(m.as_str()) {
                Some(ids) => ids.as_slice(),
                None => match self.added.get(m.as_str()) {
                    Some(id) => std::slice::from_ref(id),
                    None => continue,
                },
            };
            if m.start() > last {
                pieces.push(Piece::Text(&text[last..m.start()]));
            }
            pieces.push(Piece::Ids(ids));
            last = m.end();
        }
        if last < text.len() {
            pieces.push(Piece::Text(&text[last..]));
        }
        pieces
    }
}

/// One alternation of the added tokens, longest first so that the leftmost match is also
/// the longest one there.
fn added_pattern<'a>(tokens: impl Iterator<Item = &'a String>) -> Result<Option<Regex>, regex::Error> {
    let mut tokens: Vec<&String> = tokens.filter(|t| !t.is_empty()).collect();
    if tokens.is_empty() {
        return Ok(None);
    }
    tokens.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    let alternation: Vec<String> = tokens.iter().map(|t| regex::escape(t)).collect();
    Regex::new(&alternation.join("|")).map(Some)
}
