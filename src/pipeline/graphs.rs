//! Which of a pipeline's graphs are in memory. Each is loaded when first needed; in
//! low-memory mode the text encoders and the VAE are released after each use, and
//! [`Graphs::trim`] releases every graph that can be loaded again. The UNet runs every step,
//! so only a trim releases it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::components::{Unet, UnetConfig, VaeDecoder, VaeEncoder};
use super::conditioning::TextStack;
use super::LoadOptions;
use crate::error::{Error, Result};
use crate::lora::{self, Component, GraphIndex, LoraSet};
use crate::model::{ModelInfo, ModelSource};
use crate::runtime::{GraphData, Interrupt, OnnxModel};

pub(crate) struct Graphs {
    /// What the pipeline was loaded with (its warning sink already dropped: graphs loaded
    /// later log to the process-wide log).
    options: LoadOptions,
    interrupt: Arc<Interrupt>,
    text: Option<TextStack>,
    unet: Option<Unet>,
    decoder: Option<VaeDecoder>,
    encoder: Option<VaeEncoder>,
    /// Time inside ONNX Runtime of graphs released since the last [`Graphs::take_run_times`].
    released: RunTimes,
    /// LoRAs merged into the graphs (the ones loaded and the ones loaded next).
    loras: Adapters,
}

/// The LoRA set the graphs carry, and the structure of the graphs it was placed in.
#[derive(Default)]
struct Adapters {
    set: LoraSet,
    /// Read once per graph, on the first LoRA that updates it.
    indexes: HashMap<Component, Arc<GraphIndex>>,
}

/// Time inside ONNX Runtime, per graph.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RunTimes {
    pub text_encoder: Duration,
    pub unet: Duration,
    pub vae_decoder: Duration,
    pub vae_encoder: Duration,
}

impl Graphs {
    /// Loads the text encoders, the UNet and the VAE decoder, checking each (so a bad model
    /// fails at load). In low-memory mode the text encoders go again before the UNet loads,
    /// and the decoder after its check, so the load never holds more than a generation does.
    pub fn load(info: &ModelInfo, options: &LoadOptions, warn: &mut dyn FnMut(String)) -> Result<Self> {
        let interrupt = Arc::new(Interrupt::new(&options.runtime)?);
        let keep = !options.low_memory;
        let none = Adapters::default();
        let mut load = |component: &str| load_graph(&info.source, component, options, &interrupt, &none, warn);
        let text = TextStack::load(info, &mut load)?;
        let text = keep.then_some(text);
        let unet = load_unet(info, &mut load)?;
        let decoder = VaeDecoder::new(load("vae_decoder")?)?;
        Ok(Graphs {
            options: LoadOptions { on_warning: None, ..options.clone() },
            interrupt,
            text,
            unet: Some(unet),
            decoder: keep.then_some(decoder),
            encoder: None,
            released: RunTimes::default(),
            loras: Adapters::default(),
        })
    }

    /// Makes `set` the LoRAs merged into the text encoders and the UNet. Graphs whose weights
    /// change are released and load again, merged, when next used; the same set again costs
    /// nothing, and the empty set gives the base model's weights exactly.
    pub fn use_loras(&mut self, info: &ModelInfo, set: &LoraSet) -> Result<()> {
        if set.same_as(&self.loras.set) {
            return Ok(());
        }
        for component in set.components() {
            let relative = format!("{}/model.onnx", component.folder());
            if self.loras.indexes.contains_key(&component) || !info.source.exists(&format!("{}/", component.folder())) {
                continue;
            }
            if !info.source.exists(&relative) {
                return Err(Error::InvalidArgument(format!(
                    "LoRAs need {relative} to merge into, and a model loaded from memory keeps only the bytes \
                     of graphs it may load again"
                )));
            }
            self.loras.indexes.insert(component, Arc::new(GraphIndex::read(&info.source, component)?));
        }
        for warning in lora::check_set(set, &self.loras.indexes)? {
            crate::log::warn(&warning);
        }
        let mut changed = set.components();
        changed.extend(self.loras.set.components());
        if changed.iter().any(|c| matches!(c, Component::TextEncoder | Component::TextEncoder2)) {
            self.release_text();
        }
        if changed.contains(&Component::Unet) {
            if let Some(mut unet) = self.unet.take() {
                self.released.unet += unet.take_run_time();
            }
        }
        self.loras.set = set.clone();
        Ok(())
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    pub fn text(&mut self, info: &ModelInfo) -> Result<&mut TextStack> {
        if self.text.is_none() {
            let (options, interrupt, loras) = (&self.options, &self.interrupt, &self.loras);
            let stack = TextStack::load(info, &mut |c: &str| reload_graph(info, c, options, interrupt, loras))?;
            self.text = Some(stack);
        }
        Ok(self.text.as_mut().expect("loaded above"))
    }

    pub fn unet(&mut self, info: &ModelInfo) -> Result<&mut Unet> {
        if self.unet.is_none() {
            let (options, interrupt, loras) = (&self.options, &self.interrupt, &self.loras);
            self.unet = Some(load_unet(info, &mut |c: &str| reload_graph(info, c, options, interrupt, loras))?);
        }
        Ok(self.unet.as_mut().expect("loaded above"))
    }

    pub fn decoder(&mut self, info: &ModelInfo) -> Result<&mut VaeDecoder> {
        if self.decoder.is_none() {
            let graph = reload_graph(info, "vae_decoder", &self.options, &self.interrupt, &self.loras)?;
            self.decoder = Some(VaeDecoder::new(graph)?);
        }
        Ok(self.decoder.as_mut().expect("loaded above"))
    }

    /// The VAE encoder, loaded on first use (text-to-image never needs it).
    pub fn encoder(&mut self, info: &ModelInfo) -> Result<&mut VaeEncoder> {
        if self.encoder.is_none() {
            if !info.source.exists("vae_encoder/model.onnx") {
                return Err(Error::UnsupportedModel(format!(
                    "{}: image-to-image and inpainting need the VAE encoder (vae_encoder/model.onnx), which this model lacks",
                    info.source.path_of("vae_encoder").display()
                )));
            }
            let graph = reload_graph(info, "vae_encoder", &self.options, &self.interrupt, &self.loras)?;
            self.encoder = Some(VaeEncoder::new(graph)?);
        }
        Ok(self.encoder.as_mut().expect("loaded above"))
    }

    /// The text encoders' work for this generation is done.
    pub fn done_with_text(&mut self) {
        if self.options.low_memory {
            self.release_text();
        }
    }

    /// The VAE's work for this generation is done.
    pub fn done_with_vae(&mut self) {
        if self.options.low_memory {
            self.release_vae();
        }
    }

    /// Releases every graph the model's files can give again (a model loaded from memory
    /// keeps only some of its files' bytes: the others stay loaded).
    pub fn trim(&mut self, source: &ModelSource) {
        let reloadable = |component: &str| source.exists(&format!("{component}/model.onnx"));
        if ["text_encoder", "text_encoder_2"].iter().all(|c| !source.exists(&format!("{c}/")) || reloadable(c)) {
            self.release_text();
        }
        if reloadable("unet") {
            if let Some(mut unet) = self.unet.take() {
                self.released.unet += unet.take_run_time();
            }
        }
        if reloadable("vae_decoder") {
            self.release_vae();
        } else if let Some(mut encoder) = self.encoder.take() {
            self.released.vae_encoder += encoder.take_run_time();
        }
    }

    fn release_text(&mut self) {
        if let Some(mut text) = self.text.take() {
            self.released.text_encoder += text.take_run_time();
        }
    }

    fn release_vae(&mut self) {
        if let Some(mut decoder) = self.decoder.take() {
            self.released.vae_decoder += decoder.take_run_time();
        }
        if let Some(mut encoder) = self.encoder.take() {
            self.released.vae_encoder += encoder.take_run_time();
        }
    }

    /// Time inside ONNX Runtime since the previous call, per graph.
    pub fn take_run_times(&mut self) -> RunTimes {
        let mut times = std::mem::take(&mut self.released);
        times.text_encoder += self.text.as_mut().map_or(Duration::ZERO, TextStack::take_run_time);
        times.unet += self.unet.as_mut().map_or(Duration::ZERO, Unet::take_run_time);
        times.vae_decoder += self.decoder.as_mut().map_or(Duration::ZERO, VaeDecoder::take_run_time);
        times.vae_encoder += self.encoder.as_mut().map_or(Duration::ZERO, VaeEncoder::take_run_time);
        times
    }
}

/// The UNet, checked against what model_index.json says of it.
fn load_unet(info: &ModelInfo, load: &mut dyn FnMut(&str) -> Result<OnnxModel>) -> Result<Unet> {
    let unet = Unet::new(
        load("unet")?,
        UnetConfig {
            in_channels: info.unet_in_channels.map(|c| c as usize),
            time_cond_proj_dim: info.unet_time_cond_proj_dim.map(|d| d as usize),
        },
    )?;
    // The refiner's UNet takes 5 time ids (ending in an aesthetic score), the base's 6.
    let expected_ids = if info.aesthetic_score_conditioning { 5 } else { 6 };
    if let Some(width) = unet.time_ids_width().filter(|&w| w != expected_ids) {
        return Err(Error::invalid_model(
            info.source.path_of("unet/model.onnx"),
            format!(
                "the UNet takes {width} time ids, but model_index.json's requires_aesthetics_score \
                 ({}) means {expected_ids}",
                info.aesthetic_score_conditioning
            ),
        ));
    }
    Ok(unet)
}

/// Loads a graph after the pipeline's load: its warnings go to the process-wide log.
fn reload_graph(
    info: &ModelInfo,
    component: &str,
    options: &LoadOptions,
    interrupt: &Arc<Interrupt>,
    loras: &Adapters,
) -> Result<OnnxModel> {
    load_graph(&info.source, component, options, interrupt, loras, &mut |message| crate::log::warn(&message))
}

/// Loads `component/model.onnx` of a model, from its directory, the embedded bytes or memory,
/// with the LoRAs of `loras` merged into its weights.
fn load_graph(
    source: &ModelSource,
    component: &str,
    options: &LoadOptions,
    interrupt: &Arc<Interrupt>,
    loras: &Adapters,
    warn: &mut dyn FnMut(String),
) -> Result<OnnxModel> {
    let relative = format!("{component}/model.onnx");
    let path = source.path_of(&relative);
    let load = |data: GraphData<'_>, warn: &mut dyn FnMut(String)| {
        OnnxModel::load(&path, data, &options.runtime, interrupt.clone(), warn)
    };
    let adapted = [Component::Unet, Component::TextEncoder, Component::TextEncoder2]
        .into_iter()
        .find(|c| c.folder() == component)
        .and_then(|c| Some((c, loras.indexes.get(&c)?)));
    if let Some((component, index)) = adapted {
        if let Some(patched) = lora::patch_graph(source, component, index, &loras.set)? {
            let folder = match source {
                ModelSource::Directory(_) => path.parent(),
                _ => None,
            };
            return load(GraphData { bytes: Some(&patched.bytes), folder, replaced: patched.replaced }, warn);
        }
    }
    match source {
        ModelSource::Directory(_) => load(GraphData::default(), warn),
        ModelSource::Embedded => {
            let bytes = source.read(&relative)?;
            load(GraphData { bytes: Some(&bytes), ..GraphData::default() }, warn)
        }
        ModelSource::Memory(files) => {
            let bytes = files.get(&relative).ok_or_else(|| Error::invalid_model(&path, "file not found"))?;
            load(GraphData { bytes: Some(bytes), ..GraphData::default() }, warn)
        }
    }
}
