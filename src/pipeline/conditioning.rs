//! The text side of a generation: prompts -> the encoder states the UNet attends to, with
//! AUTOMATIC1111's emphasis weights and long prompts (see [`crate::tokenizer::PromptSyntax`]).

use super::components::TextEncoder;
use crate::error::{Error, Result};
use crate::tokenizer::{ClipTokenizer, PromptChunk, PromptSyntax};

/// Encoder states of the prompts of one generation, in order (unconditional first), laid
/// end to end; prompt `i` has `tokens[i]` vectors of `hidden` values (a multiple of 77).
pub(crate) struct Conditioning {
    pub states: Vec<f32>,
    pub tokens: Vec<usize>,
    pub hidden: usize,
}

impl Conditioning {
    /// Encodes `prompts`: each is cut into chunks, all chunks go through the text encoder in
    /// one batch, and each chunk's output is re-weighted by its emphasis.
    pub fn encode(
        tokenizer: &ClipTokenizer,
        encoder: &mut TextEncoder,
        prompts: &[&str],
        syntax: PromptSyntax,
    ) -> Result<Self> {
        let seq_len = tokenizer.max_length();
        let chunks: Vec<Vec<PromptChunk>> =
            prompts.iter().map(|prompt| tokenizer.chunks(prompt, syntax)).collect::<Result<_>>()?;
        let ids: Vec<i64> = chunks.iter().flatten().flat_map(|chunk| chunk.ids.iter().copied()).collect();
        let mut states = encoder.encode(&ids, seq_len)?;
        let count = ids.len() / seq_len;
        if count == 0 || states.is_empty() || states.len() % (count * seq_len) != 0 {
            return Err(Error::Inference(format!(
                "text encoder returned {} values for {count} sequences of {seq_len} tokens",
                states.len()
            )));
        }
        let hidden = states.len() / (count * seq_len);
        for (chunk, chunk_states) in chunks.iter().flatten().zip(states.chunks_exact_mut(seq_len * hidden)) {
            apply_weights(chunk_states, &chunk.weights);
        }
        let tokens = chunks.iter().map(|c| c.len() * seq_len).collect();
        Ok(Conditioning { states, tokens, hidden })
    }

    /// Each prompt's states `n` times in a row (one per image of a batch).
    pub fn repeat_each(self, n: usize) -> Self {
        if n == 1 {
            return self;
        }
        let mut states = Vec::with_capacity(self.states.len() * n);
        let mut tokens = Vec::with_capacity(self.tokens.len() * n);
        for (index, &count) in self.tokens.iter().enumerate() {
            for _ in 0..n {
                states.extend_from_slice(self.prompt(index));
                tokens.push(count);
            }
        }
        Conditioning { states, tokens, hidden: self.hidden }
    }

    /// Prompt `index`'s states.
    pub fn prompt(&self, index: usize) -> &[f32] {
        let start: usize = self.tokens[..index].iter().sum();
        &self.states[start * self.hidden..(start + self.tokens[index]) * self.hidden]
    }

    /// Whether every prompt has the same number of tokens (so they can share one UNet call).
    pub fn uniform(&self) -> bool {
        self.tokens.windows(2).all(|w| w[0] == w[1])
    }
}

/// AUTOMATIC1111's "Original" emphasis on one chunk's encoder output (`states`: [tokens,
/// hidden]): each token's vector is multiplied by its weight, then the chunk is rescaled so
/// its mean is what it was before. Chunks whose weights are all 1 are left bit-identical.
pub(crate) fn apply_weights(states: &mut [f32], weights: &[f32]) {
    if weights.iter().all(|&w| w == 1.0) || states.is_empty() {
        return;
    }
    let hidden = states.len() / weights.len();
    let original_mean = mean(states);
    for (vector, &w) in states.chunks_exact_mut(hidden).zip(weights) {
        vector.iter_mut().for_each(|v| *v *= w);
    }
    let scale = original_mean / mean(states);
    states.iter_mut().for_each(|v| *v *= scale);
}

/// The float32 mean, accumulated in f64.
fn mean(values: &[f32]) -> f32 {
    (values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64) as f32
}
