//! Registry client: references, credentials and auth, shallow pull of base
//! images, the push pipeline (blobs, config, manifest, bundle index),
//! progress events, login and inspect.
//!
//! Entry points: [`Client::new`] with [`ClientOptions`];
//! [`Client::pull_shallow`], [`Client::manifest_exists`],
//! [`Client::push_image`], [`Client::push_bundle`], [`Client::push_blob`],
//! [`Client::push_manifest`], [`Client::inspect`], [`Client::login`].
//! The library never prints; pass a [`progress::Progress`] reporter.

pub mod auth;
pub mod client;
pub mod credentials;
mod error;
pub mod inspect;
pub mod login;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod remote;
pub mod settings;
pub mod upload;
pub mod weights_adapter;

pub use client::{Client, ClientOptions, RetryPolicy};
pub use credentials::{Credential, DockerConfig};
pub use error::RegistryError;
pub use inspect::{CogModel, cog_model_from_config};
pub use progress::{
    BarProgress, BlobOutcome, JsonProgress, NoProgress, PlainProgress, Progress, ProgressEvent,
    ProgressMode, reporter,
};
pub use pull::{FetchedManifest, PulledImage};
pub use push::{BundlePushed, BundleWeight, BytesBlob, bundle_index};
pub use reference::Reference;
pub use remote::{RemoteImage, RemoteLayer};
pub use settings::RegistrySettings;
pub use upload::UploadOptions;
