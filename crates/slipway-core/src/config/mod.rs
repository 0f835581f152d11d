//! Configuration: `deployment.yml` + `.env.<env>` → a validated, resolved
//! configuration for one environment.

pub mod discover;
pub mod dotenv;
pub mod hooks;
pub mod interpolate;
pub mod json_schema;
pub mod load;
pub mod notify_checks;
pub mod origin;
pub mod problem;
pub mod raw;
pub mod resolve;
pub mod schema;
pub mod secrets;
pub mod validate;

pub use load::{LoadOptions, ResolvedConfig, SecretsNeed, load};
pub use problem::{Problem, Problems, Severity};
pub use schema::Settings;
