//! A graph's external data must be files inside the graph's own folder. ONNX Runtime opens
//! whatever a tensor's `location` names; newer releases refuse paths that leave the folder,
//! older ones do not, so sdrt checks every location itself before a session is made, whatever
//! ONNX Runtime the host brings.

use std::path::{Component, Path};

use super::onnx_file;
use crate::error::{Error, Result};

/// Refuses `graph` (the bytes of the file at `path`) when a tensor keeps its data outside
/// `folder` (through `..`, an absolute path or a link), or anywhere at all when the graph
/// has no folder (a model in memory: its weights must be inside its graphs).
pub(crate) fn check(graph: &[u8], folder: Option<&Path>, path: &Path) -> Result<()> {
    let locations = onnx_file::external_data_locations(graph)
        .map_err(|e| Error::invalid_model(path, format!("not a readable ONNX graph: {}", e.0)))?;
    if locations.is_empty() {
        return Ok(());
    }
    let Some(folder) = folder else {
        return Err(Error::invalid_model(
            path,
            format!(
                "keeps weights in another file ({:?}); a model loaded from memory must hold its weights in its graphs",
                locations[0]
            ),
        ));
    };
    let root = folder.canonicalize().map_err(|e| Error::io(folder, e))?;
    let mut checked = std::collections::HashSet::new();
    for location in &locations {
        if !checked.insert(location.as_str()) {
            continue;
        }
        let outside = || {
            Error::invalid_model(path, format!("external data {location:?} is not a file inside {}", folder.display()))
        };
        let relative = Path::new(location);
        if location.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(outside());
        }
        let file = root.join(relative);
        let resolved = file.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::invalid_model(path, format!("external data file {} is missing", file.display()))
            }
            _ => Error::io(&file, e),
        })?;
        // A link inside the folder may still point out of it.
        if !resolved.starts_with(&root) || !resolved.is_file() {
            return Err(outside());
        }
    }
    Ok(())
}
