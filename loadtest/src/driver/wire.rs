//! A buffered TCP connection for the text protocols of the peers (Redis
//! RESP, NATS): frames are parsed from an in-memory buffer by pure
//! functions, and more bytes are read only when a frame is incomplete.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::RequestError;

/// Largest frame accepted from a server (bounds memory on a broken reply).
pub const MAX_FRAME: usize = 64 << 20;

/// A connection plus its unparsed input.
#[derive(Debug)]
pub struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unparsed bytes in `buf`.
    start: usize,
    /// Bytes queued by [`Wire::queue`], sent by [`Wire::flush`].
    out: Vec<u8>,
    /// Read buffer: a read cancelled half-way leaves `buf` untouched.
    scratch: Vec<u8>,
}

/// Outcome of parsing the front of the buffer.
#[derive(Debug, PartialEq)]
pub enum Parse<T> {
    /// A frame and the bytes it used.
    Done(T, usize),
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not valid for the protocol.
    Invalid(String),
}

impl Wire {
    /// Connects to a loopback address (checked by the caller) with Nagle off.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, RequestError> {
        if !addr.ip().is_loopback() {
            return Err(RequestError::BadReply(format!(
                "{addr} is not loopback; refusing to connect"
            )));
        }
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| RequestError::Timeout)?
            .map_err(|_| RequestError::Connect)?;
        stream
            .set_nodelay(true)
            .map_err(|_| RequestError::Transport)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 << 10),
            start: 0,
            out: Vec::with_capacity(16 << 10),
            scratch: vec![0; 64 << 10],
        })
    }

    /// Appends bytes to the output buffer.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes the output buffer.
    pub async fn flush(&mut self) -> Result<(), RequestError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.stream.write_all(&self.out).await;
        self.out.clear();
        result.map_err(|_| RequestError::Transport)
    }

    /// Parses the next frame with `parse`, reading from the socket as needed.
    /// Cancel-safe: dropping the future loses no received bytes.
    pub async fn next<T>(&mut self, parse: impl Fn(&[u8]) -> Parse<T>) -> Result<T, RequestError> {
        loop {
            match parse(&self.buf[self.start..]) {
                Parse::Done(frame, used) => {
                    self.start += used;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(frame);
                }
                Parse::Invalid(why) => return Err(RequestError::BadReply(why)),
                Parse::Incomplete => {}
            }
            if self.buf.len() - self.start > MAX_FRAME {
                return Err(RequestError::BadReply("frame too large".into()));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // Cancel-safe: a read cancelled before completing reads nothing.
            match self.stream.read(&mut self.scratch).await {
                Ok(0) | Err(_) => return Err(RequestError::Transport),
                Ok(n) => self.buf.extend_from_slice(&self.scratch[..n]),
            }
        }
    }
}

/// The position just after the first `\r\n` in `buf`, and the line before it.
pub fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let at = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..at], at + 2))
}

/// Parses ASCII decimal digits (with an optional leading '-').
pub fn int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_ints() {
        assert_eq!(line(b"abc\r\nrest"), Some((&b"abc"[..], 5)));
        assert_eq!(line(b"abc\r"), None);
        assert_eq!(int(b"-12"), Some(-12));
        assert_eq!(int(b"x"), None);
    }
}
