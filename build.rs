// Linker settings for the C library: a SONAME so programs record a versioned name, and
// RUNPATH $ORIGIN so an ONNX Runtime placed beside libsdrt is found by the loader; and for the
// sdrt command, a RUNPATH to the install prefix's lib folder.
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_else(|_| "0".into());
        // Before 1.0 the minor version carries ABI breaks, so it is part of the SONAME.
        let soname = if major == "0" { format!("libsdrt.so.0.{minor}") } else { format!("libsdrt.so.{major}") };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
        // The sdrt command installed as PREFIX/bin/sdrt finds ONNX Runtime in PREFIX/lib.
        println!("cargo:rustc-link-arg-bin=sdrt=-Wl,-rpath,$ORIGIN/../lib");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
