//! Reading a `tokenizer/` directory the way transformers' `CLIPTokenizer.from_pretrained`
//! does: `vocab.json` + `merges.txt` (or a `tokenizer.json`), `tokenizer_config.json`,
//! `special_tokens_map.json`, `added_tokens.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::cleanup::is_python_space;
use crate::error::{Error, Result};

/// The slow tokenizer reads at most this many merges from `merges.txt` (CLIP's
/// `49152 - 256 - 2`): the ones its 49,408-token vocabulary was built from.
const MAX_TXT_MERGES: usize = 49152 - 256 - 2;
const DEFAULT_MAX_LENGTH: usize = 77;
/// A `model_max_length` above this is transformers' "no limit" sentinel (1e30), not a length.
const MAX_SANE_LENGTH: u64 = 1 << 20;

pub(crate) struct Files {
    pub vocab: HashMap<String, i64>,
    /// (rank, left, right)
    pub merges: Vec<(usize, String, String)>,
    /// Tokens with ids of their own: cut out of the text before any cleanup. Only their text
    /// matters: an AddedToken's lstrip/rstrip would trim whitespace next to it, which CLIP's
    /// cleanup trims from every piece anyway.
    pub added: Vec<(i64, String)>,
    pub bos: String,
    pub eos: String,
    pub unk: String,
    pub pad: String,
    pub additional_special: Vec<String>,
    pub max_length: usize,
}

/// Where a tokenizer's files come from: a directory on disk, or any other store (such as
/// the model compiled into the library).
pub trait TokenizerFiles {
    /// The bytes of `name` (e.g. `vocab.json`), or None when there is no such file.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// The path that names `name` in messages.
    fn path(&self, name: &str) -> PathBuf;
}

impl TokenizerFiles for PathBuf {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        crate::files::read_limited(&self.join(name), crate::files::MAX_TEXT_FILE_BYTES)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.join(name)
    }
}

pub(crate) fn read_files(source: &dyn TokenizerFiles) -> Result<Files> {
    let vocab_path = source.path("vocab.json");
    let merges_path = source.path("merges.txt");
    let json_path = source.path("tokenizer.json");
    let config_path = config_path(source);
    let vocab_bytes = source.read("vocab.json")?;
    let merges_bytes = source.read("merges.txt")?;
    let mut config = read_optional_object(source, "tokenizer_config.json")?;
    let legacy = !config.contains_key("added_tokens_decoder");
    // tokenizer.json is big: parse it only when it is needed.
    let tokenizer_json = match (&vocab_bytes, &merges_bytes) {
        (Some(_), Some(_)) if !legacy => None,
        _ => source.read("tokenizer.json")?.map(|bytes| parse_json(&json_path, &bytes)).transpose()?,
    };
    let (vocab, merges) = match (&vocab_bytes, &merges_bytes, &tokenizer_json) {
        (Some(vocab), Some(merges), _) => (read_vocab(&vocab_path, vocab)?, read_merges_txt(&merges_path, merges)?),
        (_, _, Some(json)) => read_tokenizer_json(&json_path, json)?,
        _ => {
            let missing = if vocab_bytes.is_some() { &merges_path } else { &vocab_path };
            return Err(Error::invalid_model(
                missing,
                "missing: a CLIP tokenizer needs vocab.json + merges.txt, or tokenizer.json",
            ));
        }
    };

    if merges.is_empty() {
        // A BPE without merges cuts every word into single bytes: no CLIP tokenizer.
        let path = if vocab_bytes.is_some() && merges_bytes.is_some() { &merges_path } else { &json_path };
        return Err(Error::invalid_model(path, "no merges: a CLIP tokenizer has thousands"));
    }

    // Read (and so checked) even when the config makes it unused.
    let special_tokens_map = read_optional_object(source, "special_tokens_map.json")?;
    let mut added = Vec::new();
    if let Some(decoder) = config.get("added_tokens_decoder") {
        added = read_added_tokens_decoder(&config_path, decoder)?;
    } else {
        // transformers' legacy path: special_tokens_map.json overrides the config, and the
        // added tokens come from added_tokens.json and tokenizer.json.
        config.extend(special_tokens_map);
        let added_path = source.path("added_tokens.json");
        for (content, id) in read_optional_object(source, "added_tokens.json")? {
            let id = id
                .as_i64()
                .filter(|&i| i >= 0)
                .ok_or_else(|| Error::invalid_model(&added_path, format!("id of {content:?} is not an integer")))?;
            added.push((id, content));
        }
        if let Some(list) = tokenizer_json.as_ref().and_then(|j| j.get("added_tokens")) {
            added.extend(read_added_tokens_list(&json_path, list)?);
        }
    }

    let special = |key: &str, default: &str| -> Result<String> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(v) => token_content(v).ok_or_else(|| {
                Error::invalid_model(&config_path, format!("{key} is neither a string nor {{\"content\": ...}}"))
            }),
        }
    };
    let files = Files {
        bos: special("bos_token", "<|startoftext|>")?,
        eos: special("eos_token", "<|endoftext|>")?,
        unk: special("unk_token", "<|endoftext|>")?,
        pad: special("pad_token", "<|endoftext|>")?,
        additional_special: match config.get("additional_special_tokens") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(token_content).collect::<Option<_>>().ok_or_else(|| {
                Error::invalid_model(&config_path, "additional_special_tokens holds an entry that is no token")
            })?,
            Some(_) => {
                return Err(Error::invalid_model(&config_path, "additional_special_tokens must be a list of tokens"))
            }
        },
        max_length: read_max_length(&config_path, config.get("model_max_length"))?,
        vocab,
        merges,
        added,
    };
    Ok(files)
}

/// A token written as a plain string or as an AddedToken object `{"content": ..., ...}`.
fn token_content(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => Some(o.get("content")?.as_str()?.to_string()),
        _ => None,
    }
}

fn read_max_length(path: &Path, value: Option<&Value>) -> Result<usize> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(DEFAULT_MAX_LENGTH) };
    match value.as_u64() {
        Some(n) if n > MAX_SANE_LENGTH => Ok(DEFAULT_MAX_LENGTH),
        Some(n) if n >= 3 => Ok(n as usize),
        // 1e30 and friends arrive as floats.
        None if value.as_f64().is_some_and(|f| f > MAX_SANE_LENGTH as f64) => Ok(DEFAULT_MAX_LENGTH),
        _ => Err(Error::invalid_model(path, "model_max_length must be an integer of at least 3")),
    }
}

fn parse_json(path: &Path, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::invalid_model(path, format!("not valid JSON: {e}")))
}

fn read_optional_object(source: &dyn TokenizerFiles, name: &str) -> Result<Map<String, Value>> {
    let Some(bytes) = source.read(name)? else { return Ok(Map::new()) };
    let path = source.path(name);
    match parse_json(&path, &bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid_model(path, "expected a JSON object")),
    }
}

fn read_vocab(path: &Path, bytes: &[u8]) -> Result<HashMap<String, i64>> {
    let vocab: HashMap<String, i64> = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid_model(path, format!("expected a JSON object of token -> integer id: {e}")))?;
    check_vocab(path, vocab)
}

fn check_vocab(path: &Path, vocab: HashMap<String, i64>) -> Result<HashMap<String, i64>> {
    if vocab.is_empty() {
        return Err(Error::invalid_model(path, "the vocabulary is empty"));
    }
    if let Some((token, id)) = vocab.iter().find(|(_, &id)| id < 0) {
        return Err(Error::invalid_model(path, format!("negative id {id} for {token:?}")));
    }
    Ok(vocab)
}

/// `merges.txt` as the slow tokenizer reads it: text mode (any newline), stripped, first
/// line skipped (the `#version` header), at most `MAX_TXT_MERGES` lines. A line that is not
/// two words still takes up a rank but can never match.
fn read_merges_txt(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, String, String)>> {
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| Error::invalid_model(path, "expected UTF-8 text"))?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines = text.trim_matches(is_python_space).split('\n').skip(1).take(MAX_TXT_MERGES);
    let mut merges = Vec::new();
    for (rank, line) in lines.enumerate() {
        let mut parts = line.split(is_python_space).filter(|p| !p.is_empty());
        if let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) {
            merges.push((rank, a.to_string(), b.to_string()));
        }
    }
    Ok(merges)
}

type VocabAndMerges = (HashMap<String, i64>, Vec<(usize, String, String)>);

/// `model.vocab` and `model.merges` of a Hugging Face `tokenizer.json` (a CLIP BPE model).
fn read_tokenizer_json(path: &Path, json: &Value) -> Result<VocabAndMerges> {
    let bad = |what: &str| Error::invalid_model(path, what.to_string());
    let model = json.get("model").ok_or_else(|| bad("no \"model\" object"))?;
    if model.get("type").is_some_and(|t| t != "BPE") {
        return Err(bad("model.type is not \"BPE\""));
    }
    if model.get("end_of_word_suffix").and_then(Value::as_str) != Some("</w>") {
        return Err(bad("not a CLIP BPE model (model.end_of_word_suffix is not \"</w>\")"));
    }
    let vocab = model
        .get("vocab")
        .and_then(|v| HashMap::<String, i64>::deserialize(v).ok())
        .ok_or_else(|| bad("model.vocab is not an object of token -> integer id"))?;
    let list = model.get("merges").and_then(Value::as_array).ok_or_else(|| bad("no model.merges list"))?;
    let mut merges = Vec::with_capacity(list.len());
    for (rank, merge) in list.iter().enumerate() {
        // Either "left right" (older files) or ["left", "right"].
        let pair = match merge {
            Value::String(s) => s.split_once(' ').filter(|(_, r)| !r.contains(' ')),
            Value::Array(a) if a.len() == 2 => a[0].as_str().zip(a[1].as_str()),
            _ => None,
        };
        let (a, b) = pair.ok_or_else(|| bad(&format!("merge {rank} is not a pair: {merge}")))?;
        merges.push((rank, a.to_string(), b.to_string()));
    }
    Ok((check_vocab(path, vocab)?, merges))
}

/// tokenizer_config.json's `{"49407": {"content": "<|endoftext|>", ...}, ...}`.
fn read_added_tokens_decoder(path: &Path, value: &Value) -> Result<Vec<(i64, String)>> {
    let map = value.as_object().ok_or_else(|| Error::invalid_model(path, "added_tokens_decoder is not an object"))?;
    map.iter()
        .map(|(key, token)| match (key.parse::<i64>().ok().filter(|&i| i >= 0), token_content(token)) {
            (Some(id), Some(content)) => Ok((id, content)),
            _ => Err(Error::invalid_model(path, format!("bad added_tokens_decoder entry {key:?}: {token}"))),
        })
        .collect()
}

/// tokenizer.json's `"added_tokens": [{"id": 49407, "content": "<|endoftext|>", ...}]`.
fn read_added_tokens_list(path: &Path, value: &Value) -> Result<Vec<(i64, String)>> {
    let list = value.as_array().ok_or_else(|| Error::invalid_model(path, "added_tokens is not a list"))?;
    list.iter()
        .map(|token| {
            let id = token.get("id").and_then(Value::as_i64).filter(|&i| i >= 0);
            match (id, token_content(token)) {
                (Some(id), Some(content)) => Ok((id, content)),
                _ => Err(Error::invalid_model(path, format!("bad added_tokens entry {token}"))),
            }
        })
        .collect()
}

/// Where the special tokens are configured (and so what an error about them names).
pub(crate) fn config_path(source: &dyn TokenizerFiles) -> PathBuf {
    source.path("tokenizer_config.json")
}
