//! Cluster add-ons applied through the API server once it answers: CoreDNS, and the
//! binding that gives the `admin` certificate's group its rights.

use crate::{Inputs, RenderError, RenderedFile};

/// Add-on manifests, as operator-side files under `addons/`.
pub fn render_addons(_inputs: &Inputs<'_>) -> Result<Vec<RenderedFile>, RenderError> {
    Ok(Vec::new())
}
