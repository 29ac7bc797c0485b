//! Merging low-rank updates into a graph's weights: `W += strength * alpha / rank * up @ down`,
//! accumulated in f32 and written back in the weight's own element type.

use half::{bf16, f16};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

use super::file::ModuleUpdate;
use super::targets::{Layout, Target};
use crate::model::onnx_file::WeightType;
use crate::runtime::WeightValues;

/// Decodes little-endian weight bytes to f32.
pub(crate) fn decode(bytes: &[u8], element_type: WeightType) -> Vec<f32> {
    match element_type {
        WeightType::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        WeightType::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        WeightType::Bf16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    }
}

/// Encodes f32 values as little-endian bytes of `element_type` into `out` (same length).
pub(crate) fn encode_into(values: &[f32], element_type: WeightType, out: &mut [u8]) {
    match element_type {
        WeightType::F32 => out.chunks_exact_mut(4).zip(values).for_each(|(o, v)| o.copy_from_slice(&v.to_le_bytes())),
        WeightType::F16 => {
            out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| o.copy_from_slice(&f16::from_f32(*v).to_le_bytes()))
        }
        WeightType::Bf16 => {
            out.chunks_exact_mut(2).zip(values).for_each(|(o, v)| o.copy_from_slice(&bf16::from_f32(*v).to_le_bytes()))
        }
    }
}

/// The values in the element type ONNX Runtime is handed.
pub(crate) fn to_weight_values(values: Vec<f32>, element_type: WeightType) -> WeightValues {
    match element_type {
        WeightType::F32 => WeightValues::F32(values),
        WeightType::F16 => WeightValues::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
        WeightType::Bf16 => WeightValues::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
    }
}

/// Whether an update fits a weight: the same output and (flattened) input sizes.
pub(crate) fn fits(update: &ModuleUpdate, target: &Target) -> bool {
    let inputs: usize = update.down.shape[1..].iter().product();
    update.up.shape[0] == target.out && inputs == target.inputs
}

/// Adds `strength * scale * up @ down` to `weight` (laid out as `target` says), in place:
/// one matrix product with accumulation, no temporary of the weight's size.
pub(crate) fn add_update(weight: &mut [f32], target: &Target, update: &ModuleUpdate, strength: f32) {
    let rank = update.rank();
    let up = ArrayView2::from_shape((target.out, rank), &update.up.data).expect("shape checked by fits");
    let down = ArrayView2::from_shape((rank, target.inputs), &update.down.data).expect("shape checked by fits");
    let factor = strength * update.scale();
    match target.layout {
        Layout::OutIn => {
            let mut w = ArrayViewMut2::from_shape((target.out, target.inputs), weight).expect("weight size checked");
            general_mat_mul(factor, &up, &down, 1.0, &mut w);
        }
        Layout::InOut => {
            let mut w = ArrayViewMut2::from_shape((target.inputs, target.out), weight).expect("weight size checked");
            general_mat_mul(factor, &down.t(), &up.t(), 1.0, &mut w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::file::{Component, Matrix};

    fn update(up: Vec<f32>, down: Vec<f32>, out: usize, rank: usize, inputs: usize, alpha: f32) -> ModuleUpdate {
        ModuleUpdate {
            component: Component::Unet,
            module: "m".into(),
            key: "m".into(),
            down: Matrix { shape: vec![rank, inputs], data: down },
            up: Matrix { shape: vec![out, rank], data: up },
            alpha,
        }
    }

    #[test]
    fn both_layouts_receive_the_same_matrix() {
        // up [3, 1] @ down [1, 2] = [[1, 2], [2, 4], [3, 6]]; alpha 2 / rank 1, strength 0.5.
        let update = update(vec![1.0, 2.0, 3.0], vec![1.0, 2.0], 3, 1, 2, 2.0);
        let mut out_in = vec![0.0; 6];
        add_update(&mut out_in, &Target { initializer: 0, layout: Layout::OutIn, out: 3, inputs: 2 }, &update, 0.5);
        assert_eq!(out_in, [1.0, 2.0, 2.0, 4.0, 3.0, 6.0]);
        let mut in_out = vec![0.0; 6];
        add_update(&mut in_out, &Target { initializer: 0, layout: Layout::InOut, out: 3, inputs: 2 }, &update, 0.5);
        assert_eq!(in_out, [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn weights_round_trip_through_their_element_types() {
        let values = [0.5f32, -1.25, 3.0];
        for element_type in [WeightType::F32, WeightType::F16, WeightType::Bf16] {
            let mut bytes = vec![0u8; values.len() * element_type.size()];
            encode_into(&values, element_type, &mut bytes);
            assert_eq!(decode(&bytes, element_type), values, "{element_type:?}");
        }
    }
}
