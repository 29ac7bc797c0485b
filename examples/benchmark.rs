//! Where generation time goes: total time against the time inside ONNX Runtime, measured in
//! the same runs, so sdrt's own overhead (tokenizer, scheduler, guidance, copies, image
//! conversion) shows as a ratio.
//!
//! `cargo run --release --example benchmark -- [MODEL_DIR] [STEPS] [REPEATS]`
//! (default: the embedded model, 20 steps, 5 repeats; sizes 64x64 and 256x256).

use std::time::Duration;

use sdrt::{GenerateParams, LoadOptions, Pipeline, RuntimeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: u32 = args.get(1).map_or(Ok(20), |s| s.parse())?;
    let repeats: u32 = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let options = LoadOptions {
        runtime: RuntimeOptions { intra_op_threads: 1, ..RuntimeOptions::default() },
        ..LoadOptions::default()
    };
    let mut pipeline = match args.first().filter(|a| a.as_str() != "-") {
        Some(dir) => Pipeline::load_dir(dir, &options)?,
        None => Pipeline::load_embedded(&options)?,
    };
    println!("steps {steps}, repeats {repeats}, 1 intra-op thread, guidance 7.5 (batched CFG)");
    println!("{:>9} {:>12} {:>12} {:>12} {:>10}", "size", "total ms", "in ORT ms", "sdrt ms", "sdrt/total");
    for side in [64u32, 256] {
        let params = GenerateParams {
            prompt: "a red circle on a blue background".into(),
            width: Some(side),
            height: Some(side),
            steps,
            ..GenerateParams::default()
        };
        pipeline.generate(&params, &mut |_| true)?; // warm-up: first-run allocations in ORT
        let (mut total, mut in_ort) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..repeats {
            pipeline.generate(&params, &mut |_| true)?;
            let timings = pipeline.last_timings();
            total += timings.total;
            in_ort += timings.onnx_runtime();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / repeats as f64;
        let own = total.saturating_sub(in_ort);
        println!(
            "{:>9} {:>12.2} {:>12.2} {:>12.3} {:>9.2}%",
            format!("{side}x{side}"),
            ms(total),
            ms(in_ort),
            ms(own),
            100.0 * own.as_secs_f64() / total.as_secs_f64()
        );
    }
    Ok(())
}
