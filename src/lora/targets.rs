//! Which initializer of an exported graph holds the weight of each module a LoRA may update.
//!
//! Exports name weights in two ways: named initializers (`down_blocks.0.resnets.0.conv1.weight`,
//! Conv and Gemm weights as [out, in, ...]) and anonymous ones (`onnx::MatMul_1234`, the
//! transposed [in, out] weight of a Linear layer) found through the node that uses them,
//! whose name carries the module path (`/down_blocks.0/attentions.0/.../to_q/MatMul`).
//! Every module is indexed under its diffusers path with `.` written `_` (kohya's form), and
//! UNet modules also under the original Stable Diffusion (SGM) path that kohya's SDXL LoRAs use.

use std::collections::HashMap;

use crate::model::onnx_file::{Initializer, OnnxGraph, WeightType};

/// How a weight is stored relative to the [out, in] matrix a LoRA update has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// [out, in] or [out, in, kh, kw] (Conv, Gemm with transB = 1).
    OutIn,
    /// [in, out] (MatMul's right-hand side, Gemm with transB = 0).
    InOut,
}

/// A weight a LoRA update can be merged into.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Index into the graph's initializers.
    pub initializer: usize,
    pub layout: Layout,
    /// The module's output and (flattened) input sizes.
    pub out: usize,
    pub inputs: usize,
}

/// The update targets of one graph, by module key (`down_blocks_0_resnets_0_conv1`).
pub(crate) struct GraphTargets {
    by_key: HashMap<String, Option<Target>>,
}

impl GraphTargets {
    pub fn build(graph: &OnnxGraph) -> Self {
        let by_name: HashMap<&str, usize> =
            graph.initializers.iter().enumerate().map(|(i, init)| (init.name.as_str(), i)).collect();
        let mut modules: Vec<(String, Target)> = Vec::new();
        for node in &graph.nodes {
            let layout = match node.op_type.as_str() {
                "Conv" => Layout::OutIn,
                "Gemm" if node.trans_b => Layout::OutIn,
                "Gemm" | "MatMul" => Layout::InOut,
                _ => continue,
            };
            let Some(&index) = node.inputs.get(1).and_then(|name| by_name.get(name.as_str())) else { continue };
            let initializer = &graph.initializers[index];
            let Some(target) = target_of(index, initializer, layout) else { continue };
            // A named weight says its module; an anonymous one takes its node's path.
            let module = match initializer.name.strip_suffix(".weight") {
                Some(module) => module.to_string(),
                None => match module_of_node(&node.name) {
                    Some(module) => module,
                    None => continue,
                },
            };
            modules.push((module, target));
        }
        let layers_per_block = layers_per_block(modules.iter().map(|(m, _)| m.as_str()));
        let mut by_key: HashMap<String, Option<Target>> = HashMap::new();
        let mut insert = |key: String, target: &Target| {
            by_key
                .entry(key)
                .and_modify(|existing| {
                    // Two different weights under one name: the name places neither.
                    if existing.as_ref().is_some_and(|e| e.initializer != target.initializer) {
                        *existing = None;
                    }
                })
                .or_insert_with(|| Some(target.clone()));
        };
        for (module, target) in &modules {
            for path in aliases(module, layers_per_block) {
                insert(path.replace('.', "_"), target);
            }
        }
        GraphTargets { by_key }
    }

    /// The weight of a module, by its key (`.` written `_`).
    pub fn get(&self, key: &str) -> Option<&Target> {
        self.by_key.get(key).and_then(Option::as_ref)
    }
}

fn target_of(index: usize, initializer: &Initializer, layout: Layout) -> Option<Target> {
    initializer.element_type.filter(|t| matches!(t, WeightType::F32 | WeightType::F16 | WeightType::Bf16))?;
    let dims: Vec<usize> = initializer.dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
    let (out, inputs) = match (layout, dims.as_slice()) {
        (Layout::OutIn, [out, rest @ ..]) if !rest.is_empty() => (*out, rest.iter().product()),
        (Layout::InOut, [inputs, out]) => (*out, *inputs),
        _ => return None,
    };
    Some(Target { initializer: index, layout, out, inputs })
}

/// `/down_blocks.0/attentions.0/proj_in/MatMul` -> `down_blocks.0.attentions.0.proj_in`.
fn module_of_node(name: &str) -> Option<String> {
    let (path, _op) = name.strip_prefix('/')?.rsplit_once('/')?;
    (!path.is_empty()).then(|| path.replace('/', "."))
}

/// Resnets per down block, counted in the graph (1 for tiny models, 2 for SD and SDXL).
fn layers_per_block<'a>(modules: impl Iterator<Item = &'a str>) -> usize {
    let mut most = 0;
    for module in modules {
        let Some(at) = module.find("down_blocks.0.resnets.") else { continue };
        let rest = &module[at + "down_blocks.0.resnets.".len()..];
        if let Some(index) = rest.split('.').next().and_then(|i| i.parse::<usize>().ok()) {
            most = most.max(index + 1);
        }
    }
    most.max(1)
}

/// The names a module may go by: its path, the path without an outer wrapper module (diffusers'
/// ONNX export wraps the UNet as `unet.`), and the SGM name of a UNet module.
fn aliases(module: &str, layers_per_block: usize) -> Vec<String> {
    let mut names = vec![module.to_string()];
    if let Some((_, inner)) = module.split_once('.') {
        names.push(inner.to_string());
    }
    let sgm: Vec<String> = names.iter().filter_map(|n| sgm_name(n, layers_per_block)).collect();
    for name in sgm {
        match name.contains("{}") {
            true => names.extend(["1", "2"].map(|slot| name.replace("{}", slot))),
            false => names.push(name),
        }
    }
    names
}

/// The original Stable Diffusion (SGM/LDM) name of a diffusers UNet module, as kohya's SDXL
/// LoRAs write it: `down_blocks.1.attentions.0.proj_in` -> `input_blocks.4.1.proj_in`.
fn sgm_name(module: &str, layers_per_block: usize) -> Option<String> {
    let parts: Vec<&str> = module.split('.').collect();
    let per_block = layers_per_block + 1;
    let index = |i: usize| parts.get(i).and_then(|p| p.parse::<usize>().ok());
    let (head, rest) = match parts.as_slice() {
        ["conv_in", rest @ ..] => ("input_blocks.0.0".to_string(), rest),
        ["conv_out", rest @ ..] => ("out.2".to_string(), rest),
        ["time_embedding", "linear_1", rest @ ..] => ("time_embed.0".to_string(), rest),
        ["time_embedding", "linear_2", rest @ ..] => ("time_embed.2".to_string(), rest),
        ["add_embedding", "linear_1", rest @ ..] => ("label_emb.0.0".to_string(), rest),
        ["add_embedding", "linear_2", rest @ ..] => ("label_emb.0.2".to_string(), rest),
        ["down_blocks", _, "resnets", _, rest @ ..] => {
            (format!("input_blocks.{}.0", 1 + index(1)? * per_block + index(3)?), rest)
        }
        ["down_blocks", _, "attentions", _, rest @ ..] => {
            (format!("input_blocks.{}.1", 1 + index(1)? * per_block + index(3)?), rest)
        }
        ["down_blocks", _, "downsamplers", "0", "conv", rest @ ..] => {
            (format!("input_blocks.{}.0.op", (index(1)? + 1) * per_block), rest)
        }
        ["mid_block", "resnets", _, rest @ ..] => (format!("middle_block.{}", 2 * index(2)?), rest),
        ["mid_block", "attentions", "0", rest @ ..] => ("middle_block.1".to_string(), rest),
        ["up_blocks", _, "resnets", _, rest @ ..] => {
            (format!("output_blocks.{}.0", index(1)? * per_block + index(3)?), rest)
        }
        ["up_blocks", _, "attentions", _, rest @ ..] => {
            (format!("output_blocks.{}.1", index(1)? * per_block + index(3)?), rest)
        }
        // After the block's last resnet, and its attention when it has one (`.1` or `.2`;
        // only one of the two exists, so the other name can never clash).
        ["up_blocks", _, "upsamplers", "0", "conv", rest @ ..] => {
            (format!("output_blocks.{}.{{}}.conv", index(1)? * per_block + layers_per_block), rest)
        }
        _ => return None,
    };
    let rest: Vec<&str> = rest
        .iter()
        .map(|p| match *p {
            "conv1" => "in_layers.2",
            "conv2" => "out_layers.3",
            "time_emb_proj" => "emb_layers.1",
            "conv_shortcut" => "skip_connection",
            other => other,
        })
        .collect();
    Some(std::iter::once(head.as_str()).chain(rest).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgm_names_follow_the_block_layout() {
        // SDXL: 2 resnets per down block, 3 per up block.
        let cases = [
            (
                "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                "input_blocks.4.1.transformer_blocks.0.attn1.to_q",
            ),
            ("down_blocks.0.resnets.1.conv1", "input_blocks.2.0.in_layers.2"),
            ("down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
            ("mid_block.resnets.1.time_emb_proj", "middle_block.2.emb_layers.1"),
            ("mid_block.attentions.0.proj_in", "middle_block.1.proj_in"),
            ("up_blocks.1.resnets.2.conv_shortcut", "output_blocks.5.0.skip_connection"),
            ("up_blocks.0.attentions.1.proj_out", "output_blocks.1.1.proj_out"),
            ("add_embedding.linear_2", "label_emb.0.2"),
            ("up_blocks.1.upsamplers.0.conv", "output_blocks.5.{}.conv"),
        ];
        for (diffusers, sgm) in cases {
            assert_eq!(sgm_name(diffusers, 2).as_deref(), Some(sgm), "{diffusers}");
        }
        assert_eq!(sgm_name("text_model.encoder.layers.0.mlp.fc1", 2), None);
    }

    #[test]
    fn node_names_give_module_paths() {
        assert_eq!(
            module_of_node("/unet/down_blocks.0/attentions.0/proj_in/MatMul").as_deref(),
            Some("unet.down_blocks.0.attentions.0.proj_in")
        );
        assert_eq!(module_of_node("MatMul_12"), None);
    }
}
