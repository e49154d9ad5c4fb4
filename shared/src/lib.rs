//! What every function of the terminal order system shares: the order domain and its
//! validation, the order life cycle, the stable error names the state machine matches,
//! the DynamoDB store, configuration and telemetry.
//!
//! Functions wire these together in their `main.rs` and keep their decisions in a
//! handler function; all I/O goes through this crate.

pub mod activity;
pub mod callers;
pub mod catalogue;
pub mod config;
pub mod dead_letters;
pub mod delivery;
pub mod errors;
pub mod events;
#[cfg(feature = "test-fakes")]
pub mod fakes;
pub mod order;
pub mod partners;
pub mod recovery;
pub mod secrets;
pub mod status;
pub mod steps;
pub mod store;
pub mod telemetry;
pub mod validation;
pub mod view;

pub use errors::{ActivityError, ErrorName, FailureKind};
pub use order::{Order, OrderId, OrderKind};
pub use status::OrderStatus;
