//! `daemonic::memory` on a real process (the `memory-probe` fixture): the stack a
//! start-up dirtied below the frames still live is given back, and so is a large buffer
//! when it is dropped, every time.

use std::process::Command;

use daemonic_test_support::example;

fn field(text: &str, name: &str) -> u64 {
    text.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
}

#[test]
fn the_stack_below_the_live_frames_is_given_back() {
    let out = Command::new(example("memory-probe")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (before, after) = (field(&text, "before"), field(&text, "after"));
    // The probe dirtied 1 MiB of frames and returned from them.
    assert!(before >= 1024, "the probe's stack was not dirtied: {text}");
    assert!(field(&text, "stack_bytes") >= 900 * 1024, "{text}");
    assert!(after + 900 <= before, "the stack stayed resident: {text}");
    assert!(field(&text, "code_bytes") > 0, "{text}");
}

#[test]
fn a_large_buffer_goes_back_to_the_kernel_each_time_it_is_dropped() {
    let out = Command::new(example("memory-probe"))
        .arg("large")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let full = field(&text, "full");
    // glibc's own default gives the first one back and keeps the second in its heap.
    assert!(field(&text, "first") + 3 * 1024 < full, "{text}");
    assert!(field(&text, "second") + 3 * 1024 < full, "{text}");
}
