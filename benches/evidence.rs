//! Evidence hashing: streaming SHA-256 of a 64 MiB file (the per-byte cost of
//! bundling large artifacts) and building a whole bundle of 50 small files
//! (copy, hash, manifest, statement, SHA256SUMS).
//!
//! `cargo bench --bench evidence` (about a minute). Throughput against
//! coreutils on 1 GiB: `bash benches/compare-sha256.sh`.

use std::path::PathBuf;

use atlas::evidence::{sha256_file, BundleBuilder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("atlas-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn hashing(c: &mut Criterion) {
    let dir = scratch("hash");
    let file = dir.join("64mib.bin");
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    let mut g = c.benchmark_group("manifest_hashing");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("sha256_file/64MiB", |b| {
        b.iter(|| sha256_file(&file).unwrap())
    });
    g.finish();

    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    for i in 0..50 {
        std::fs::write(run.join(format!("artifact-{i}.json")), &data[..8192]).unwrap();
    }
    let mut n = 0u64;
    c.bench_function("bundle/build_50_files", |b| {
        b.iter(|| {
            n += 1;
            let out = dir.join(format!("bundle-{n}"));
            let mut builder = BundleBuilder::new();
            builder.add_dir(&run).unwrap();
            builder.write(&out).unwrap();
            std::fs::remove_dir_all(&out).unwrap();
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, hashing);
criterion_main!(benches);
