//! A forward proxy on 127.0.0.1 that records what it is asked — `CONNECT host:port …`, or the
//! request line of a plain-HTTP request in absolute form (`GET http://…`) — and passes the
//! traffic on, so tests can see where a client sent its traffic through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read before giving up on a connection.
const MAX_HEAD: usize = 64 << 10;

/// The proxy. A plain-HTTP request is passed on with `Connection: close`, so the server's answer
/// ends the connection and the client's next request comes on a new one, to be recorded too.
#[derive(Clone)]
pub struct RecordingProxy {
    address: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let proxy = RecordingProxy { address, asked: Arc::default() };
        let recorder = proxy.asked.clone();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(pass_on(connection, recorder.clone()));
            }
        });
        proxy
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The request lines asked so far, e.g. `CONNECT internal.test:443 HTTP/1.1`.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// Whether any request line asked so far contains `fragment`.
    pub fn was_asked(&self, fragment: &str) -> bool {
        self.asked().iter().any(|line| line.contains(fragment))
    }
}

async fn pass_on(mut client: TcpStream, asked: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        let Ok(read) = client.read(&mut buffer).await else { return };
        if read == 0 || head.len() > MAX_HEAD {
            return;
        }
        head.extend_from_slice(&buffer[..read]);
        if let Some(at) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let line =
        String::from_utf8_lossy(&head[..head.iter().position(|b| *b == b'\r').unwrap_or(0)]).into_owned();
    asked.lock().unwrap().push(line.clone());
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let destination = if method == "CONNECT" {
        target.to_owned()
    } else {
        match url::Url::parse(target) {
            Ok(url) => {
                format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(80))
            }
            Err(_) => return,
        }
    };
    let Ok(mut upstream) = TcpStream::connect(destination.as_str()).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
        return;
    };
    if method == "CONNECT" {
        if client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.is_err() {
            return;
        }
        if upstream.write_all(&head[end..]).await.is_err() {
            return;
        }
    } else {
        // A server takes the absolute form too: the head goes on as it came, but for closing.
        let text = String::from_utf8_lossy(&head[..end - 2]);
        let mut passed: String = text
            .split_inclusive("\r\n")
            .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
            .collect();
        passed.push_str("Connection: close\r\n\r\n");
        if upstream.write_all(passed.as_bytes()).await.is_err()
            || upstream.write_all(&head[end..]).await.is_err()
        {
            return;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
