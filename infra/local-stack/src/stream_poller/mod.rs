//! The stream poller: Lambda's event source mapping for DynamoDB streams, on the moto
//! stack. So far the filters of its event sources ([`filter`]), which the template's
//! `Type: DynamoDB` events are read into.

pub mod filter;
