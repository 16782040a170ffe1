//! A minimal, binary-safe RESP2 client: exact error texts, raw key bytes, no hidden commands on
//! connect (so `INFO commandstats` and `MONITOR` only see what a test sends).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One server reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Status(String),
    /// `-...` (the full line, e.g. `ERR limit must be ...`)
    Error(String),
    /// `:...`
    Int(i64),
    /// `$...`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*...`
    Array(Vec<Reply>),
}

impl Reply {
    /// The integer, or panic.
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// The elements of an array of integers, or panic.
    pub fn ints(&self) -> Vec<i64> {
        self.array().iter().map(Reply::int).collect()
    }

    /// The elements of an array, or panic.
    pub fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(a) => a,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    /// The text of a status or bulk reply (lossy UTF-8), or panic.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("expected a status or bulk reply, got {other:?}"),
        }
    }

    /// Every string, integer and error in the reply, depth first, as text (for `contains`
    /// checks on nested replies such as `MODULE LIST` or `COMMAND INFO`).
    pub fn flat(&self) -> Vec<String> {
        match self {
            Reply::Status(s) | Reply::Error(s) => vec![s.clone()],
            Reply::Int(i) => vec![i.to_string()],
            Reply::Bulk(b) => vec![String::from_utf8_lossy(b).into_owned()],
            Reply::Nil => vec![],
            Reply::Array(a) => a.iter().flat_map(Reply::flat).collect(),
        }
    }

    /// The error line if this is an error.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The error line, or panic.
    pub fn expect_err(&self) -> &str {
        match self {
            Reply::Error(e) => e,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }

    /// Panics on an error reply; returns self otherwise.
    pub fn ok(self) -> Reply {
        if let Reply::Error(e) = &self {
            panic!("unexpected error reply: {e}");
        }
        self
    }
}

/// One connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to 127.0.0.1:`port` with 30 s read/write timeouts (a hung server fails the test
    /// instead of hanging it).
    pub fn connect(port: u16) -> std::io::Result<Conn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Conn {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sets the read timeout (e.g. short while probing a starting server).
    pub fn set_read_timeout(&self, t: Duration) {
        self.writer.set_read_timeout(Some(t)).unwrap();
    }

    /// Sends one command without reading the reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            let a = a.as_ref();
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)
    }

    /// Reads one reply.
    pub fn read(&mut self) -> std::io::Result<Reply> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("bad reply line {:?}", String::from_utf8_lossy(&line)),
            ));
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        Ok(match line[0] {
            b'+' => Reply::Status(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(body.parse().map_err(|_| bad("integer"))?),
            b'$' => {
                let n: i64 = body.parse().map_err(|_| bad("bulk length"))?;
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut data = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n as usize);
                    Reply::Bulk(data)
                }
            }
            b'*' => {
                let n: i64 = body.parse().map_err(|_| bad("array length"))?;
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Reply::Array(items)
                }
            }
            _ => return Err(bad("unknown reply type")),
        })
    }

    /// Sends one command and reads its reply; panics on I/O errors (not on error replies).
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let show = || {
            args.iter()
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Err(e) = self.send(args) {
            panic!("sending `{}`: {e}", show());
        }
        match self.read() {
            Ok(r) => r,
            Err(e) => panic!("reading the reply to `{}`: {e}", show()),
        }
    }

    /// `cmd` for a command given as one whitespace-separated string.
    pub fn cmd_str(&mut self, line: &str) -> Reply {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }
}
