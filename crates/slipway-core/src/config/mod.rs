//! Configuration: `deployment.yml` + `.env.<env>` → a validated, resolved
//! configuration for one environment.

pub mod origin;
pub mod raw;
pub mod dotenv;
pub mod interpolate;
pub mod schema;
pub mod problem;
pub mod secrets;
pub mod json_schema;
pub mod resolve;
pub mod validate;
pub mod discover;
pub mod load;

pub use load::{LoadOptions, ResolvedConfig, load};
pub use problem::{Problem, Problems, Severity};
pub use schema::Settings;
