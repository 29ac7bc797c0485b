//! Attention fused into ONNX Runtime's MultiHeadAttention at load (graph optimization level
//! 3, the default) gives the image the graphs as exported give (level 2), and the UNet and
//! both VAE graphs of the test model are really fused. The parity tests run fused too.

mod common;

use common::{load_options, max_abs_diff, tiny_model, CapturedLog};
use sdrt::log::Level;
use sdrt::{GenerateParams, Pipeline, RuntimeOptions};

fn image(level: u8) -> Vec<f32> {
    let base = load_options();
    let options = sdrt::LoadOptions {
        runtime: RuntimeOptions { graph_optimization_level: level, ..base.runtime.clone() },
        ..base
    };
    let mut pipeline = Pipeline::load_dir(tiny_model("diffusers"), &options).unwrap();
    let init = sdrt::Image::load(&common::fixtures().join("images/init_96x160.png")).unwrap();
    // 160x96: latents of 20x12: 240 tokens in the UNet's and the VAE's attention.
    let params = GenerateParams {
        prompt: "a red circle on a blue background".into(),
        width: Some(160),
        height: Some(96),
        steps: 4,
        seed: 7,
        init_image: Some(init),
        strength: 0.9,
        ..GenerateParams::default()
    };
    pipeline.generate_float(&params, &mut |_| true).unwrap().data
}

#[test]
fn fused_attention_gives_the_exported_graphs_image() {
    let log = CapturedLog::start(Level::Info);

    let exported = image(2);
    assert!(!log.take().contains("attention blocks fused"), "level 2 fuses nothing");
    let fused = image(3);
    let messages = log.take();
    for graph in
        ["unet/model.onnx: 8 attention", "vae_decoder/model.onnx: 1 attention", "vae_encoder/model.onnx: 1 attention"]
    {
        assert!(messages.contains(graph), "{graph} not fused:\n{messages}");
    }
    let difference = max_abs_diff(&exported, &fused);
    assert!(difference < 2e-4, "fused attention changed the image by {difference}");
}
