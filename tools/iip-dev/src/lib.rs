//! The iip developers' measuring devices and book tooling, kept out of the
//! `iip` crate and its command: the comparison servers that the
//! Performance chapter's figures are read against ([`floor`]), and the
//! book's preprocessor and figure generator ([`book`]).
//!
//! Empty in the loom build (`--cfg loom`), where `iip` has no runtime.

#![cfg(not(loom))]

pub mod book;
pub mod floor;
