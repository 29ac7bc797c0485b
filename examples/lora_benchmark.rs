//! What LoRAs cost: a plain model load as the baseline, then reading a LoRA file, applying it
//! (merge and reload of the graphs it changes), the same set again, another strength and back
//! to none, each as a ratio to the plain load; and resident memory before and after, to show
//! the merged model is not kept twice.
//!
//! `cargo run --release --example lora_benchmark -- MODEL_DIR LORA_FILE`
//! (scripts/bench/make_sd15_shaped.py makes an SD 1.5-sized model and LoRA for it).

use std::time::{Duration, Instant};

use sdrt::lora::{Lora, LoraSet};
use sdrt::{GenerateParams, LoadOptions, Pipeline};

/// Resident and peak resident memory of this process, in MB (Linux; 0 elsewhere).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn timed<T>(work: impl FnOnce() -> sdrt::Result<T>) -> sdrt::Result<(T, Duration)> {
    let started = Instant::now();
    let value = work()?;
    Ok((value, started.elapsed()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, lora_file] = args.as_slice() else {
        return Err("usage: lora_benchmark MODEL_DIR LORA_FILE".into());
    };
    let (mut pipeline, load) = timed(|| Pipeline::load_dir(model, &LoadOptions::default()))?;
    let params = GenerateParams {
        prompt: "a red circle on a blue background".into(),
        width: Some(64),
        height: Some(64),
        steps: 1,
        ..GenerateParams::default()
    };
    let (base, _) = timed(|| pipeline.generate(&params, &mut |_| true))?;
    let (_, generate) = timed(|| pipeline.generate(&params, &mut |_| true))?;
    let loaded_memory = memory_mb();
    let (lora, read) = timed(|| Lora::load(lora_file))?;

    // Each switch: the generation that first uses a set, less a generation without a change.
    let mut switch = |set: LoraSet| -> sdrt::Result<(sdrt::Image, Duration)> {
        let with = GenerateParams { loras: set, ..params.clone() };
        let (image, took) = timed(|| pipeline.generate(&with, &mut |_| true))?;
        Ok((image, took.saturating_sub(generate)))
    };
    let (_, apply) = switch(LoraSet::new(vec![(lora.clone(), 1.0)])?)?;
    let merged_memory = memory_mb();
    let (_, again) = switch(LoraSet::new(vec![(lora.clone(), 1.0)])?)?;
    let (_, strength) = switch(LoraSet::new(vec![(lora.clone(), 0.5)])?)?;
    let (back, none) = switch(LoraSet::default())?;
    assert_eq!(back.pixels(), base.pixels(), "no LoRA must give the base model's pixels");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = |d: Duration| ms(d) / ms(load);
    println!("model {model}\nLoRA  {lora_file}\n");
    println!("{:<44} {:>10} {:>14}", "", "ms", "x plain load");
    for (what, took) in [
        ("plain model load (baseline)", load),
        ("read the LoRA file", read),
        ("apply it (first time: index + merge + reload)", apply),
        ("the same set again", again),
        ("another strength (merge + reload)", strength),
        ("back to no LoRA (reload)", none),
        ("one 1-step 64x64 generation, for scale", generate),
    ] {
        println!("{what:<44} {:>10.0} {:>14.2}", ms(took), ratio(took));
    }
    println!(
        "\nresident memory: {:.0} MB loaded, {:.0} MB with the LoRA merged (peak {:.0} MB)",
        loaded_memory.0, merged_memory.0, merged_memory.1
    );
    println!("back to no LoRA: pixels equal the base model's");
    Ok(())
}
