//! The Dockerfile backend: renders the build plan as the Dockerfile cog would generate.
