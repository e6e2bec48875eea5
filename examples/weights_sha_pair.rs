//! Speed of the one-pass file + layer digest ([`Sha256Pair`]) against one
//! and two `sha2` passes over the same bytes in memory.
//!
//! Run: `cargo run --release --example weights_sha_pair [MiB]` (default 512).

use cogpack::weights::sha_pair::Sha256Pair;
use sha2::{Digest as _, Sha256};
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    let rate = |secs: f64| data.len() as f64 / secs / 1e9;

    let start = Instant::now();
    let one = Sha256::digest(&data);
    let t_one = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut layer = Sha256::new();
    layer.update([0u8; 1536]);
    layer.update(&data);
    let two = (Sha256::digest(&data), layer.finalize());
    let t_two = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let Some(mut pair) = Sha256Pair::new(&[0u8; 1536]) else {
        println!("no SHA extensions on this CPU: the pair is not used");
        return;
    };
    for chunk in data.chunks(8 << 20) {
        pair.update(chunk);
    }
    let (content, lane) = pair.finish();
    let layer_digest = lane.finalize();
    let t_pair = start.elapsed().as_secs_f64();

    assert_eq!(content.hex(), hex::encode(one));
    assert_eq!(layer_digest.hex(), hex::encode(two.1));
    println!(
        "sha2, one digest:          {:.2} GB/s of content",
        rate(t_one)
    );
    println!(
        "sha2, two digests:         {:.2} GB/s of content",
        rate(t_two)
    );
    println!(
        "Sha256Pair, both digests:  {:.2} GB/s of content",
        rate(t_pair)
    );
}
