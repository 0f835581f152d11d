//! After a good switch: stop the old slot (kept for an instant rollback)
//! and remove release images beyond `deployment.keep_releases`, never one a
//! container still uses.

use std::collections::HashSet;
use std::time::Duration;

use super::context::{StepError, Target};
use crate::providers::docker::names::{LABEL_APP, LABEL_RELEASE, Slot};

pub async fn old_slot(t: &Target, slot: Slot) -> Result<(), StepError> {
    let grace = t.config.settings.deployment.drain_timeout.0 + Duration::from_secs(5);
    t.engine.stop(&t.names.slot(slot), grace).await?;
    Ok(())
}

/// Returns the image tags removed.
pub async fn prune_images(t: &Target) -> Result<Vec<String>, StepError> {
    let keep = t.config.settings.deployment.keep_releases as usize;
    let images = t
        .engine
        .images_with_label(&format!("{LABEL_APP}={}", t.names.app))
        .await?;
    let in_use: HashSet<String> = t
        .engine
        .containers_with_labels(&[format!("{LABEL_APP}={}", t.names.app)])
        .await?
        .into_iter()
        .map(|c| c.image)
        .collect();
    let mut removed = Vec::new();
    let mut seen_releases = 0;
    for (tag, _, labels) in images {
        if !labels.contains_key(LABEL_RELEASE) || tag.ends_with(":<none>") {
            continue;
        }
        seen_releases += 1;
        if seen_releases <= keep || in_use.contains(&tag) {
            continue;
        }
        // An image shared with another environment's containers is refused
        // by the engine; that is fine, it stays.
        if t.engine.remove_image(&tag).await.is_ok() {
            removed.push(tag);
        }
    }
    Ok(removed)
}
