//! The optimised-model cache (`LoadOptions::optimized_model_cache`): the first load writes
//! each graph as ONNX Runtime optimised it, the next loads read that copy and give the same
//! image; a damaged copy or a changed model is loaded from the export again, never a failure.

mod common;

use std::path::Path;

use common::{copy_dir, load_options, tiny_model, CapturedLog, TempDir};
use sdrt::log::Level;
use sdrt::{GenerateParams, LoadOptions, Pipeline};

struct Run {
    image: Vec<u8>,
    log: String,
}

fn run(model: &Path, cache: Option<&Path>, log: &CapturedLog) -> Run {
    log.take();
    let options = LoadOptions { optimized_model_cache: cache.map(Path::to_path_buf), ..load_options() };
    let mut pipeline = Pipeline::load_dir(model, &options).unwrap();
    let params = GenerateParams {
        prompt: "a red circle on a blue background".into(),
        width: Some(64),
        height: Some(64),
        steps: 3,
        seed: 11,
        ..GenerateParams::default()
    };
    let image = pipeline.generate(&params, &mut |_| true).unwrap().pixels().to_vec();
    Run { image, log: log.take() }
}

fn cached_graphs(log: &str) -> usize {
    log.lines().filter(|line| line.contains("loaded its optimised copy")).count()
}

#[test]
fn a_cached_model_loads_from_its_optimised_copy_and_draws_the_same_image() {
    let log = CapturedLog::start(Level::Info);

    let scratch = TempDir::new("model-cache");
    let model = scratch.0.join("model");
    copy_dir(&tiny_model("diffusers"), &model);
    let cache = scratch.0.join("cache");

    let uncached = run(&model, None, &log);
    let first = run(&model, Some(&cache), &log);
    assert_eq!(cached_graphs(&first.log), 0, "{}", first.log);
    let entries = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(entries, 3, "text encoder, UNet and VAE decoder each get an entry");

    let second = run(&model, Some(&cache), &log);
    assert_eq!(cached_graphs(&second.log), 3, "{}", second.log);
    assert_eq!(first.image, uncached.image, "writing the cache changed the image");
    assert_eq!(second.image, uncached.image, "the cached graphs draw another image");

    // A damaged copy: a warning, the export, and a good copy again for the next load.
    let unet_entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("unet-"))
        .unwrap();
    std::fs::write(unet_entry.join("model.onnx"), b"not a graph").unwrap();
    let damaged = run(&model, Some(&cache), &log);
    assert!(damaged.log.contains("did not load"), "{}", damaged.log);
    assert_eq!(cached_graphs(&damaged.log), 2, "{}", damaged.log);
    assert_eq!(damaged.image, uncached.image);
    assert_eq!(cached_graphs(&run(&model, Some(&cache), &log).log), 3, "the damaged copy was not replaced");

    // A changed file in the UNet's folder: its copy is stale and made again, in the same entry.
    let unet_graph = model.join("unet/model.onnx");
    let bytes = std::fs::read(&unet_graph).unwrap();
    std::fs::write(&unet_graph, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&unet_graph).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let changed = run(&model, Some(&cache), &log);
    assert_eq!(cached_graphs(&changed.log), 2, "a changed UNet was read from its old copy:\n{}", changed.log);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 3, "the stale copy was not replaced");

    // A cache folder that cannot be made: a warning, and the load goes on.
    let blocked = scratch.0.join("blocked");
    std::fs::write(&blocked, b"a file, not a folder").unwrap();
    let unwritable = run(&model, Some(&blocked), &log);
    assert!(unwritable.log.contains("not cached"), "{}", unwritable.log);
    assert_eq!(unwritable.image, uncached.image);
}
