//! File download and upload over IIP with resume: a file moves in parts of
//! `PART` bytes on one channel; after an interruption the transfer starts
//! again from the bytes already on the receiving side, and the result is
//! checked by its SHA-256.
//!
//! Routes (queries carry the file name and offsets; bodies carry bytes):
//!
//! | route | query | body | answer |
//! |---|---|---|---|
//! | `/file/stat` | `name` | | `{"size":N,"sha256":"…"}` of a served file |
//! | `/file/read` | `name`, `offset`, `len` | | up to `len` bytes from `offset` |
//! | `/file/uploaded` | `name` | | `{"size":N}`: bytes of an upload received so far |
//! | `/file/write` | `name`, `offset` | the part | `{"size":N}`; `offset` must equal the size so far |
//! | `/file/finish` | `name`, `sha256` | | `{"size":N}` when the upload's hash matches |
//!
//! Names are plain file names inside the server's folder: no `/`, no `..`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use iip::client::{Channel, ClientError};
use iip::server::{HandlerError, Request, Server, ServerBuilder};
use sha2::{Digest, Sha256};

/// The size of one part: one request or one answer.
pub const PART: usize = 256 * 1024;

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Where it started: the bytes the receiving side already had.
    pub resumed_from: u64,
    /// Bytes moved by this run.
    pub moved: u64,
    /// The file's size.
    pub size: u64,
}

/// Why a transfer stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The connection or the server failed; run again to resume.
    #[error("transfer interrupted: {0}")]
    Call(#[from] ClientError),
    /// A local file could not be read or written.
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    /// The server's answer was not what the protocol above says.
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// The received file's hash differs from the sender's.
    #[error("hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The sender's hash.
        expected: String,
        /// The receiver's hash.
        actual: String,
    },
}

/// The server side: serves and receives files in `root`.
pub fn file_server(root: impl Into<PathBuf>) -> ServerBuilder {
    let root = std::sync::Arc::new(root.into());
    let (stat, read, uploaded, write, finish) = (root.clone(), root.clone(), root.clone(), root.clone(), root);
    Server::builder()
        .route("/file/stat", move |req: Request| {
            let root = stat.clone();
            async move {
                let path = file_in(&root, &req)?;
                let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
                Ok::<_, HandlerError>(size_answer(bytes.len() as u64, Some(&sha256_hex(&bytes))))
            }
        })
        .route("/file/read", move |req: Request| {
            let root = read.clone();
            async move {
                let path = file_in(&root, &req)?;
                let (offset, len) = (number(&req, "offset")?, number(&req, "len")?.min(PART as u64));
                read_part(&path, offset, len).await.map_err(io_error)
            }
        })
        .route("/file/uploaded", move |req: Request| {
            let root = uploaded.clone();
            async move {
                let path = partial(&file_in(&root, &req)?);
                let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
                Ok::<_, HandlerError>(size_answer(size, None))
            }
        })
        .route("/file/write", move |req: Request| {
            let root = write.clone();
            async move {
                let path = partial(&file_in(&root, &req)?);
                let offset = number(&req, "offset")?;
                let size = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
                if offset != size {
                    return Err(HandlerError::new(format!("offset {offset}: the upload has {size} bytes")));
                }
                append(&path, req.body()).await.map_err(io_error)?;
                Ok(size_answer(size + req.body().len() as u64, None))
            }
        })
        .route("/file/finish", move |req: Request| {
            let root = finish.clone();
            async move {
                let path = file_in(&root, &req)?;
                let expected = query(&req, "sha256")?;
                let bytes = tokio::fs::read(partial(&path)).await.map_err(io_error)?;
                let actual = sha256_hex(&bytes);
                if actual != expected {
                    return Err(HandlerError::new(format!("hash mismatch: expected {expected}, got {actual}")));
                }
                tokio::fs::rename(partial(&path), &path).await.map_err(io_error)?;
                Ok(size_answer(bytes.len() as u64, None))
            }
        })
}

/// Downloads `name` into `dest`, resuming from what `dest` already holds.
pub async fn download(channel: &Channel, name: &str, dest: &Path) -> Result<Transfer, TransferError> {
    let stat = json(&channel.call(format!("/file/stat?name={name}"), "").await?)?;
    let (size, expected) = (field_u64(&stat, "size")?, field_str(&stat, "sha256")?);
    let local = tokio::fs::metadata(dest).await.map(|m| m.len()).unwrap_or(0);
    let resumed_from = if local > size {
        // More local bytes than the file has: not a prefix of it; start over.
        tokio::fs::remove_file(dest).await?;
        0
    } else {
        local
    };
    let mut offset = resumed_from;
    while offset < size {
        let part = channel.call(format!("/file/read?name={name}&offset={offset}&len={PART}"), "").await?;
        if part.is_empty() {
            return Err(TransferError::Answer(format!("empty part at offset {offset} of {size}")));
        }
        append(dest, &part).await?;
        offset += part.len() as u64;
    }
    let actual = sha256_hex(&tokio::fs::read(dest).await?);
    if actual != expected {
        return Err(TransferError::HashMismatch { expected, actual });
    }
    Ok(Transfer { resumed_from, moved: size - resumed_from, size })
}

/// Uploads `source` as `name`, resuming from what the server already has.
pub async fn upload(channel: &Channel, source: &Path, name: &str) -> Result<Transfer, TransferError> {
    let bytes = tokio::fs::read(source).await?;
    let size = bytes.len() as u64;
    let have = field_u64(&json(&channel.call(format!("/file/uploaded?name={name}"), "").await?)?, "size")?;
    let resumed_from = have.min(size);
    let mut offset = resumed_from;
    while offset < size {
        let end = (offset + PART as u64).min(size);
        let part = Bytes::copy_from_slice(&bytes[offset as usize..end as usize]);
        let answer = json(&channel.call(format!("/file/write?name={name}&offset={offset}"), part).await?)?;
        offset = field_u64(&answer, "size")?;
    }
    channel.call(format!("/file/finish?name={name}&sha256={}", sha256_hex(&bytes)), "").await?;
    Ok(Transfer { resumed_from, moved: size - resumed_from, size })
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn partial(path: &Path) -> PathBuf {
    path.with_extension("part")
}

fn query(req: &Request, key: &str) -> Result<String, HandlerError> {
    let query = req.query_str().unwrap_or_default().into_owned();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=').map(str::to_string))
        .ok_or_else(|| HandlerError::new(format!("missing query parameter {key}")))
}

fn number(req: &Request, key: &str) -> Result<u64, HandlerError> {
    query(req, key)?.parse().map_err(|e| HandlerError::new(format!("{key}: {e}")))
}

/// The file a request names, refused unless it is a plain name in `root`.
fn file_in(root: &Path, req: &Request) -> Result<PathBuf, HandlerError> {
    let name = query(req, "name")?;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(HandlerError::new(format!("{name:?} is not a plain file name")));
    }
    Ok(root.join(name))
}

fn io_error(err: std::io::Error) -> HandlerError {
    HandlerError::new(err)
}

fn size_answer(size: u64, sha256: Option<&str>) -> Bytes {
    let mut answer = serde_json::json!({ "size": size });
    if let Some(hash) = sha256 {
        answer["sha256"] = hash.into();
    }
    Bytes::from(answer.to_string())
}

async fn read_part(path: &Path, offset: u64, len: u64) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut part = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut part).await?;
    Ok(Bytes::from(part))
}

async fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
    file.write_all(bytes).await?;
    file.flush().await
}

fn json(body: &[u8]) -> Result<serde_json::Value, TransferError> {
    serde_json::from_slice(body).map_err(|e| TransferError::Answer(format!("{e}: {}", String::from_utf8_lossy(body))))
}

fn field_u64(value: &serde_json::Value, key: &str) -> Result<u64, TransferError> {
    value[key].as_u64().ok_or_else(|| TransferError::Answer(format!("no number {key} in {value}")))
}

fn field_str(value: &serde_json::Value, key: &str) -> Result<String, TransferError> {
    value[key].as_str().map(str::to_string).ok_or_else(|| TransferError::Answer(format!("no text {key} in {value}")))
}
