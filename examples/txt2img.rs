//! The Rust API in a few lines: `cargo run --release --example txt2img -- "a prompt" [MODEL_DIR]`
//! Writes txt2img-rust.png. Without MODEL_DIR it uses the default model compiled into sdrt.

use sdrt::{GenerateParams, LoadOptions, Pipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_else(|| "a red circle on a blue background".to_string());
    let options = LoadOptions::default();
    let mut pipeline = match args.next() {
        Some(dir) => Pipeline::load_dir(dir, &options)?,
        None => Pipeline::load_embedded(&options)?,
    };
    // The steps and guidance scale the model's family runs with (4 and 8.5 for an LCM, ...).
    let params = GenerateParams { prompt, ..pipeline.recommended_params() };
    let image = pipeline.generate(&params, &mut |p| {
        eprint!("\rstep {}/{}", p.step, p.total_steps);
        true
    })?;
    eprintln!();
    image.save_png("txt2img-rust.png".as_ref())?;
    println!("wrote txt2img-rust.png ({}x{})", image.width(), image.height());
    Ok(())
}
