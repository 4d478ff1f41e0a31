//! The tokio I/O shared by the server and the client: a frame reader that
//! frees the buffers large frames needed, and a batching writer task.

pub mod reader;
pub mod writer;
