//! Link-time code layout for the `trellis` binary (docs/benchmarks.md, "Reading these
//! figures", idle memory).
//!
//! - `-z keep-text-section-prefix` keeps `.text.startup.*` (C++ static initialisers, run once)
//!   and `.text.unlikely.*` in runs of their own instead of scattering them through `.text`.
//! - `-z pack-relative-relocs`: see below.
//! - Release builds lay out first, next to each other, the functions that start-up and the
//!   common requests run, so start-up maps a few MiB of code instead of a page in every corner of
//!   `.text`. `bench/code-order.txt` names them by *pattern*: a Rust symbol's hash (`17h…E`, or a
//!   crate's `Cs…_` in v0 names) is a `*`, so the list does not go stale when code or
//!   dependencies change (only a renamed function drops out). Rust code is mangled in v0
//!   (`.cargo/config.toml`), so a pattern names one instantiation of a generic function, not all. This script turns it into a linker
//!   script (one input-section pattern per line, in order, into `.text.hot`, inserted before
//!   `.text`; every function is in a section of its own, `.text.<symbol>`). Patterns that match
//!   nothing cost nothing. `TRELLIS_CODE_ORDER=1` applies it to other profiles too (to check it),
//!   `TRELLIS_CODE_ORDER=0` turns it off.
use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TRELLIS_CODE_ORDER");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,keep-text-section-prefix");
    // Relative relocations packed (DT_RELR, glibc ≥ 2.36): ~1 MB of `.rela.dyn` that the dynamic
    // loader would read at every start becomes a few KB.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/code-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let wanted = match std::env::var("TRELLIS_CODE_ORDER").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => std::env::var("PROFILE").as_deref() == Ok("release"),
    };
    let (Ok(patterns), Ok(out_dir)) = (std::fs::read_to_string(&order), std::env::var("OUT_DIR")) else { return };
    if !wanted {
        return;
    }
    let mut script = String::from("SECTIONS\n{\n  .text.hot :\n  {\n");
    let mut exact = String::new();
    for pattern in patterns.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let _ = writeln!(script, "    *(.text.{pattern})");
        if !pattern.contains('*') {
            let _ = writeln!(exact, "{pattern}");
        }
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    let path = Path::new(&out_dir).join("code-order.ld");
    if std::fs::write(&path, script).is_ok() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", path.display());
    }
    // Names without a hash (C and C++: RocksDB, mimalloc) also go to lld by symbol, which finds
    // the section that holds them: a C++ constructor `C1` lives in its `C2`'s section, a
    // `.localalias` or `.isra.0` in its original's, which the section patterns above miss. They
    // land at the start of `.text`, right after `.text.hot`. rust-lld is the default linker of
    // this target only.
    let lld = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    let syms = Path::new(&out_dir).join("code-order.syms");
    if lld && std::fs::write(&syms, exact).is_ok() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", syms.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
