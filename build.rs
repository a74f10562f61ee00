//! Bakes libtorch's library folder into the binaries' rpath, so that `cargo run` and `cargo test`
//! find libtorch without LD_LIBRARY_PATH (which `.cargo/config.toml` cannot set for the loader).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
