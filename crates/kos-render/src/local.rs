//! The operator's files: admin kubeconfig, the seed's `certs/` and `<node>.env`.

use crate::{Inputs, Material, RenderError, RenderedFile};

pub fn render_local(_inputs: &Inputs<'_>, _material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    Ok(Vec::new())
}
