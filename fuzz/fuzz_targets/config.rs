//! `scopegate::Config::from_toml` on arbitrary text: it must refuse or
//! accept, never panic.
//!
//! Inputs that could name a `*_file` setting are skipped: the fuzzer must not
//! read `/dev/zero` or a FIFO from the machine it runs on. Keys of such
//! settings all end in `_file`, and TOML can only spell that differently
//! with a `\u`/`\U` escape in a quoted key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("_file") || text.contains("\\u") || text.contains("\\U") {
        return;
    }
    if let Ok(config) = scopegate::Config::from_toml(text) {
        // What `scopegate check` prints, so its Display runs too.
        let _ = config.routes.to_string();
    }
});
