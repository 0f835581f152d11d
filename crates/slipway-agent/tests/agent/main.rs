//! End-to-end tests of the agent: the real binary, real HTTP on loopback,
//! real upstreams started in the test. One integration binary for the area.

mod pebble;
mod util;

mod analysis;
mod drain;
mod isolation;
mod ledger;
mod maintenance;
mod notify;
mod routing;
mod switch;
mod tls;
mod upgrade;
mod websocket;
