//! `daemonic::memory::release_startup_pages` on a real process (the `memory-probe`
//! fixture): the stack a start-up dirtied below the frames still live is given back.

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
