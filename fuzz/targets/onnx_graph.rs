//! ONNX graphs: sdrt's reader, its external-data check and its attention rewrite.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sdrt::fuzzing::onnx_graph(data));
