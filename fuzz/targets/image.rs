//! Init and mask images (PNG, as the library is built).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = sdrt::Image::decode(data, std::path::Path::new("fuzz.png"));
});
