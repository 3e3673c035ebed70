//! A master's control plane: static pods for etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler, their certificates and keys, and the
//! apiserver's encryption, audit and authentication configs.

use crate::{Inputs, Material, RenderError, RenderedFile};
use kos_core::plan::NodePlan;

pub fn render_master(_inputs: &Inputs<'_>, _node: &NodePlan, _material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    Ok(Vec::new())
}
