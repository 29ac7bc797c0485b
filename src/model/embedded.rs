//! The default model, compiled into the library so that a prompt alone makes an image.
//!
//! It is the tiny Stable Diffusion 1.x trained from nothing by scripts/default_model/train.py
//! (coloured shapes on coloured backgrounds, 64x64; src/model/default/training.json records
//! how). Build without the `embedded-model` feature to leave it out (loading the default model
//! then fails with a clear error).

/// Each file of the default model with its path relative to the model root.
#[cfg(feature = "embedded-model")]
pub(crate) fn files() -> &'static [(&'static str, &'static [u8])] {
    macro_rules! model_files {
        ($($name:literal),* $(,)?) => {
            &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/model/default/", $name)) as &[u8])),*]
        };
    }
    model_files!(
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "text_encoder/config.json",
        "text_encoder/model.onnx",
        "unet/config.json",
        "unet/model.onnx",
        "vae_decoder/config.json",
        "vae_decoder/model.onnx",
        "vae_encoder/config.json",
        "vae_encoder/model.onnx",
    )
}

#[cfg(not(feature = "embedded-model"))]
pub(crate) fn files() -> &'static [(&'static str, &'static [u8])] {
    &[]
}
