//! A tokenizer folder: vocab.json, merges.txt and tokenizer_config.json from one input (split
//! at NUL bytes), then a prompt through whatever loaded.
#![no_main]
use std::path::PathBuf;

struct Files<'a>(Vec<&'a [u8]>);

impl sdrt::tokenizer::TokenizerFiles for Files<'_> {
    fn read(&self, name: &str) -> sdrt::Result<Option<Vec<u8>>> {
        let index = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]
            .iter()
            .position(|n| *n == name);
        Ok(index.and_then(|i| self.0.get(i)).map(|bytes| bytes.to_vec()))
    }

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(name)
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if let Ok(tokenizer) = sdrt::tokenizer::ClipTokenizer::from_files(&Files(parts.clone())) {
        let prompt = String::from_utf8_lossy(parts.last().unwrap_or(&&[][..]));
        let _ = tokenizer.encode(&prompt);
        let _ = tokenizer.chunks(&prompt, sdrt::PromptSyntax::Weighted);
    }
});
