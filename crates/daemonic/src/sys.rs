//! The only module allowed to use `unsafe`: thin wrappers over system calls that `nix` does
//! not cover. Every block says why it is sound.
