//! The write pipeline: the writer thread that appends audit entries and
//! application messages with group commit ([`writer`]). Push delivery
//! (`crate::push`) plugs into it through [`writer::Pusher`].

pub mod writer;
