//! Prompts (AUTOMATIC1111's syntax: weights, brackets, BREAK, escapes) through CLIP's real
//! tokenizer, as a generation reads them.
#![no_main]
use std::sync::OnceLock;

fn tokenizer() -> &'static sdrt::tokenizer::ClipTokenizer {
    static TOKENIZER: OnceLock<sdrt::tokenizer::ClipTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd15/diffusers/tokenizer");
        sdrt::tokenizer::ClipTokenizer::from_dir(&dir).expect("the test model's tokenizer")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(prompt) = std::str::from_utf8(data) else { return };
    let _ = sdrt::tokenizer::emphasis::parse(prompt);
    for syntax in [sdrt::PromptSyntax::Weighted, sdrt::PromptSyntax::Plain] {
        let _ = tokenizer().chunks(prompt, syntax);
    }
});
