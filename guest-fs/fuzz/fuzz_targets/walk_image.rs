//! Opens arbitrary bytes as a disk image and walks everything in it (see
//! `guest_fs::fuzzing::exercise`). A panic anywhere aborts the process and
//! is reported as a crash, except a panic inside a third-party parser on
//! one of guest-fs's parser threads: guest-fs contains those (the caller
//! gets an error), so they are printed once per location and let through.

#![no_main]

use std::collections::HashSet;
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fuzz_target!(
    init: {
        // libFuzzer's hook aborts; keep it for every other panic.
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if guest_fs::fuzzing::is_contained_parser_panic(info) {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                if let Ok(mut seen) = SEEN.lock() {
                    if seen.get_or_insert_with(HashSet::new).insert(at.clone()) {
                        eprintln!("contained third-party parser panic at {at}: {info}");
                    }
                }
                return;
            }
            abort_hook(info);
        }));
    },
    |data: &[u8]| {
        let _ = guest_fs::fuzzing::exercise(data.to_vec());
    }
);
