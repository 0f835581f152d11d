//! Names and labels of everything Slipway creates on an engine, so several
//! apps and environments on one host never collide, and so leftovers can be
//! found by label. Pure.

use std::collections::HashMap;
use std::fmt;

/// Label keys.
pub const LABEL_MANAGED: &str = "slipway.managed";
pub const LABEL_APP: &str = "slipway.app";
pub const LABEL_ENV: &str = "slipway.env";
pub const LABEL_ROLE: &str = "slipway.role";
pub const LABEL_SLOT: &str = "slipway.slot";
pub const LABEL_RELEASE: &str = "slipway.release";
pub const LABEL_DEPLOYMENT: &str = "slipway.deployment";
/// On a one-off task container: what it runs (`migrate`).
pub const LABEL_TASK: &str = "slipway.task";
/// On a one-off task container: the host name and pid of the command that
/// started it, so the next command can tell a leftover from live work.
pub const LABEL_OWNER_HOST: &str = "slipway.owner.host";
pub const LABEL_OWNER_PID: &str = "slipway.owner.pid";

/// Blue or green: the two places a release can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Blue,
    Green,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    pub fn parse(text: &str) -> Option<Slot> {
        match text {
            "blue" => Some(Slot::Blue),
            "green" => Some(Slot::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        })
    }
}

/// The names of one app's environment on an engine.
#[derive(Clone, Debug)]
pub struct Names {
    pub app: String,
    pub env: String,
}

impl Names {
    pub fn new(app: &str, env: &str) -> Self {
        Self {
            app: app.to_string(),
            env: env.to_string(),
        }
    }

    fn prefix(&self) -> String {
        format!("{}-{}", self.app, self.env)
    }

    pub fn network(&self) -> String {
        format!("{}-net", self.prefix())
    }
    pub fn database(&self) -> String {
        format!("{}-db", self.prefix())
    }
    pub fn database_volume(&self) -> String {
        format!("{}-pgdata", self.prefix())
    }
    pub fn agent(&self) -> String {
        format!("{}-agent", self.prefix())
    }
    /// Holds the public port and the network namespace the agents share, so
    /// one agent can replace another without the port closing.
    pub fn edge(&self) -> String {
        format!("{}-edge", self.prefix())
    }
    /// The agent taking over during an upgrade (renamed to `agent()` after).
    pub fn agent_next(&self) -> String {
        format!("{}-agent-next", self.prefix())
    }
    /// The replaced agent between its stop and its removal.
    pub fn agent_leaving(&self) -> String {
        format!("{}-agent-leaving", self.prefix())
    }
    pub fn agent_volume(&self) -> String {
        format!("{}-agent-state", self.prefix())
    }
    pub fn slot(&self, slot: Slot) -> String {
        format!("{}-{slot}", self.prefix())
    }
    pub fn task(&self, what: &str) -> String {
        format!("{}-task-{what}", self.prefix())
    }
    pub fn image(&self, release: &str) -> String {
        format!("{}:{release}", self.app)
    }
    /// The route name inside the agent.
    pub fn route(&self) -> String {
        self.prefix()
    }

    /// Labels for a resource of `role`.
    pub fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_APP.to_string(), self.app.clone()),
            (LABEL_ENV.to_string(), self.env.clone()),
            (LABEL_ROLE.to_string(), role.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_never_share_names() {
        let a = Names::new("events-server", "staging");
        let b = Names::new("events-server", "production");
        for (x, y) in [
            (a.network(), b.network()),
            (a.database(), b.database()),
            (a.database_volume(), b.database_volume()),
            (a.agent(), b.agent()),
            (a.edge(), b.edge()),
            (a.agent_next(), b.agent_next()),
            (a.slot(Slot::Blue), b.slot(Slot::Blue)),
            (a.route(), b.route()),
        ] {
            assert_ne!(x, y);
        }
        assert_eq!(a.slot(Slot::Green), "events-server-staging-green");
        assert_eq!(Slot::Blue.other(), Slot::Green);
        assert_eq!(Slot::parse("green"), Some(Slot::Green));
        assert_eq!(Slot::parse("red"), None);
    }
}
