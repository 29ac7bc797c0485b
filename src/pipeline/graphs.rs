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
use crate::embeddings::EmbeddingSet;
use crate::error::{Error, Result};
use crate::lora::{self, Component, GraphIndex, LoraSet};
use crate::model::{attention_fusion, ModelInfo, ModelSource};
use crate::runtime::{CacheEntry, GraphData, Interrupt, OnnxModel};

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
    /// LoRAs and embeddings in the graphs (the ones loaded and the ones loaded next).
    adapters: Adapters,
}

/// The LoRAs and embeddings the graphs carry, and the structure of the graphs they were
/// placed in.
#[derive(Default)]
struct Adapters {
    loras: LoraSet,
    embeddings: EmbeddingSet,
    /// Each embedding's token and the token table rows (ids) of its vectors.
    tokens: Vec<(String, Vec<i64>)>,
    /// The model's text encoders (SDXL: 2).
    encoders: usize,
    /// Read once per graph, on the first LoRA or embedding that changes it.
    indexes: HashMap<Component, Arc<GraphIndex>>,
}

impl Adapters {
    /// Reads the structure of `component`'s graph, once.
    fn index(&mut self, info: &ModelInfo, component: Component) -> Result<()> {
        let relative = format!("{}/model.onnx", component.folder());
        if self.indexes.contains_key(&component) || !info.source.exists(&format!("{}/", component.folder())) {
            return Ok(());
        }
        if !info.source.exists(&relative) {
            return Err(Error::InvalidArgument(format!(
                "LoRAs and embeddings need {relative} to change, and a model loaded from memory keeps only the \
                 bytes of graphs it may load again"
            )));
        }
        self.indexes.insert(component, Arc::new(GraphIndex::read(&info.source, component)?));
        Ok(())
    }
}

/// The model's text encoders, as LoRA components.
fn text_components(info: &ModelInfo) -> Vec<Component> {
    let component = |folder: &str| match folder {
        "text_encoder_2" => Component::TextEncoder2,
        _ => Component::TextEncoder,
    };
    info.text_encoders.iter().map(|&(_, encoder)| component(encoder)).collect()
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
    /// fails at load). The text stack loads on a thread of its own while this one loads the
    /// UNet and the VAE: ONNX Runtime builds (and optimises) a session on the calling thread,
    /// and the tokenizers are built meanwhile too. In low-memory mode the graphs load one at a
    /// time, each released after its check but the UNet, so the load never holds more than a
    /// generation does.
    pub fn load(info: &ModelInfo, options: &LoadOptions, warn: &mut dyn FnMut(String)) -> Result<Self> {
        let interrupt = Arc::new(Interrupt::new(&options.runtime)?);
        let none = Adapters::default();
        let (text, unet, decoder) = if options.low_memory {
            let mut load = |component: &str| load_graph(&info.source, component, options, &interrupt, &none, warn);
            drop(TextStack::load(info, &[], &mut load)?);
            let unet = load_unet(info, &mut load)?;
            drop(VaeDecoder::new(load("vae_decoder")?)?);
            (None, unet, None)
        } else {
            let mut text_warnings = Vec::new();
            let mut image_warnings = Vec::new();
            let (text, image) = std::thread::scope(|scope| {
                let text = scope.spawn(|| {
                    let mut warn = |message| text_warnings.push(message);
                    let mut load =
                        |component: &str| load_graph(&info.source, component, options, &interrupt, &none, &mut warn);
                    TextStack::load(info, &[], &mut load)
                });
                let mut warn = |message| image_warnings.push(message);
                let mut load =
                    |component: &str| load_graph(&info.source, component, options, &interrupt, &none, &mut warn);
                let image =
                    load_unet(info, &mut load).and_then(|unet| Ok((unet, VaeDecoder::new(load("vae_decoder")?)?)));
                (text.join(), image)
            });
            // Warnings and errors in the order a sequential load would give them.
            text_warnings.into_iter().chain(image_warnings).for_each(&mut *warn);
            let text = text.map_err(|_| Error::Internal("loading the text encoders panicked".into()))??;
            let (unet, decoder) = image?;
            (Some(text), unet, Some(decoder))
        };
        Ok(Graphs {
            options: LoadOptions { on_warning: None, ..options.clone() },
            interrupt,
            text,
            unet: Some(unet),
            decoder,
            encoder: None,
            released: RunTimes::default(),
            adapters: Adapters::default(),
        })
    }

    /// Makes `loras` the LoRAs merged into the text encoders and the UNet, and `embeddings`
    /// the words added to the text encoders. Graphs that change are released and load again,
    /// changed, when next used; the same sets again cost nothing, and empty sets give the base
    /// model's weights exactly.
    pub fn use_adapters(&mut self, info: &ModelInfo, loras: &LoraSet, embeddings: &EmbeddingSet) -> Result<()> {
        let same_loras = loras.same_as(&self.adapters.loras);
        let same_embeddings = embeddings.same_as(&self.adapters.embeddings);
        if same_loras && same_embeddings {
            return Ok(());
        }
        let texts = text_components(info);
        let mut changed = Vec::new();
        if !same_loras {
            for component in loras.components() {
                self.adapters.index(info, component)?;
            }
            for warning in lora::check_set(loras, &self.adapters.indexes)? {
                crate::log::warn(&warning);
            }
            changed.extend(loras.components());
            changed.extend(self.adapters.loras.components());
        }
        let mut tokens = self.adapters.tokens.clone();
        if !same_embeddings {
            tokens = Vec::new();
            if !embeddings.is_empty() {
                let mut first_id = None;
                for &component in &texts {
                    self.adapters.index(info, component)?;
                    let index = &self.adapters.indexes[&component];
                    let path = info.source.path_of(&format!("{}/model.onnx", component.folder()));
                    let (rows, width) = index
                        .token_table_shape()
                        .ok_or_else(|| Error::invalid_model(&path, "no token embedding table to add embeddings to"))?;
                    if *first_id.get_or_insert(rows) != rows {
                        return Err(Error::invalid_model(&path, "the text encoders' token tables differ in size"));
                    }
                    for embedding in embeddings.entries() {
                        embedding.rows_for(component, texts.len(), width)?;
                    }
                }
                tokens = embeddings.token_ids(first_id.unwrap_or(0) as i64);
            }
            changed.extend(texts.iter().copied());
        }
        if changed.iter().any(|c| matches!(c, Component::TextEncoder | Component::TextEncoder2)) {
            self.release_text();
        }
        if changed.contains(&Component::Unet) {
            if let Some(mut unet) = self.unet.take() {
                self.released.unet += unet.take_run_time();
            }
        }
        self.adapters.loras = loras.clone();
        self.adapters.embeddings = embeddings.clone();
        self.adapters.tokens = tokens;
        self.adapters.encoders = texts.len();
        Ok(())
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    pub fn text(&mut self, info: &ModelInfo) -> Result<&mut TextStack> {
        if self.text.is_none() {
            let (options, interrupt, adapters) = (&self.options, &self.interrupt, &self.adapters);
            let mut load = |c: &str| reload_graph(info, c, options, interrupt, adapters);
            let stack = TextStack::load(info, &adapters.tokens, &mut load)?;
            self.text = Some(stack);
        }
        Ok(self.text.as_mut().expect("loaded above"))
    }

    pub fn unet(&mut self, info: &ModelInfo) -> Result<&mut Unet> {
        if self.unet.is_none() {
            let (options, interrupt, adapters) = (&self.options, &self.interrupt, &self.adapters);
            self.unet = Some(load_unet(info, &mut |c: &str| reload_graph(info, c, options, interrupt, adapters))?);
        }
        Ok(self.unet.as_mut().expect("loaded above"))
    }

    pub fn decoder(&mut self, info: &ModelInfo) -> Result<&mut VaeDecoder> {
        if self.decoder.is_none() {
            let graph = reload_graph(info, "vae_decoder", &self.options, &self.interrupt, &self.adapters)?;
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
            let graph = reload_graph(info, "vae_encoder", &self.options, &self.interrupt, &self.adapters)?;
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
    adapters: &Adapters,
) -> Result<OnnxModel> {
    load_graph(&info.source, component, options, interrupt, adapters, &mut |message| crate::log::warn(&message))
}

/// Loads `component/model.onnx` of a model, from its directory, the embedded bytes or memory,
/// with the LoRAs of `adapters` merged into its weights and its embeddings' rows added.
fn load_graph(
    source: &ModelSource,
    component: &str,
    options: &LoadOptions,
    interrupt: &Arc<Interrupt>,
    adapters: &Adapters,
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
        .and_then(|c| Some((c, adapters.indexes.get(&c)?)));
    if let Some((component, index)) = adapted {
        let patched = lora::patch_graph(source, component, index, &adapters.loras)?;
        let embeddings = adapters.embeddings.entries();
        if patched.is_some() || (component != Component::Unet && !embeddings.is_empty()) {
            let (mut bytes, replaced) = match patched {
                Some(patched) => (patched.bytes, patched.replaced),
                None => (source.read(&relative)?.into_owned(), Vec::new()),
            };
            if component != Component::Unet && !embeddings.is_empty() {
                let width = index.token_table_shape().map_or(0, |(_, width)| width);
                let mut rows = Vec::new();
                for embedding in embeddings {
                    rows.extend_from_slice(embedding.rows_for(component, adapters.encoders, width)?);
                }
                bytes = index.append_token_rows(source, component, &bytes, &rows)?;
            }
            let bytes = with_fused_attention(component.folder(), bytes.into(), options, &path);
            let graph = load(
                GraphData {
                    bytes: Some(&bytes),
                    folder: external_data_folder(source, &path),
                    replaced,
                    ..GraphData::default()
                },
                warn,
            );
            drop(bytes);
            crate::runtime::release_freed_memory();
            return graph;
        }
    }
    let load_from = |origin: GraphOrigin<'_>, warn: &mut dyn FnMut(String)| {
        let save_optimized = match origin {
            GraphOrigin::OptimizedCopy(folder) => {
                let bytes = std::fs::read(folder.join(crate::runtime::CACHED_GRAPH_FILE))
                    .map_err(|e| Error::io(folder.join(crate::runtime::CACHED_GRAPH_FILE), e))?;
                let data =
                    GraphData { bytes: Some(&bytes), folder: Some(folder), optimized: true, ..GraphData::default() };
                return load(data, warn);
            }
            GraphOrigin::Export { save_optimized } => save_optimized,
        };
        // A directory's graph is ONNX Runtime's to read, unless sdrt rewrites it first.
        let graph = match source {
            ModelSource::Directory(_) if !fuses_attention(component, options) => None,
            _ => Some(source.graph_bytes(&relative)?.ok_or_else(|| Error::invalid_model(&path, "file not found"))?),
        };
        let fused = graph.as_deref().map(|bytes| with_fused_attention(component, bytes.into(), options, &path));
        let bytes = fused.as_deref();
        let folder = external_data_folder(source, &path);
        load(GraphData { bytes, folder, save_optimized, ..GraphData::default() }, warn)
    };
    match cache_entry(source, &path, options) {
        Some(entry) => load_through_cache(&entry, &path, &load_from, warn),
        None => load_from(GraphOrigin::Export { save_optimized: None }, warn),
    }
}

/// Where a graph is loaded from: its export (optionally writing the optimised copy into a
/// folder) or an optimised copy in the cache.
enum GraphOrigin<'a> {
    Export { save_optimized: Option<&'a std::path::Path> },
    OptimizedCopy(&'a std::path::Path),
}

type LoadFrom<'a> = dyn Fn(GraphOrigin<'_>, &mut dyn FnMut(String)) -> Result<OnnxModel> + 'a;

/// The optimised-copy cache entry of a graph, when the options ask for a cache and the graph
/// is one it keeps: a file on disk, optimised at the highest level for the CPU provider (whose
/// optimised graphs are specific to the CPU; other providers' were never measured here).
fn cache_entry(source: &ModelSource, path: &std::path::Path, options: &LoadOptions) -> Option<CacheEntry> {
    let root = options.optimized_model_cache.as_deref()?;
    let runtime = &options.runtime;
    if !matches!(source, ModelSource::Directory(_)) || runtime.graph_optimization_level < 3 || !runtime.cpu_only() {
        return None;
    }
    CacheEntry::new(root, path, &options.runtime, &crate::runtime::ort_build_info())
}

/// Loads a graph from its optimised copy in the cache, or from its export while ONNX Runtime
/// writes the copy for the next load. The cache never fails a load: a copy that will not
/// load is deleted, one that cannot be written is skipped, each with a warning.
fn load_through_cache(
    entry: &CacheEntry,
    path: &std::path::Path,
    load_from: &LoadFrom<'_>,
    warn: &mut dyn FnMut(String),
) -> Result<OnnxModel> {
    if let Some(folder) = entry.hit() {
        match load_from(GraphOrigin::OptimizedCopy(folder), warn) {
            Ok(model) => {
                crate::log::log(
                    crate::log::Level::Info,
                    &format!("{}: loaded its optimised copy from {}", path.display(), folder.display()),
                );
                return Ok(model);
            }
            Err(e) => {
                warn(format!(
                    "{}: its optimised copy in {} did not load ({e}); loading the export and caching it again",
                    path.display(),
                    folder.display()
                ));
                let _ = entry.remove();
            }
        }
    }
    let staging = match entry.staging() {
        Ok(staging) => staging,
        Err(e) => {
            warn(format!("{}: not cached, {} cannot be written: {e}", path.display(), entry.root().display()));
            return load_from(GraphOrigin::Export { save_optimized: None }, warn);
        }
    };
    match load_from(GraphOrigin::Export { save_optimized: Some(&staging) }, warn) {
        Ok(model) => {
            if let Err(e) = entry.commit(&staging) {
                warn(format!("{}: not cached, the optimised copy could not be kept: {e}", path.display()));
            }
            Ok(model)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            // Perhaps only the copy failed (a full disk): the export alone decides.
            let model = load_from(GraphOrigin::Export { save_optimized: None }, warn)?;
            warn(format!("{}: not cached, writing the optimised copy failed: {e}", path.display()));
            Ok(model)
        }
    }
}

/// Where a graph read into memory finds its external data: beside its file on disk.
fn external_data_folder<'a>(source: &ModelSource, path: &'a std::path::Path) -> Option<&'a std::path::Path> {
    match source {
        ModelSource::Directory(_) => path.parent(),
        _ => None,
    }
}

/// Whether `component`'s graph gets its attention fused: the UNet's and the VAE's, whose
/// attention runs over every latent pixel (the text encoders' is masked and 77 tokens long).
fn fuses_attention(component: &str, options: &LoadOptions) -> bool {
    matches!(component, "unet" | "vae_decoder" | "vae_encoder") && options.runtime.fuses_attention()
}

/// The graph with its attention fused when the options ask for it and the pass recognises
/// it; otherwise the bytes as they were (a file the pass cannot read is ONNX Runtime's to
/// judge, with its own message).
fn with_fused_attention<'a>(
    component: &str,
    bytes: std::borrow::Cow<'a, [u8]>,
    options: &LoadOptions,
    path: &std::path::Path,
) -> std::borrow::Cow<'a, [u8]> {
    if !fuses_attention(component, options) {
        return bytes;
    }
    match attention_fusion::fuse_attention(&bytes).ok().flatten() {
        Some(fused) => {
            crate::log::log(
                crate::log::Level::Info,
                &format!("{}: {} attention blocks fused", path.display(), fused.attentions),
            );
            fused.bytes.into()
        }
        None => bytes,
    }
}
