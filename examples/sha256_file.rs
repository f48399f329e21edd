//! Print the SHA-256 of files the way `sha256sum` does, with the streaming
//! hasher `atlas-evidence` uses for bundles (for comparing throughput).
//!
//! `cargo run --release --example sha256_file -- FILE...`

fn main() -> anyhow::Result<()> {
    for path in std::env::args().skip(1) {
        let (hex, _) = atlas::evidence::sha256_file(std::path::Path::new(&path))?;
        println!("{hex}  {path}");
    }
    Ok(())
}

// Compare with coreutils on the same file:
//   head -c 1G /dev/urandom > /tmp/big && time sha256sum /tmp/big
//   time target/release/examples/sha256_file /tmp/big
