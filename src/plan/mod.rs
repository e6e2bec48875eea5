//! The build plan: base image, ordered steps and the final image config.
