//! Textual-inversion embeddings: new words whose token vectors come from a file. Each one's
//! vectors are appended to the text encoders' token embedding tables (as diffusers'
//! `load_textual_inversion` does), and the tokenizer turns the word into those rows' ids.
//!
//! Files: AUTOMATIC1111's `.safetensors` (`emb_params`), diffusers' `learned_embeds.safetensors`
//! (one tensor named after its token) and SDXL's two-encoder files (`clip_l` and `clip_g`).
//! PyTorch `.pt`/`.bin` files are pickles, which run code when read: they are refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::SafeTensors;

use crate::error::{Error, Result};
use crate::lora::Component;
use crate::model::safetensors_file::{read_file, to_matrix, Matrix};

/// Most vectors one embedding may have: one prompt chunk holds 75 tokens.
const MAX_VECTORS: usize = 75;

/// A textual-inversion embedding, read and checked. Cheap to clone; share one freely.
#[derive(Clone)]
pub struct Embedding {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    path: PathBuf,
    vectors: Vectors,
}

/// [vectors, width] per text encoder.
enum Vectors {
    /// For every encoder of that width (SD 1.x/2.x's one encoder).
    One(Matrix),
    /// SDXL: `clip_l` for `text_encoder`, `clip_g` for `text_encoder_2`.
    Sdxl { clip_l: Matrix, clip_g: Matrix },
}

impl std::fmt::Debug for Embedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedding").field("token", &self.inner.token).field("path", &self.inner.path).finish()
    }
}

impl Embedding {
    /// Reads an embedding file. Its word is `token` if given, else the token a diffusers file
    /// names, else the file name without extension (as AUTOMATIC1111 does).
    pub fn load(path: impl AsRef<Path>, token: Option<&str>) -> Result<Self> {
        let path = path.as_ref();
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Self::parse(path, &name, &read_file(path)?, token)
    }

    /// Reads an embedding from a `.safetensors` file's bytes; `name` stands for the file name.
    pub fn from_memory(name: &str, bytes: &[u8], token: Option<&str>) -> Result<Self> {
        Self::parse(Path::new(&format!("<{name} in memory>")), name, bytes, token)
    }

    /// The word that stands for the embedding in prompts.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// Vectors (token positions) the word takes in a prompt.
    pub fn vector_count(&self) -> usize {
        match &self.inner.vectors {
            Vectors::One(m) | Vectors::Sdxl { clip_l: m, .. } => m.shape[0],
        }
    }

    /// The rows for a text encoder whose token table is `width` wide, in a model with
    /// `encoders` text encoders: SDXL files give `clip_l` to `text_encoder` and `clip_g` to
    /// `text_encoder_2`, and fit only SDXL models.
    pub(crate) fn rows_for(&self, component: Component, encoders: usize, width: usize) -> Result<&[f32]> {
        let chosen = match (&self.inner.vectors, component) {
            (Vectors::Sdxl { clip_g, .. }, Component::TextEncoder2) => clip_g,
            (Vectors::Sdxl { .. }, _) if encoders < 2 => {
                return Err(
                    self.wrong_model("it is an SDXL embedding (clip_l and clip_g), the model has one text encoder")
                )
            }
            (Vectors::Sdxl { clip_l, .. }, _) | (Vectors::One(clip_l), _) => clip_l,
        };
        if chosen.shape[1] != width {
            return Err(self.wrong_model(&format!(
                "its vectors for {} are {} wide, the model's token embeddings {width}",
                component.folder(),
                chosen.shape[1]
            )));
        }
        Ok(&chosen.data)
    }

    fn wrong_model(&self, reason: &str) -> Error {
        Error::invalid_model(&self.inner.path, format!("made for another model architecture: {reason}"))
    }

    pub(crate) fn same(&self, other: &Embedding) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn parse(path: &Path, name: &str, bytes: &[u8], token: Option<&str>) -> Result<Self> {
        let invalid = |reason: String| Error::invalid_model(path, reason);
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| {
            // A zip archive (torch.save) or a bare pickle.
            if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
                invalid(
                    "a PyTorch pickle (.pt/.bin), which can run code when read: sdrt reads embeddings only \
                     from .safetensors files"
                        .into(),
                )
            } else {
                invalid(format!("not a valid .safetensors file: {e}"))
            }
        })?;
        let matrix = |key: &str| -> Result<Matrix> {
            let view = tensors.tensor(key).map_err(|e| invalid(format!("{key}: {e}")))?;
            let mut m = to_matrix(path, key, &view)?;
            if m.shape.len() == 1 {
                m.shape.insert(0, 1);
            }
            if m.shape.len() != 2 || m.shape[0] == 0 || m.shape[0] > MAX_VECTORS || m.shape[1] == 0 {
                return Err(invalid(format!(
                    "{key} must be 1 to {MAX_VECTORS} vectors ([vectors, width]), found shape {:?}",
                    m.shape
                )));
            }
            Ok(m)
        };
        let names = tensors.names();
        let (vectors, own_token) = if names.contains(&"clip_l") && names.contains(&"clip_g") {
            let (clip_l, clip_g) = (matrix("clip_l")?, matrix("clip_g")?);
            if clip_l.shape[0] != clip_g.shape[0] {
                return Err(invalid("clip_l and clip_g have different vector counts".into()));
            }
            (Vectors::Sdxl { clip_l, clip_g }, None)
        } else if names.contains(&"emb_params") {
            (Vectors::One(matrix("emb_params")?), None)
        } else if let [only] = names.as_slice() {
            (Vectors::One(matrix(only)?), Some(only.to_string()))
        } else {
            return Err(invalid(format!(
                "not a textual-inversion embedding: expected `emb_params`, `clip_l` and `clip_g`, or one token's \
                 vectors; found {} tensors",
                names.len()
            )));
        };
        let token = token.map(str::to_string).or(own_token).unwrap_or_else(|| name.to_string());
        if token.is_empty() || token.len() > 100 || token.chars().any(char::is_whitespace) {
            return Err(Error::InvalidArgument(format!(
                "embedding token {token:?} must be one word (no spaces) of at most 100 bytes"
            )));
        }
        Ok(Embedding { inner: Arc::new(Inner { token, path: path.to_path_buf(), vectors }) })
    }
}

/// The embeddings of one generation, in order.
#[derive(Clone, Debug, Default)]
pub struct EmbeddingSet {
    entries: Vec<Embedding>,
}

impl EmbeddingSet {
    /// The embeddings; two with the same token are refused.
    pub fn new(entries: Vec<Embedding>) -> Result<Self> {
        for (i, e) in entries.iter().enumerate() {
            if entries[..i].iter().any(|o| o.token() == e.token()) {
                return Err(Error::InvalidArgument(format!("two embeddings use the token {:?}", e.token())));
            }
        }
        Ok(EmbeddingSet { entries })
    }

    /// The embeddings, in order.
    pub fn entries(&self) -> &[Embedding] {
        &self.entries
    }

    /// Whether the set holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether both sets are the same files in the same order.
    pub fn same_as(&self, other: &EmbeddingSet) -> bool {
        self.entries.len() == other.entries.len() && self.entries.iter().zip(&other.entries).all(|(a, b)| a.same(b))
    }

    /// Each token and the ids of its vectors, numbered from `first_id` (the token table's
    /// row count) in order.
    pub(crate) fn token_ids(&self, first_id: i64) -> Vec<(String, Vec<i64>)> {
        let mut next = first_id;
        self.entries
            .iter()
            .map(|e| {
                let ids: Vec<i64> = (next..next + e.vector_count() as i64).collect();
                next += ids.len() as i64;
                (e.token().to_string(), ids)
            })
            .collect()
    }
}

impl PartialEq for EmbeddingSet {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}
