//! The three graphs of a Stable Diffusion pipeline, each checked against the signature
//! sdrt needs when it is loaded, so a wrong file fails at load time with its name.

use super::conditioning::Conditioning;
use super::layer_norm::FinalLayerNorm;
use super::tiling::{run_tiled, Planes, TileSize};
use super::LATENT_CHANNELS;
use crate::error::{Error, Result};
use crate::runtime::{ElementType, InputValue, OnnxModel};

/// Which layer of a CLIP text encoder the UNet attends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextLayer {
    /// `last_hidden_state`: the last layer after the final layer norm (SD 1.x/2.x).
    Last,
    /// The layer `skip` before the last, through the final layer norm (SD 1.x/2.x clip skip,
    /// as diffusers and AUTOMATIC1111 apply it).
    Skipped(usize),
    /// `hidden_states[N - from_end]` as it is, without the final norm (SDXL reads the
    /// penultimate layer: `from_end` = clip skip + 1).
    Raw { from_end: usize },
}

/// What one text encoder call gives: per-token states and, for encoders with a projection
/// (SDXL's `text_encoder_2`), the pooled embedding of each sequence.
pub(crate) struct EncodedText {
    /// [sequences, tokens, hidden] row-major.
    pub states: Vec<f32>,
    /// [sequences, pooled_dim]; empty when the encoder has no `text_embeds` output.
    pub pooled: Vec<f32>,
}

/// CLIP text encoder: token ids -> per-token hidden states (and a pooled embedding).
pub(crate) struct TextEncoder {
    model: OnnxModel,
    /// Fixed batch size of the graph, if it has one (then prompts are encoded one at a time).
    fixed_batch: Option<i64>,
    /// Output index of the normalized last layer (`last_hidden_state`, else the first output).
    last: usize,
    /// Output indices of `hidden_states.0` ..= `hidden_states.N` (embeddings, then every layer
    /// before the final norm), when the export has them.
    hidden_states: Vec<usize>,
    /// Output index of `text_embeds`, the projected pooled state (CLIPTextModelWithProjection).
    pooled: Option<usize>,
    /// The final layer norm's epsilon (text_encoder/config.json, CLIP's 1e-5 by default).
    layer_norm_eps: f64,
}

impl TextEncoder {
    pub fn new(model: OnnxModel, layer_norm_eps: Option<f64>) -> Result<Self> {
        let ids = model.require_input("input_ids", "token ids, int32 or int64, [batch, sequence]")?;
        if !matches!(ids.element_type, ElementType::I32 | ElementType::I64) || ids.rank() != 2 {
            return Err(Error::invalid_model(
                model.path(),
                format!("`input_ids` must be int32 or int64 of rank 2, found {:?} {:?}", ids.element_type, ids.shape),
            ));
        }
        let fixed_batch = ids.fixed_dim(0);
        let outputs = model.outputs();
        let last = outputs
            .iter()
            .position(|o| o.name == "last_hidden_state")
            .or_else(|| outputs.iter().position(|o| o.rank() == 3))
            .ok_or_else(|| Error::invalid_model(model.path(), "no [batch, sequence, hidden] states output"))?;
        let mut hidden_states = Vec::new();
        while let Some(index) = outputs.iter().position(|o| o.name == format!("hidden_states.{}", hidden_states.len()))
        {
            hidden_states.push(index);
        }
        let pooled = outputs.iter().position(|o| o.name == "text_embeds" && o.rank() == 2);
        if let Some(bad) = [Some(last)]
            .into_iter()
            .chain(hidden_states.iter().map(|&i| Some(i)))
            .flatten()
            .find(|&i| outputs[i].rank() != 3)
        {
            return Err(Error::invalid_model(
                model.path(),
                format!("output `{}` must be [batch, sequence, hidden] states", outputs[bad].name),
            ));
        }
        Ok(TextEncoder {
            model,
            fixed_batch,
            last,
            hidden_states,
            pooled,
            layer_norm_eps: layer_norm_eps.unwrap_or(1e-5),
        })
    }

    pub fn take_run_time(&mut self) -> std::time::Duration {
        self.model.take_run_time()
    }

    /// Whether the encoder gives its per-layer outputs (`hidden_states.*`).
    pub fn has_hidden_states(&self) -> bool {
        !self.hidden_states.is_empty()
    }

    /// Whether the encoder gives a pooled embedding (`text_embeds`).
    pub fn has_pooled(&self) -> bool {
        self.pooled.is_some()
    }

    /// Encodes sequences of `seq_len` ids and returns the states of `layer`, concatenated.
    pub fn encode(&mut self, ids: &[i64], seq_len: usize, layer: TextLayer) -> Result<EncodedText> {
        let chosen = self.layer_output(layer)?;
        let batch = ids.len() / seq_len;
        let chunk = match self.fixed_batch {
            Some(n) if n as usize != batch => 1,
            _ => batch,
        };
        let mut encoded = EncodedText { states: Vec::new(), pooled: Vec::new() };
        for part in ids.chunks(chunk * seq_len) {
            let shape = vec![(part.len() / seq_len) as i64, seq_len as i64];
            let out = self.model.run(&[("input_ids", InputValue::Int { shape, data: part })])?;
            let (shape, data) = out.float(chosen)?;
            match layer {
                TextLayer::Skipped(_) => {
                    // The graph gives the final norm's output only for the last layer: recover
                    // the norm's gain and bias from that pair, then apply it to the skipped layer.
                    let hidden = *shape.last().unwrap_or(&1) as usize;
                    let last_raw = *self.hidden_states.last().expect("checked by layer_output");
                    let norm = FinalLayerNorm::fit(
                        &out.float(last_raw)?.1,
                        &out.float(self.last)?.1,
                        hidden,
                        self.layer_norm_eps,
                    )
                    .map_err(|reason| Error::invalid_model(out.path(), reason))?;
                    let mut states = data.into_owned();
                    norm.apply(&mut states);
                    encoded.states.extend_from_slice(&states);
                }
                _ => encoded.states.extend_from_slice(&data),
            }
            if let Some(pooled) = self.pooled {
                encoded.pooled.extend_from_slice(&out.float(pooled)?.1);
            }
        }
        Ok(encoded)
    }

    /// The output index that holds `layer`.
    fn layer_output(&self, layer: TextLayer) -> Result<usize> {
        let from_end = match layer {
            TextLayer::Last => return Ok(self.last),
            TextLayer::Skipped(skip) => skip,
            TextLayer::Raw { from_end } => from_end,
        };
        if self.hidden_states.is_empty() {
            return Err(Error::UnsupportedModel(format!(
                "{}: clip skip needs the text encoder's per-layer outputs (`hidden_states.0` .. \
                 `hidden_states.N`), which this export lacks; optimum exports them for SDXL, and for \
                 SD 1.x/2.x when text_encoder/config.json says \"output_hidden_states\": true",
                self.model.path().display()
            )));
        }
        let layers = self.hidden_states.len() - 1;
        if from_end > layers {
            return Err(Error::InvalidArgument(format!(
                "clip skip reaches {from_end} layers back, but the text encoder has {layers} layers"
            )));
        }
        Ok(self.hidden_states[layers - from_end])
    }
}

/// Input channels of an inpainting UNet: latents, mask, masked-image latents.
const INPAINT_CHANNELS: usize = 2 * LATENT_CHANNELS + 1;

/// The denoising UNet: (noisy latents, timestep, text states) -> predicted noise.
pub(crate) struct Unet {
    model: OnnxModel,
    /// 4, or 9 for an inpainting UNet (latents, mask, masked-image latents).
    in_channels: usize,
    fixed_batch: Option<i64>,
    timestep_rank: usize,
    /// Fixed length of `encoder_hidden_states`' sequence axis, if the export has one.
    max_tokens: Option<i64>,
    /// Size of the `timestep_cond` input (latent-consistency UNets' guidance embedding).
    timestep_cond_dim: Option<usize>,
    /// `timestep_cond` repeated for every item of a call.
    timestep_cond: Vec<f32>,
    /// SDXL's extra conditioning: the UNet takes `text_embeds` (the pooled prompt) and
    /// `time_ids` (size and crop conditioning, the same for every item).
    sdxl: bool,
    /// [batch, width] for the batch `predict` gets next.
    time_ids: Vec<f32>,
    time_ids_width: Option<usize>,
    /// Predictions of a UNet whose batch is fixed at 1, gathered call by call.
    gathered: Vec<f32>,
}

/// What the model's files say about the UNet, for the axes its graph leaves open.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UnetConfig {
    /// Input channels (unet/config.json, or 9 for an inpainting pipeline class).
    pub in_channels: Option<usize>,
    /// `time_cond_proj_dim`: the size of `timestep_cond`.
    pub time_cond_proj_dim: Option<usize>,
}

impl Unet {
    pub fn new(model: OnnxModel, config: UnetConfig) -> Result<Self> {
        let sample = model.require_input("sample", "noisy latents [batch, 4 or 9, height/8, width/8]")?;
        if sample.rank() != 4 {
            return Err(Error::invalid_model(model.path(), "`sample` must have rank 4"));
        }
        let in_channels = sample.fixed_dim(1).map(|c| c as usize).or(config.in_channels).unwrap_or(LATENT_CHANNELS);
        if in_channels != LATENT_CHANNELS && in_channels != INPAINT_CHANNELS {
            return Err(Error::UnsupportedModel(format!(
                "{}: UNet with {in_channels} input channels (sdrt runs 4, and 9 for inpainting)",
                model.path().display()
            )));
        }
        let fixed_batch = sample.fixed_dim(0);
        let timestep = model.require_input("timestep", "diffusion timestep, scalar or [batch]")?;
        if timestep.rank() > 1 {
            return Err(Error::invalid_model(model.path(), "`timestep` must be a scalar or a vector"));
        }
        let timestep_rank = timestep.rank();
        let states = model.require_input("encoder_hidden_states", "text encoder states [batch, sequence, hidden]")?;
        // Exports with a fixed sequence length cannot take long (multi-chunk) prompts.
        let max_tokens = states.fixed_dim(1);
        let timestep_cond_dim = match model.inputs().iter().find(|i| i.name == "timestep_cond") {
            None => None,
            Some(input) if input.rank() == 2 => {
                Some(input.fixed_dim(1).map(|d| d as usize).or(config.time_cond_proj_dim).ok_or_else(|| {
                    Error::invalid_model(
                        model.path(),
                        "the size of `timestep_cond` is neither in the graph nor in unet/config.json",
                    )
                })?)
            }
            Some(_) => return Err(Error::invalid_model(model.path(), "`timestep_cond` must have rank 2")),
        };
        let sdxl = model.input("text_embeds").is_some() || model.input("time_ids").is_some();
        let time_ids_width = model.input("time_ids").and_then(|i| i.fixed_dim(1)).map(|d| d as usize);
        if sdxl {
            for name in ["text_embeds", "time_ids"] {
                if model.require_input(name, "SDXL conditioning [batch, features]")?.rank() != 2 {
                    return Err(Error::invalid_model(model.path(), format!("`{name}` must have rank 2")));
                }
            }
        }
        // Inputs of families sdrt does not run yet.
        let known = ["sample", "timestep", "encoder_hidden_states", "timestep_cond", "text_embeds", "time_ids"];
        if let Some(extra) = model.inputs().iter().find(|i| !known.contains(&i.name.as_str())) {
            return Err(Error::UnsupportedModel(format!(
                "{}: UNet input `{}` belongs to a model family sdrt does not run yet",
                model.path().display(),
                extra.name
            )));
        }
        Ok(Unet {
            model,
            in_channels,
            fixed_batch,
            timestep_rank,
            max_tokens,
            timestep_cond_dim,
            timestep_cond: Vec::new(),
            sdxl,
            time_ids: Vec::new(),
            time_ids_width,
            gathered: Vec::new(),
        })
    }

    pub fn take_run_time(&mut self) -> std::time::Duration {
        self.model.take_run_time()
    }

    /// Input channels: 4, or 9 for an inpainting UNet.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// The size of the guidance embedding the UNet takes (`timestep_cond`), if it takes one.
    pub fn timestep_cond_dim(&self) -> Option<usize> {
        self.timestep_cond_dim
    }

    /// Sets the guidance embedding fed with every item (`timestep_cond_dim` values).
    pub fn set_timestep_cond(&mut self, embedding: &[f32]) {
        self.timestep_cond = embedding.to_vec();
    }

    /// Whether the UNet takes SDXL's pooled text embedding and `time_ids`.
    pub fn takes_sdxl_conditioning(&self) -> bool {
        self.sdxl
    }

    /// Sets SDXL's size conditioning, one row per item of the batch `predict` will get, in its
    /// order: [original height, original width, crop top, crop left, target height, target
    /// width], or the refiner's five values ending in an aesthetic score.
    pub fn set_time_ids(&mut self, rows: Vec<f32>) {
        self.time_ids = rows;
    }

    /// How many values a `time_ids` row has, when the graph fixes it.
    pub fn time_ids_width(&self) -> Option<usize> {
        self.time_ids_width
    }

    /// Whether the unconditional and conditional halves can go through in one call.
    pub fn accepts_batch(&self, batch: usize) -> bool {
        self.fixed_batch.is_none_or(|n| n as usize == batch)
    }

    /// Predicts noise for `sample` ([batch, c, h, w], `sample_shape` = [c, h, w] with c the
    /// UNet's input channels); `text` holds one prompt's states per batch item.
    /// `use_prediction` receives the prediction ([batch, 4, h, w]): a view
    /// of ONNX Runtime's output when one call covers the batch, else the parts gathered in a
    /// buffer that is reused from step to step. Items go one per call when the graph has a
    /// fixed batch size or the prompts have different lengths (long prompts).
    pub fn predict(
        &mut self,
        sample: &[f32],
        sample_shape: [usize; 3],
        timestep: f32,
        text: &Conditioning,
        use_prediction: &mut dyn FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let per_item = sample_shape.iter().product::<usize>();
        let out_per_item = LATENT_CHANNELS * sample_shape[1] * sample_shape[2];
        let batch = sample.len() / per_item;
        if text.tokens.len() != batch {
            return Err(Error::InvalidArgument(format!("{batch} latents but {} prompts", text.tokens.len())));
        }
        if let Some(limit) = self.max_tokens.filter(|&n| text.tokens.iter().any(|&t| t as i64 > n)) {
            return Err(Error::InvalidArgument(format!(
                "{}: this UNet export takes at most {limit} text tokens; the prompt needs {}",
                self.model.path().display(),
                text.tokens.iter().max().unwrap_or(&0)
            )));
        }
        let chunk = if self.accepts_batch(batch) && text.uniform() { batch } else { 1 };
        let timesteps = vec![timestep; chunk];
        let cond_dim = self.timestep_cond_dim.unwrap_or(0);
        if self.timestep_cond.len() != cond_dim {
            return Err(Error::InvalidArgument(format!(
                "the UNet takes a guidance embedding of {cond_dim} values, {} were set",
                self.timestep_cond.len()
            )));
        }
        let timestep_cond = self.timestep_cond.repeat(chunk);
        let ids_width = self.time_ids.len() / batch;
        if self.sdxl && (text.pooled_dim == 0 || ids_width == 0 || self.time_ids.len() != batch * ids_width) {
            return Err(Error::InvalidArgument(
                "this UNet is SDXL's: it needs the pooled text embedding (text_encoder_2's `text_embeds`) and a \
                 row of time_ids per item"
                    .into(),
            ));
        }
        if chunk < batch {
            self.gathered.clear();
        }
        for (i, part) in sample.chunks(chunk * per_item).enumerate() {
            let n = part.len() / per_item;
            let shape = vec![n as i64, sample_shape[0] as i64, sample_shape[1] as i64, sample_shape[2] as i64];
            let (states, tokens) =
                if chunk == batch { (&text.states[..], text.tokens[0]) } else { (text.prompt(i), text.tokens[i]) };
            let (t_shape, t_data) =
                if self.timestep_rank == 0 { (vec![], &timesteps[..1]) } else { (vec![n as i64], &timesteps[..n]) };
            let mut inputs = vec![
                ("sample", InputValue::Float { shape, data: part }),
                ("timestep", InputValue::Float { shape: t_shape, data: t_data }),
                (
                    "encoder_hidden_states",
                    InputValue::Float { shape: vec![n as i64, tokens as i64, text.hidden as i64], data: states },
                ),
            ];
            if cond_dim > 0 {
                let data = &timestep_cond[..n * cond_dim];
                inputs.push(("timestep_cond", InputValue::Float { shape: vec![n as i64, cond_dim as i64], data }));
            }
            if self.sdxl {
                let pooled = if chunk == batch { &text.pooled[..] } else { text.pooled(i) };
                let pooled_shape = vec![n as i64, text.pooled_dim as i64];
                inputs.push(("text_embeds", InputValue::Float { shape: pooled_shape, data: pooled }));
                let data = &self.time_ids[i * chunk * ids_width..][..n * ids_width];
                inputs.push(("time_ids", InputValue::Float { shape: vec![n as i64, ids_width as i64], data }));
            }
            let output = self.model.run(&inputs)?;
            let (_, prediction) = output.float(0)?;
            if prediction.len() != n * out_per_item {
                return Err(Error::invalid_model(
                    output.path(),
                    format!("UNet output has {} values, expected {}", prediction.len(), n * out_per_item),
                ));
            }
            if chunk == batch {
                return use_prediction(&prediction);
            }
            self.gathered.extend_from_slice(&prediction);
        }
        use_prediction(&self.gathered)
    }
}

pub(crate) struct VaeDecoder {
    model: OnnxModel,
    /// The graph takes float16 latents (an fp16 export).
    half: bool,
}

impl VaeDecoder {
    pub fn new(mut model: OnnxModel) -> Result<Self> {
        let latents = model.require_input("latent_sample", "latents [batch, 4, height/8, width/8]")?;
        if latents.rank() != 4 {
            return Err(Error::invalid_model(model.path(), "`latent_sample` must have rank 4"));
        }
        let half = latents.element_type == ElementType::F16;
        model.release_memory_after_runs();
        Ok(VaeDecoder { model, half })
    }

    pub fn take_run_time(&mut self) -> std::time::Duration {
        self.model.take_run_time()
    }

    /// Decodes one latent image (`[channels, h, w]`), whole or in tiles, and returns HWC
    /// floats in [0, 1] with its height and width.
    pub fn decode(
        &mut self,
        latents: &[f32],
        latent_shape: [usize; 3],
        tiles: Option<TileSize>,
    ) -> Result<(usize, usize, Vec<f32>)> {
        let [channels, height, width] = latent_shape;
        let latents = Planes { channels, height, width, data: latents.to_vec() };
        let image = match tiles {
            Some(size) => run_tiled(&latents, size, &mut |tile| self.decode_planes(tile))?,
            None => self.decode_planes(latents)?,
        };
        let (h, w) = (image.height, image.width);
        let plane = h * w;
        let mut hwc = vec![0.0f32; plane * 3];
        if image.data.iter().any(|v| !v.is_finite()) {
            // The well-known black-image bug of fp16 VAEs: say so instead of returning black.
            let hint = if self.half {
                "; it computes in float16, which overflows on some latents: use a float32 VAE decoder \
                 (or an fp16-fixed one)"
            } else {
                ""
            };
            return Err(Error::Inference(format!(
                "{}: the VAE decoder produced NaN or infinite values{hint}",
                self.model.path().display()
            )));
        }
        for (c, channel) in image.data.chunks_exact(plane).enumerate() {
            for (p, &v) in channel.iter().enumerate() {
                hwc[p * 3 + c] = (v / 2.0 + 0.5).clamp(0.0, 1.0); // diffusers: clip(x / 2 + 0.5, 0, 1)
            }
        }
        Ok((h, w, hwc))
    }

    /// One run of the graph: latents in, the [3, H, W] image in [-1, 1] out.
    fn decode_planes(&mut self, latents: Planes) -> Result<Planes> {
        let shape = vec![1, latents.channels as i64, latents.height as i64, latents.width as i64];
        let output = self.model.run(&[("latent_sample", InputValue::Float { shape, data: &latents.data })])?;
        let (shape, chw) = output.float(0)?;
        let [_, 3, h, w] = shape[..] else {
            return Err(Error::invalid_model(output.path(), format!("expected a [1, 3, H, W] image, got {shape:?}")));
        };
        Ok(Planes { channels: 3, height: h as usize, width: w as usize, data: chw.into_owned() })
    }
}

/// VAE encoder: an RGB image in [-1, 1] -> its latent distribution. Exports give either the
/// mean alone (`latent_sample`, diffusers' old ONNX layout) or the mean and log-variance
/// (`latent_parameters`, 8 channels, optimum), which is sampled as diffusers samples it.
pub(crate) struct VaeEncoder {
    model: OnnxModel,
}

/// What the encoder gave for one image.
pub(crate) enum LatentDistribution {
    /// Only the mean is known.
    Mean(Vec<f32>),
    /// Mean and log-variance, each [4, h, w].
    Gaussian { mean: Vec<f32>, log_variance: Vec<f32> },
}

impl VaeEncoder {
    pub fn new(mut model: OnnxModel) -> Result<Self> {
        let image = model.require_input("sample", "image [batch, 3, height, width] in [-1, 1]")?;
        if image.rank() != 4 {
            return Err(Error::invalid_model(model.path(), "`sample` must have rank 4"));
        }
        model.release_memory_after_runs();
        Ok(VaeEncoder { model })
    }

    pub fn take_run_time(&mut self) -> std::time::Duration {
        self.model.take_run_time()
    }

    /// Encodes one CHW image in [-1, 1] of `height` x `width` pixels, whole or in tiles.
    pub fn encode(
        &mut self,
        chw: &[f32],
        height: usize,
        width: usize,
        channels: usize,
        tiles: Option<TileSize>,
    ) -> Result<LatentDistribution> {
        let image = Planes { channels: 3, height, width, data: chw.to_vec() };
        let latents = match tiles {
            Some(size) => run_tiled(&image, size, &mut |tile| self.encode_planes(tile, channels))?,
            None => self.encode_planes(image, channels)?,
        };
        let mut data = latents.data;
        Ok(if latents.channels == channels {
            LatentDistribution::Mean(data)
        } else {
            let log_variance = data.split_off(channels * latents.height * latents.width);
            LatentDistribution::Gaussian { mean: data, log_variance }
        })
    }

    /// One run of the graph: the latent mean, or the mean and log-variance stacked (diffusers
    /// blends tiles of both alike).
    fn encode_planes(&mut self, image: Planes, channels: usize) -> Result<Planes> {
        let shape = vec![1, 3, image.height as i64, image.width as i64];
        let output = self.model.run(&[("sample", InputValue::Float { shape, data: &image.data })])?;
        let (shape, data) = output.float(0)?;
        match shape[..] {
            [1, c, h, w] if c as usize == channels || c as usize == 2 * channels => {
                Ok(Planes { channels: c as usize, height: h as usize, width: w as usize, data: data.into_owned() })
            }
            _ => Err(Error::invalid_model(
                output.path(),
                format!("expected [1, {channels} or {}, h, w] latents, got {shape:?}", 2 * channels),
            )),
        }
    }
}

impl LatentDistribution {
    /// Whether [`LatentDistribution::sample`] draws from the generator.
    pub fn is_sampled(&self) -> bool {
        matches!(self, LatentDistribution::Gaussian { .. })
    }

    /// A latent sample: diffusers' `DiagonalGaussianDistribution.sample` (mean + std * N(0,1),
    /// log-variance clamped to [-30, 20], one draw from `rng` of the latent's size), or the
    /// mean when that is all the export gives (no draw).
    pub fn sample(&self, rng: &mut dyn crate::rng::NormalRng) -> Vec<f32> {
        match self {
            LatentDistribution::Mean(mean) => mean.clone(),
            LatentDistribution::Gaussian { mean, log_variance } => {
                let mut noise = vec![0.0f32; mean.len()];
                rng.fill_standard_normal(&mut noise);
                mean.iter()
                    .zip(log_variance)
                    .zip(&noise)
                    .map(|((&m, &lv), &z)| m + (0.5 * lv.clamp(-30.0, 20.0)).exp() * z)
                    .collect()
            }
        }
    }
}
