//! The post-deploy analysis, run by the agent after a switch (see
//! `slipway_core::analysis` for the model).

use slipway_core::admin::{AdminError, AdminResult};

use crate::Agent;

/// `analysis_status`: the app's running analysis, else its last one.
pub fn status(agent: &Agent, app: &str) -> Result<AdminResult, AdminError> {
    let report = agent
        .ledger
        .store
        .read(|f| f.apps.get(app).and_then(|a| a.analysis.clone()));
    Ok(AdminResult::Analysis {
        report: report.map(Box::new),
    })
}
