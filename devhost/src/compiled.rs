//! Compiled components kept on disk across processes, so a test run or a
//! `devhost up` after the first one skips Cranelift.
//!
//! A component's file is `<key>.cwasm`, where the key is the SHA-256 of the
//! component's bytes, of the engine's precompile compatibility hash (the
//! wasmtime version and every setting that changes compiled code) and of
//! this crate's version. The folder is `$DEVHOST_COMPILE_CACHE` if set, else
//! `$CARGO_TARGET_DIR/devhost-compiled` (the build's own scratch space, which
//! `cargo clean` clears and CI already keeps), else
//! `<temp dir>/devhost-compiled`. Stale files are never read again (their
//! key no longer matches); deleting the folder is always safe.
//!
//! The cache only ever saves time: any I/O error reading or writing it is
//! one line on stderr, and the component is compiled as it would be without.

use anyhow::Result;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The cache folder (see the module's documentation).
pub(crate) fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEVHOST_COMPILE_CACHE") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).join("devhost-compiled"),
        None => std::env::temp_dir().join("devhost-compiled"),
    }
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut sha = Sha256::new();
    sha.update(bytes);
    sha.update(compat.finish().to_le_bytes());
    sha.update(env!("CARGO_PKG_VERSION").as_bytes());
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The component in `bytes`, from the cache folder `dir` when it holds it,
/// else compiled and stored there for the next process; `true` when it was
/// compiled.
pub(crate) fn load(engine: &Engine, bytes: &[u8], dir: &Path) -> Result<(Component, bool)> {
    let file = dir.join(format!("{}.cwasm", key(engine, bytes)));
    if file.is_file() {
        // SAFETY: `deserialize_file` trusts the file to be wasmtime's own
        // compiled code. Files in this folder are written only by this
        // function, from `engine.precompile_component`, and renamed into
        // place whole; each is named by the hash of its input and of the
        // engine's compatibility hash, so a name never points at code for
        // other input or another engine configuration. wasmtime also checks
        // the file's header (version, target, settings) and refuses a
        // mismatch, which then lands in the fallback below.
        match unsafe { Component::deserialize_file(engine, &file) } {
            Ok(component) => return Ok((component, false)),
            Err(error) => eprintln!(
                "devhost: compile cache {} unusable ({error}); compiling",
                file.display()
            ),
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(error) = store(dir, &file, &compiled) {
        eprintln!(
            "devhost: cannot write compile cache {} ({error}); continuing without it",
            file.display()
        );
    }
    // SAFETY: `compiled` was produced just above by `precompile_component`
    // on this same engine, which is what `deserialize` requires.
    Ok((unsafe { Component::deserialize(engine, &compiled) }?, true))
}

/// Writes `compiled` to a temporary file beside `file`, then renames it into
/// place, so a concurrent reader sees either no file or the whole one.
fn store(dir: &Path, file: &Path, compiled: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("cwasm"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::write(&tmp, compiled).and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn compiled_once_then_read_back_and_a_corrupt_file_is_rewritten() {
        let engine = Engine::default();
        let dir =
            std::env::temp_dir().join(format!("devhost-compiled-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let wasm = {
            let mut component = wasm_encoder::Component::new();
            component.section(&wasm_encoder::ModuleSection(&wasm_encoder::Module::new()));
            component.finish()
        };
        let compiled = |bytes: &[u8], dir: &Path| load(&engine, bytes, dir).unwrap().1;

        assert!(compiled(&wasm, &dir));
        let files = cwasm_files(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].extension().is_some_and(|e| e == "cwasm"));
        let written = std::fs::read(&files[0]).unwrap();

        // A second load (a later process) reads the file, compiling nothing.
        let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
        assert!(!compiled(&wasm, &dir));
        assert_eq!(cwasm_files(&dir), files);
        let unchanged = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
        assert_eq!(unchanged, modified);

        // Other input is another file.
        let other = wasm_encoder::Component::new().finish();
        assert!(compiled(&other, &dir));
        assert_eq!(cwasm_files(&dir).len(), 2);

        // A corrupt file is refused by wasmtime, compiled again and rewritten.
        std::fs::write(&files[0], b"not a compiled component").unwrap();
        assert!(compiled(&wasm, &dir));
        assert_eq!(std::fs::read(&files[0]).unwrap(), written);
        assert!(!compiled(&wasm, &dir));

        // An unusable folder (a file where it should be) only costs time.
        let blocked = dir.join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        assert!(compiled(&wasm, &blocked));
        assert!(compiled(&wasm, &blocked));

        std::fs::remove_dir_all(&dir).unwrap();
    }
}
