//! Stopping work in progress: a flag checked between graph calls, and ONNX Runtime's
//! terminate signal that ends a graph call already running (a UNet step on a real model can
//! take seconds on a CPU).

use std::sync::atomic::{AtomicBool, Ordering};

use ort::session::RunOptions;

use super::{ort_environment, ort_error, RuntimeOptions};
use crate::error::Result;

/// Shared by a pipeline's graphs and its cancel handles; safe to trigger from any thread.
pub struct Interrupt {
    requested: AtomicBool,
    run_options: RunOptions,
    /// The same, and ONNX Runtime's CPU arena gives back what the run left unused.
    releasing_run_options: RunOptions,
}

impl Interrupt {
    /// An untriggered flag; loads ONNX Runtime first (from `options.ort_library_path` if set).
    pub(crate) fn new(options: &RuntimeOptions) -> Result<Self> {
        // RunOptions live in ONNX Runtime, so the library must be loaded first.
        ort_environment(options.ort_library_path.as_deref())?;
        let run_options = RunOptions::new().map_err(|e| ort_error("creating run options", e))?;
        let mut releasing_run_options = RunOptions::new().map_err(|e| ort_error("creating run options", e))?;
        releasing_run_options
            .set("memory.enable_memory_arena_shrinkage", "cpu:0")
            .map_err(|e| ort_error("asking for arena shrinkage", e))?;
        Ok(Interrupt { requested: AtomicBool::new(false), run_options, releasing_run_options })
    }

    /// Requests a stop: the current graph call ends as soon as ONNX Runtime notices.
    pub(crate) fn trigger(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // Failing to signal ONNX Runtime only delays the stop to the next graph call.
        let _ = self.run_options.terminate();
        let _ = self.releasing_run_options.terminate();
    }

    /// Whether a stop was requested since the last [`Interrupt::reset`].
    pub(crate) fn is_triggered(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Clears a stop request so that graph calls run again.
    pub(crate) fn reset(&self) {
        let _ = self.run_options.unterminate();
        let _ = self.releasing_run_options.unterminate();
        self.requested.store(false, Ordering::SeqCst);
    }

    /// Run options of a graph call; `release_memory`: the CPU arena frees what the call no
    /// longer holds when it ends.
    pub(crate) fn run_options(&self, release_memory: bool) -> &RunOptions {
        if release_memory {
            &self.releasing_run_options
        } else {
            &self.run_options
        }
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt").field("requested", &self.is_triggered()).finish()
    }
}
