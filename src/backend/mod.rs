//! Build engines other than the native assembler.

pub mod docker;
pub mod native;
