// Linker settings for the C library: a SONAME so programs record a versioned name, and
// RUNPATH $ORIGIN so an ONNX Runtime placed beside libsdrt is found by the loader; and for the
// sdrt command, a RUNPATH to the install prefix's lib folder.
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        // The SONAME names the C ABI, not the release: ABI 1 froze with release 0.1, whose
        // SONAME programs have recorded, and later releases only append to it. It changes only
        // if the ABI ever breaks (SDRT_ABI_VERSION 2).
        let soname = "libsdrt.so.0.1";
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
        // The sdrt command installed as PREFIX/bin/sdrt finds ONNX Runtime in PREFIX/lib.
        println!("cargo:rustc-link-arg-bin=sdrt=-Wl,-rpath,$ORIGIN/../lib");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
