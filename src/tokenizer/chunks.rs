//! Prompts of any length, with per-token weights, cut into CLIP-sized chunks the way
//! AUTOMATIC1111 does (`FrozenCLIPEmbedderWithCustomWords.tokenize_line`):
//!
//! * the prompt is parsed for emphasis ([`super::emphasis`]) and each fragment tokenized on its own;
//! * tokens fill chunks of `max_length - 2` (75); each chunk is wrapped in BOS ... EOS and
//!   padded with EOS (then, for tokenizers whose pad token is not EOS, every token after the
//!   first EOS becomes the pad token, as for SD 2.x);
//! * when a chunk is full and a comma came within the last 20 tokens, the words after that
//!   comma move to the next chunk, so a phrase is not cut in half;
//! * `BREAK` ends a chunk early.
//!
//! A prompt without brackets that fits in one chunk gives exactly the ids of
//! [`ClipTokenizer::encode`] and weights of 1, so it conditions the model as diffusers does.

use super::emphasis;
use super::ClipTokenizer;
use crate::error::{Error, Result};

/// How a prompt's text is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PromptSyntax {
    /// AUTOMATIC1111's: `(word)`, `(word:1.3)`, `[word]`, `\(`, `BREAK`, and any length (in
    /// 75-token chunks). Prompts without brackets up to 75 tokens are read as `Plain` reads them.
    #[default]
    Weighted,
    /// diffusers': the text as it is, truncated to one chunk.
    Plain,
}

/// One window of `max_length` token ids with the weight of each.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptChunk {
    /// `max_length` token ids: BOS, up to `max_length - 2` prompt tokens, EOS, then padding.
    pub ids: Vec<i64>,
    /// One emphasis multiplier per id (1 for BOS, EOS and padding).
    pub weights: Vec<f32>,
}

impl PromptChunk {
    /// Whether any weight differs from 1 (the encoder output then needs re-weighting).
    pub fn is_weighted(&self) -> bool {
        self.weights.iter().any(|&w| w != 1.0)
    }
}

/// How far back (in tokens) a full chunk looks for a comma to break at (A1111's default).
const COMMA_BACKTRACK: usize = 20;
/// Longest prompt accepted, in bytes of UTF-8; longer ones are refused before tokenizing.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// Most chunks a prompt may take (75 tokens each): the UNet attends over all of them.
pub const MAX_CHUNKS: usize = 32;

impl ClipTokenizer {
    /// The chunks `prompt` is encoded as (one for `Plain`).
    pub fn chunks(&self, prompt: &str, syntax: PromptSyntax) -> Result<Vec<PromptChunk>> {
        if prompt.len() > MAX_PROMPT_BYTES {
            return Err(Error::InvalidArgument(format!(
                "prompt is {} bytes long; at most {MAX_PROMPT_BYTES} are accepted",
                prompt.len()
            )));
        }
        match syntax {
            PromptSyntax::Plain => Ok(vec![self.plain_chunk(self.encode(prompt))]),
            PromptSyntax::Weighted => self.weighted_chunks(prompt),
        }
    }

    /// BOS followed by EOS/padding: what an empty prompt encodes as.
    pub fn empty_chunk(&self) -> PromptChunk {
        self.plain_chunk(self.encode(""))
    }

    fn plain_chunk(&self, ids: Vec<i64>) -> PromptChunk {
        let weights = vec![1.0; ids.len()];
        PromptChunk { ids, weights }
    }

    fn weighted_chunks(&self, prompt: &str) -> Result<Vec<PromptChunk>> {
        let fragments = emphasis::parse(prompt)?;
        let mut builder = ChunkBuilder::new(self);
        for fragment in &fragments {
            if fragment.is_break() {
                builder.finish_chunk()?;
                continue;
            }
            // Weights become float32 where they meet the encoder output, as in the reference.
            let weight = fragment.weight as f32;
            for id in self.token_ids(&fragment.text) {
                builder.push(id, weight)?;
            }
        }
        if !builder.ids.is_empty() || builder.chunks.is_empty() {
            builder.finish_chunk()?;
        }
        Ok(builder.chunks)
    }
}

/// The chunk being filled, and the finished ones.
struct ChunkBuilder<'a> {
    tokenizer: &'a ClipTokenizer,
    comma: Option<i64>,
    length: usize,
    chunks: Vec<PromptChunk>,
    ids: Vec<i64>,
    weights: Vec<f32>,
    /// Position of the last comma in `ids`.
    last_comma: Option<usize>,
}

impl<'a> ChunkBuilder<'a> {
    fn new(tokenizer: &'a ClipTokenizer) -> Self {
        let comma = match tokenizer.token_ids(",")[..] {
            [id] => Some(id),
            _ => None,
        };
        let length = tokenizer.max_length().saturating_sub(2).max(1);
        ChunkBuilder {
            tokenizer,
            comma,
            length,
            chunks: Vec::new(),
            ids: Vec::new(),
            weights: Vec::new(),
            last_comma: None,
        }
    }

    fn push(&mut self, id: i64, weight: f32) -> Result<()> {
        if Some(id) == self.comma {
            self.last_comma = Some(self.ids.len());
        } else if let Some(comma) =
            self.last_comma.filter(|&c| self.ids.len() == self.length && self.length - c <= COMMA_BACKTRACK)
        {
            // Move the words after the comma to the next chunk.
            let moved_ids = self.ids.split_off(comma + 1);
            let moved_weights = self.weights.split_off(comma + 1);
            self.finish_chunk()?;
            self.ids = moved_ids;
            self.weights = moved_weights;
        }
        if self.ids.len() == self.length {
            self.finish_chunk()?;
        }
        self.ids.push(id);
        self.weights.push(weight);
        Ok(())
    }

    /// Pads the current chunk with EOS, wraps it in BOS ... EOS and starts a new one.
    fn finish_chunk(&mut self) -> Result<()> {
        if self.chunks.len() == MAX_CHUNKS {
            return Err(Error::InvalidArgument(format!(
                "prompt is longer than {MAX_CHUNKS} chunks of {} tokens",
                self.length
            )));
        }
        let (bos, eos, pad) = (self.tokenizer.bos_id(), self.tokenizer.eos_id(), self.tokenizer.pad_id());
        let mut ids = Vec::with_capacity(self.length + 2);
        ids.push(bos);
        ids.append(&mut self.ids);
        ids.resize(self.length + 1, eos);
        ids.push(eos);
        if pad != eos {
            if let Some(first_eos) = ids.iter().position(|&id| id == eos) {
                ids[first_eos + 1..].iter_mut().for_each(|id| *id = pad);
            }
        }
        let mut weights = Vec::with_capacity(self.length + 2);
        weights.push(1.0);
        weights.append(&mut self.weights);
        weights.resize(self.length + 2, 1.0);
        self.chunks.push(PromptChunk { ids, weights });
        self.last_comma = None;
        Ok(())
    }
}
