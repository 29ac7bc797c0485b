//! The process-wide log: sdrt's own messages and ONNX Runtime's go to one sink the host sets.
//!
//! Messages come from whichever thread produces them (a caller's, a pipeline's job thread,
//! ONNX Runtime's own), so the sink must be thread-safe. Replacing it waits until no call to
//! the old sink is in progress, so a host can free what the old sink used as soon as
//! [`set_sink`] returns.

use std::cell::Cell;
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};

/// How much a message matters; a sink receives the messages at or above its minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something the host should know (a provider that fell back to CPU).
    Warning = 2,
    /// What sdrt and ONNX Runtime are doing.
    Info = 3,
    /// Details for debugging.
    Debug = 4,
}

/// Receives log messages.
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

enum Target {
    /// Until a host sets a sink: errors to stderr, as ONNX Runtime's own default does.
    Stderr,
    Sink(Sink),
    Off,
}

struct Logger {
    target: Target,
    /// The least important level delivered.
    max_level: Level,
}

static LOGGER: RwLock<Logger> = RwLock::new(Logger { target: Target::Stderr, max_level: Level::Error });

thread_local! {
    /// Set while this thread runs the sink: a message logged from inside it is dropped (the
    /// lock is not re-entrant), and replacing the sink from inside it would wait for itself.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Sends messages at `max_level` and above to `sink` (`None`: nowhere) from now on. Returns
/// once no call to the previous sink is in progress; called from inside the sink itself it
/// returns [`Error::Busy`] instead of waiting for itself.
pub fn set_sink(sink: Option<Sink>, max_level: Level) -> Result<()> {
    if IN_SINK.with(Cell::get) {
        return Err(Error::Busy("the log callback cannot be replaced from inside itself".into()));
    }
    let mut logger = LOGGER.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *logger = Logger { target: sink.map_or(Target::Off, Target::Sink), max_level };
    Ok(())
}

/// Whether a message at `level` would go anywhere (to skip formatting it when not).
pub fn enabled(level: Level) -> bool {
    let logger = LOGGER.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    level <= logger.max_level && !matches!(logger.target, Target::Off)
}

/// The least important level the current sink takes (ONNX Runtime sessions log at it).
pub fn max_level() -> Level {
    LOGGER.read().unwrap_or_else(|poisoned| poisoned.into_inner()).max_level
}

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    if IN_SINK.with(Cell::get) {
        return;
    }
    let logger = LOGGER.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    if level > logger.max_level {
        return;
    }
    match &logger.target {
        Target::Stderr => eprintln!("sdrt: {message}"),
        Target::Sink(sink) => {
            IN_SINK.with(|flag| flag.set(true));
            // A panicking sink must not leave the flag set or unwind into ONNX Runtime.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(level, message)));
            IN_SINK.with(|flag| flag.set(false));
        }
        Target::Off => {}
    }
}

/// Logs `message` as a warning.
pub fn warn(message: &str) {
    log(Level::Warning, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn levels_filter_and_the_sink_cannot_replace_itself() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = seen.clone();
        let sink: Sink = Arc::new(move |level, message| {
            sink_seen.lock().unwrap().push((level, message.to_string()));
            // Re-entry from inside the sink neither deadlocks nor recurses.
            log(Level::Error, "nested");
            assert!(matches!(set_sink(None, Level::Error), Err(Error::Busy(_))));
        });
        set_sink(Some(sink), Level::Warning).unwrap();
        log(Level::Info, "dropped");
        warn("kept");
        assert!(enabled(Level::Warning) && !enabled(Level::Info));
        set_sink(None, Level::Debug).unwrap();
        warn("after");
        // (Other tests in this process may log meanwhile; only these messages are checked.)
        let seen = seen.lock().unwrap();
        assert!(seen.contains(&(Level::Warning, "kept".to_string())));
        assert!(!seen.iter().any(|(_, m)| ["dropped", "nested", "after"].contains(&m.as_str())));
        assert!(!enabled(Level::Error));
    }
}
