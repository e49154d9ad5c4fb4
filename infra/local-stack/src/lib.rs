//! The offline AWS stack for development and tests: reads `template.yaml` and the ASL
//! file, starts moto, the invoke router and cargo lambda watch on 127.0.0.1, creates the
//! template's resources in the emulator, and checks them against the template. Or, with
//! `--emulator ministack`, deploys the packaged template through MiniStack's CloudFormation
//! (`ministack`). On moto, the stream poller (`stream_poller`) stands in for Lambda's
//! DynamoDB event source mappings.

pub mod callers;
pub mod demo;
pub mod deploy;
pub mod ministack;
pub mod process;
pub mod signing;
pub mod stack;
pub mod stream_poller;
pub mod template;
