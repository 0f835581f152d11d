//! One line per admin verb, passing straight to the router or the ledger
//! (as kamal-proxy's `commands.go`). Nothing here decides anything.

use slipway_core::admin::{
    AdminError, AdminErrorKind, AdminRequest, AdminResponse, AdminResult, VersionInfo,
};

use crate::Agent;

pub async fn handle(agent: &std::sync::Arc<Agent>, req: AdminRequest) -> AdminResponse {
    // Held to the end of the verb, so an upgrade waits for it.
    let _pass = if req.changes_state() {
        match agent.handover.gate.pass() {
            Ok(pass) => Some(pass),
            Err(error) => return AdminResponse::Error { error },
        }
    } else {
        None
    };
    let result = match req {
        AdminRequest::Deploy(a) => crate::analysis::deploy(agent, a).await,
        AdminRequest::Rollback(a) => crate::analysis::rollback(agent, a).await,
        AdminRequest::Pause(a) => agent.router.pause(a).await,
        AdminRequest::Resume(a) => agent.router.resume(a.app).await,
        AdminRequest::Routes => agent.router.routes(),
        AdminRequest::RouteForget(a) => agent.router.forget(&a.app).await,
        AdminRequest::LockAcquire(a) => agent.ledger.lock_acquire(a),
        AdminRequest::LockRenew(a) => agent.ledger.lock_renew(a),
        AdminRequest::LockRelease(a) => agent.ledger.lock_release(a),
        AdminRequest::LockStatus(a) => agent.ledger.lock_status(a.app),
        AdminRequest::HistoryRecord(a) => agent.ledger.history_record(a),
        AdminRequest::HistoryList(a) => agent.ledger.history_list(a),
        AdminRequest::State(a) => agent.ledger.state(a.app),
        AdminRequest::Version => {
            let (role, peer_pid) = agent.handover.gate.role();
            Ok(AdminResult::Version(VersionInfo {
                agent_version: crate::VERSION.to_owned(),
                build: crate::BUILD.to_owned(),
                ledger_format_version: slipway_core::ledger::FORMAT_VERSION,
                uptime_secs: agent.started.elapsed().as_secs(),
                pid: std::process::id(),
                role,
                peer_pid,
            }))
        }
        AdminRequest::CertEnsure(a) => match &agent.tls {
            Some(tls) => tls.ensure(a).await,
            None => Err(no_tls()),
        },
        AdminRequest::CertForget(a) => match &agent.tls {
            Some(tls) => tls.forget(&a.host),
            None => Err(no_tls()),
        },
        AdminRequest::Certs => match &agent.tls {
            Some(tls) => Ok(tls.list()),
            None => Err(no_tls()),
        },
        AdminRequest::AnalysisStatus(a) => crate::analysis::status(agent, &a.app),
        AdminRequest::AnalysisCancel(a) => crate::analysis::cancel_verb(agent, a),
        AdminRequest::NotifyConfigure(a) => agent.notifier.configure(a),
        AdminRequest::Notify(a) => agent.notifier.queue(&a.app, a.event),
        AdminRequest::NotifyTest(a) => agent.notifier.test(&a.app).await,
        AdminRequest::NotifyStatus(a) => agent.notifier.status(&a.app),
        AdminRequest::MaintenanceOn(a) => crate::maintenance::on(&agent.router, a).await,
        AdminRequest::MaintenanceOff(a) => crate::maintenance::off(&agent.router, a).await,
    };
    match result {
        Ok(result) => AdminResponse::Ok { result },
        Err(error) => AdminResponse::Error { error },
    }
}

fn no_tls() -> AdminError {
    AdminError {
        kind: AdminErrorKind::BadRequest,
        message: "this agent does not terminate TLS (it was started without --tls-listen): \
                  certificates belong to the host's shared entry point"
            .into(),
        health: None,
        holder: None,
    }
}
