//! The Docker provider: the engine connection and the operations the
//! pipeline needs (images, networks, volumes, containers, exec), via bollard.

mod agent;
pub mod cli;
mod engine;
pub mod names;

pub use agent::{AgentClient, AgentError};
pub use engine::{ContainerInfo, ContainerSpec, Engine, EngineError, ExecOutput};
