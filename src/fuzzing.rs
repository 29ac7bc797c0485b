//! Entry points for the fuzz targets in `fuzz/` into parsers that are not public API: each
//! takes untrusted bytes and must return (any result), never panic, hang or exhaust memory.
//! Not part of sdrt's interface.

/// Everything sdrt reads from an ONNX graph before ONNX Runtime sees it: the graph itself,
/// its external data references, the UNet's downsamplers and the attention rewrite.
pub fn onnx_graph(bytes: &[u8]) {
    let _ = crate::model::onnx_file::parse(bytes);
    let _ = crate::model::onnx_file::external_data_locations(bytes);
    let _ = crate::model::onnx_file::stride_2_convolutions(bytes);
    if let Ok(Some(fused)) = crate::model::attention_fusion::fuse_attention(bytes) {
        // What the rewrite writes must read back.
        crate::model::onnx_file::parse(&fused.bytes).expect("a fused graph that does not parse");
    }
}
