//! `sdrt_lora` and `sdrt_embedding`: LoRA and textual-inversion files read into memory, used
//! through `sdrt_generate_params.loras` and `.embeddings`.

use std::ffi::{c_char, CString};

use super::strings::{optional_str, required, required_str};
use super::{boundary, sdrt_status, Failure};
use crate::embeddings::Embedding;
use crate::lora::Lora;

/// A LoRA read and checked (`.safetensors`: kohya/AUTOMATIC1111, diffusers or PEFT names,
/// LoCon). Never changed after it is made: any number of pipelines and threads may use one at
/// once. Free with `sdrt_lora_free`.
pub struct sdrt_lora {
    pub(crate) lora: Lora,
    name: CString,
}

fn into_handle(lora: Lora, out: *mut *mut sdrt_lora) {
    // A name with a NUL byte cannot come from a path or a C string; drop it rather than fail.
    let name = CString::new(lora.name().replace('\0', "")).unwrap_or_default();
    // SAFETY: checked non-NULL by the callers.
    unsafe { *out = Box::into_raw(Box::new(sdrt_lora { lora, name })) };
}

/// Reads a LoRA file at `path` (UTF-8). Its name (for `<lora:NAME>` and messages) is the file
/// name without extension. On success `*out` receives a handle the caller frees with
/// `sdrt_lora_free`. Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_UTF8`, `SDRT_STATUS_IO` (missing file), `SDRT_STATUS_INVALID_MODEL`
/// (not a LoRA file, truncated, malformed, DoRA/LoHa/LoKr). Any thread; blocks on the file.
#[no_mangle]
pub unsafe extern "C" fn sdrt_lora_load(path: *const c_char, out: *mut *mut sdrt_lora) -> sdrt_status {
    boundary(|| {
        let path = unsafe { required_str(path, "path") }?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        into_handle(Lora::load(path)?, out);
        Ok(())
    })
}

/// Reads a LoRA from `len` bytes of a `.safetensors` file at `bytes`, copied during the call;
/// `name` (UTF-8) names it in messages. As `sdrt_lora_load` otherwise.
#[no_mangle]
pub unsafe extern "C" fn sdrt_lora_load_from_memory(
    name: *const c_char,
    bytes: *const u8,
    len: usize,
    out: *mut *mut sdrt_lora,
) -> sdrt_status {
    boundary(|| {
        let name = unsafe { required_str(name, "name") }?;
        if bytes.is_null() {
            return Err(Failure::Null("bytes"));
        }
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        // SAFETY: the caller promises `len` readable bytes at `bytes`.
        let bytes = unsafe { std::slice::from_raw_parts(bytes, len) };
        into_handle(Lora::from_memory(name, bytes)?, out);
        Ok(())
    })
}

/// The LoRA's name, UTF-8, owned by the handle (valid until `sdrt_lora_free`); NULL for NULL.
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_lora_name(lora: *const sdrt_lora) -> *const c_char {
    required(lora, "lora").map_or(std::ptr::null(), |l| l.name.as_ptr())
}

/// Frees a LoRA handle. Generations that use it keep their own reference, so it may be freed
/// as soon as `sdrt_pipeline_generate` or `sdrt_pipeline_submit` returns. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sdrt_lora_free(lora: *mut sdrt_lora) {
    if !lora.is_null() {
        drop(unsafe { Box::from_raw(lora) });
    }
}

/// A textual-inversion embedding read and checked (`.safetensors`: AUTOMATIC1111's
/// `emb_params`, diffusers' one-token files, SDXL's `clip_l`/`clip_g`): a word whose vectors
/// come from the file. Never changed after it is made; any pipeline and thread may use it.
/// Free with `sdrt_embedding_free`.
pub struct sdrt_embedding {
    pub(crate) embedding: Embedding,
    token: CString,
}

fn embedding_handle(embedding: Embedding, out: *mut *mut sdrt_embedding) {
    let token = CString::new(embedding.token().replace('\0', "")).unwrap_or_default();
    // SAFETY: checked non-NULL by the callers.
    unsafe { *out = Box::into_raw(Box::new(sdrt_embedding { embedding, token })) };
}

/// Reads an embedding file at `path` (UTF-8). Its word in prompts is `token` (UTF-8, one word)
/// when not NULL, else the token a diffusers file names, else the file name without extension
/// (as AUTOMATIC1111). On success `*out` receives a handle the caller frees with
/// `sdrt_embedding_free`. Statuses: `SDRT_STATUS_OK`, `SDRT_STATUS_NULL_POINTER`,
/// `SDRT_STATUS_INVALID_UTF8`, `SDRT_STATUS_IO`, `SDRT_STATUS_INVALID_MODEL` (not an embedding;
/// PyTorch `.pt`/`.bin` pickles are refused, since reading them can run code),
/// `SDRT_STATUS_INVALID_ARGUMENT` (a token with spaces). Any thread; blocks on the file.
#[no_mangle]
pub unsafe extern "C" fn sdrt_embedding_load(
    path: *const c_char,
    token: *const c_char,
    out: *mut *mut sdrt_embedding,
) -> sdrt_status {
    boundary(|| {
        let path = unsafe { required_str(path, "path") }?;
        let token = unsafe { optional_str(token, "token") }?;
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        embedding_handle(Embedding::load(path, token)?, out);
        Ok(())
    })
}

/// Reads an embedding from `len` bytes of a `.safetensors` file at `bytes`, copied during the
/// call; `name` (UTF-8) stands for the file name. As `sdrt_embedding_load` otherwise.
#[no_mangle]
pub unsafe extern "C" fn sdrt_embedding_load_from_memory(
    name: *const c_char,
    bytes: *const u8,
    len: usize,
    token: *const c_char,
    out: *mut *mut sdrt_embedding,
) -> sdrt_status {
    boundary(|| {
        let name = unsafe { required_str(name, "name") }?;
        let token = unsafe { optional_str(token, "token") }?;
        if bytes.is_null() {
            return Err(Failure::Null("bytes"));
        }
        if out.is_null() {
            return Err(Failure::Null("out"));
        }
        // SAFETY: the caller promises `len` readable bytes at `bytes`.
        let bytes = unsafe { std::slice::from_raw_parts(bytes, len) };
        embedding_handle(Embedding::from_memory(name, bytes, token)?, out);
        Ok(())
    })
}

/// The embedding's word, UTF-8, owned by the handle (valid until `sdrt_embedding_free`); NULL
/// for NULL. Any thread.
#[no_mangle]
pub unsafe extern "C" fn sdrt_embedding_token(embedding: *const sdrt_embedding) -> *const c_char {
    required(embedding, "embedding").map_or(std::ptr::null(), |e| e.token.as_ptr())
}

/// Frees an embedding handle; generations that use it keep their own reference, so it may be
/// freed once `sdrt_pipeline_generate` or `sdrt_pipeline_submit` returns. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sdrt_embedding_free(embedding: *mut sdrt_embedding) {
    if !embedding.is_null() {
        drop(unsafe { Box::from_raw(embedding) });
    }
}
