//! An SMTP server on 127.0.0.1:0 that keeps every message it is given, for tests of the
//! mail the service sends. Plain SMTP only (no STARTTLS: a client that insists on TLS is
//! refused, which is what a test of that insistence wants). Commands: EHLO/HELO, AUTH PLAIN
//! (accepted, recorded), MAIL FROM, RCPT TO, DATA (with dot-unstuffing), RSET, NOOP, QUIT.
//! Stopped when dropped.

#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The most bytes one connection may send in all; a runaway client is cut off.
const MAX_SESSION_BYTES: u64 = 16 * 1024 * 1024;

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` path, without the angle brackets.
    pub from: String,
    /// The `RCPT TO` paths, in order, without the angle brackets.
    pub to: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, lines ending in CRLF.
    pub data: String,
    /// The initial response of `AUTH PLAIN`, when the client authenticated.
    pub auth: Option<String>,
}

impl ReceivedMail {
    /// The header block (everything before the first empty line).
    pub fn headers(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or(&self.data, |(head, _)| head)
    }

    /// The first value of header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut value: Option<String> = None;
        for line in self.headers().split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }

    /// The body as sent (still transfer-encoded).
    pub fn raw_body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }

    /// The body decoded from its `Content-Transfer-Encoding` (7bit, 8bit or
    /// quoted-printable), with LF line ends.
    pub fn text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(self.raw_body()),
            "" | "7bit" | "8bit" => self.raw_body().to_owned(),
            other => panic!("the sink cannot decode a {other} body"),
        };
        body.replace("\r\n", "\n")
    }

    /// The first `http://` or `https://` link in the body.
    pub fn first_link(&self) -> Option<String> {
        self.text()
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .map(str::to_owned)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if let Some(hex) = text.get(i + 1..i + 3)
                && let Ok(byte) = u8::from_str_radix(hex, 16)
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running sink. Dropping it stops the server and its connections.
pub struct SmtpSink {
    addr: SocketAddr,
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    count: watch::Receiver<usize>,
    reject_recipients: Arc<AtomicBool>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SmtpSink {
    /// Starts the sink inside the current tokio runtime.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the SMTP sink");
        let addr = listener.local_addr().expect("the sink's address");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let shared = Shared {
            messages: messages.clone(),
            count: Arc::new(count_tx),
            reject_recipients: Arc::new(AtomicBool::new(false)),
        };
        let reject_recipients = shared.reject_recipients.clone();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = serve_session(stream, shared) => {}
                    }
                });
            }
        });
        SmtpSink {
            addr,
            messages,
            count,
            reject_recipients,
            shutdown,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.messages.lock().expect("sink lock").clone()
    }

    /// Messages received so far for `recipient` (compared case-insensitively).
    pub fn messages_to(&self, recipient: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to.eq_ignore_ascii_case(recipient)))
            .collect()
    }

    /// While set, every `RCPT TO` is answered `550`, so sending fails.
    pub fn reject_recipients(&self, reject: bool) {
        self.reject_recipients.store(reject, Ordering::SeqCst);
    }

    /// Waits until at least `count` messages have arrived (panics after `timeout`) and
    /// returns all of them.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut receiver = self.count.clone();
        let waited = tokio::time::timeout(timeout, receiver.wait_for(|n| *n >= count)).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the SMTP sink received {} of {count} messages within {timeout:?}",
            self.messages().len()
        );
        self.messages()
    }

    /// Waits until a message has arrived and returns the first one.
    pub async fn wait_for_message(&self, timeout: Duration) -> ReceivedMail {
        self.wait_for_messages(1, timeout).await.swap_remove(0)
    }

    /// Waits until a message for `recipient` has arrived (panics after `timeout`) and
    /// returns the newest such message.
    pub async fn wait_for_message_to(&self, recipient: &str, timeout: Duration) -> ReceivedMail {
        let mut receiver = self.count.clone();
        let waited = tokio::time::timeout(
            timeout,
            receiver.wait_for(|_| !self.messages_to(recipient).is_empty()),
        )
        .await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "the SMTP sink received no message for {recipient} within {timeout:?}"
        );
        self.messages_to(recipient)
            .pop()
            .expect("a message was just seen")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Clone)]
struct Shared {
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    count: Arc<watch::Sender<usize>>,
    reject_recipients: Arc<AtomicBool>,
}

#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

async fn serve_session(stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_SESSION_BYTES));
    write
        .write_all(b"220 selextract-test-sink ESMTP\r\n")
        .await?;
    let mut envelope = Envelope::default();
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => {
                b"250-selextract-test-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n"
            }
            "HELO" => b"250 selextract-test-sink\r\n",
            "AUTH" => {
                auth = command.split_whitespace().nth(2).map(str::to_owned);
                b"235 2.7.0 accepted\r\n"
            }
            "MAIL" => match path_after(command, "FROM:") {
                Some(from) => {
                    envelope = Envelope {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    b"250 2.1.0 ok\r\n"
                }
                None => b"501 5.5.4 syntax: MAIL FROM:<address>\r\n",
            },
            "RCPT" => match (&envelope.from, path_after(command, "TO:")) {
                (None, _) => b"503 5.5.1 MAIL first\r\n",
                (Some(_), None) => b"501 5.5.4 syntax: RCPT TO:<address>\r\n",
                (Some(_), Some(_)) if shared.reject_recipients.load(Ordering::SeqCst) => {
                    b"550 5.1.1 recipient refused by the test sink\r\n"
                }
                (Some(_), Some(to)) => {
                    envelope.to.push(to);
                    b"250 2.1.5 ok\r\n"
                }
            },
            "DATA" if envelope.to.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let envelope = std::mem::take(&mut envelope);
                let mail = ReceivedMail {
                    from: envelope.from.unwrap_or_default(),
                    to: envelope.to,
                    data,
                    auth: auth.clone(),
                };
                let count = {
                    let mut messages = shared.messages.lock().expect("sink lock");
                    messages.push(mail);
                    messages.len()
                };
                shared.count.send_replace(count);
                b"250 2.0.0 queued\r\n"
            }
            "RSET" => {
                envelope = Envelope::default();
                b"250 2.0.0 ok\r\n"
            }
            "NOOP" => b"250 2.0.0 ok\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// `<address>` after `keyword` (`FROM:`/`TO:`), ignoring ESMTP parameters after it.
fn path_after(command: &str, keyword: &str) -> Option<String> {
    let (_, rest) = command.split_once(' ')?;
    let rest = rest.trim_start();
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest.get(keyword.len()..)?.trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// Reads DATA lines up to the lone `.`, removing the extra dot of dot-stuffed lines.
/// `None` when the client hung up first.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(Some(data));
        }
        data.push_str(content.strip_prefix('.').unwrap_or(content));
        data.push_str("\r\n");
    }
}

/// Waits this long by default for a message in tests.
pub const SMTP_WAIT: Duration = Duration::from_secs(20);
