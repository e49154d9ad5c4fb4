//! The offline AWS stack for development and tests: reads `template.yaml` and the ASL
//! file, starts moto, the invoke router and cargo lambda watch on 127.0.0.1, creates the
//! template's resources in the emulator, and checks them against the template.

pub mod demo;
pub mod deploy;
pub mod process;
pub mod stack;
pub mod template;
