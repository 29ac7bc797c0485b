//! LoRA adapters on unmodified ONNX exports: files in the formats in the wild are read into
//! low-rank updates, matched to the graphs' weights by module path, and merged into the weights
//! as a graph loads. The base files are never changed; a graph loaded without LoRAs is the base
//! model bit for bit.

mod file;
mod merge;
mod prompt;
mod targets;

pub use file::Component;
pub use prompt::{extract_tags, find_in_folder, LoraTag};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use file::{LoraFile, ModuleUpdate};
use targets::{GraphTargets, Target};

use crate::error::{Error, Result};
use crate::model::onnx_file::{self, OnnxGraph, TensorData};
use crate::model::ModelSource;
use crate::runtime::ReplacedWeight;

/// A LoRA file, read and checked. Cheap to clone; share one between pipelines.
#[derive(Clone)]
pub struct Lora {
    inner: Arc<LoraInner>,
}

struct LoraInner {
    name: String,
    path: PathBuf,
    file: LoraFile,
}

impl std::fmt::Debug for Lora {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lora").field("name", &self.inner.name).field("path", &self.inner.path).finish()
    }
}

impl Lora {
    /// Reads a LoRA `.safetensors` file (kohya/AUTOMATIC1111, diffusers or PEFT names).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = crate::model::safetensors_file::read_file(path)?;
        Self::from_bytes(&file::name_of(path), path, &bytes)
    }

    /// Reads a LoRA from bytes; `name` is what messages call it (and `<lora:NAME>` would).
    pub fn from_memory(name: &str, bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(name, Path::new(&format!("<{name} in memory>")), bytes)
    }

    fn from_bytes(name: &str, path: &Path, bytes: &[u8]) -> Result<Self> {
        let file = file::parse(path, bytes)?;
        Ok(Lora { inner: Arc::new(LoraInner { name: name.to_string(), path: path.to_path_buf(), file }) })
    }

    /// The file's name without extension.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The graphs this LoRA updates.
    pub fn components(&self) -> Vec<Component> {
        let mut components: Vec<Component> = self.inner.file.updates.iter().map(|u| u.component).collect();
        components.sort();
        components.dedup();
        components
    }

    fn same(&self, other: &Lora) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// LoRAs applied together, each with its strength (1 = as trained).
#[derive(Clone, Debug, Default)]
pub struct LoraSet {
    entries: Vec<(Lora, f32)>,
}

impl LoraSet {
    /// The LoRAs and their strengths; a strength must be finite and at most 100 in size.
    pub fn new(entries: Vec<(Lora, f32)>) -> Result<Self> {
        if let Some((lora, strength)) = entries.iter().find(|(_, s)| !s.is_finite() || s.abs() > 100.0) {
            return Err(Error::InvalidArgument(format!(
                "LoRA {:?} strength {strength} must be finite and within [-100, 100]",
                lora.name()
            )));
        }
        // A strength of 0 changes nothing: leave it out so the base weights stay exact.
        Ok(LoraSet { entries: entries.into_iter().filter(|(_, s)| *s != 0.0).collect() })
    }

    /// Whether the set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The LoRAs and their strengths, in order.
    pub fn entries(&self) -> &[(Lora, f32)] {
        &self.entries
    }

    /// Whether both sets merge to the same weights (the same files at the same strengths).
    pub fn same_as(&self, other: &LoraSet) -> bool {
        self.entries.len() == other.entries.len()
            && self.entries.iter().zip(&other.entries).all(|((a, s), (b, t))| a.same(b) && s.to_bits() == t.to_bits())
    }

    /// The graphs some LoRA of the set updates.
    pub fn components(&self) -> Vec<Component> {
        let mut all: Vec<Component> = self.entries.iter().flat_map(|(l, _)| l.components()).collect();
        all.sort();
        all.dedup();
        all
    }
}

impl PartialEq for LoraSet {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

/// A graph's structure (no weight values), read once per model and kept to place LoRA
/// updates and embedding rows.
pub(crate) struct GraphIndex {
    graph: OnnxGraph,
    targets: GraphTargets,
    /// The text encoder's token embedding table (initializer index), if the graph has one.
    token_table: Option<usize>,
    /// Length of the model file it was read from; a different length means the file changed.
    file_len: usize,
}

impl GraphIndex {
    pub fn read(source: &ModelSource, component: Component) -> Result<Self> {
        let relative = format!("{}/model.onnx", component.folder());
        let bytes = source.read(&relative)?;
        let graph = onnx_file::parse(&bytes).map_err(|e| Error::invalid_model(source.path_of(&relative), e.0))?;
        let targets = GraphTargets::build(&graph);
        let token_table = find_token_table(&graph);
        Ok(GraphIndex { graph, targets, token_table, file_len: bytes.len() })
    }

    /// [rows, width] of the token embedding table.
    pub fn token_table_shape(&self) -> Option<(usize, usize)> {
        let table = &self.graph.initializers[self.token_table?];
        match table.dims[..] {
            [rows, width] => Some((usize::try_from(rows).ok()?, usize::try_from(width).ok()?)),
            _ => None,
        }
    }

    /// `model` (this graph's file, maybe with LoRA updates merged) with `rows` ([n, width]
    /// f32) appended to its token embedding table.
    pub fn append_token_rows(
        &self,
        source: &ModelSource,
        component: Component,
        model: &[u8],
        rows: &[f32],
    ) -> Result<Vec<u8>> {
        let path = source.path_of(&format!("{}/model.onnx", component.folder()));
        let (index, (count, width)) = self
            .token_table
            .zip(self.token_table_shape())
            .ok_or_else(|| Error::invalid_model(&path, "no token embedding table to add embeddings to"))?;
        let table = &self.graph.initializers[index];
        let element_type = table.element_type.expect("found as a float table");
        let expected = count * width * element_type.size();
        let mut raw = match &table.data {
            TensorData::Inline(range) if range.len() == expected => model[range.clone()].to_vec(),
            TensorData::External { location, offset, .. } => {
                source.read_range(&format!("{}/{location}", component.folder()), *offset, expected)?
            }
            _ => {
                return Err(Error::invalid_model(
                    &path,
                    "the token embedding table is stored in a way sdrt cannot extend",
                ))
            }
        };
        let start = raw.len();
        raw.resize(start + rows.len() * element_type.size(), 0);
        merge::encode_into(rows, element_type, &mut raw[start..]);
        let dims = [(count + rows.len() / width) as i64, width as i64];
        onnx_file::replace_initializer(model, &table.name, &dims, &raw).map_err(|e| Error::invalid_model(&path, e.0))
    }
}

/// The token embedding table: the initializer named `...token_embedding.weight`, else the
/// table of the first Gather that reads a [rows, width] float initializer.
fn find_token_table(graph: &OnnxGraph) -> Option<usize> {
    let is_table = |i: &usize| {
        let init = &graph.initializers[*i];
        init.element_type.is_some()
            && init.dims.len() == 2
            && matches!(init.data, TensorData::Inline(_) | TensorData::External { .. })
    };
    let named = (0..graph.initializers.len()).find(|&i| graph.initializers[i].name.ends_with("token_embedding.weight"));
    named.filter(is_table).or_else(|| {
        graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "Gather")
            .filter_map(|n| graph.initializers.iter().position(|i| Some(&i.name) == n.inputs.first()))
            .find(is_table)
    })
}

/// What a LoRA set found in a model, for the warning about keys that matched nothing.
pub(crate) fn check_set(set: &LoraSet, indexes: &HashMap<Component, Arc<GraphIndex>>) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for (lora, _) in set.entries() {
        let inner = &lora.inner;
        let mut unmatched: Vec<&str> = inner.file.unrecognised.iter().map(String::as_str).collect();
        let mut matched = 0;
        for update in &inner.file.updates {
            let Some(index) = indexes.get(&update.component) else {
                return Err(wrong_architecture(
                    lora,
                    format!(
                        "it updates {} ({}), which this model does not have",
                        update.component.folder(),
                        update.key
                    ),
                ));
            };
            match index.targets.get(&update.module) {
                Some(target) if merge::fits(update, target) => matched += 1,
                Some(target) => {
                    return Err(wrong_architecture(
                        lora,
                        format!(
                            "{} is a [{}, {}] update, but the model's weight is [{}, {}]",
                            update.key,
                            update.up.shape[0],
                            update.down.shape[1..].iter().product::<usize>(),
                            target.out,
                            target.inputs
                        ),
                    ))
                }
                None => unmatched.push(&update.key),
            }
        }
        if matched == 0 {
            return Err(Error::invalid_model(
                &inner.path,
                format!(
                    "none of its {} modules matches a weight of this model (first: {:?})",
                    inner.file.updates.len(),
                    unmatched.first().copied().unwrap_or_default()
                ),
            ));
        }
        if !unmatched.is_empty() {
            let examples: Vec<&str> = unmatched.iter().take(3).copied().collect();
            warnings.push(format!(
                "LoRA {:?}: {} of its keys match no weight of this model and were ignored (e.g. {:?})",
                inner.name,
                unmatched.len(),
                examples
            ));
        }
    }
    Ok(warnings)
}

fn wrong_architecture(lora: &Lora, reason: String) -> Error {
    Error::invalid_model(&lora.inner.path, format!("made for another model architecture: {reason}"))
}

/// A graph's bytes with the set's updates merged in.
pub(crate) struct PatchedGraph {
    /// The model file with its inline weights replaced.
    pub bytes: Vec<u8>,
    /// Weights kept in external data files, replaced by new values.
    pub replaced: Vec<ReplacedWeight>,
}

/// An update, the weight it goes to, and its LoRA's strength.
type Placed<'a> = (&'a ModuleUpdate, &'a Target, f32);

/// Merges the set's updates for `component` into its graph. None when the set has none for it.
pub(crate) fn patch_graph(
    source: &ModelSource,
    component: Component,
    index: &GraphIndex,
    set: &LoraSet,
) -> Result<Option<PatchedGraph>> {
    // Updates by the initializer they change, in file order (a deterministic sum).
    let mut by_weight: BTreeMap<usize, Vec<Placed<'_>>> = BTreeMap::new();
    for (lora, strength) in set.entries() {
        for update in lora.inner.file.updates.iter().filter(|u| u.component == component) {
            if let Some(target) = index.targets.get(&update.module).filter(|t| merge::fits(update, t)) {
                by_weight.entry(target.initializer).or_default().push((update, target, *strength));
            }
        }
    }
    if by_weight.is_empty() {
        return Ok(None);
    }
    let relative = format!("{}/model.onnx", component.folder());
    let path = source.path_of(&relative);
    let mut bytes = source.read(&relative)?.into_owned();
    if bytes.len() != index.file_len {
        return Err(Error::invalid_model(path, "the file changed since the pipeline loaded it"));
    }
    // Each weight merged on its own: read, add every update, in parallel over the cores.
    let jobs: Vec<(usize, Vec<Placed<'_>>)> = by_weight.into_iter().collect();
    let merge_one = |(initializer, updates): &(usize, Vec<Placed<'_>>)| -> Result<Vec<f32>> {
        let init = &index.graph.initializers[*initializer];
        let element_type = init.element_type.expect("targets have float weights");
        let count = init.element_count().ok_or_else(|| Error::invalid_model(&path, "weight with a negative size"))?;
        let expected = count * element_type.size();
        let mut values = match &init.data {
            TensorData::Inline(range) if range.len() == expected => merge::decode(&bytes[range.clone()], element_type),
            TensorData::External { location, offset, length } if length.is_none_or(|l| l == expected as u64) => {
                let folder = component.folder();
                let data = source.read_range(&format!("{folder}/{location}"), *offset, expected)?;
                merge::decode(&data, element_type)
            }
            _ => {
                return Err(Error::invalid_model(
                    &path,
                    format!("weight {:?} is not stored as {expected} bytes sdrt can update", init.name),
                ))
            }
        };
        for (update, target, strength) in updates {
            merge::add_update(&mut values, target, update, *strength);
        }
        Ok(values)
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let per_worker = jobs.len().div_ceil(workers);
    let merged: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per_worker)
            .map(|chunk| scope.spawn(move || chunk.iter().map(merge_one).collect::<Result<Vec<_>>>()))
            .collect();
        let mut all = Vec::with_capacity(jobs.len());
        for handle in handles {
            all.extend(handle.join().map_err(|_| Error::Internal("a LoRA merge thread panicked".into()))??);
        }
        Ok::<_, Error>(all)
    })?;
    let mut replaced = Vec::new();
    for ((initializer, _), values) in jobs.iter().zip(merged) {
        let init = &index.graph.initializers[*initializer];
        let element_type = init.element_type.expect("targets have float weights");
        match &init.data {
            TensorData::Inline(range) => merge::encode_into(&values, element_type, &mut bytes[range.clone()]),
            _ => replaced.push(ReplacedWeight {
                name: init.name.clone(),
                dims: init.dims.clone(),
                values: merge::to_weight_values(values, element_type),
            }),
        }
    }
    Ok(Some(PatchedGraph { bytes, replaced }))
}
