//! LoRA and textual-inversion files as they arrive (.safetensors).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sdrt::lora::Lora::from_memory("fuzz", data);
    let _ = sdrt::embeddings::Embedding::from_memory("fuzz", data, None);
});
