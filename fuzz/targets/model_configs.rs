//! A model folder's JSON: model_index.json, the scheduler's, the UNet's and the VAE's configs
//! (one input split at NUL bytes), read as a model from memory whose graphs are placeholders.
#![no_main]
use std::sync::Arc;

use sdrt::model::{MemoryFiles, ModelInfo, ModelSource};

const CONFIGS: [&str; 4] =
    ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae_decoder/config.json"];
const PLACEHOLDERS: [&str; 6] = [
    "text_encoder/model.onnx",
    "text_encoder_2/model.onnx",
    "tokenizer/vocab.json",
    "tokenizer_2/vocab.json",
    "unet/model.onnx",
    "vae_decoder/model.onnx",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let parts = data.split(|&b| b == 0);
    let configs = CONFIGS.iter().zip(parts).map(|(name, bytes)| (name.to_string(), Arc::<[u8]>::from(bytes)));
    let placeholders = PLACEHOLDERS.iter().map(|name| (name.to_string(), Arc::<[u8]>::from(&b""[..])));
    let Ok(files) = MemoryFiles::new(configs.chain(placeholders)) else { return };
    if let Ok(info) = ModelInfo::read(ModelSource::Memory(Arc::new(files))) {
        let _ = info.recommended_settings();
    }
});
