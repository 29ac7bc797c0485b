//! A reader for the parts of an ONNX file sdrt needs to patch weights: the main graph's nodes
//! (name, op type, inputs) and initializers (name, element type, dimensions, where their bytes
//! are). Protobuf is decoded by hand with a bounds check on every length, so a truncated or
//! hostile file is an error, never a panic or a huge allocation; tensor bytes are not copied.

use std::ops::Range;

/// ONNX `TensorProto.DataType` values sdrt reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    F32,
    F16,
    Bf16,
}

impl WeightType {
    fn from_onnx(code: u64) -> Option<Self> {
        match code {
            1 => Some(WeightType::F32),
            10 => Some(WeightType::F16),
            16 => Some(WeightType::Bf16),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 | WeightType::Bf16 => 2,
        }
    }
}

/// Where an initializer's values are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorData {
    /// Little-endian values at this byte range of the file (`raw_data`, or packed `float_data`).
    Inline(Range<usize>),
    /// In another file beside the model (`data_location = EXTERNAL`).
    External { location: String, offset: u64, length: Option<u64> },
    /// Stored some other way (typed fields sdrt does not read, or empty).
    Unsupported,
}

/// One initializer of the main graph.
#[derive(Clone, Debug)]
pub struct Initializer {
    pub name: String,
    /// None for element types other than f32, f16 and bf16.
    pub element_type: Option<WeightType>,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

impl Initializer {
    /// Number of elements, or None when a dimension is negative or the product overflows.
    pub fn element_count(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }
}

/// One node of the main graph.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    /// The operator set's domain; empty for ONNX's own.
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Gemm's `transB` attribute (whether the weight is stored [out, in]).
    pub trans_b: bool,
    /// The attributes sdrt can read: integers, integer lists and one-element tensors.
    pub attributes: Vec<Attribute>,
}

impl Node {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Input `i`, if the node has it (a graph from a file may give any node any count).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.get(i).map(String::as_str)
    }

    /// Output `i`, if the node has it.
    pub fn output(&self, i: usize) -> Option<&str> {
        self.outputs.get(i).map(String::as_str)
    }
}

/// A node attribute's value, where it is a number or a list of integers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribute {
    pub name: String,
    /// `i`, `f`, or the value of a one-element tensor `t` (a Constant's `value`).
    pub scalar: Option<f64>,
    /// `ints`.
    pub ints: Vec<i64>,
}

/// The main graph's nodes and initializers.
#[derive(Clone, Debug, Default)]
pub struct OnnxGraph {
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
}

/// Why an ONNX file could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

type Parsed<T> = std::result::Result<T, ParseError>;

fn truncated<T>() -> Parsed<T> {
    Err(ParseError("truncated or not an ONNX file".into()))
}

/// Protobuf wire reader over a byte slice; `base` is the slice's offset in the whole file.
struct Wire<'a> {
    bytes: &'a [u8],
    position: usize,
    base: usize,
}

enum Field<'a> {
    Varint(u64),
    /// Length-delimited bytes and their offset in the file.
    Bytes(&'a [u8], usize),
    Fixed64,
    Fixed32(u32),
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Wire { bytes, position: 0, base }
    }

    fn varint(&mut self) -> Parsed<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes.get(self.position) else { return truncated() };
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ParseError("malformed varint".into()))
    }

    fn take(&mut self, length: u64) -> Parsed<(&'a [u8], usize)> {
        let start = self.position;
        let end = usize::try_from(length).ok().and_then(|l| start.checked_add(l)).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else { return truncated() };
        self.position = end;
        Ok((&self.bytes[start..end], self.base + start))
    }

    /// The next field number and value, or None at the end.
    fn next(&mut self) -> Parsed<Option<(u64, Field<'a>)>> {
        if self.position >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let length = self.varint()?;
                let (bytes, offset) = self.take(length)?;
                Field::Bytes(bytes, offset)
            }
            5 => {
                let (bytes, _) = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
            }
            other => return Err(ParseError(format!("unsupported protobuf wire type {other}"))),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// Appends a protobuf varint.
pub(super) fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a length-delimited field.
pub(super) fn put_bytes(number: u64, payload: &[u8], out: &mut Vec<u8>) {
    put_varint(number << 3 | 2, out);
    put_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Calls `each(number, payload, whole field)` for every field of a message.
pub(super) fn for_each_field<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(u64, Option<&'a [u8]>, &'a [u8]) -> Parsed<()>,
) -> Parsed<()> {
    let mut wire = Wire::new(bytes, 0);
    loop {
        let start = wire.position;
        let Some((number, field)) = wire.next()? else { return Ok(()) };
        let payload = match field {
            Field::Bytes(payload, _) => Some(payload),
            _ => None,
        };
        each(number, payload, &bytes[start..wire.position])?;
    }
}

/// The model with initializer `name` of the main graph replaced by `dims` and little-endian
/// `raw` values (its type kept; external data, if any, dropped for the inline values). Used
/// where a tensor changes size (an embedding table with rows added), which a patch in place
/// cannot do.
pub fn replace_initializer(model: &[u8], name: &str, dims: &[i64], raw: &[u8]) -> Parsed<Vec<u8>> {
    let mut out = Vec::with_capacity(model.len() + raw.len());
    let mut found = false;
    for_each_field(model, |number, payload, whole| {
        let (7, Some(graph)) = (number, payload) else {
            out.extend_from_slice(whole);
            return Ok(());
        };
        let mut new_graph = Vec::with_capacity(graph.len() + raw.len());
        for_each_field(graph, |number, payload, whole| {
            match (number, payload) {
                (5, Some(tensor)) if !found && parse_tensor(tensor, 0)?.name == name => {
                    found = true;
                    let mut new_tensor = Vec::with_capacity(raw.len() + 64);
                    for_each_field(tensor, |number, _, whole| {
                        // dims, float_data, raw_data, external_data, data_location go.
                        if !matches!(number, 1 | 4 | 9 | 13 | 14) {
                            new_tensor.extend_from_slice(whole);
                        }
                        Ok(())
                    })?;
                    for &d in dims {
                        put_varint(1 << 3, &mut new_tensor);
                        put_varint(d as u64, &mut new_tensor);
                    }
                    put_bytes(9, raw, &mut new_tensor);
                    put_bytes(5, &new_tensor, &mut new_graph);
                }
                _ => new_graph.extend_from_slice(whole),
            }
            Ok(())
        })?;
        put_bytes(7, &new_graph, &mut out);
        Ok(())
    })?;
    match found {
        true => Ok(out),
        false => Err(ParseError(format!("the graph has no initializer {name:?}"))),
    }
}

fn text(bytes: &[u8]) -> Parsed<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ParseError("a name is not valid UTF-8".into()))
}

/// Reads the main graph of an ONNX model file's bytes.
pub fn parse(model: &[u8]) -> Parsed<OnnxGraph> {
    let mut wire = Wire::new(model, 0);
    let mut graph = None;
    let mut saw_ir_version = false;
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Varint(_)) => saw_ir_version = true,
            (7, Field::Bytes(bytes, offset)) => graph = Some(parse_graph(bytes, offset)?),
            _ => {}
        }
    }
    match graph {
        Some(graph) if saw_ir_version => Ok(graph),
        _ => Err(ParseError("not an ONNX model (no ir_version or graph)".into())),
    }
}

fn parse_graph(bytes: &[u8], base: usize) -> Parsed<OnnxGraph> {
    let mut wire = Wire::new(bytes, base);
    let mut graph = OnnxGraph::default();
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Bytes(bytes, offset)) => graph.nodes.push(parse_node(bytes, offset)?),
            (5, Field::Bytes(bytes, offset)) => graph.initializers.push(parse_tensor(bytes, offset)?),
            _ => {}
        }
    }
    Ok(graph)
}

pub(super) fn parse_node(bytes: &[u8], base: usize) -> Parsed<Node> {
    let mut wire = Wire::new(bytes, base);
    let mut node = Node::default();
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Bytes(bytes, _)) => node.inputs.push(text(bytes)?),
            (2, Field::Bytes(bytes, _)) => node.outputs.push(text(bytes)?),
            (3, Field::Bytes(bytes, _)) => node.name = text(bytes)?,
            (4, Field::Bytes(bytes, _)) => node.op_type = text(bytes)?,
            (5, Field::Bytes(bytes, _)) => node.attributes.push(parse_attribute(bytes)?),
            (7, Field::Bytes(bytes, _)) => node.domain = text(bytes)?,
            _ => {}
        }
    }
    node.trans_b = node.attribute("transB").and_then(|a| a.scalar).is_some_and(|v| v != 0.0);
    Ok(node)
}

fn parse_attribute(bytes: &[u8]) -> Parsed<Attribute> {
    let mut wire = Wire::new(bytes, 0);
    let mut attribute = Attribute::default();
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Bytes(bytes, _)) => attribute.name = text(bytes)?,
            (2, Field::Fixed32(bits)) => attribute.scalar = Some(f64::from(f32::from_bits(bits))),
            (3, Field::Varint(v)) => attribute.scalar = Some(v as i64 as f64),
            (5, Field::Bytes(tensor, _)) => attribute.scalar = tensor_scalar(tensor)?,
            (8, Field::Varint(v)) => attribute.ints.push(v as i64),
            (8, Field::Bytes(packed, _)) => {
                let mut packed = Wire::new(packed, 0);
                while packed.position < packed.bytes.len() {
                    attribute.ints.push(packed.varint()? as i64);
                }
            }
            _ => {}
        }
    }
    Ok(attribute)
}

/// A TensorProto's name and, when it holds one number inline, its value.
pub(super) fn tensor_name_and_scalar(bytes: &[u8]) -> Parsed<(String, Option<f64>)> {
    let mut name = String::new();
    for_each_field(bytes, |number, payload, _| {
        if let (8, Some(payload)) = (number, payload) {
            name = text(payload)?;
        }
        Ok(())
    })?;
    Ok((name, tensor_scalar(bytes)?))
}

/// The value of a tensor of one float, float16, int32 or int64 element stored inline, else None.
fn tensor_scalar(bytes: &[u8]) -> Parsed<Option<f64>> {
    let mut wire = Wire::new(bytes, 0);
    let (mut data_type, mut elements, mut value) = (0, 1u64, None);
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Varint(d)) => elements = elements.saturating_mul(d),
            (2, Field::Varint(t)) => data_type = t,
            (4, Field::Fixed32(bits)) => value = Some(f64::from(f32::from_bits(bits))),
            // int32_data carries float16 values as their bits.
            (5, Field::Varint(v)) if data_type == 10 => value = Some(f64::from(half::f16::from_bits(v as u16))),
            (5 | 7, Field::Varint(v)) => value = Some(v as i64 as f64),
            (9, Field::Bytes(raw, _)) => {
                value = match (data_type, raw.len()) {
                    (1, 4) => Some(f64::from(f32::from_le_bytes(raw.try_into().expect("4 bytes")))),
                    (6, 4) => Some(f64::from(i32::from_le_bytes(raw.try_into().expect("4 bytes")))),
                    (7, 8) => Some(i64::from_le_bytes(raw.try_into().expect("8 bytes")) as f64),
                    (10, 2) => Some(f64::from(half::f16::from_le_bytes(raw.try_into().expect("2 bytes")))),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    // Writers put data_type before raw_data; a file that does not is simply not read.
    Ok(value.filter(|_| elements == 1 && matches!(data_type, 1 | 6 | 7 | 10)))
}

fn parse_tensor(bytes: &[u8], base: usize) -> Parsed<Initializer> {
    let mut wire = Wire::new(bytes, base);
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut inline = None;
    let mut external = false;
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Varint(d)) => dims.push(d as i64),
            (1, Field::Bytes(packed, _)) => {
                let mut packed = Wire::new(packed, 0);
                while packed.position < packed.bytes.len() {
                    dims.push(packed.varint()? as i64);
                }
            }
            (2, Field::Varint(t)) => data_type = t,
            (8, Field::Bytes(bytes, _)) => name = text(bytes)?,
            // raw_data, or float_data packed (both little-endian values).
            (9 | 4, Field::Bytes(bytes, at)) => inline = Some(at..at + bytes.len()),
            (13, Field::Bytes(entry, _)) => {
                let (key, value) = parse_entry(entry)?;
                match key.as_str() {
                    "location" => location = Some(value),
                    "offset" => {
                        offset = value.parse().map_err(|_| ParseError(format!("bad external offset {value:?}")))?
                    }
                    "length" => {
                        length = Some(value.parse().map_err(|_| ParseError(format!("bad external length {value:?}")))?)
                    }
                    _ => {}
                }
            }
            (14, Field::Varint(1)) => external = true,
            _ => {}
        }
    }
    let data = match (external, location, inline) {
        (true, Some(location), _) => TensorData::External { location, offset, length },
        (true, None, _) => {
            return Err(ParseError(format!("initializer {name:?} has external data without a location")))
        }
        (false, _, Some(range)) => TensorData::Inline(range),
        (false, _, None) => TensorData::Unsupported,
    };
    Ok(Initializer { name, element_type: WeightType::from_onnx(data_type), dims, data })
}

/// How many times the graph halves an image: its `Conv` nodes with strides 2x2 (a UNet's
/// downsamplers; SD 1.x/2.x have 3, SDXL 2).
pub fn stride_2_convolutions(model: &[u8]) -> Parsed<u32> {
    let graph = parse(model)?;
    let halving = |node: &&Node| node.op_type == "Conv" && node.attribute("strides").is_some_and(|a| a.ints == [2, 2]);
    Ok(graph.nodes.iter().filter(halving).count() as u32)
}

/// Deepest nesting of subgraphs (`If`/`Loop` bodies) searched for external data; real
/// models nest a few levels, a hostile file could nest until the stack ran out.
const MAX_GRAPH_DEPTH: usize = 32;

/// The `location` of every tensor anywhere in a model that keeps its data in another file:
/// initializers, sparse initializers, tensors in node attributes (`Constant`), in subgraphs
/// and in functions. ONNX Runtime opens each, so each must be checked before it does.
pub fn external_data_locations(model: &[u8]) -> Parsed<Vec<String>> {
    let mut locations = Vec::new();
    let mut model_fields = Wire::new(model, 0);
    while let Some((number, field)) = model_fields.next()? {
        match (number, field) {
            (7, Field::Bytes(graph, _)) => graph_locations(graph, 0, &mut locations)?,
            // FunctionProto: its nodes (field 7).
            (25, Field::Bytes(function, _)) => {
                for_each_field(function, |number, payload, _| match (number, payload) {
                    (7, Some(node)) => node_locations(node, 0, &mut locations),
                    _ => Ok(()),
                })?
            }
            _ => {}
        }
    }
    Ok(locations)
}

fn graph_locations(graph: &[u8], depth: usize, out: &mut Vec<String>) -> Parsed<()> {
    if depth > MAX_GRAPH_DEPTH {
        return Err(ParseError(format!("subgraphs nest deeper than {MAX_GRAPH_DEPTH}")));
    }
    for_each_field(graph, |number, payload, _| match (number, payload) {
        (1, Some(node)) => node_locations(node, depth, out),
        (5, Some(tensor)) => tensor_location(tensor, out),
        // SparseTensorProto: values (1) and indices (2) are tensors.
        (15, Some(sparse)) => for_each_field(sparse, |number, payload, _| match (number, payload) {
            (1 | 2, Some(tensor)) => tensor_location(tensor, out),
            _ => Ok(()),
        }),
        _ => Ok(()),
    })
}

fn node_locations(node: &[u8], depth: usize, out: &mut Vec<String>) -> Parsed<()> {
    for_each_field(node, |number, payload, _| match (number, payload) {
        // AttributeProto: t (5), tensors (10), g (6), graphs (11), sparse_tensor(s) (22, 23).
        (5, Some(attribute)) => for_each_field(attribute, |number, payload, _| match (number, payload) {
            (5 | 10, Some(tensor)) => tensor_location(tensor, out),
            (6 | 11, Some(graph)) => graph_locations(graph, depth + 1, out),
            (22 | 23, Some(sparse)) => for_each_field(sparse, |number, payload, _| match (number, payload) {
                (1 | 2, Some(tensor)) => tensor_location(tensor, out),
                _ => Ok(()),
            }),
            _ => Ok(()),
        }),
        _ => Ok(()),
    })
}

/// A TensorProto's external data location (field 13 entries), if it has one.
fn tensor_location(tensor: &[u8], out: &mut Vec<String>) -> Parsed<()> {
    for_each_field(tensor, |number, payload, _| {
        if let (13, Some(entry)) = (number, payload) {
            let (key, value) = parse_entry(entry)?;
            if key == "location" {
                out.push(value);
            }
        }
        Ok(())
    })
}

fn parse_entry(bytes: &[u8]) -> Parsed<(String, String)> {
    let mut wire = Wire::new(bytes, 0);
    let (mut key, mut value) = (String::new(), String::new());
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (1, Field::Bytes(bytes, _)) => key = text(bytes)?,
            (2, Field::Bytes(bytes, _)) => value = text(bytes)?,
            _ => {}
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn model_with_weight(values: &[f32]) -> (Vec<u8>, Vec<u8>) {
        let mut tensor = Vec::new();
        varint(1 << 3, &mut tensor);
        varint(2, &mut tensor);
        varint(1 << 3, &mut tensor);
        varint(values.len() as u64 / 2, &mut tensor);
        varint(2 << 3, &mut tensor);
        varint(1, &mut tensor);
        bytes_field(8, b"w", &mut tensor);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes_field(9, &raw, &mut tensor);
        let mut node = Vec::new();
        bytes_field(1, b"x", &mut node);
        bytes_field(1, b"w", &mut node);
        bytes_field(3, b"/layer/MatMul", &mut node);
        bytes_field(4, b"MatMul", &mut node);
        let mut graph = Vec::new();
        bytes_field(1, &node, &mut graph);
        bytes_field(5, &tensor, &mut graph);
        let mut model = Vec::new();
        varint(1 << 3, &mut model);
        varint(8, &mut model);
        bytes_field(7, &graph, &mut model);
        (model, raw)
    }

    #[test]
    fn reads_nodes_and_initializers_with_their_byte_ranges() {
        let (model, raw) = model_with_weight(&[1.0, 2.0, 3.0, 4.0]);
        let graph = parse(&model).unwrap();
        assert_eq!(graph.nodes.len(), 1);
        assert_eq!(graph.nodes[0].name, "/layer/MatMul");
        assert_eq!(graph.nodes[0].inputs, ["x", "w"]);
        let weight = &graph.initializers[0];
        assert_eq!((weight.name.as_str(), weight.dims.as_slice()), ("w", &[2i64, 2][..]));
        assert_eq!(weight.element_type, Some(WeightType::F32));
        let TensorData::Inline(range) = &weight.data else { panic!("inline data expected") };
        assert_eq!(&model[range.clone()], raw.as_slice());
    }

    #[test]
    fn an_initializer_can_grow() {
        let (model, _) = model_with_weight(&[1.0, 2.0, 3.0, 4.0]);
        let raw: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let grown = replace_initializer(&model, "w", &[3, 2], &raw).unwrap();
        let graph = parse(&grown).unwrap();
        assert_eq!(graph.nodes[0].name, "/layer/MatMul");
        let weight = &graph.initializers[0];
        assert_eq!((weight.name.as_str(), weight.dims.as_slice()), ("w", &[3i64, 2][..]));
        let TensorData::Inline(range) = &weight.data else { panic!("inline data expected") };
        assert_eq!(&grown[range.clone()], raw.as_slice());
        assert!(replace_initializer(&model, "missing", &[1], &raw[..4]).is_err());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let (model, _) = model_with_weight(&[1.0, 2.0, 3.0, 4.0]);
        for end in 0..model.len() {
            assert!(parse(&model[..end]).is_err(), "a file cut at {end} bytes was accepted");
        }
    }
}
