//! Memory-lean attention. An exported UNet or VAE spells attention out as ONNX operators
//! (`MatMul(Q, Kᵀ)`, `Softmax`, `MatMul(·, V)`), so ONNX Runtime materialises every
//! `tokens x tokens` score matrix: at 1024x1024 on SD 1.x that is 16384² floats per head. This
//! pass replaces each such subgraph by ONNX Runtime's `com.microsoft.MultiHeadAttention`,
//! whose CPU kernel streams over the keys (flash attention) and whose CUDA, DirectML and WebGPU
//! kernels are fused too. Only the exact pattern of PyTorch's `scaled_dot_product_attention`
//! export is rewritten (the one diffusers' and Optimum's exports contain), with the scale
//! proven to be MultiHeadAttention's (`1/sqrt(head size)`) or given as constants; anything
//! else is left alone, so a graph the pass does not understand runs as it was exported.
//!
//! The weights and the q/k/v projections are untouched, so LoRAs merge as before.

use std::collections::{HashMap, HashSet};

use super::onnx_file::{for_each_field, parse_node, put_bytes, put_varint, tensor_name_and_scalar, Node, ParseError};

type Parsed<T> = std::result::Result<T, ParseError>;

/// A graph with its attention fused.
pub struct FusedGraph {
    pub bytes: Vec<u8>,
    /// Attention subgraphs replaced.
    pub attentions: usize,
}

/// One attention subgraph found, and what replaces it.
struct Attention {
    /// The 3-D query, key and value (batch, tokens, heads x head size).
    q: String,
    k: String,
    v: String,
    /// The 3-D result, the name the subgraph's last node gave it.
    output: String,
    heads: i64,
    /// None: MultiHeadAttention's own 1/sqrt(head size).
    scale: Option<f32>,
    /// The subgraph's nodes (indexes into the graph); the fused node takes the last one's place.
    nodes: Vec<usize>,
    name: String,
}

/// The main graph's nodes and the facts the matcher needs about its tensors.
struct Graph {
    nodes: Vec<Node>,
    producer: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
    /// Tensors with a known one-element value (Constant nodes, small initializers).
    scalars: HashMap<String, f64>,
    outputs: HashSet<String>,
}

impl Graph {
    fn read(graph: &[u8]) -> Parsed<Graph> {
        let mut nodes = Vec::new();
        let (mut scalars, mut outputs) = (HashMap::new(), HashSet::new());
        for_each_field(graph, |number, payload, _| {
            let Some(payload) = payload else { return Ok(()) };
            match number {
                1 => nodes.push(parse_node(payload, 0)?),
                5 => {
                    if let (name, Some(value)) = tensor_name_and_scalar(payload)? {
                        scalars.insert(name, value);
                    }
                }
                12 => {
                    outputs.insert(value_info_name(payload)?);
                }
                _ => {}
            }
            Ok(())
        })?;
        let (mut producer, mut consumers) = (HashMap::new(), HashMap::<String, Vec<usize>>::new());
        for (index, node) in nodes.iter().enumerate() {
            for output in &node.outputs {
                producer.insert(output.clone(), index);
            }
            for input in node.inputs.iter().filter(|i| !i.is_empty()) {
                consumers.entry(input.clone()).or_default().push(index);
            }
            if node.op_type == "Constant" {
                if let (Some(output), Some(value)) =
                    (node.outputs.first(), node.attribute("value").and_then(|a| a.scalar))
                {
                    scalars.insert(output.clone(), value);
                }
            }
        }
        Ok(Graph { nodes, producer, consumers, scalars, outputs })
    }

    /// The node of type `op` (ONNX domain) that produces `tensor`.
    fn made_by(&self, tensor: &str, op: &str) -> Option<(usize, &Node)> {
        let &index = self.producer.get(tensor)?;
        let node = &self.nodes[index];
        (node.op_type == op && node.domain.is_empty()).then_some((index, node))
    }

    /// The one node that reads `tensor`, when it is of type `op` and `tensor` is no graph output.
    fn only_reader(&self, tensor: &str, op: &str) -> Option<(usize, &Node)> {
        match self.consumers.get(tensor).map(Vec::as_slice) {
            Some(&[index]) if !self.outputs.contains(tensor) => {
                let node = &self.nodes[index];
                (node.op_type == op && node.domain.is_empty()).then_some((index, node))
            }
            _ => None,
        }
    }

    fn scalar(&self, tensor: &str) -> Option<f64> {
        self.scalars.get(tensor).copied()
    }

    /// Follows Cast nodes back from `tensor`.
    fn through_casts<'a>(&'a self, mut tensor: &'a str) -> &'a str {
        while let Some(input) = self.made_by(tensor, "Cast").and_then(|(_, cast)| cast.input(0)) {
            tensor = input;
        }
        tensor
    }

    /// `Transpose(Reshape(x, [batch, -1, heads, head size]), perm)`: x and the head count.
    fn split_heads(&self, tensor: &str, perm: &[i64], nodes: &mut Vec<usize>) -> Option<(String, i64)> {
        let (transpose_index, transpose) = self.made_by(tensor, "Transpose")?;
        if transpose.attribute("perm")?.ints != perm {
            return None;
        }
        let (reshape_index, reshape) = self.made_by(transpose.input(0)?, "Reshape")?;
        self.only_reader(transpose.input(0)?, "Transpose")?;
        let (_, shape) = self.made_by(reshape.input(1)?, "Concat")?;
        let heads = match shape.inputs.as_slice() {
            [_, rest, heads, _] if self.scalar(rest) == Some(-1.0) => self.scalar(heads)?,
            _ => return None,
        };
        nodes.extend([transpose_index, reshape_index]);
        if !(heads >= 1.0 && heads.fract() == 0.0) {
            return None;
        }
        Some((reshape.input(0)?.to_string(), heads as i64))
    }

    /// `Mul(x, s)` feeding the scores' MatMul: x and s.
    fn scaled<'a>(&'a self, tensor: &str, nodes: &mut Vec<usize>) -> Option<(&'a str, &'a str)> {
        let (index, mul) = self.made_by(tensor, "Mul")?;
        self.only_reader(tensor, "MatMul")?;
        nodes.push(index);
        Some((mul.input(0)?, mul.input(1)?))
    }

    /// Whether `q_factor` and `k_factor` are both `sqrt(1 / sqrt(last dimension of query))`,
    /// as PyTorch's export computes SDPA's default scale from the query's shape (None: the
    /// graph lacks a node or input the pattern needs).
    fn is_default_scale(&self, q_factor: &str, k_factor: &str, query: &str) -> Option<bool> {
        let root =
            |factor: &str| Some(self.through_casts(self.made_by(self.through_casts(factor), "Sqrt")?.1.input(0)?));
        if root(q_factor)? != root(k_factor)? {
            return Some(false);
        }
        let (_, div) = self.made_by(root(q_factor)?, "Div")?;
        if self.scalar(div.input(0)?) != Some(1.0) {
            return Some(false);
        }
        let (_, sqrt) = self.made_by(div.input(1)?, "Sqrt")?;
        let (_, slice) = self.made_by(self.through_casts(sqrt.input(0)?), "Slice")?;
        let last_only = slice.input(1).and_then(|s| self.scalar(s)) == Some(-1.0)
            && slice.input(3).is_none_or(|axes| axes.is_empty() || self.scalar(axes) == Some(0.0));
        let (_, shape) = self.made_by(slice.input(0)?, "Shape")?;
        Some(last_only && shape.attributes.is_empty() && shape.input(0)? == query)
    }

    /// The attention subgraph whose softmax is node `index`, if it is one this pass rewrites.
    fn attention_at(&self, index: usize) -> Option<Attention> {
        let softmax = &self.nodes[index];
        let axis = softmax.attribute("axis")?.scalar?;
        if !(axis == -1.0 || axis == 3.0) || !softmax.domain.is_empty() {
            return None;
        }
        let mut nodes = vec![index];
        let (scores_index, scores) = self.made_by(softmax.input(0)?, "MatMul")?;
        self.only_reader(softmax.input(0)?, "Softmax")?;
        let (values_index, values) = self.only_reader(softmax.output(0)?, "MatMul")?;
        if values.input(0)? != softmax.output(0)? {
            return None;
        }
        nodes.extend([scores_index, values_index]);
        let (query, q_factor) = self.scaled(scores.input(0)?, &mut nodes)?;
        let (key, k_factor) = self.scaled(scores.input(1)?, &mut nodes)?;
        let (q, heads) = self.split_heads(query, &[0, 2, 1, 3], &mut nodes)?;
        let (k, k_heads) = self.split_heads(key, &[0, 2, 3, 1], &mut nodes)?;
        let (v, v_heads) = self.split_heads(values.input(1)?, &[0, 2, 1, 3], &mut nodes)?;
        if k_heads != heads || v_heads != heads {
            return None;
        }
        let scale = match (self.scalar(q_factor), self.scalar(k_factor)) {
            (Some(a), Some(b)) => Some((a * b) as f32),
            _ if self.is_default_scale(q_factor, k_factor, query) == Some(true) => None,
            _ => return None,
        };
        // The heads merged again: Reshape(Transpose(result, [0, 2, 1, 3]), [batch, -1, width]).
        let (transpose_index, transpose) = self.only_reader(values.output(0)?, "Transpose")?;
        if transpose.attribute("perm")?.ints != [0, 2, 1, 3] {
            return None;
        }
        let (reshape_index, reshape) = self.only_reader(transpose.output(0)?, "Reshape")?;
        let (_, shape) = self.made_by(reshape.input(1)?, "Concat")?;
        match shape.inputs.as_slice() {
            [_, rest, _] if self.scalar(rest) == Some(-1.0) => {}
            _ => return None,
        }
        nodes.extend([transpose_index, reshape_index]);
        Some(Attention {
            q,
            k,
            v,
            output: reshape.output(0)?.to_string(),
            heads,
            scale,
            nodes,
            name: format!("{}/sdrt_multi_head_attention", softmax.name),
        })
    }
}

fn value_info_name(bytes: &[u8]) -> Parsed<String> {
    let mut name = String::new();
    for_each_field(bytes, |number, payload, _| {
        if let (1, Some(payload)) = (number, payload) {
            name = String::from_utf8(payload.to_vec()).map_err(|_| ParseError("a name is not valid UTF-8".into()))?;
        }
        Ok(())
    })?;
    Ok(name)
}

/// The nodes that go: `removed`, and then every node whose results nothing reads any more
/// (the shape arithmetic that fed the removed ones). None when a kept node would read a
/// tensor that no longer exists.
fn dead_nodes(graph: &Graph, removed: &HashSet<usize>, attentions: &[Attention]) -> Option<HashSet<usize>> {
    let fused_inputs: Vec<&str> = attentions.iter().flat_map(|a| [a.q.as_str(), a.k.as_str(), a.v.as_str()]).collect();
    let fused_outputs: HashSet<&str> = attentions.iter().map(|a| a.output.as_str()).collect();
    let mut dead = removed.clone();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for (_, node) in graph.nodes.iter().enumerate().filter(|(i, _)| !dead.contains(i)) {
        for input in node.inputs.iter().filter(|i| !i.is_empty()) {
            *readers.entry(input).or_default() += 1;
        }
    }
    for &input in &fused_inputs {
        *readers.entry(input).or_default() += 1;
    }
    let unread = |node: &Node, readers: &HashMap<&str, usize>| {
        node.outputs.iter().all(|o| readers.get(o.as_str()).copied().unwrap_or(0) == 0 && !graph.outputs.contains(o))
    };
    let mut pending: Vec<usize> = (0..graph.nodes.len()).filter(|i| !dead.contains(i)).collect();
    while let Some(index) = pending.pop() {
        let node = &graph.nodes[index];
        if dead.contains(&index) || node.outputs.is_empty() || !unread(node, &readers) {
            continue;
        }
        dead.insert(index);
        for input in node.inputs.iter().filter(|i| !i.is_empty()) {
            let count = readers.get_mut(input.as_str()).expect("counted above");
            *count -= 1;
            if *count == 0 {
                if let Some(&producer) = graph.producer.get(input) {
                    pending.push(producer);
                }
            }
        }
    }
    // Every tensor still read must still be made (or be a graph input or initializer, which no
    // node makes).
    let made: HashSet<&str> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !dead.contains(i))
        .flat_map(|(_, n)| n.outputs.iter().map(String::as_str))
        .collect();
    let available = |tensor: &str| {
        tensor.is_empty()
            || made.contains(tensor)
            || fused_outputs.contains(tensor)
            || !graph.producer.contains_key(tensor)
    };
    let kept_inputs_ok = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !dead.contains(i))
        .all(|(_, n)| n.inputs.iter().all(|i| available(i)));
    (kept_inputs_ok && fused_inputs.iter().all(|i| available(i))).then_some(dead)
}

fn multi_head_attention_node(attention: &Attention) -> Vec<u8> {
    let mut node = Vec::new();
    for input in [&attention.q, &attention.k, &attention.v] {
        put_bytes(1, input.as_bytes(), &mut node);
    }
    put_bytes(2, attention.output.as_bytes(), &mut node);
    put_bytes(3, attention.name.as_bytes(), &mut node);
    put_bytes(4, b"MultiHeadAttention", &mut node);
    let mut heads = Vec::new();
    put_bytes(1, b"num_heads", &mut heads);
    put_varint(3 << 3, &mut heads);
    put_varint(attention.heads as u64, &mut heads);
    put_varint(20 << 3, &mut heads);
    put_varint(2, &mut heads); // AttributeProto.INT
    put_bytes(5, &heads, &mut node);
    if let Some(scale) = attention.scale {
        let mut attribute = Vec::new();
        put_bytes(1, b"scale", &mut attribute);
        put_varint(2 << 3 | 5, &mut attribute);
        attribute.extend_from_slice(&scale.to_le_bytes());
        put_varint(20 << 3, &mut attribute);
        put_varint(1, &mut attribute); // AttributeProto.FLOAT
        put_bytes(5, &attribute, &mut node);
    }
    put_bytes(7, b"com.microsoft", &mut node);
    node
}

/// The model with every attention subgraph it recognises replaced by MultiHeadAttention, or
/// None when there is none (or the rewrite would leave the graph inconsistent).
pub fn fuse_attention(model: &[u8]) -> Parsed<Option<FusedGraph>> {
    let mut graph_bytes = None;
    let mut has_microsoft_opset = false;
    for_each_field(model, |number, payload, _| {
        match (number, payload) {
            (7, Some(graph)) => graph_bytes = Some(graph),
            (8, Some(opset)) => {
                for_each_field(opset, |number, payload, _| {
                    has_microsoft_opset |= number == 1 && payload == Some(b"com.microsoft".as_slice());
                    Ok(())
                })?;
            }
            _ => {}
        }
        Ok(())
    })?;
    let Some(graph_bytes) = graph_bytes else { return Ok(None) };
    let graph = Graph::read(graph_bytes)?;
    let attentions: Vec<Attention> = (0..graph.nodes.len())
        .filter(|&i| graph.nodes[i].op_type == "Softmax")
        .filter_map(|i| graph.attention_at(i))
        .collect();
    if attentions.is_empty() {
        return Ok(None);
    }
    let removed: HashSet<usize> = attentions.iter().flat_map(|a| a.nodes.iter().copied()).collect();
    if removed.len() != attentions.iter().map(|a| a.nodes.len()).sum::<usize>() {
        return Ok(None); // overlapping matches: not a graph this pass understands
    }
    let Some(dead) = dead_nodes(&graph, &removed, &attentions) else { return Ok(None) };
    // Each fused node goes where its subgraph's last node (the final Reshape) was.
    let replacement: HashMap<usize, &Attention> =
        attentions.iter().map(|a| (*a.nodes.last().expect("a subgraph has nodes"), a)).collect();

    let mut new_graph = Vec::with_capacity(graph_bytes.len());
    let mut node_index = 0;
    for_each_field(graph_bytes, |number, _, whole| {
        if number != 1 {
            new_graph.extend_from_slice(whole);
            return Ok(());
        }
        if let Some(attention) = replacement.get(&node_index) {
            put_bytes(1, &multi_head_attention_node(attention), &mut new_graph);
        } else if !dead.contains(&node_index) {
            new_graph.extend_from_slice(whole);
        }
        node_index += 1;
        Ok(())
    })?;
    let mut bytes = Vec::with_capacity(model.len());
    for_each_field(model, |number, _, whole| {
        match number {
            7 => put_bytes(7, &new_graph, &mut bytes),
            _ => bytes.extend_from_slice(whole),
        }
        Ok(())
    })?;
    if !has_microsoft_opset {
        let mut opset = Vec::new();
        put_bytes(1, b"com.microsoft", &mut opset);
        put_varint(2 << 3, &mut opset);
        put_varint(1, &mut opset);
        put_bytes(8, &opset, &mut bytes);
    }
    Ok(Some(FusedGraph { bytes, attentions: attentions.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::onnx_file::parse;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn ops(model: &[u8]) -> HashMap<String, usize> {
        let mut ops = HashMap::new();
        for node in parse(model).unwrap().nodes {
            *ops.entry(format!("{}:{}", node.domain, node.op_type)).or_default() += 1;
        }
        ops
    }

    #[test]
    fn every_attention_of_the_test_unet_becomes_one_node() {
        let model = fixture("tiny-sd15/diffusers/unet/model.onnx");
        let fused = fuse_attention(&model).unwrap().expect("the export's attention is recognised");
        // 4 transformer blocks, each with self- and cross-attention.
        assert_eq!(fused.attentions, 8);
        let (before, after) = (ops(&model), ops(&fused.bytes));
        assert_eq!(before.get(":Softmax"), Some(&8));
        assert_eq!(after.get(":Softmax"), None);
        assert_eq!(after.get("com.microsoft:MultiHeadAttention"), Some(&8));
        // The projections stay (LoRAs merge into them) and the shape arithmetic went with it.
        assert_eq!(after.get(":MatMul").unwrap() + 16, *before.get(":MatMul").unwrap());
        assert!(after.get(":Shape").unwrap_or(&0) < before.get(":Shape").unwrap());
    }

    #[test]
    fn every_export_in_the_tests_is_recognised() {
        for (path, attentions) in [
            ("tiny-sd15/diffusers/vae_decoder/model.onnx", 1),
            ("tiny-sd15/diffusers/vae_encoder/model.onnx", 1),
            ("tiny-sd15/optimum/unet/model.onnx", 8),
            // Float16 constants in the scale's arithmetic.
            ("tiny-sd15-fp16/unet/model.onnx", 8),
            ("tiny-sdxl/unet/model.onnx", 8),
            ("../../src/model/default/unet/model.onnx", 20),
            ("../../src/model/default/vae_decoder/model.onnx", 1),
        ] {
            let fused = fuse_attention(&fixture(path)).unwrap().map(|f| f.attentions);
            assert_eq!(fused, Some(attentions), "{path}");
        }
    }

    /// Found by fuzzing (the onnx_graph target): one byte of the VAE encoder changed so that
    /// its Softmax node has no output panicked on `outputs[0]`; such a node is no attention.
    #[test]
    fn a_softmax_without_an_output_is_no_attention() {
        let mut model = fixture("tiny-sd15/diffusers/vae_encoder/model.onnx");
        let softmax_input = b"/encoder/mid_block/attentions.0/MatMul_output_0\x12";
        let at = model.windows(softmax_input.len()).position(|w| w == softmax_input).unwrap() + softmax_input.len() - 1;
        model[at] = 0x92; // the output's field tag (2) becomes an unknown field's
        let softmax = parse(&model).unwrap().nodes.into_iter().find(|n| n.op_type == "Softmax").unwrap();
        assert!(softmax.outputs.is_empty());
        assert!(fuse_attention(&model).unwrap().is_none());
    }

    #[test]
    fn a_graph_without_attention_is_left_alone() {
        assert!(fuse_attention(&fixture("tiny-sd15/diffusers/text_encoder/model.onnx")).unwrap().is_none());
    }
}
