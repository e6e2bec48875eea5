//! cogpack: a Docker-free image assembler for Cog models.
//!
//! Data flows one way: [`cli`] → [`plan`] → builders ([`layer`], [`python`],
//! [`schema`], [`weights`]) → [`oci`] store → [`registry`].

pub mod backend;
pub mod cli;
pub mod config;
pub mod layer;
pub mod oci;
pub mod plan;
pub mod python;
pub mod registry;
pub mod sandbox;
pub mod schema;
pub mod weights;
