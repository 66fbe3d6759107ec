//! Opens arbitrary bytes as a disk image and walks everything in it (see
//! `guest_fs::fuzzing::exercise`). A panic anywhere, including in a parser
//! thread, aborts the process and is reported as a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = guest_fs::fuzzing::exercise(data.to_vec());
});
