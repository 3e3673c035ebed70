//! One look at the cloud before anything changes: the settings' names, the cluster's
//! resources and, when asked, what the preflight judges and the cluster's security group,
//! all asked at once. `up`, `plan`, `status` and `check` each start from one survey, so a
//! no-op `kos up` asks the cloud one round of independent calls before its node phases (it
//! asked four rounds one after the other, and the preflight asked the names twice).

use crate::api::{Cloud, CloudError};
use crate::apply::{ApplyError, Lookups, Resolved, discover, find_security_group};
use crate::model::{Keypair, Quotas, SecurityGroup};
use crate::reconcile::ClusterResources;
use kos_core::settings::Settings;
use std::collections::BTreeSet;

/// What a survey asks beyond the settings' names and the cluster's resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asks {
    /// What the preflight judges: the keypair, the service catalog (for a load-balanced
    /// API) and the quotas.
    pub checks: bool,
    /// The cluster's security group (found by its mark).
    pub security_group: bool,
}

/// The cloud as one round of calls found it; each answer kept as it came, so that the
/// preflight can judge every one and the others take what they need.
#[derive(Debug)]
pub struct Survey {
    pub(crate) names: Lookups,
    pub(crate) have: Result<ClusterResources, ApplyError>,
    /// With [`Asks::checks`].
    pub(crate) keypair: Option<(String, Result<Option<Keypair>, CloudError>)>,
    /// With [`Asks::checks`] and a load-balanced API.
    pub(crate) services: Option<Result<BTreeSet<String>, CloudError>>,
    /// With [`Asks::checks`].
    pub(crate) quotas: Option<Result<Quotas, CloudError>>,
    /// With [`Asks::security_group`].
    security_group: Option<Result<Option<SecurityGroup>, ApplyError>>,
}

/// Ask the cloud everything `asks` wants, at once.
pub async fn survey<C: Cloud>(cloud: &C, settings: &Settings, asks: Asks) -> Survey {
    let c = &settings.cloud;
    let keypair = async {
        match (&c.key_name, asks.checks) {
            (Some(key), true) => Some((key.clone(), cloud.keypair(key).await)),
            _ => None,
        }
    };
    let services = async {
        match asks.checks && settings.cluster.api_endpoint == kos_core::settings::ApiEndpoint::Octavia {
            true => Some(cloud.services().await),
            false => None,
        }
    };
    let quotas = async {
        match asks.checks {
            true => Some(cloud.quotas().await),
            false => None,
        }
    };
    let security_group = async {
        match asks.security_group {
            true => Some(find_security_group(cloud, &settings.cluster.name).await),
            false => None,
        }
    };
    let (names, have, keypair, services, quotas, security_group) = futures_util::join!(
        Lookups::fetch(cloud, settings),
        discover(cloud, &settings.cluster.name),
        keypair,
        services,
        quotas,
        security_group
    );
    Survey { names, have, keypair, services, quotas, security_group }
}

impl Survey {
    /// Every name of the settings resolved, or the first look-up that failed (in the
    /// settings' order), worded as `kos check` words it.
    pub fn resolved(&self) -> Result<Resolved, ApplyError> {
        self.names.resolved()
    }

    /// The cluster's resources, found by their marks.
    pub fn have(&self) -> Result<ClusterResources, ApplyError> {
        self.have.clone()
    }

    /// The cluster's security group (`None`: there is none yet): as the survey found it, or
    /// asked now when the survey was not asked for it.
    pub async fn security_group<C: Cloud>(&self, cloud: &C, cluster: &str) -> Result<Option<SecurityGroup>, ApplyError> {
        match &self.security_group {
            Some(found) => found.clone(),
            None => find_security_group(cloud, cluster).await,
        }
    }
}
