//! CLIP tokenizer parity with transformers' slow `CLIPTokenizer` (+ ftfy), on the reference
//! ids in tests/fixtures/reference/tokenizer.json (made by scripts/fixtures/tokenizer_refs.py),
//! plus loading and error paths on small hand-made tokenizer directories.
//!
//! Fixtures are found under `$SDRT_FIXTURES` when set, else `<crate>/tests/fixtures`.

use std::path::{Path, PathBuf};

use sdrt::error::Error;
use sdrt::tokenizer::{cleanup, ClipTokenizer};
use serde_json::{json, Value};

const DIRS: [&str; 3] = ["clip", "clip-json", "clip-pad-bang"];

fn fixtures() -> PathBuf {
    match std::env::var_os("SDRT_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures"),
    }
}

fn reference() -> Value {
    let path = fixtures().join("reference").join("tokenizer.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

fn load(name: &str) -> ClipTokenizer {
    let dir = fixtures().join("tokenizers").join(name);
    ClipTokenizer::from_dir(&dir).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ids_of(value: &Value) -> Vec<i64> {
    value.as_array().expect("id list").iter().map(|v| v.as_i64().expect("id")).collect()
}

#[test]
fn ids_match_the_reference_for_every_prompt_and_directory() {
    let reference = reference();
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40, "only {} reference prompts", cases.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in DIRS {
        let tokenizer = load(name);
        for case in cases {
            let prompt = case["prompt"].as_str().expect("prompt");
            let expected = ids_of(&case["ids"][name]);
            let actual = tokenizer.encode(prompt);
            if actual != expected {
                failures.push(format!("[{name}] {prompt:?}\n  expected {expected:?}\n  actual   {actual:?}"));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {checked} differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn special_ids_and_length_match_the_reference() {
    let reference = reference();
    for name in DIRS {
        let tokenizer = load(name);
        let expected = &reference["tokenizers"][name];
        assert_eq!(tokenizer.bos_id(), expected["bos"].as_i64().unwrap(), "{name} bos");
        assert_eq!(tokenizer.eos_id(), expected["eos"].as_i64().unwrap(), "{name} eos");
        assert_eq!(tokenizer.pad_id(), expected["pad"].as_i64().unwrap(), "{name} pad");
        assert_eq!(tokenizer.max_length(), reference["max_length"].as_u64().unwrap() as usize);
    }
    assert_eq!(load("clip-pad-bang").pad_id(), 0, "SD2's pad token is \"!\"");
}

#[test]
fn cleanup_matches_ftfy() {
    let reference = reference();
    for case in reference["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(cleanup::clip_clean(prompt), case["clean"].as_str().unwrap(), "cleaning {prompt:?}");
    }
}

#[test]
fn html_references_decode_like_ftfy() {
    let reference = reference();
    let probes = reference["fix_text"].as_object().expect("fix_text probes");
    assert!(probes.len() > 3000, "expected every HTML entity ftfy knows");
    let bad: Vec<String> = probes
        .iter()
        .filter(|(input, expected)| cleanup::fix_text(input) != expected.as_str().unwrap())
        .map(|(input, expected)| format!("{input:?}: expected {expected:?}, got {:?}", cleanup::fix_text(input)))
        .collect();
    assert!(bad.is_empty(), "{} of {} differ:\n{}", bad.len(), probes.len(), bad.join("\n"));
}

#[test]
fn token_ids_are_the_untruncated_body_of_encode() {
    let tokenizer = load("clip");
    let prompt = "cat, ".repeat(80);
    let all = tokenizer.token_ids(&prompt);
    assert_eq!(all.len(), 160);
    let encoded = tokenizer.encode(&prompt);
    assert_eq!(encoded.len(), 77);
    assert_eq!(&encoded[1..76], &all[..75]);
    assert_eq!(encoded[76], tokenizer.eos_id());
}

#[test]
fn no_panic_on_strange_or_huge_input() {
    let tokenizer = load("clip-pad-bang");
    let mut inputs: Vec<String> = vec![
        String::new(),
        "\u{0}\u{1}\u{7f}\u{80}\u{9f}\u{fffd}\u{fffe}\u{ffff}\u{10ffff}".into(),
        "\u{301}\u{301}\u{301}".into(),
        "&".repeat(1000) + ";#&#x;&#99999999999999999999999999;",
        "<|endoftext|>".repeat(200),
        "\x1b[".repeat(500),
        "\u{fdfa}\u{1f469}\u{200d}\u{1f469}\u{200d}\u{1f467}".repeat(50),
        "a".repeat(200_000),
        "word ".repeat(100_000),
    ];
    // Nested escapes need one ftfy round per level; the round count is capped.
    inputs.push("&".to_string() + &"amp;".repeat(5_000));
    inputs.push((0..0x3000u32).filter_map(char::from_u32).collect());
    for input in &inputs {
        let ids = tokenizer.encode(input);
        assert_eq!(ids.len(), 77);
        assert_eq!(ids[0], tokenizer.bos_id());
    }
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ClipTokenizer>();
}

// ---- small hand-made tokenizer directories: loading paths and errors ----

/// A fresh empty directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdrt-tokenizer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), contents).unwrap();
}

/// A toy vocabulary: byte-level letters a-d, "ab" merges, the two special tokens.
fn toy_vocab() -> Value {
    json!({"a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "ab": 5, "ab</w>": 6,
           "<|startoftext|>": 7, "<|endoftext|>": 8, "!": 9, "!</w>": 10})
}

fn invalid_model_path(result: Result<ClipTokenizer, Error>) -> PathBuf {
    match result {
        Err(Error::InvalidModel { path, .. }) => path,
        Err(e) => panic!("expected InvalidModel, got {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn merges_txt_is_read_like_the_slow_tokenizer() {
    let dir = scratch_dir("txt");
    write(&dir, "vocab.json", toy_vocab().to_string());
    // CRLF line ends, a header line that is always skipped, a line that is not a merge.
    write(&dir, "merges.txt", "#version: 0.2\r\nnot a merge\r\na b</w>\r\na b\r\n");
    write(&dir, "tokenizer_config.json", json!({"model_max_length": 6}).to_string());
    let tokenizer = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tokenizer.max_length(), 6);
    // "ab" -> a b</w> -> ab</w>; "aab" -> a a b</w> -> a ab</w>; "c" -> unk (<|endoftext|>)
    assert_eq!(tokenizer.encode("AB aab"), vec![7, 6, 0, 6, 8, 8]);
    assert_eq!(tokenizer.encode("c!"), vec![7, 8, 10, 8, 8, 8]);
    // Truncated to max_length - 2 ids.
    assert_eq!(tokenizer.encode("ab ab ab ab ab"), vec![7, 6, 6, 6, 6, 8]);
}

#[test]
fn tokenizer_json_with_string_merges_and_added_tokens() {
    let dir = scratch_dir("json");
    let tokenizer_json = json!({
        "added_tokens": [{"id": 11, "content": "<new>", "lstrip": false, "rstrip": false}],
        "model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": toy_vocab(),
                  "merges": ["a b", "a b</w>"]},
    });
    write(&dir, "tokenizer.json", tokenizer_json.to_string());
    // Legacy layout: special_tokens_map.json overrides the config; AddedToken objects.
    write(&dir, "tokenizer_config.json", json!({"pad_token": "<|endoftext|>", "model_max_length": 8}).to_string());
    write(&dir, "special_tokens_map.json", json!({"pad_token": {"content": "!", "lstrip": false}}).to_string());
    let tokenizer = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tokenizer.pad_id(), 9);
    // "ab" -> a b</w>: only "a b</w>" applies -> ab</w>. "!" is a special token (pad).
    assert_eq!(tokenizer.encode("ab<new>AB!"), vec![7, 6, 11, 6, 9, 8, 9, 9]);
}

#[test]
fn model_max_length_sentinel_falls_back_to_77() {
    let dir = scratch_dir("sentinel");
    write(&dir, "vocab.json", toy_vocab().to_string());
    write(&dir, "merges.txt", "#version: 0.2\na b\n");
    write(&dir, "tokenizer_config.json", r#"{"model_max_length": 1000000000000000019884624838656}"#);
    assert_eq!(ClipTokenizer::from_dir(&dir).unwrap().max_length(), 77);
    write(&dir, "tokenizer_config.json", r#"{"model_max_length": 2}"#);
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("tokenizer_config.json"));
}

#[test]
fn missing_directory_or_files_are_invalid_model_errors() {
    let dir = scratch_dir("missing");
    let absent = dir.join("nope");
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&absent)), absent);
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("vocab.json"));
    write(&dir, "vocab.json", toy_vocab().to_string());
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("merges.txt"));
}

#[test]
fn corrupt_files_are_invalid_model_errors_naming_the_file() {
    let dir = scratch_dir("corrupt");
    write(&dir, "merges.txt", "#version: 0.2\na b\n");
    for bad_vocab in ["{not json", "[1, 2]", r#"{"a": "zero"}"#, r#"{"a": -1}"#, "{}"] {
        write(&dir, "vocab.json", bad_vocab);
        assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("vocab.json"), "{bad_vocab}");
    }
    write(&dir, "vocab.json", toy_vocab().to_string());
    write(&dir, "merges.txt", b"#version\n\xff\xfe b\n");
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("merges.txt"));

    write(&dir, "merges.txt", "#version: 0.2\na b\n");
    write(&dir, "tokenizer_config.json", "{\"pad_token\": ");
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("tokenizer_config.json"));
    write(&dir, "tokenizer_config.json", json!({"pad_token": "<pad>"}).to_string());
    assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("tokenizer_config.json"));
}

#[test]
fn corrupt_tokenizer_json_is_an_invalid_model_error() {
    let dir = scratch_dir("corrupt-json");
    let not_clip = json!({"model": {"type": "BPE", "vocab": toy_vocab(), "merges": []}});
    let bad_merge = json!({"model": {"type": "BPE", "end_of_word_suffix": "</w>", "vocab": toy_vocab(),
                                     "merges": ["a b c"]}});
    for bad in ["{", "{}", &not_clip.to_string(), &bad_merge.to_string()] {
        write(&dir, "tokenizer.json", bad);
        assert_eq!(invalid_model_path(ClipTokenizer::from_dir(&dir)), dir.join("tokenizer.json"), "{bad}");
    }
}
