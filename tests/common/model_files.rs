//! Building test inputs byte by byte: small `.safetensors` files, and an ONNX model with its
//! weights moved to an external data file (as exports over 2 GB, like SDXL's UNet, have them).

use std::path::Path;

/// A `.safetensors` file with f32 tensors of the given shapes (small deterministic values).
pub fn safetensors_file(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape) in tensors {
        let count: usize = shape.iter().product();
        let start = data.len();
        for i in 0..count {
            data.extend_from_slice(&(((i % 7) as f32 - 3.0) * 0.01).to_le_bytes());
        }
        header.insert(
            name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    [(header.len() as u64).to_le_bytes().as_slice(), header.as_bytes(), &data].concat()
}

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

fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// A protobuf field: number, wire type, the whole field's bytes, the payload range (wire type 2).
type Field = (u64, u64, Vec<u8>, Option<std::ops::Range<usize>>);

fn fields(bytes: &[u8]) -> Vec<Field> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = read_varint(bytes, &mut at);
        let payload = match key & 7 {
            0 => {
                read_varint(bytes, &mut at);
                None
            }
            1 => {
                at += 8;
                None
            }
            5 => {
                at += 4;
                None
            }
            2 => {
                let len = read_varint(bytes, &mut at) as usize;
                at += len;
                Some(at - len..at)
            }
            other => panic!("wire type {other}"),
        };
        out.push((key >> 3, key & 7, bytes[start..at].to_vec(), payload));
    }
    out
}

fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn entry(key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(1, key.as_bytes(), &mut out);
    bytes_field(2, value.as_bytes(), &mut out);
    out
}

/// The model with every initializer's `raw_data` of 64 bytes or more moved to
/// `folder/location`, referenced by offset and length.
pub fn externalize_weights(model: &[u8], location: &str, folder: &Path) -> Vec<u8> {
    let mut external = Vec::new();
    let mut out = Vec::new();
    for (number, _, whole, payload) in fields(model) {
        if number != 7 {
            out.extend_from_slice(&whole);
            continue;
        }
        let graph = &model[payload.unwrap()];
        let mut new_graph = Vec::new();
        for (number, _, whole, payload) in fields(graph) {
            if number != 5 {
                new_graph.extend_from_slice(&whole);
                continue;
            }
            let tensor = &graph[payload.unwrap()];
            let mut new_tensor = Vec::new();
            let mut moved = false;
            for (number, _, whole, payload) in fields(tensor) {
                match (number, payload) {
                    (9, Some(range)) if range.len() >= 64 => {
                        let offset = external.len();
                        external.extend_from_slice(&tensor[range.clone()]);
                        bytes_field(13, &entry("location", location), &mut new_tensor);
                        bytes_field(13, &entry("offset", &offset.to_string()), &mut new_tensor);
                        bytes_field(13, &entry("length", &range.len().to_string()), &mut new_tensor);
                        moved = true;
                    }
                    _ => new_tensor.extend_from_slice(&whole),
                }
            }
            if moved {
                varint(14 << 3, &mut new_tensor);
                varint(1, &mut new_tensor);
            }
            bytes_field(5, &new_tensor, &mut new_graph);
        }
        bytes_field(7, &new_graph, &mut out);
    }
    std::fs::write(folder.join(location), external).unwrap();
    out
}
