//! The text side of a generation: prompts -> the encoder states the UNet attends to, with
//! AUTOMATIC1111's emphasis weights and long prompts (see [`crate::tokenizer::PromptSyntax`]),
//! for one text encoder (SD 1.x/2.x) or two (SDXL).

use serde_json::Value;

use super::components::{TextEncoder, TextLayer};
use crate::error::{Error, Result};
use crate::model::{ModelFamily, ModelInfo};
use crate::runtime::OnnxModel;
use crate::tokenizer::{ClipTokenizer, PromptChunk, PromptSyntax};

/// A model's tokenizer/text encoder pairs. SD 1.x/2.x have one and attend to its last
/// layer; SDXL has two (the refiner only the second), attends to their penultimate layers side
/// by side (`text_encoder`'s features first) and takes the pooled embedding from the second.
pub(crate) struct TextStack {
    encoders: Vec<(ClipTokenizer, TextEncoder)>,
    sdxl: bool,
}

impl TextStack {
    /// Loads the model's pairs (`load` loads a component's graph) and checks that SDXL's
    /// encoders give what it reads.
    /// `added`: embedding words and the token ids of their vectors.
    pub fn load(
        info: &ModelInfo,
        added: &[(String, Vec<i64>)],
        load: &mut dyn FnMut(&str) -> Result<OnnxModel>,
    ) -> Result<Self> {
        let mut encoders = Vec::with_capacity(info.text_encoders.len());
        for &(tokenizer, encoder) in &info.text_encoders {
            let eps = info
                .source
                .read_optional_json(&format!("{encoder}/config.json"))?
                .and_then(|config| config.get("layer_norm_eps").and_then(Value::as_f64));
            let text_encoder = TextEncoder::new(load(encoder)?, eps)?;
            let sdxl_problem = if info.family != ModelFamily::StableDiffusionXl {
                None
            } else if !text_encoder.has_hidden_states() {
                Some(
                    "SDXL reads the text encoders' penultimate layers: the export must have the \
                     `hidden_states.*` outputs (optimum exports them for SDXL)",
                )
            } else if encoder == "text_encoder_2" && !text_encoder.has_pooled() {
                Some("SDXL's second text encoder must give the pooled embedding (`text_embeds`)")
            } else {
                None
            };
            if let Some(reason) = sdxl_problem {
                return Err(Error::invalid_model(info.source.path_of(&format!("{encoder}/model.onnx")), reason));
            }
            let mut tokenizer = ClipTokenizer::from_files(&info.source.folder(tokenizer))?;
            tokenizer.add_words(added)?;
            encoders.push((tokenizer, text_encoder));
        }
        Ok(TextStack { encoders, sdxl: info.family == ModelFamily::StableDiffusionXl })
    }

    /// The layer the UNet attends to with `clip_skip` final layers skipped.
    fn layer(&self, clip_skip: u32) -> TextLayer {
        let skip = clip_skip as usize;
        match (self.sdxl, skip) {
            (true, _) => TextLayer::Raw { from_end: skip + 1 },
            (false, 0) => TextLayer::Last,
            (false, _) => TextLayer::Skipped(skip),
        }
    }

    pub fn take_run_time(&mut self) -> std::time::Duration {
        self.encoders.iter_mut().map(|(_, encoder)| encoder.take_run_time()).sum()
    }
}

/// Encoder states of the prompts of one generation, in order (unconditional first), laid
/// end to end; prompt `i` has `tokens[i]` vectors of `hidden` values (a multiple of 77), and
/// (SDXL) one pooled vector of `pooled_dim` values.
pub(crate) struct Conditioning {
    pub states: Vec<f32>,
    pub tokens: Vec<usize>,
    pub hidden: usize,
    /// [prompts, pooled_dim]; empty (and `pooled_dim` 0) without a pooled embedding.
    pub pooled: Vec<f32>,
    pub pooled_dim: usize,
}

impl Conditioning {
    /// Encodes `prompts`: each is cut into chunks, all chunks go through each text encoder in
    /// one batch, the encoders' states are put side by side, and each chunk is re-weighted by
    /// its emphasis. A long prompt's pooled embedding is its first chunk's (as A1111's).
    pub fn encode(text: &mut TextStack, prompts: &[&str], syntax: PromptSyntax, clip_skip: u32) -> Result<Self> {
        let layer = text.layer(clip_skip);
        let mut chunks: Vec<Vec<PromptChunk>> = Vec::new();
        let mut parts = Vec::new();
        for (tokenizer, encoder) in &mut text.encoders {
            let seq_len = tokenizer.max_length();
            let these: Vec<Vec<PromptChunk>> =
                prompts.iter().map(|prompt| tokenizer.chunks(prompt, syntax)).collect::<Result<_>>()?;
            // Both SDXL tokenizers share CLIP's BPE (they differ in padding), so they cut alike.
            if !chunks.is_empty() && these.iter().map(Vec::len).ne(chunks.iter().map(Vec::len)) {
                return Err(Error::InvalidModel {
                    path: "tokenizer_2".into(),
                    reason: "the two tokenizers split the prompt differently".into(),
                });
            }
            let ids: Vec<i64> = these.iter().flatten().flat_map(|chunk| chunk.ids.iter().copied()).collect();
            let encoded = encoder.encode(&ids, seq_len, layer)?;
            let count = ids.len() / seq_len;
            if count == 0 || encoded.states.is_empty() || encoded.states.len() % (count * seq_len) != 0 {
                return Err(Error::Inference(format!(
                    "text encoder returned {} values for {count} sequences of {seq_len} tokens",
                    encoded.states.len()
                )));
            }
            parts.push((encoded.states.len() / (count * seq_len), encoded));
            if chunks.is_empty() {
                chunks = these;
            }
        }
        let rows: usize = chunks.iter().map(|c| c.iter().map(|chunk| chunk.ids.len()).sum::<usize>()).sum();
        let hidden: usize = parts.iter().map(|(width, _)| width).sum();
        // Side by side per token: [encoder 1's features, encoder 2's features].
        let mut states = Vec::with_capacity(rows * hidden);
        for row in 0..rows {
            for (width, encoded) in &parts {
                states.extend_from_slice(&encoded.states[row * width..][..*width]);
            }
        }
        let seq_len = rows / chunks.iter().map(Vec::len).sum::<usize>();
        for (chunk, chunk_states) in chunks.iter().flatten().zip(states.chunks_exact_mut(seq_len * hidden)) {
            apply_weights(chunk_states, &chunk.weights);
        }
        let (pooled, pooled_dim) = match parts.iter().find(|(_, e)| !e.pooled.is_empty()) {
            None => (Vec::new(), 0),
            Some((_, encoded)) => {
                let dim = encoded.pooled.len() / chunks.iter().map(Vec::len).sum::<usize>();
                let mut pooled = Vec::with_capacity(prompts.len() * dim);
                let mut first_chunk = 0;
                for prompt_chunks in &chunks {
                    pooled.extend_from_slice(&encoded.pooled[first_chunk * dim..][..dim]);
                    first_chunk += prompt_chunks.len();
                }
                (pooled, dim)
            }
        };
        let tokens = chunks.iter().map(|c| c.len() * seq_len).collect();
        Ok(Conditioning { states, tokens, hidden, pooled, pooled_dim })
    }

    /// SDXL's unconditional half for an empty negative prompt (`force_zeros_for_empty_prompt`):
    /// zero states the length of the (single) prompt's and a zero pooled vector, put first.
    pub fn with_zero_unconditional(self) -> Self {
        let mut states = vec![0.0; self.states.len()];
        states.extend_from_slice(&self.states);
        let mut pooled = vec![0.0; self.pooled.len()];
        pooled.extend_from_slice(&self.pooled);
        let tokens = vec![self.tokens[0], self.tokens[0]];
        Conditioning { states, tokens, hidden: self.hidden, pooled, pooled_dim: self.pooled_dim }
    }

    /// Each prompt's states `n` times in a row (one per image of a batch).
    pub fn repeat_each(self, n: usize) -> Self {
        if n == 1 {
            return self;
        }
        let mut states = Vec::with_capacity(self.states.len() * n);
        let mut pooled = Vec::with_capacity(self.pooled.len() * n);
        let mut tokens = Vec::with_capacity(self.tokens.len() * n);
        for (index, &count) in self.tokens.iter().enumerate() {
            for _ in 0..n {
                states.extend_from_slice(self.prompt(index));
                pooled.extend_from_slice(self.pooled(index));
                tokens.push(count);
            }
        }
        Conditioning { states, tokens, hidden: self.hidden, pooled, pooled_dim: self.pooled_dim }
    }

    /// Prompt `index`'s states.
    pub fn prompt(&self, index: usize) -> &[f32] {
        let start: usize = self.tokens[..index].iter().sum();
        &self.states[start * self.hidden..(start + self.tokens[index]) * self.hidden]
    }

    /// Prompt `index`'s pooled embedding (empty without one).
    pub fn pooled(&self, index: usize) -> &[f32] {
        &self.pooled[index * self.pooled_dim..(index + 1) * self.pooled_dim]
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
