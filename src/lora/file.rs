//! Reading a LoRA `.safetensors` file into low-rank updates, one per module, whatever
//! naming it uses: kohya/AUTOMATIC1111 (`lora_unet_..._to_q.lora_down.weight`, `.alpha`),
//! diffusers/PEFT (`unet....to_q.lora_A.weight`) or diffusers' older attention-processor
//! names (`...attn1.processor.to_q_lora.down.weight`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::SafeTensors;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::safetensors_file::to_matrix;
pub(crate) use crate::model::safetensors_file::Matrix;

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::invalid_model(path, reason.into())
}

/// Which graph of a pipeline an update is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The UNet (`unet/model.onnx`).
    Unet,
    /// The (first) CLIP text encoder.
    TextEncoder,
    /// SDXL's second text encoder.
    TextEncoder2,
}

impl Component {
    /// The model folder the graph is in.
    pub fn folder(self) -> &'static str {
        match self {
            Component::Unet => "unet",
            Component::TextEncoder => "text_encoder",
            Component::TextEncoder2 => "text_encoder_2",
        }
    }
}

/// One module's low-rank update: `delta = up @ down * alpha / rank`.
#[derive(Clone, Debug)]
pub(crate) struct ModuleUpdate {
    pub component: Component,
    /// The module path with `.` turned into `_`, the form kohya's names have.
    pub module: String,
    /// The file's own name for it (for messages).
    pub key: String,
    /// [rank, in] or, for convolutions, [rank, in, kh, kw].
    pub down: Matrix,
    /// [out, rank] (or [out, rank, 1, 1]).
    pub up: Matrix,
    /// Scaling numerator; the rank when the file gives none (scale 1).
    pub alpha: f32,
}

impl ModuleUpdate {
    pub fn rank(&self) -> usize {
        self.down.shape[0]
    }

    pub fn scale(&self) -> f32 {
        self.alpha / self.rank() as f32
    }
}

/// A LoRA file as read: its updates, and keys sdrt could not place.
#[derive(Debug)]
pub(crate) struct LoraFile {
    pub updates: Vec<ModuleUpdate>,
    /// Tensor names that are not part of a LoRA update sdrt applies.
    pub unrecognised: Vec<String>,
}

/// The role a tensor plays in an update, from the end of its name.
enum Role {
    Down,
    Up,
    Alpha,
}

/// Splits a tensor name into its module and role, or None for names that are not LoRA parts.
fn split_role(name: &str) -> Option<(&str, Role)> {
    const SUFFIXES: [(&str, Role); 9] = [
        (".lora_down.weight", Role::Down),
        (".lora_up.weight", Role::Up),
        (".lora_A.weight", Role::Down),
        (".lora_B.weight", Role::Up),
        (".lora.down.weight", Role::Down),
        (".lora.up.weight", Role::Up),
        (".lora_linear_layer.down.weight", Role::Down),
        (".lora_linear_layer.up.weight", Role::Up),
        (".alpha", Role::Alpha),
    ];
    for (suffix, role) in SUFFIXES {
        if let Some(module) = name.strip_suffix(suffix) {
            return Some((module, role));
        }
    }
    // diffusers' attention processors: `to_q_lora.down.weight` belongs to `to_q`.
    for (suffix, role) in [(".down.weight", Role::Down), (".up.weight", Role::Up)] {
        if let Some(module) = name.strip_suffix(suffix).filter(|m| m.ends_with("_lora")) {
            return Some((module, role));
        }
    }
    // PEFT's own names carry the adapter name: `lora_A.default.weight`.
    let (module, rest) = name.rsplit_once(".lora_")?;
    let role = match rest.split_once('.')? {
        ("A", adapter) if adapter.ends_with(".weight") || adapter == "weight" => Role::Down,
        ("B", adapter) if adapter.ends_with(".weight") || adapter == "weight" => Role::Up,
        _ => return None,
    };
    Some((module, role))
}

/// The component and module path (with `_` for `.`) of a module name as files write it.
fn locate(module: &str) -> Option<(Component, String)> {
    let module = module.strip_prefix("base_model.model.").unwrap_or(module);
    let (component, path) = if let Some(rest) = module.strip_prefix("lora_unet_") {
        (Component::Unet, rest.to_string())
    } else if let Some(rest) = module.strip_prefix("lora_te2_") {
        (Component::TextEncoder2, rest.to_string())
    } else if let Some(rest) = module.strip_prefix("lora_te1_").or_else(|| module.strip_prefix("lora_te_")) {
        (Component::TextEncoder, rest.to_string())
    } else if let Some(rest) = module.strip_prefix("text_encoder_2.") {
        (Component::TextEncoder2, rest.to_string())
    } else if let Some(rest) = module.strip_prefix("text_encoder.") {
        (Component::TextEncoder, rest.to_string())
    } else if let Some(rest) = module.strip_prefix("unet.") {
        (Component::Unet, rest.to_string())
    } else if module.starts_with("text_model.") {
        (Component::TextEncoder, module.to_string())
    } else if module.starts_with("lora_") {
        return None; // another model's prefix (lora_te3_, lora_transformer_, ...)
    } else {
        (Component::Unet, module.to_string())
    };
    // diffusers' attention processors name the projection they wrap.
    let path = path.replace(".processor.", ".");
    let path = match component {
        Component::Unet => path.replace("to_out_lora", "to_out.0").replace("_lora", ""),
        _ => path
            .replace("to_q_lora", "q_proj")
            .replace("to_k_lora", "k_proj")
            .replace("to_v_lora", "v_proj")
            .replace("to_out_lora", "out_proj"),
    };
    Some((component, path.replace('.', "_")))
}

/// PEFT's adapter settings, when diffusers stored them in the file's metadata
/// (`lora_adapter_metadata`: `unet.lora_alpha`, `unet.r`, `unet.alpha_pattern`, ...).
struct PeftAlphas {
    by_component: HashMap<Component, ComponentAlphas>,
}

/// A component's `lora_alpha`, and `alpha_pattern`'s (module suffix, alpha) pairs.
type ComponentAlphas = (Option<f32>, Vec<(String, f32)>);

impl PeftAlphas {
    fn read(metadata: Option<&HashMap<String, String>>) -> Self {
        let mut by_component = HashMap::new();
        let parsed = metadata
            .and_then(|m| m.get("lora_adapter_metadata"))
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        if let Some(Value::Object(entries)) = parsed {
            for component in [Component::Unet, Component::TextEncoder, Component::TextEncoder2] {
                let prefix = component.folder();
                let alpha = entries.get(&format!("{prefix}.lora_alpha")).and_then(Value::as_f64).map(|a| a as f32);
                let pattern = match entries.get(&format!("{prefix}.alpha_pattern")) {
                    Some(Value::Object(p)) => {
                        p.iter().filter_map(|(k, v)| Some((k.replace('.', "_"), v.as_f64()? as f32))).collect()
                    }
                    _ => Vec::new(),
                };
                if alpha.is_some() || !pattern.is_empty() {
                    by_component.insert(component, (alpha, pattern));
                }
            }
        }
        PeftAlphas { by_component }
    }

    fn alpha(&self, component: Component, module: &str) -> Option<f32> {
        let (alpha, pattern) = self.by_component.get(&component)?;
        let specific = pattern.iter().find(|(suffix, _)| module.ends_with(suffix.as_str())).map(|(_, a)| *a);
        specific.or(*alpha)
    }
}

/// Parses a LoRA file's bytes (`path` names it in messages).
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<LoraFile> {
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| invalid(path, format!("not a valid .safetensors file: {e}")))?;
    let metadata = SafeTensors::read_metadata(bytes).ok().and_then(|(_, m)| m.metadata().clone());
    let peft = PeftAlphas::read(metadata.as_ref());

    #[derive(Default)]
    struct Parts {
        down: Option<(String, Matrix)>,
        up: Option<Matrix>,
        alpha: Option<f32>,
    }
    let mut modules: BTreeMap<(Component, String), Parts> = BTreeMap::new();
    let mut unrecognised = Vec::new();
    for (name, view) in tensors.iter() {
        if name.ends_with(".dora_scale") || name.contains("lora_magnitude_vector") {
            return Err(invalid(path, "DoRA LoRAs (dora_scale / lora_magnitude_vector) are not supported"));
        }
        if name.contains(".hada_") || name.contains(".lokr_") {
            return Err(invalid(path, format!("LoHa and LoKr files are not supported yet (tensor {name:?})")));
        }
        let Some((module, role)) = split_role(name) else {
            unrecognised.push(name.to_string());
            continue;
        };
        let Some(key) = locate(module) else {
            unrecognised.push(name.to_string());
            continue;
        };
        let parts = modules.entry(key).or_default();
        let matrix = to_matrix(path, name, &view)?;
        match role {
            Role::Down => parts.down = Some((module.to_string(), matrix)),
            Role::Up => parts.up = Some(matrix),
            Role::Alpha => {
                let [alpha] = matrix.data[..] else {
                    return Err(invalid(path, format!("{name:?} must be one number, found shape {:?}", matrix.shape)));
                };
                parts.alpha = Some(alpha);
            }
        }
    }

    let mut updates = Vec::new();
    for ((component, module), parts) in modules {
        let (Some((key, down)), Some(up)) = (parts.down, parts.up) else {
            return Err(invalid(path, format!("module {module:?} lacks its down or up weight")));
        };
        check_pair(path, &key, &down, &up)?;
        let rank = down.shape[0] as f32;
        let alpha = parts.alpha.or_else(|| peft.alpha(component, &module)).unwrap_or(rank);
        updates.push(ModuleUpdate { component, module, key, down, up, alpha });
    }
    if updates.is_empty() {
        return Err(invalid(path, "holds no LoRA weights (no lora_down/lora_up or lora_A/lora_B pairs)"));
    }
    Ok(LoraFile { updates, unrecognised })
}

/// Down is [rank, in, ...], up is [out, rank, (1, 1)].
fn check_pair(path: &Path, key: &str, down: &Matrix, up: &Matrix) -> Result<()> {
    let rank = down.shape.first().copied().unwrap_or(0);
    let up_ok = up.shape.len() >= 2 && up.shape[1] == rank && up.shape[2..].iter().all(|&d| d == 1);
    if rank == 0 || down.shape.len() < 2 || !up_ok || down.shape.len() != up.shape.len() {
        return Err(invalid(
            path,
            format!("{key}: down {:?} and up {:?} are not a low-rank pair", down.shape, up.shape),
        ));
    }
    Ok(())
}

/// A LoRA's name: its file name without the extension.
pub(crate) fn name_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_naming_scheme_finds_the_same_module() {
        let names = [
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight",
            "base_model.model.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.default.weight",
        ];
        for name in names {
            let (module, role) = split_role(name).unwrap_or_else(|| panic!("{name} not split"));
            assert!(matches!(role, Role::Down), "{name}");
            let (component, path) = locate(module).unwrap();
            assert_eq!(component, Component::Unet, "{name}");
            assert_eq!(path, "down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", "{name}");
        }
        let (module, _) =
            split_role("text_encoder.text_model.encoder.layers.1.self_attn.to_out_lora.up.weight").unwrap();
        assert_eq!(
            locate(module).unwrap(),
            (Component::TextEncoder, "text_model_encoder_layers_1_self_attn_out_proj".into())
        );
        let (module, _) = split_role("lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha").unwrap();
        assert_eq!(locate(module).unwrap(), (Component::TextEncoder2, "text_model_encoder_layers_0_mlp_fc1".into()));
        assert!(split_role("lora_unet_conv_in.weight").is_none());
    }
}
