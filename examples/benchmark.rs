//! Where generation time goes: total time against the time inside ONNX Runtime, measured in
//! the same runs, so sdrt's own overhead (tokenizer, scheduler, guidance, copies, image
//! conversion) shows as a ratio. Then the thread settings an embedding host chooses between:
//! the process's shared pool against pools of each graph's own, for one pipeline and for two
//! generating at the same time, as ratios against the shared pool.
//!
//! `cargo run --release --example benchmark -- [MODEL_DIR] [STEPS] [REPEATS]`
//! (default: the embedded model, 20 steps, 5 repeats; sizes 64x64 and 256x256).

use std::time::{Duration, Instant};

use sdrt::{GenerateParams, LoadOptions, Pipeline, RuntimeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: u32 = args.get(1).map_or(Ok(20), |s| s.parse())?;
    let repeats: u32 = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let model = args.first().filter(|a| a.as_str() != "-").cloned();
    let mut pipeline = load(model.as_deref(), 1)?;
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
    threads(model.as_deref(), steps, repeats)
}

fn load(model: Option<&str>, intra_op_threads: usize) -> Result<Pipeline, sdrt::Error> {
    let options = LoadOptions {
        runtime: RuntimeOptions { intra_op_threads, ..RuntimeOptions::default() },
        ..LoadOptions::default()
    };
    match model {
        Some(dir) => Pipeline::load_dir(dir, &options),
        None => Pipeline::load_embedded(&options),
    }
}

/// Images per second of one pipeline, and of two pipelines generating on two host threads at
/// once, with the graphs on the shared pool (`intra_op_threads` 0) or on pools of their own.
fn threads(model: Option<&str>, steps: u32, repeats: u32) -> Result<(), Box<dyn std::error::Error>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let params = GenerateParams {
        prompt: "a red circle on a blue background".into(),
        width: Some(128),
        height: Some(128),
        steps,
        ..GenerateParams::default()
    };
    // Images per second of `pipelines` generating `repeats` images each, all at once.
    let throughput = |pipelines: &mut [Pipeline]| -> Result<f64, sdrt::Error> {
        for pipeline in pipelines.iter_mut() {
            pipeline.generate(&params, &mut |_| true)?; // warm-up
        }
        let started = Instant::now();
        std::thread::scope(|scope| {
            let runs: Vec<_> = pipelines
                .iter_mut()
                .map(|pipeline| {
                    scope.spawn(|| (0..repeats).try_for_each(|_| pipeline.generate(&params, &mut |_| true).map(drop)))
                })
                .collect();
            runs.into_iter().try_for_each(|run| run.join().expect("a generation panicked"))
        })?;
        Ok((pipelines.len() as u32 * repeats) as f64 / started.elapsed().as_secs_f64())
    };
    println!("\nthreads: 128x128, {steps} steps, {repeats} images per pipeline, {cores} cores; images/s (ratio to the shared pool)");
    println!("{:>28} {:>16} {:>22}", "graphs run on", "one pipeline", "two pipelines at once");
    let mut baseline = None;
    for (label, intra_op_threads) in
        [("the shared pool".to_string(), 0), (format!("own pools of {cores}"), cores), ("own pools of 1".into(), 1)]
    {
        let one = throughput(&mut [load(model, intra_op_threads)?])?;
        let two = throughput(&mut [load(model, intra_op_threads)?, load(model, intra_op_threads)?])?;
        let (base_one, base_two) = *baseline.get_or_insert((one, two));
        println!("{label:>28} {one:>9.2} ({:.2}) {two:>15.2} ({:.2})", one / base_one, two / base_two);
    }
    Ok(())
}
