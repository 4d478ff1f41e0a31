//! The tokio I/O shared by the server and the client: a frame reader that
//! frees the buffers large frames needed, a batching writer task (the
//! client's) and a writer the connection's own task drives (the server's).

pub mod inline_writer;
pub mod reader;
pub mod writer;
