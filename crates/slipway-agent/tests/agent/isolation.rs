//! The admin API is a unix socket only: the agent process listens on no TCP
//! port but the public one and the internal metrics one.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};

use crate::util::*;

/// TCP ports the process `pid` listens on: LISTEN rows of the namespace's
/// tcp tables whose socket inode is one of the process's descriptors.
fn listening_tcp_ports(pid: u32) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut ports = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is col 1 (hex ip:port), st col 3 (0A = LISTEN), inode col 9.
            if cols.len() > 9
                && cols[3] == "0A"
                && inodes.contains(cols[9])
                && let Some(port) = cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_socket_is_not_reachable_from_the_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);
    let ports = listening_tcp_ports(agent.child.id());
    let expected: HashSet<u16> = [agent.listen.port(), agent.metrics.port()].into();
    assert_eq!(ports, expected, "only the public and metrics ports listen");

    let meta = std::fs::metadata(&agent.socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "owner only");
    // The internal listener answers /health and /metrics, not admin verbs.
    let c = client();
    let (status, _, body) = get(&c, &format!("http://{}/health", agent.metrics), None)
        .await
        .expect("health");
    assert_eq!(status, 200);
    assert!(body.contains("healthy"));
    let (_, _, metrics) = get(&c, &format!("http://{}/metrics", agent.metrics), None)
        .await
        .expect("metrics");
    assert!(
        metrics.contains("slipway_switches_total{app=\"web\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("slipway_active_release{app=\"web\",release=\"v1\""),
        "{metrics}"
    );
}
