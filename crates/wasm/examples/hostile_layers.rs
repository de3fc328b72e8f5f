//! Writes the nastiest layers of issue 29 into a directory, as fuzz seeds and for manual
//! tests: a tar+zstd (32 KB) and a tar+gzip (1 MB) whose first entry is a GNU long name of
//! 1 GiB, then `app.wasm`. A reader that holds an extended header's body instead of counting
//! it allocates a GiB for either.
//!
//! ```sh
//! cargo run -p wharf-wasm --example hostile_layers -- fuzz/corpus/extract
//! ```

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".to_owned()));
    std::fs::create_dir_all(&dir)?;
    let zstd = wharf_wasm::fuzzing::long_name_zstd(1024);
    let gzip = wharf_wasm::fuzzing::long_name_gzip(1024);
    std::fs::write(dir.join("long-name-1gib.tar.zst"), &zstd)?;
    std::fs::write(dir.join("long-name-1gib.tar.gz"), &gzip)?;
    println!(
        "wrote {} (zstd, {} bytes) and {} (gzip, {} bytes)",
        dir.join("long-name-1gib.tar.zst").display(),
        zstd.len(),
        dir.join("long-name-1gib.tar.gz").display(),
        gzip.len()
    );
    Ok(())
}
