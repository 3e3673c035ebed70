//! Files every node gets: kubelet and kube-proxy (config, kubeconfig, unit), the
//! container runtime's config, the CNI config of the routed pod network, the pod bridge
//! and masquerade script with its boot unit, sysctls and kernel modules.

use crate::{Inputs, Material, RenderError, RenderedFile};
use kos_core::plan::NodePlan;

/// All files of one node (masters get control-plane files from `control_plane` too).
pub fn render_node(_inputs: &Inputs<'_>, _node: &NodePlan, _material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    Ok(Vec::new())
}
