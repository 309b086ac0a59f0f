//! The uniffi-bindgen command line, built from the same uniffi version as the library
//! (bindings/generate.sh runs it in library mode).

fn main() {
    uniffi::uniffi_bindgen_main()
}
